"""The demo's world: the whole bot, wired as in production, on loopback and a virtual clock.

- the simulated Sigfox backend (`SimulatorServer`, in-process, a generated fleet);
- the real core, its SQLite store (in a temporary directory) and the APScheduler tick;
- the real alert service with the Slack alert sink;
- the real Bolt app, its listeners and the real `SlackNotifier`, built by `bot.service.assemble`
  as `serve` builds them, whose Web API calls go to the Slack stand-in the tests use
  (`demo.slack_standin`); `TerminalSlack` prints what it records;
- people: `/sigfox` commands, button clicks and forms are `BoltRequest`s shaped and signed as
  Slack sends them (`demo.slack_standin.inbound`), handed to `app.dispatch`.

One clock, the simulator's, serves the backend and the bot: the demo moves it forward quickly
while something waits (a release hold of 30 virtual minutes passes in about a second).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlencode

from slack_bolt import App, BoltRequest

from commands.config import BotConfig, parse_config
from demo.slack_standin import inbound
from demo.terminal_slack import Person, TerminalSlack
from sigfox.simulator import SimulatorServer

if TYPE_CHECKING:
    from commands.alerting import AlertService
    from commands.workflows import Core

log = logging.getLogger(__name__)

OPS_CHANNEL = "C0FLEETOPS"
ALERTS_CHANNEL = "C0FLEETALERT"
CHANNELS = {OPS_CHANNEL: "fleet-ops", ALERTS_CHANNEL: "fleet-alerts"}
PEOPLE = (
    Person("U0ALICE", "alice", "Alice Martin"),
    Person("U0BOB", "bob", "Bob Okafor"),
)
# The bot's timing on a virtual clock, shared by the demo and the tests' cores: a tick every
# virtual second, and the waits a renewal meets (a release hold, a first message) kept short
# enough that moving the clock through them takes a moment.
VIRTUAL_CLOCK_TIMING = """
[timing]
tick = "1s"
release_retry = "5m"
release_timeout = "2h"
first_message_poll = "5m"
first_message_timeout = "7d"
"""
DEMO_CONFIG = f"""
[policy]
requesters = ["*"]
approvers = ["U0ALICE", "U0BOB"]
allow_self_approval = false
approval_ttl = "24h"

[alerts]
channel = "{ALERTS_CHANNEL}"
warn_days = 30
critical_days = 7
timezone = "UTC"
{VIRTUAL_CLOCK_TIMING}approval_reminder = "4h"
"""
TICK_SECONDS = 0.05  # real seconds between scheduler ticks
STEP_SECONDS = 60.0  # virtual seconds per fast-forward step: every minute gets a tick
SETTLE_SECONDS = 0.3  # real quiet time after which the bot is taken to have answered


class TrackedExecutor(ThreadPoolExecutor):
    """Runs the work the listeners hand off and knows whether any is queued or running, so the
    demo waits for the bot's answer instead of guessing from a quiet moment alone."""

    def __init__(self) -> None:
        super().__init__(max_workers=4, thread_name_prefix="demo-listener")
        self._pending = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._count_lock:
            self._pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any]) -> None:
        with self._count_lock:
            self._pending -= 1

    @property
    def busy(self) -> bool:
        return self._pending > 0


@dataclass(frozen=True)
class DemoSettings:
    devices: int = 300
    seed: int = 7
    speed: float = 1800.0  # virtual seconds per real second while fast-forwarding
    db_path: Path | None = None


def demo_config() -> BotConfig:
    # Named, so `/sigfox config` says where its approvers come from (not "built-in defaults").
    return parse_config(DEMO_CONFIG, Path("the demo's policy (demo/world.py)"))


class DemoWorld:
    """Everything the demo runs; `start()` it, use it, `stop()` it (or use `with`)."""

    def __init__(self, settings: DemoSettings, stream: TextIO) -> None:
        self.settings = settings
        self.stream = stream
        self.config = demo_config()
        self.signing_secret = secrets.token_hex(16)
        self._tmp: Path | None = None
        self._stoppers: list[Callable[[], object]] = []
        self.simulator: SimulatorServer
        self.slack: TerminalSlack
        self.core: Core
        self.alerts: AlertService
        self.app: App

    # ------------------------------------------------------------------ assembly

    def start(self) -> DemoWorld:
        try:
            self._start_backend()
            self._start_slack()
            self._start_bot()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_backend(self) -> None:
        self.simulator = SimulatorServer(
            devices=self.settings.devices, seed=self.settings.seed, delete_hold=1800.0,
            rate_limits=False, job_delay=0.05,
        ).start()
        self._stoppers.append(self.simulator.stop)

    def _start_slack(self) -> None:
        self.slack = TerminalSlack(stream=self.stream, clock=self.clock_now, channels=CHANNELS,
                                   people=list(PEOPLE)).start()
        self._stoppers.append(self.slack.stop)

    def _start_bot(self) -> None:
        from bot.service import assemble
        from bot.slack_client import make_web_client
        from commands.runtime import start_scheduler
        from sigfox.client import SigfoxClient
        from storage.db import open_database

        api = SigfoxClient(self.simulator.base_url, self.simulator.login,
                           self.simulator.password, rate_limits=False, timeout=10.0)
        self._stoppers.append(api.close)
        self.listeners = TrackedExecutor()
        self._stoppers.append(lambda: self.listeners.shutdown(wait=True))
        services = assemble(api=api, database=open_database(self._db_path()),
                            client=make_web_client(self.slack.token, self.slack.api_url),
                            config=self.config, clock=self.simulator.clock, post_interval=0.0,
                            listener_executor=self.listeners)
        self.core, self.alerts, self.app = services.core, services.alerts, services.bolt_app
        self._stoppers.append(services.close)  # its read lane's workers, after the scheduler
        # The demo ticks every 50 ms, so a tick still running when the next is due is normal
        # here: APScheduler's "skipped: maximum number of running instances" is not news.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        logging.getLogger("commands.runtime").setLevel(logging.ERROR)  # tick overruns too
        scheduler = start_scheduler(self.core, tick=timedelta(seconds=TICK_SECONDS))
        self._stoppers.append(lambda: scheduler.shutdown(wait=True))

    def _db_path(self) -> Path:
        if self.settings.db_path is not None:
            return self.settings.db_path
        self._tmp = Path(tempfile.mkdtemp(prefix="sigfox-demo-"))
        self._stoppers.append(lambda: shutil.rmtree(self._tmp or "", ignore_errors=True))
        return self._tmp / "sigfox-bot.db"

    def stop(self) -> None:
        # Last started, first stopped: the scheduler before the client it calls, and so on.
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:  # a stop that fails must not keep the others from running
                log.debug("demo shutdown step failed", exc_info=True)

    def __enter__(self) -> DemoWorld:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ time

    def clock_now(self) -> float:
        return self.simulator.clock.now()

    def fast_forward(self, seconds: float, until: Callable[[], bool] | None = None) -> bool:
        """Move virtual time by up to `seconds`, a minute at a time at `speed`; stop early when
        `until()` holds. Returns whether `until` held (True when there was none)."""
        pause = STEP_SECONDS / max(self.settings.speed, 1.0)
        moved = 0.0
        while moved < seconds:
            if until is not None and until():
                return True
            step = min(STEP_SECONDS, seconds - moved)
            self.simulator.clock.advance(step)
            moved += step
            time.sleep(max(pause, TICK_SECONDS * 1.5))  # let the scheduler tick this minute
        return until() if until is not None else True

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the bot has stopped talking to Slack (its listeners run in threads)."""
        deadline = time.monotonic() + timeout
        time.sleep(SETTLE_SECONDS / 2)
        # First every listener still running (on a busy machine one may not have started yet
        # when Slack has been quiet for a while), then a quiet moment for what they posted.
        while self.listeners.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        while self.slack.quiet_for() < SETTLE_SECONDS and time.monotonic() < deadline:
            time.sleep(0.05)

    # ------------------------------------------------------------------ people

    def person(self, name: str) -> Person | None:
        wanted = name.strip().lstrip("@").casefold()
        return next((p for p in PEOPLE if wanted in (p.name, p.user_id.casefold())), None)

    def command(self, user: Person, text: str, channel: str = OPS_CHANNEL) -> None:
        """`user` types `/sigfox <text>` in `channel`."""
        self.slack.say_typed(user.user_id, channel, f"/sigfox {text}".strip())
        form = inbound.slash_command_fields(
            self.slack.identity, text, user_id=user.user_id, user_name=user.name,
            channel_id=channel, channel_name=CHANNELS.get(channel, channel),
            response_url=self.slack.response_url(channel, user.user_id))
        self._dispatch(urlencode(form), user, channel)

    def click(self, user: Person, label: str) -> bool:
        """`user` clicks the most recent button labelled `label`; False when there is none."""
        found = self.slack.find_button(label)
        if found is None:
            return False
        posted, element = found
        self.slack.say_clicked(user.user_id, _label(element), posted)
        action = {k: v for k, v in element.items() if not k.startswith("_")}
        action["block_id"] = element.get("_block_id", "")
        payload = inbound.block_actions_payload(
            self.slack.identity, action, message=posted.message, user_id=user.user_id,
            user_name=user.name, channel_id=posted.channel,
            channel_name=CHANNELS.get(posted.channel, ""),
            response_url=self.slack.response_url(posted.channel, user.user_id, posted.ts))
        self._dispatch(inbound.interaction_body(payload), user, posted.channel)
        return True

    def submit_form(self, user: Person, answer: str) -> bool:
        """`user` fills the open form: `answer` in its text inputs, selects as preset; False
        when no form is open."""
        view = self.slack.modal
        if view is None:
            return False
        answers = _filled(view, answer)
        payload = inbound.view_submission_payload(self.slack.identity, view, answers,
                                                  user_id=user.user_id, user_name=user.name)
        body = inbound.interaction_body(payload)
        response = self.app.dispatch(signed_request(self.signing_secret, body))
        errors = _form_errors(response.body)
        if errors:  # the form stays open and says what is wrong
            self.slack.narrate(f"the form answers: {errors}")
        else:
            self.slack.modal = None
        self.settle()
        return True

    def _dispatch(self, body: str, user: Person, channel: str) -> None:
        response = self.app.dispatch(signed_request(self.signing_secret, body))
        if response.status != 200:
            log.warning("the app answered HTTP %s", response.status)
        _show_ack(self.slack, response.body, user.user_id, channel)
        self.settle()

    # ------------------------------------------------------------------ the device sends

    def uplink(self, device_id: str) -> bool:
        """The device sends a message; Sigfox's DATA callback tells the bot at once."""
        try:
            self.simulator.world.uplink(device_id.upper())
        except Exception as error:  # unknown id, device not registered: say so, go on
            self.slack.narrate(f"{device_id} cannot send: {error}")
            return False
        self.core.handle_uplink(device_id.upper())
        self.settle()
        return True


def signed_request(signing_secret: str, body: str) -> BoltRequest:
    """A request carrying Slack's signature headers over `body` (checked by Bolt)."""
    headers: dict[str, str | Sequence[str]] = dict(inbound.signed_headers(signing_secret, body))
    return BoltRequest(body=body, headers=headers)


def _label(element: dict[str, Any]) -> str:
    return str(element.get("_label") or (element.get("text") or {}).get("text", ""))


def _filled(view: dict[str, Any], answer: str) -> dict[str, str]:
    """What a person leaves in a form's inputs: selects as preset, `answer` typed in texts."""
    answers: dict[str, str] = {}
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if block.get("type") != "input":
            continue
        if element.get("type") != "static_select":
            answers[block["block_id"]] = answer
        elif element.get("initial_option"):
            answers[block["block_id"]] = str(element["initial_option"]["value"])
    return answers


def _form_errors(body: str) -> str:
    try:
        answer = json.loads(body) if body else {}
    except ValueError:
        return ""
    if isinstance(answer, dict) and answer.get("response_action") == "errors":
        return "; ".join(str(e) for e in (answer.get("errors") or {}).values())
    return ""


def _show_ack(slack: TerminalSlack, body: str, user: str, channel: str) -> None:
    """An `ack(text=...)` travels in the HTTP answer; Slack shows it to the person who typed
    (or in the channel), as the stand-in records it."""
    if not body:
        return
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {"text": body}
    if isinstance(answer, dict) and (answer.get("text") or answer.get("blocks")):
        slack.standin.acknowledge(channel, user, answer)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` in real time (for things that need no virtual time to pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()

