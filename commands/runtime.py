"""Putting the core together and keeping it moving: the scheduler's jobs.

APScheduler runs the workflow tick (and the fleet scan, the digest...) in its own threads. A
tick sleeps on nothing (a wait on Sigfox is a date the step records), its budget bounds it, and
its duration goes to /metrics. It never overlaps the next: `WorkflowTicker` holds its own lock,
and a firing that finds the previous tick still running returns at once (APScheduler is allowed
a few instances, so it never has to skip one and log "maximum number of running instances
reached"); the tick that outlasted its interval says so in one line with its slowest step. The
other jobs are interval jobs with `max_instances=1` and `coalesce=True`; the store's leases keep
two processes from advancing the same workflow at once. The jobs run on the pool the caller
gives (the bot's yields to Slack's acknowledgements: `bot.ack_gate`), else on APScheduler's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import timedelta

from apscheduler.executors.pool import BasePoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from commands import metrics
from commands.ticks import Stopwatch
from commands.workflows import Core

log = logging.getLogger(__name__)

TICK_JOB = "workflow-tick"
# An overrun is one line; more within this many seconds are counted into the next line.
OVERRUN_LOG_EVERY = 60.0
# Firings that may be in flight at once: the running tick, and ones that return at once.
TICK_INSTANCES = 4


class WorkflowTicker:
    """Runs `core.tick` one at a time, however often it is fired."""

    def __init__(
        self,
        core: Core,
        interval: float,
        *,
        observe: Callable[[float], None] = metrics.observe_tick,
        stopwatch: Stopwatch = time.perf_counter,
    ) -> None:
        self.core = core
        self.interval = max(interval, 0.05)
        self._observe = observe
        self._stopwatch = stopwatch
        self._running = threading.Lock()
        self._not_started = 0  # firings that found a tick still running
        self._last_overrun_line = float("-inf")
        self._overruns_unsaid = 0

    def add_to(self, scheduler: BackgroundScheduler) -> None:
        scheduler.add_job(
            self.run, "interval", seconds=self.interval, id=TICK_JOB,
            max_instances=TICK_INSTANCES, coalesce=True,
            misfire_grace_time=None,  # late is fine: a busy machine must not drop ticks
        )

    def run(self) -> None:
        if not self._running.acquire(blocking=False):
            self._not_started += 1  # the running tick covers this firing's work
            return
        try:
            self._tick()
        finally:
            self._running.release()

    def _tick(self) -> None:
        started = self._stopwatch()
        try:
            self.core.tick(budget=self.interval)
        except Exception:  # the workflows must keep moving whatever one tick hit
            log.exception("workflow tick failed; the next one runs at its interval")
        took = self._stopwatch() - started
        self._observe(took)
        if took > self.interval:
            self._overran(took)

    def _overran(self, took: float) -> None:
        """One line: how long, against which interval, and the slowest step (or, with no step
        run, that the time went elsewhere: approvals, the database)."""
        now = self._stopwatch()
        if now - self._last_overrun_line < OVERRUN_LOG_EVERY:
            self._overruns_unsaid += 1
            return
        stats = self.core.last_tick
        slowest = f"slowest step {stats.slowest}" if stats and stats.slowest else "no step ran"
        steps = stats.steps if stats else 0
        left = f"; {stats.left_due} job(s) left for the next tick" if stats and stats.left_due \
            else ""
        more = (f"; {self._overruns_unsaid} more overrun(s) since the last such line"
                if self._overruns_unsaid else "")
        log.warning("workflow tick took %.2f s, more than its %.2f s interval: %d step(s), "
                    "%s%s; %d firing(s) found it running and did nothing%s", took, self.interval,
                    steps, slowest, left, self._not_started, more)
        self._last_overrun_line = now
        self._overruns_unsaid = 0
        self._not_started = 0


def _safely(name: str, job: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception:  # the scheduler must keep ticking whatever one run hit
            log.exception("%s failed; it runs again at its next interval", name)

    return run


class _JobPool(BasePoolExecutor):  # type: ignore[misc]  # APScheduler 3 has no type hints
    """APScheduler's pool executor over the pool it is given."""

    def __init__(self, pool: Executor) -> None:
        super().__init__(pool)


def start_scheduler(
    core: Core,
    *,
    tick: timedelta,
    extra_jobs: dict[str, tuple[timedelta, Callable[[], object]]] | None = None,
    paused: bool = False,
    job_pool: Executor | None = None,
) -> BackgroundScheduler:
    """Start ticking the workflows (and any extra interval job) in the background, the jobs
    run on `job_pool` when given (it is shut down with the scheduler)."""
    options = {"executors": {"default": _JobPool(job_pool)}} if job_pool is not None else {}
    scheduler = BackgroundScheduler(timezone="UTC", **options)
    WorkflowTicker(core, tick.total_seconds()).add_to(scheduler)
    for name, (interval, job) in (extra_jobs or {}).items():
        scheduler.add_job(
            _safely(name, job),
            "interval",
            seconds=max(interval.total_seconds(), 0.05),
            id=name,
            max_instances=1,
            coalesce=True,
        )
    scheduler.start(paused=paused)  # paused: jobs are added, nothing runs until resumed
    return scheduler
