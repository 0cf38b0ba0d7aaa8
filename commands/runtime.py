"""Putting the core together and keeping it moving: the scheduler's jobs.

APScheduler runs the workflow tick (and, once configured, the fleet scan) in its own threads;
`max_instances=1` and `coalesce=True` mean a slow tick is never overlapped by the next one, and
the store's leases keep two processes from advancing the same workflow at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from commands.workflows import Core

log = logging.getLogger(__name__)


def _safely(name: str, job: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            job()
        except Exception:  # the scheduler must keep ticking whatever one run hit
            log.exception("%s failed; it runs again at its next interval", name)

    return run


def start_scheduler(
    core: Core,
    *,
    tick: timedelta,
    extra_jobs: dict[str, tuple[timedelta, Callable[[], object]]] | None = None,
    paused: bool = False,
) -> BackgroundScheduler:
    """Start ticking the workflows (and any extra interval job) in the background."""
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        _safely("workflow tick", core.tick),
        "interval",
        seconds=max(tick.total_seconds(), 0.05),
        id="workflow-tick",
        max_instances=1,
        coalesce=True,
    )
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
