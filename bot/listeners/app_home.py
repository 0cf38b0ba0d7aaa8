"""App Home: the Home tab each person sees (what waits for their approval, the running jobs,
the fleet at a glance), drawn when they open it and redrawn after a click made there."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.handler import job_lines, scan_timing_line
from bot.listeners.replies import describe
from commands.policy import Actor
from commands.workflows import Core

if TYPE_CHECKING:
    from bot.service import Services

log = logging.getLogger(__name__)


def publish_home(services: Services, client: WebClient, actor: Actor, notice: str = "") -> None:
    """Draw `actor`'s Home tab, with `notice` (an answer to their click) on top."""
    view = home_view(services.core, actor, services.alerts)
    if notice:
        view["blocks"] = blocks.fit([blocks.section(notice), blocks.divider(),
                                     *view["blocks"]], blocks.MAX_HOME_BLOCKS)
    try:
        published = client.views_publish(user_id=actor.user_id, view=view)
    except (SlackApiError, SlackClientError) as error:
        log.warning("views.publish for %s failed (%s)", actor.user_id, describe(error))
        return
    # Its Approve/Reject count only from a Home tab the bot published for that person.
    view_id = (published.get("view") or {}).get("id")
    if view_id:
        services.notifier.buttons.record_home(actor.user_id, str(view_id), time.time())


def home_view(core: Core, actor: Actor, alerts: Any = None) -> dict[str, Any]:
    views = [blocks.approval_view(request) for request in core.approvals_awaiting(actor)]
    can_approve = bool(core.approvable_operations(actor))
    return blocks.app_home(approvals=views, jobs=job_lines(core), fleet=fleet_view(alerts),
                           can_approve=can_approve)


def fleet_view(alerts: Any) -> blocks.FleetView | None:
    """From the alerts module's last scan; None until it exists and has scanned once."""
    summary_of: Callable[[], Any] | None = getattr(alerts, "fleet_summary", None)
    if summary_of is None:
        return None
    try:
        summary = summary_of()
    except Exception:
        log.exception("fleet summary unavailable")
        return None
    if summary.last_scan is None:
        return None
    schedule = ""
    if summary.timing is not None:
        schedule = scan_timing_line(summary.timing, alerts.settings.timezone)
    return blocks.FleetView(summary.devices, dict(summary.by_token_state), summary.ending_7_days,
                            summary.ending_30_days, summary.open_alerts,
                            summary.last_scan.finished_at or summary.last_scan.started_at,
                            weeks=_coming_weeks(alerts), schedule=schedule)


def _coming_weeks(alerts: Any) -> tuple[tuple[str, int], ...]:
    try:
        expiring = alerts.expiring(limit=0)
    except Exception:  # the chart is a picture: its absence must not cost the Home tab
        log.exception("weekly chart unavailable")
        return ()
    return tuple((week.label, week.count) for week in expiring.weeks)
