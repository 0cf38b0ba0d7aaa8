"""The Bolt app and the bot's metrics sources. The listeners live in `bot/listeners/`.

With `process_before_response=True` the acknowledgement is the HTTP answer itself (no polling
for it), so every listener acknowledges and hands its work off (`bot.listeners.handoff`).
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.ack_gate import AckGate, AcksFirstExecutor, attach
from commands import metrics
from commands.workflows import Core


class _GivenClientNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment even when handed a client, then warns
    that the token "will be unused" at every start. The bot builds that client from that very
    token on purpose: the warning says nothing an operator can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_GIVEN_CLIENT_NOTICE = _GivenClientNotice()
logging.getLogger("slack_bolt.App").addFilter(_GIVEN_CLIENT_NOTICE)  # idempotent: one object


def create_bolt_app(client: WebClient, *, listener_executor: Executor | None = None) -> App:
    """A Bolt app with no listener yet: `bot.service.assemble` registers them all.

    Given `client`, Bolt calls no `auth.test` while building the app. `listener_executor` runs
    the work the listeners hand off (Bolt's default: a pool of 10 threads), each once no
    request is being acknowledged (`bot.ack_gate`).
    """
    gate = AckGate()
    executor = AcksFirstExecutor(
        listener_executor or ThreadPoolExecutor(max_workers=10, thread_name_prefix="lazy"), gate)
    # Signatures are verified by the HTTP edge (`bot.slack_edge`), which hands Bolt the parsed
    # document; Socket Mode needs none.
    app = App(client=client, signing_secret="verified-by-bot.slack_edge",
              request_verification_enabled=False, token_verification_enabled=False,
              process_before_response=True, listener_executor=executor)
    attach(app, gate)
    return app


# --------------------------------------------------------------------------- metrics


def register_metrics(core: Core, alerts: Any = None) -> None:
    """Workflows by state, approvals waiting, the last fleet scan and the alert digests waiting
    for Slack, read at scrape time."""
    metrics.set_workflow_state_source(core.workflow_counts)
    metrics.set_approvals_waiting_source(core.approvals_waiting)
    if alerts is not None:
        metrics.set_scan_source(ScanFigures(alerts))
        metrics.set_last_success_source(alerts.last_success, core.clock.now)
        metrics.set_undelivered_digests_source(lambda: len(alerts.undelivered()))


def unregister_metrics() -> None:
    """Take every source `register_metrics` gave off the registry, which is global: for a
    service stopped in a process that goes on (the tests start one service after another)."""
    metrics.set_workflow_state_source(None)
    metrics.set_approvals_waiting_source(None)
    metrics.set_scan_source(None)
    metrics.set_last_success_source(None)
    metrics.set_undelivered_digests_source(None)


class ScanFigures:
    """The last scan's duration and devices by token state, from the alerts' database.

    Read from the store rather than pushed by the scan, so the figures survive a restart and
    cover every scan (scheduled or `/sigfox scan`). Counting the fleet table costs a query over
    every device: it is redone only when a newer scan has finished, not at every scrape.
    """

    def __init__(self, alerts: Any) -> None:
        self.alerts = alerts
        self._cached: tuple[int, metrics.ScanFigures] | None = None

    def __call__(self) -> metrics.ScanFigures | None:
        scan = self.alerts.last_scan()
        if scan is None:
            return None
        if self._cached is None or self._cached[0] != scan.id:
            summary = self.alerts.fleet_summary()
            self._cached = (scan.id, (float(scan.duration), dict(summary.by_token_state)))
        return self._cached[1]
