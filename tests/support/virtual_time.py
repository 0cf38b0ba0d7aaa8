"""Playing APScheduler's part on a virtual clock.

The bot's scheduler is started paused (`bot.service.start(..., paused=True)`): its jobs are the
real ones, with their real triggers and next run times, but nothing runs on its own. `run_until`
then does what APScheduler's `_process_jobs` does, in virtual time: take the job due first, store
its trigger's next time (coalescing missed runs into one), then run it in this thread, where it
may reschedule itself. Hours of schedule take milliseconds and nothing depends on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from commands.ports import ManualClock


@dataclass
class Run:
    job_id: str
    at: float  # virtual time the job ran


@dataclass
class VirtualScheduler:
    scheduler: Any
    clock: ManualClock
    runs: list[Run] = field(default_factory=list)

    def next_job(self) -> Any:
        jobs = [j for j in self.scheduler.get_jobs() if j.next_run_time is not None]
        return min(jobs, key=lambda j: j.next_run_time, default=None)

    def run_until(self, until: float) -> list[Run]:
        """Run every job due up to `until` (virtual seconds) in order; the clock ends there."""
        ran: list[Run] = []
        while (job := self.next_job()) is not None and job.next_run_time.timestamp() <= until:
            self._move_to(job.next_run_time.timestamp())
            self._store_next_run(job)
            job.func(*job.args, **job.kwargs)
            ran.append(Run(job.id, self.clock.now()))
        self._move_to(until)
        self.runs.extend(ran)
        return ran

    def _move_to(self, ts: float) -> None:
        if ts > self.clock.now():  # a job already late runs now: virtual time never goes back
            self.clock.advance(ts - self.clock.now())

    def _store_next_run(self, job: Any) -> None:
        now = datetime.fromtimestamp(self.clock.now(), tz=UTC)
        previous = job.next_run_time
        following = job.trigger.get_next_fire_time(previous, now)
        while following is not None and following <= now:  # coalesce=True: one run for many
            previous, following = following, job.trigger.get_next_fire_time(following, now)
        if following is None:
            self.scheduler.remove_job(job.id)
        else:
            job.modify(next_run_time=following)


def at_utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
