"""The workflow tick in the scheduler: never overlapped, bounded, measured (issue 16).

These run the real APScheduler in real time against the simulated backend (whose clock runs
with real time); they wait for states with generous limits and assert on what was logged and
recorded, never on how long anything took.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from support.core import CoreHarness, build_fleet, make_core, sigfox_client
from test_tick_waits import OTHER, THROTTLED, Sleeper, approved_renewal, step_of

from commands import metrics
from commands.runtime import WorkflowTicker, start_scheduler
from commands.states import StepState, WorkflowState

SKIPPED = ("maximum number of running instances", "was missed by", "skipped")


class Lines(logging.Handler):
    """Every line one logger writes, held on that logger itself: whatever another test did to
    the root logger's handlers meanwhile, these are seen."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.logger = logging.getLogger(name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Lines:
        self._level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


def wait_for(condition: Callable[[], bool], limit: float = 60.0) -> None:
    """Poll until `condition` holds (a bound against hanging, not a timing assertion)."""
    done = threading.Event()
    for _ in range(int(limit / 0.05)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("condition not reached")


@pytest.fixture
def live(make_simulator, tmp_path: Path) -> tuple[CoreHarness, Sleeper]:
    simulator = make_simulator(devices=0, rate_limits=True, delete_hold=0, job_delay=0.0)
    build_fleet(simulator)
    sleeper = Sleeper()
    api = sigfox_client(simulator, rate_limits=True, clock=simulator.clock.now, sleep=sleeper)
    return make_core(simulator, tmp_path / "bot.db", api=api, clock=simulator.clock), sleeper


def state(harness: CoreHarness, workflow_id: int) -> str:
    workflow = harness.core.store.get_workflow(workflow_id)
    assert workflow is not None
    return workflow.state


def test_a_whole_renewal_at_tick_1s_skips_no_scheduler_run(live) -> None:
    harness, sleeper = live
    ticks_before = metrics.METRICS.value("sigfox_bot_workflow_tick_seconds_count") or 0.0
    workflow_id = approved_renewal(harness, THROTTLED)
    with Lines("apscheduler") as apscheduler:
        scheduler = start_scheduler(harness.core, tick=timedelta(seconds=1))
        try:
            wait_for(lambda: step_of(harness, workflow_id).state == StepState.AWAITING_UPLINK)
            harness.simulator.uplink(THROTTLED)
            harness.core.note_uplink(THROTTLED)  # as the DATA callback does: the tick takes it
            wait_for(lambda: state(harness, workflow_id) == WorkflowState.DONE)
        finally:
            scheduler.shutdown(wait=True)
    assert apscheduler.messages, "APScheduler's own lines are seen (it logs each run)"
    assert [m for m in apscheduler.messages if any(word in m for word in SKIPPED)] == []
    assert sleeper.calls == []
    ticks = metrics.METRICS.value("sigfox_bot_workflow_tick_seconds_count") or 0.0
    assert ticks - ticks_before >= 2
    exposition, _ = metrics.render_metrics()
    assert b"sigfox_bot_workflow_tick_seconds_bucket" in exposition


def test_a_tick_longer_than_its_interval_says_so_once_with_its_slowest_step(live) -> None:
    harness, _ = live
    # Sigfox takes half a second to answer this DELETE; the tick's interval is a tenth of that.
    harness.simulator.fault(f"/v2/devices/{THROTTLED}", method="DELETE", delay=0.5)
    slow = approved_renewal(harness, THROTTLED)
    other = approved_renewal(harness, OTHER)
    observed: list[float] = []
    scheduler = BackgroundScheduler(timezone="UTC")
    WorkflowTicker(harness.core, 0.1, observe=observed.append).add_to(scheduler)
    with Lines("commands.runtime") as runtime, Lines("apscheduler") as apscheduler:
        scheduler.start()
        try:
            wait_for(lambda: all(step_of(harness, w).state == StepState.AWAITING_UPLINK
                                 for w in (slow, other)))
        finally:
            scheduler.shutdown(wait=True)
    overruns = [m for m in runtime.messages if "more than its" in m]
    assert len(overruns) == 1, overruns
    assert f"slowest step J-{slow:04d} {THROTTLED}" in overruns[0] or (
        f"{THROTTLED} (" in overruns[0]), overruns[0]
    assert "workflow tick took" in overruns[0] and "firing(s) found it running" in overruns[0]
    assert [m for m in apscheduler.messages if any(w in m for w in SKIPPED)] == []
    assert observed and max(observed) > 0.1  # measured, the slow one among them


def test_a_tick_stops_at_its_budget_and_the_next_takes_the_rest(make_simulator,
                                                                  tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    build_fleet(simulator)
    stopwatch = iter(float(n) for n in range(10_000))  # every reading one second later
    harness = make_core(simulator, tmp_path / "bot.db", stopwatch=lambda: next(stopwatch))
    first = approved_renewal(harness, THROTTLED)
    second = approved_renewal(harness, OTHER)
    looked = harness.core.tick(budget=3.5)
    stats = harness.core.last_tick
    assert stats is not None and stats.steps == 1 and stats.left_due == 1 and looked == 1
    assert step_of(harness, first).state == StepState.AWAITING_UPLINK
    assert step_of(harness, second).state == StepState.PENDING
    # What is left stays due and goes in due order: the first job's uplink check (due since it
    # was registered), then the second job, one step a tick.
    for _ in range(2):
        harness.core.tick(budget=3.5)
        assert harness.core.last_tick is not None and harness.core.last_tick.steps == 1
    assert step_of(harness, second).state == StepState.AWAITING_UPLINK
