"""When the fleet scan, the daily digest and alert redelivery run: from the database, never from
start.

APScheduler keeps the timing; the database keeps the memory. Each job's next run is computed from
what the database says happened, so a restart, a crash loop or a daily redeploy changes no date:

- the fleet scan is due `scan_interval` after the last *completed* scan (at once when none has
  completed); a failed scan is retried sooner, the delay doubling from FIRST_RETRY up to the
  interval, while the scan-failure alert is told once as before;
- the daily digest is due at `digest_time` in the [alerts] timezone, once per day: the day is
  claimed by compare-and-set before anything is sent, so two ticks (or two processes) never both
  send it, and a bot that was down at `digest_time` sends it when it starts, saying it is late;
- an alert digest Slack did not take waits in the notification log: it is delivered again
  within START_DELAY of a start, then every DIGEST_RETRY until it is (or the next scan does).

A job reschedules itself after each run (`modify_job(next_run_time=...)`, which APScheduler only
applies once it has stored the trigger's own next time, so the two never race), and the scan job
is rescheduled too when a scan started elsewhere (`/sigfox scan`) completes. The jobs' interval
trigger is only a safety net should a reschedule ever be lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from commands import human
from commands.config import AlertsConfig
from storage.fleet import FleetStore

if TYPE_CHECKING:
    from commands.alerting import AlertDigest, AlertService, DailyDigest, ScanReport

log = logging.getLogger(__name__)

SCAN_JOB = "fleet-scan"
DIGEST_JOB = "alerts-daily-digest"
REDELIVER_JOB = "alerts-redeliver"
# kv: {"day": "YYYY-MM-DD", "sent_at", "due_at", "late_by"}, the day claimed; each channel's
# delivery of it is in the notification log (storage/notifications.py).
DIGEST_KEY = "alerts.daily_digest"
FIRST_RETRY = timedelta(minutes=2)  # a failed scan's first retry; doubles up to scan_interval
START_DELAY = (5.0, 30.0)  # seconds after start before a job already due runs (jittered)
MIN_GAP = 60.0  # a job found due but unable to run (scan already running) looks again after this
# The interval trigger under each job's explicit next run: only matters if a reschedule is ever
# lost; long enough that a long scan is not reported as "skipped: already running" meanwhile.
SAFETY_NET = timedelta(hours=1)
LATE_AFTER = timedelta(minutes=5)  # a digest sent later than this after digest_time says so
DIGEST_RETRY = timedelta(minutes=5)  # a channel Slack refused the digest for is tried again
# A digest due when a scan is due too (a bot back from downtime) waits for that scan, so it tells
# today's fleet; no longer than this after start, so a slow or failing scan does not hold it.
SCAN_FIRST = timedelta(minutes=15)


# --------------------------------------------------------------------------- scan timing


@dataclass(frozen=True)
class ScanTiming:
    """When the last scan completed (and the last successful one), and when the next is due."""

    now: float
    interval: float
    next_due: float
    last_at: float | None = None  # when the last completed scan finished, ok or not
    last_ok: bool = False
    last_ok_at: float | None = None
    failures: int = 0  # failed scans since the last successful one

    @property
    def last_ok_age(self) -> float | None:
        return None if self.last_ok_at is None else max(self.now - self.last_ok_at, 0.0)

    @property
    def stale(self) -> bool:
        """No successful scan for more than twice the interval (or ever): alerts are not news."""
        age = self.last_ok_age
        return age is None or age > 2 * self.interval

    def sentence(self, stamp: Callable[[float], str]) -> str:
        """`Last scan completed 07:00 UTC (2 h ago); next scan due 13:00 UTC (in 4 h).`"""
        return f"{self.last_sentence(stamp)}; {self.next_sentence(stamp)}."

    def last_sentence(self, stamp: Callable[[float], str]) -> str:
        if self.last_at is None:
            return "No fleet scan has completed yet"
        ago = _minutes(max(self.now - self.last_at, 0.0))
        text = f"Last scan completed {stamp(self.last_at)} ({ago} ago)"
        if self.last_ok:
            return text
        text += f" and failed ({self.failures} in a row)"
        if self.last_ok_at is None:
            return text + "; none has succeeded yet"
        return text + f"; last successful {stamp(self.last_ok_at)}"

    def next_sentence(self, stamp: Callable[[float], str]) -> str:
        if self.next_due <= self.now:
            overdue = self.now - self.next_due
            late = f", overdue by {_minutes(overdue)}" if overdue >= MIN_GAP else ""
            return f"next scan due now{late}"
        retry = "retry" if self.last_at is not None and not self.last_ok else "scan"
        return (f"next {retry} due {stamp(self.next_due)} "
                f"(in {_minutes(self.next_due - self.now)})")


def retry_delay(failures: int, interval: timedelta) -> float:
    """Back-off after `failures` failed scans in a row: 2 min, 4, 8, ... up to the interval."""
    first = FIRST_RETRY.total_seconds()
    return min(interval.total_seconds(), first * float(2 ** max(failures - 1, 0)))


def scan_timing(fleet: FleetStore, interval: timedelta, now: float) -> ScanTiming:
    """From the scans table alone: a restart changes nothing here."""
    last = fleet.last_scan()
    ok_row = fleet.last_scan(ok_only=True)
    ok_at = float(ok_row["finished_at"]) if ok_row else None
    if last is None:
        return ScanTiming(now, interval.total_seconds(), now)
    finished, ok = float(last["finished_at"]), bool(last["ok"])
    failures = 0 if ok else fleet.failures_since_success()
    delay = interval.total_seconds() if ok else retry_delay(failures, interval)
    return ScanTiming(now, interval.total_seconds(), finished + delay, finished, ok, ok_at,
                      failures)


# --------------------------------------------------------------------------- digest timing


@dataclass(frozen=True)
class DigestDue:
    day: date
    at: float  # digest_time on `day`, in the [alerts] timezone, as epoch seconds


def digest_time_on(day: date, settings: AlertsConfig) -> float:
    return datetime.combine(day, settings.digest_time, tzinfo=settings.tz).timestamp()


def local_day(ts: float, settings: AlertsConfig) -> date:
    return datetime.fromtimestamp(ts, tz=settings.tz).date()


def last_digest_day(service: AlertService) -> str:
    record = service.fleet.get_kv(DIGEST_KEY) or {}
    return str(record.get("day") or "")


def digest_due(service: AlertService) -> DigestDue | None:
    """Today's digest if its time has passed and it has not gone out yet."""
    now = service.clock.now()
    today = local_day(now, service.settings)
    at = digest_time_on(today, service.settings)
    if now < at or last_digest_day(service) >= today.isoformat():
        return None
    return DigestDue(today, at)


def next_digest_at(service: AlertService) -> float:
    now = service.clock.now()
    if digest_due(service) is not None:
        return now
    today = local_day(now, service.settings)
    at = digest_time_on(today, service.settings)
    return at if now < at else digest_time_on(today + timedelta(days=1), service.settings)


# --------------------------------------------------------------------------- the two jobs


class AlertSchedule:
    """The fleet scan and the daily digest as APScheduler jobs whose dates come from the DB."""

    def __init__(self, service: AlertService, *, started_at: float | None = None,
                 rng: random.Random | None = None) -> None:
        self.service = service
        self.started_at = service.clock.now() if started_at is None else started_at
        self._rng = rng or random.Random()
        self._scheduler: Any = None

    # -- what runs -----------------------------------------------------------------------

    def scan_if_due(self) -> ScanReport | None:
        if self.service.scan_timing().next_due > self.service.clock.now():
            return None
        return self.service.scan(started_by="schedule")

    def digest_if_due(self) -> list[DailyDigest] | None:
        """Send today's digest unless it went out already (then retry the channels Slack
        refused it to, if any); None when nothing was due."""
        due = digest_due(self.service)
        if due is None or self._waits_for_scan():
            return self._retry_undelivered()
        now = self.service.clock.now()
        record = {"sent_at": now, "due_at": due.at, "late_by": now - due.at}
        if not self.service.fleet.claim_day(DIGEST_KEY, due.day.isoformat(), record):
            return None  # another tick or process claimed the day first
        return self.service.send_daily(due.day.isoformat(), self.late_note(due, now))

    def _retry_undelivered(self) -> list[DailyDigest] | None:
        """Today's digest for the channels Slack refused it to, as the notification log has
        them: each taken by compare-and-set, so one tick retries it and a channel that got it
        is never sent it again. Yesterday's is not sent: a stale digest is not news."""
        record = self.service.fleet.get_kv(DIGEST_KEY) or {}
        now = self.service.clock.now()
        today = local_day(now, self.service.settings).isoformat()
        if record.get("day") != today or not self.service.daily_waiting(today):
            return None
        due = DigestDue(date.fromisoformat(today), float(record["due_at"]))
        return self.service.resend_daily(today, self.late_note(due, now, retry=True))

    def _undelivered_today(self) -> bool:
        today = local_day(self.service.clock.now(), self.service.settings).isoformat()
        return self.service.daily_waiting(today)

    def late_note(self, due: DigestDue, now: float, *, retry: bool = False) -> str:
        late = now - due.at
        if late <= LATE_AFTER.total_seconds():
            return ""
        stamp = self.service.stamp
        if retry:
            why = "Slack did not take it at the first attempt"
        elif self.started_at > due.at:
            why = (f"the bot was not running at {stamp(due.at)} (it started "
                   f"{stamp(self.started_at)})")
        else:
            why = "the bot could not run it on time (its scheduler was held up)"
        return (f"Late by {_minutes(late)}: this is the digest due {stamp(due.at)}; "
                f"{why}.")

    def _waits_for_scan(self) -> bool:
        # A digest of an empty fleet table would claim the day for nothing: wait for a scan.
        if self.service.fleet.last_scan(ok_only=True) is None:
            return True
        now = self.service.clock.now()
        scan_due = self.service.scan_timing().next_due <= now  # or running right now
        return scan_due and now < self.started_at + SCAN_FIRST.total_seconds()

    def redeliver(self) -> list[AlertDigest]:
        """The alert digests still pending in the notification log, delivered once."""
        return self.service.redeliver()

    # -- when it runs next ---------------------------------------------------------------

    def next_redelivery_at(self) -> float:
        """Every DIGEST_RETRY while a digest is pending; else in SAFETY_NET (a scan that leaves
        one pending moves this job, see `_scan_finished`)."""
        wait = DIGEST_RETRY if self.service.undelivered() else SAFETY_NET
        return self.service.clock.now() + wait.total_seconds()

    def next_scan_at(self) -> float:
        return self.service.scan_timing().next_due

    def next_digest_at(self) -> float:
        now = self.service.clock.now()
        if digest_due(self.service) is not None and self._waits_for_scan():
            return now + MIN_GAP
        if self._undelivered_today():
            return now + DIGEST_RETRY.total_seconds()
        return next_digest_at(self.service)

    # -- wiring --------------------------------------------------------------------------

    def attach(self, scheduler: Any) -> None:
        """Add the jobs to `scheduler`; a job already due runs within START_DELAY."""
        self._scheduler = scheduler
        now = self.service.clock.now()
        jobs = ((SCAN_JOB, self.scan_if_due, self.next_scan_at, self.next_scan_at()),
                (DIGEST_JOB, self.digest_if_due, self.next_digest_at, self.next_digest_at()),
                # What a previous run left pending is delivered right after a start.
                (REDELIVER_JOB, self.redeliver, self.next_redelivery_at, now))
        for job_id, run, next_at, due in jobs:
            first = max(due, now + self._rng.uniform(*START_DELAY))
            scheduler.add_job(self._job(job_id, run, next_at), "interval",
                              seconds=SAFETY_NET.total_seconds(), id=job_id,
                              next_run_time=_utc(first), max_instances=1, coalesce=True,
                              misfire_grace_time=None, replace_existing=True)
        self.service.scan_listeners.append(self._scan_finished)

    def _job(self, job_id: str, run: Callable[[], object], next_at: Callable[[], float]
             ) -> Callable[[], None]:
        def job() -> None:
            try:
                run()
            except Exception:  # the schedule must go on whatever one run hit
                log.exception("%s failed; its next run comes from the database", job_id)
            finally:
                self._reschedule(job_id, next_at())

        return job

    def _scan_finished(self) -> None:
        """Any completed scan (scheduled, `/sigfox scan`) moves the next one, and the next
        redelivery (the scan may have left a digest pending)."""
        self._reschedule(SCAN_JOB, self.next_scan_at())
        self._reschedule(REDELIVER_JOB, self.next_redelivery_at())

    def _reschedule(self, job_id: str, at: float) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        at = max(at, self.service.clock.now() + MIN_GAP)
        try:
            scheduler.modify_job(job_id, next_run_time=_utc(at))
        except Exception:  # JobLookupError while shutting down; the safety net covers the rest
            log.debug("could not reschedule %s", job_id, exc_info=True)


def _minutes(seconds: float) -> str:
    """`2 hours`, `3 hours 59 minutes`: schedules are told to the minute, never `1 second`."""
    if seconds < 60:
        return "less than a minute"
    return human.duration(round(seconds / 60) * 60)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
