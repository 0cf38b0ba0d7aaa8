"""A wait is a date, never a sleep: one device waiting on Sigfox never holds the tick that moves
every other job (issue 16), and one 500 on a DELETE no longer holds a renewal an hour (issue 11).

Real core, real SQLite, real HTTP to the simulated backend with its rate limits on; the bot's
clock and the backend's are virtual and move together. The client is wired as the bot wires its
workflows (deferring), with a sleeper that records every call: the tick must never use it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from support.core import (
    APPROVER,
    REQUESTER,
    CoreHarness,
    build_fleet,
    make_core,
    service_env,
    sigfox_client,
)

from commands.planning import Request
from commands.ports import ManualClock, Progress, ProgressKind, Target
from commands.progress_lane import ProgressLane
from commands.states import Kind, StepState, WorkflowState
from storage.call_ledger import SqliteCallLedger
from storage.db import open_database

THROTTLED = "C0FFEE"  # Off Contract
OTHER = "BEEF01"  # no token


class Sleeper:
    """Stands for time.sleep in the client: records what it was asked, never waits."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


@pytest.fixture
def harness(make_simulator, tmp_path: Path, sleeper: Sleeper) -> CoreHarness:
    simulator = make_simulator(devices=0, rate_limits=True, delete_hold=240, job_delay=0.0)
    build_fleet(simulator)
    clock = ManualClock(simulator.clock.now())
    db_path = tmp_path / "bot.db"
    api = sigfox_client(simulator, rate_limits=True, clock=clock.now, sleep=sleeper,
                        ledger=SqliteCallLedger(open_database(db_path)))
    return make_core(simulator, db_path, api=api, clock=clock)


def approved_renewal(harness: CoreHarness, device_id: str) -> int:
    outcome = harness.core.request(
        Request(Kind.RENEW, REQUESTER, (device_id,), Target("C0CHAN", ""), by_delete=True)
    )
    assert outcome.ok, outcome.message
    decided = harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    assert decided.ok, decided.message
    assert outcome.workflow_id is not None
    return outcome.workflow_id


def step_of(harness: CoreHarness, workflow_id: int):
    (step,) = harness.core.store.workflow_devices(workflow_id)
    return step


def texts_about(harness: CoreHarness, device_id: str) -> list[str]:
    return [p.text for p in harness.notifier.events if device_id in p.devices]


def test_a_throttled_device_never_holds_another_job(harness: CoreHarness,
                                                     sleeper: Sleeper) -> None:
    # Sigfox answers 429 to every DELETE of one device, for ten minutes.
    harness.simulator.fault(f"/v2/devices/{THROTTLED}", method="DELETE", status=429,
                            count=100_000)
    throttled = approved_renewal(harness, THROTTLED)
    other = approved_renewal(harness, OTHER)
    start = harness.clock.now()

    registered_at = None
    while harness.clock.now() - start < 600:  # a tick every 5 s (virtual), for ten minutes
        harness.core.tick()
        if registered_at is None and step_of(harness, other).state == StepState.AWAITING_UPLINK:
            registered_at = harness.clock.now() - start
        harness.advance(5)

    # The other job went through its delete and re-registration as if it were alone: deleted at
    # the first tick, registered at the first re-create after the backend's 240 s hold (the
    # renewal tries again every release_retry, 5 min).
    assert len(harness.calls("DELETE", f"/v2/devices/{OTHER}", 204)) == 1
    assert registered_at is not None and registered_at <= 305
    # The throttled device was tried again and again, a back-off apart, and is untouched.
    throttled_deletes = harness.calls("DELETE", f"/v2/devices/{THROTTLED}")
    assert len(throttled_deletes) >= 10
    assert all(c["status"] == 429 for c in throttled_deletes)
    assert harness.simulator.world.devices.get(THROTTLED) is not None
    assert step_of(harness, throttled).state == StepState.DELETING
    waits = [t for t in texts_about(harness, THROTTLED) if "Waiting for Sigfox's rate limit until"
             in t]
    assert waits, texts_about(harness, THROTTLED)
    assert len(waits) < len(throttled_deletes)  # said when it changes, not at every retry

    # The throttle lifts: the device's delete goes through once, and its renewal goes on.
    harness.simulator.control("DELETE", "/faults")
    for _ in range(12):
        harness.advance(5)
        harness.core.tick()
    assert len(harness.calls("DELETE", f"/v2/devices/{THROTTLED}", 204)) == 1
    assert step_of(harness, throttled).state == StepState.AWAITING_RELEASE

    harness.simulator.uplink(OTHER)
    harness.core.handle_uplink(OTHER)
    assert harness.core.store.get_workflow(other).state == WorkflowState.DONE
    assert sleeper.calls == []  # nothing in the tick ever slept


def test_one_500_on_delete_does_not_hold_the_renewal_an_hour(harness: CoreHarness,
                                                             sleeper: Sleeper) -> None:
    harness.simulator.fault(f"/v2/devices/{THROTTLED}", method="DELETE", status=500)
    workflow_id = approved_renewal(harness, THROTTLED)
    harness.core.tick()
    assert len(harness.calls("DELETE", f"/v2/devices/{THROTTLED}", 500)) == 1
    said = texts_about(harness, THROTTLED)
    assert any(t.startswith("Waiting for Sigfox to recover from a server error until ")
               for t in said), said

    start = harness.clock.now()
    while not harness.calls("DELETE", f"/v2/devices/{THROTTLED}", 204):
        assert harness.clock.now() - start < 120, texts_about(harness, THROTTLED)
        harness.advance(5)
        harness.core.tick()
    # Not sent again while the first could still land; then sent once, and it went through.
    assert any("checking that it did nothing" in t for t in texts_about(harness, THROTTLED))
    assert harness.clock.now() - start >= 55
    assert len(harness.calls("DELETE", f"/v2/devices/{THROTTLED}")) == 2
    assert step_of(harness, workflow_id).state == StepState.AWAITING_RELEASE
    assert sleeper.calls == []


def test_a_delete_that_may_have_been_executed_still_counts_after_a_restart(
    harness: CoreHarness, sleeper: Sleeper, tmp_path: Path
) -> None:
    workflow_id = approved_renewal(harness, THROTTLED)
    harness.core.tick()
    assert len(harness.calls("DELETE", f"/v2/devices/{THROTTLED}", 204)) == 1
    # A restarted bot (new client, new ledger handle on the same database) would refuse a
    # second DELETE of this device within the hour, without sending it.
    restarted = sigfox_client(harness.simulator, rate_limits=True, clock=harness.clock.now,
                              sleep=sleeper,
                              ledger=SqliteCallLedger(open_database(tmp_path / "bot.db")))
    from sigfox.errors import SigfoxPacingRefused

    with pytest.raises(SigfoxPacingRefused) as refused:
        restarted.delete_device(THROTTLED)
    assert refused.value.retry_at >= harness.clock.now() + 3500
    assert len(harness.calls("DELETE", f"/v2/devices/{THROTTLED}")) == 1
    assert step_of(harness, workflow_id).state == StepState.AWAITING_RELEASE


def test_serve_wires_a_deferring_client_into_the_workflows_and_counts_hours_in_the_db(
    make_simulator, tmp_path: Path
) -> None:
    from bot.service import build_services
    from demo.slack_standin import SlackApiStandIn
    from sigfox.client import SigfoxClient, WaitMode

    simulator = make_simulator(devices=0, rate_limits=False)
    build_fleet(simulator)
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"))
        workflows, scans = services.core.api, services.alerts.api
        assert isinstance(workflows, SigfoxClient) and isinstance(scans, SigfoxClient)
        assert workflows.waits is WaitMode.DEFER  # a step never sleeps
        assert scans.waits is WaitMode.SLEEP  # a scan paces its walk in its own thread
        workflows.delete_device(THROTTLED)
    ledger = SqliteCallLedger(open_database(tmp_path / "bot.db"))
    assert len(ledger.recorded(f"DELETE /devices/{{id}} {THROTTLED}")) == 1


class HeldNotifier:
    """A chat that takes its time: each delivery waits until the test lets it through."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.delivered: list[str] = []

    def notify(self, progress) -> None:
        self.release.wait()
        self.delivered.append(progress.text)


def test_the_tick_never_waits_for_the_chat(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    build_fleet(simulator)
    chat = HeldNotifier()
    lane = ProgressLane(chat)
    harness = make_core(simulator, tmp_path / "bot.db", notifier=lane)
    chat.release.set()
    workflow_id = approved_renewal(harness, OTHER)
    lane.flush()
    chat.release.clear()
    chat.delivered.clear()
    harness.core.tick()  # returns while the chat has not taken a single line
    assert step_of(harness, workflow_id).state == StepState.AWAITING_UPLINK
    assert chat.delivered == []
    chat.release.set()
    lane.flush()
    told = [e.text for e in harness.core.store.events(workflow_id)][-len(chat.delivered):]
    assert chat.delivered == told and len(told) >= 3  # every line, in the order told
    lane.close()


def test_closing_the_lane_delivers_what_was_told_and_never_hangs_on_a_chat_that_is_down() -> None:
    told = Progress(ProgressKind.REQUESTED, 1, "renew", ("C0FFEE",), "Requested.")
    delivered = HeldNotifier()
    delivered.release.set()
    lane = ProgressLane(delivered)
    lane.notify(told)
    lane.close(timeout=10)
    assert delivered.delivered == ["Requested."]  # what was told went out before the stop

    down = HeldNotifier()  # a chat that never takes the line
    stuck = ProgressLane(down)
    stuck.notify(told)
    stuck.close(timeout=0.05)  # returns although the worker still holds the line
    assert down.delivered == []
    down.release.set()
