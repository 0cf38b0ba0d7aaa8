"""The whole bot in HTTP mode for tests: real Bolt app under uvicorn, real WebClient against the
Slack stand-in, a real core on the simulated Sigfox backend, a manual clock for the workflows."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.notifier import SlackNotifier
from bot.service import assemble
from bot.slack_client import make_web_client
from bot.web import CALLBACK_SECRET_HEADER, create_web_app
from commands.alerting import AlertService
from commands.config import BotConfig
from commands.ports import ManualClock
from commands.workflows import Core
from demo.slack_standin import BackgroundServer, SlackApiStandIn
from sigfox.client import WaitMode
from sigfox.simulator import SimulatorServer
from storage.db import open_database

from .core import Fleet, build_fleet, core_config, sigfox_client
from .slack_signing import (
    CHANNEL_ID,
    app_home_opened_event,
    block_actions_body,
    home_block_actions_payload,
    interaction_body,
    signed_headers,
    slash_command_body,
)

SIGNING_SECRET = "bot-tests-signing-secret-0123456789"
CALLBACK_SECRET = "bot-tests-callback-secret"
REQUESTER_ID = "U0REQUEST"
APPROVER_ID = "U0APPROVE"
GROUP_APPROVER_ID = "U0GROUPIE"
OUTSIDER_ID = "U0OUTSIDE"
APPROVERS_GROUP = "S0APPROVERS"


class TrackingExecutor(ThreadPoolExecutor):
    """The listeners' handed-off work runs here; `drain()` waits until every piece submitted
    has ended."""

    def __init__(self, workers: int = 8, also: TrackingExecutor | None = None) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="bolt-test")
        self.workers = workers
        self._futures: list[Future[Any]] = []
        self._guard = threading.Lock()
        self.also = also  # drained with this one (the read lane's workers)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        with self._guard:
            self._futures.append(future)
        return future

    def pending(self) -> list[Future[Any]]:
        with self._guard:
            return [f for f in self._futures if not f.done()]

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._guard:
                pending = [f for f in self._futures if not f.done()]
            if self.also is not None:
                pending += [f for f in self.also.pending()]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} listener(s) still running")
            time.sleep(0.01)


@dataclass
class BotHarness:
    url: str
    standin: SlackApiStandIn
    core: Core
    clock: ManualClock
    simulator: SimulatorServer
    fleet: Fleet
    executor: TrackingExecutor
    notifier: SlackNotifier
    alerts: AlertService
    bolt_app: Any = None  # the Bolt app `assemble` built, for tests of its wiring (its gate)
    _homes_opened: int = 0

    # -- requests as Slack sends them ------------------------------------------------------

    def post(self, body: str, *, content_type: str = "application/x-www-form-urlencoded",
             extra_headers: dict[str, str] | None = None,
             timestamp: int | None = None) -> httpx.Response:
        headers = signed_headers(SIGNING_SECRET, body, timestamp=timestamp,
                                 content_type=content_type)
        headers.update(extra_headers or {})
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=10)

    def command(self, text: str, user: str = REQUESTER_ID, *, settle: bool = True,
                **fields: Any) -> httpx.Response:
        url = self.standin.response_url(CHANNEL_ID, user)
        response = self.post(slash_command_body(text, user_id=user, response_url=url, **fields))
        if settle:
            self.executor.drain()
        return response

    def click(self, action_id: str, value: str, user: str, *, message_ts: str = "",
              thread_ts: str | None = None, settle: bool = True, **fields: Any
              ) -> httpx.Response:
        url = self.standin.response_url(CHANNEL_ID, user, message_ts=message_ts or None)
        body = block_actions_body(action_id, value, user_id=user, user_name=user.lower(),
                                  message_ts=message_ts or "1.000001", thread_ts=thread_ts,
                                  response_url=url, **fields)
        response = self.post(body)
        if settle:
            self.executor.drain()
        return response

    def open_home(self, user: str) -> dict[str, Any]:
        """`user` opens the app's Home tab (a fresh event each time); the view published."""
        self._homes_opened += 1
        self.event({**app_home_opened_event(user), "event_id": f"EvHOME{self._homes_opened}"})
        return self.standin.home_views[user]

    def click_home(self, action_id: str, value: str, user: str, *, view_id: str = ""
                   ) -> httpx.Response:
        """A click on `user`'s Home tab, as published to them (opened first if it never was);
        `view_id` names another view instead."""
        view = self.standin.home_views.get(user) or self.open_home(user)
        payload = home_block_actions_payload(action_id, value, user_id=user,
                                             view_id=view_id or view["id"])
        response = self.post(interaction_body(payload))
        self.executor.drain()
        return response

    def event(self, envelope: dict[str, Any], **headers: str) -> httpx.Response:
        response = self.post(json.dumps(envelope), content_type="application/json",
                             extra_headers=headers)
        self.executor.drain()
        return response

    def uplink(self, device_id: str) -> httpx.Response:
        self.simulator.uplink(device_id)
        body = {"device": device_id, "time": int(time.time()), "data": "0a0b", "seqNumber": 1}
        return httpx.post(f"{self.url}/sigfox/uplink", json=body,
                          headers={CALLBACK_SECRET_HEADER: CALLBACK_SECRET}, timeout=10)

    # -- time -----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.simulator.advance(seconds)

    # -- what Slack saw -------------------------------------------------------------------

    def ephemerals_for(self, user: str) -> list[dict[str, Any]]:
        return [m for m in self.standin.ephemerals if m.get("ephemeral_user") == user]

    def ephemeral_texts(self, user: str) -> list[str]:
        return [_all_text(m) for m in self.ephemerals_for(user)]

    def parents(self) -> list[dict[str, Any]]:
        return self.standin.messages(CHANNEL_ID)

    def thread_texts(self, parent_ts: str) -> list[str]:
        return [_all_text(m) for m in self.standin.thread(CHANNEL_ID, parent_ts)[1:]]

    def approval_message(self, approval_id: int) -> dict[str, Any]:
        approval = self.core.store.get_approval(approval_id)
        assert approval is not None and approval.message_ref, "approval message not posted"
        return self.standin.message(CHANNEL_ID, approval.message_ref["ts"])


def _all_text(message: dict[str, Any]) -> str:
    """The fallback text and every text inside the blocks, for assertions."""
    return message.get("text", "") + "\n" + json.dumps(message.get("blocks", []))


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks", []) if b["type"] == "actions"
            for e in b["elements"]]


@contextmanager
def running_bot(simulator: SimulatorServer, db_path: Path, *, config: BotConfig | None = None,
                transport: httpx.BaseTransport | None = None) -> Iterator[BotHarness]:
    """The bot as `serve` builds it (`bot.service.assemble`), in HTTP mode; `transport` carries
    its Sigfox calls (a test's gate in front of the simulator)."""
    fleet = build_fleet(simulator)
    with SlackApiStandIn(usergroups={APPROVERS_GROUP: [GROUP_APPROVER_ID]}) as standin:
        clock = ManualClock(simulator.clock.now())
        reads = TrackingExecutor(workers=2)
        executor = TrackingExecutor(also=reads)
        # Built as serve builds it: a sleeping client, which `assemble` defers for the workflows.
        api = sigfox_client(simulator, clock=clock.now, waits=WaitMode.SLEEP, transport=transport)
        services = assemble(api=api, database=open_database(db_path),
                            client=make_web_client(standin.token, standin.url),
                            config=config or core_config(), clock=clock, post_interval=0.0,
                            group_ttl=0.0, listener_executor=executor, read_executor=reads)
        core = services.core
        web = create_web_app(services.bolt_app, signing_secret=SIGNING_SECRET,
                             callback_secret=CALLBACK_SECRET,
                             uplink_handler=lambda m: core.handle_uplink(m["device"]))
        with BackgroundServer(web) as server:
            yield BotHarness(server.root, standin, core, clock, simulator, fleet, executor,
                             services.notifier, services.alerts, services.bolt_app)
            # The stand-in grants the scopes app.yaml asks for: a flow needing another fails here.
            missing = standin.refusals_of("missing_scope")
            assert not missing, f"app.yaml lacks a scope the bot used: {missing}"
        executor.shutdown(wait=True)
        reads.shutdown(wait=True)
