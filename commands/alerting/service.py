"""`AlertService`: the alerts of one database, as the bot, the CLI and the demo use them.

A scan reads the fleet into SQLite (`scan`), the rules run there (`rules`, `storage.fleet`),
and what changed is delivered as one digest per channel (`delivery`). People's questions are
answered from the last scan (`answers`), their snoozes recorded (`snoozes`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from commands import human, metrics
from commands.alerting.answers import AlertAnswers
from commands.alerting.delivery import DigestDelivery
from commands.alerting.digests import remove_file
from commands.alerting.model import (
    AlertDigest,
    AlertItem,
    AlertSink,
    AlertsOverview,
    Condition,
    DailyDigest,
    DeviceReport,
    ExpiringSummary,
    FleetSummary,
    PendingDigest,
    ScanInfo,
    ScanProblem,
    ScanProgress,
    ScanReport,
    SnoozeInfo,
    SnoozeOutcome,
)
from commands.alerting.rules import RULES, thresholds, token_state_name
from commands.alerting.scan import ScanProblems, SeenCounter, error_sentence, fleet_rows
from commands.alerting.snoozes import Audit, Snoozes
from commands.config import AlertsConfig, BotConfig
from commands.policy import Actor, Policy
from commands.ports import Clock, SigfoxApi
from commands.schedules import ScanTiming
from sigfox.errors import SigfoxError
from sigfox.models import normalize_device_id
from storage.db import SafeDatabase
from storage.fleet import FleetStore
from storage.notifications import Notification

log = logging.getLogger(__name__)


class AlertService:
    """Scans, rules, digests and the read-side answers, over one database."""

    def __init__(
        self,
        *,
        api: SigfoxApi,
        database: SafeDatabase,
        sink: AlertSink,
        config: BotConfig,
        clock: Clock,
        audit: Audit | None = None,
    ) -> None:
        self.api = api
        self.fleet = FleetStore(database)
        self.sink = sink
        self.config = config
        self.policy = Policy(config)
        self.clock = clock
        self._scan_lock = threading.Lock()
        # Called after every scan that completed, ok or not (the schedule moves the next one).
        self.scan_listeners: list[Callable[[], None]] = []
        self.problems = ScanProblems(self.fleet, lambda: self.settings,
                                     lambda problem: self.sink.deliver_scan_problem(problem))
        self.delivery = DigestDelivery(self.fleet, lambda: self.settings, lambda: self.sink,
                                       clock.now)
        self.answers = AlertAnswers(self.fleet, lambda: self.settings, clock,
                                    self.problems.current)
        self.snoozes = Snoozes(self.fleet, policy=lambda: self.policy,
                               settings=lambda: self.settings, clock=clock, audit=audit)

    @property
    def settings(self) -> AlertsConfig:
        return self.config.alerts

    # -- scanning ----------------------------------------------------------------------------

    def scan(self, *, started_by: str = "manual", progress: ScanProgress | None = None
             ) -> ScanReport:
        """One full scan, then the rules and the digests. Never raises for a Sigfox failure."""
        if not self._scan_lock.acquire(blocking=False):
            return ScanReport(0, False, 0, 0.0, "A fleet scan is already running; wait for it.")
        try:
            report = self._scan(started_by, progress)
        finally:
            self._scan_lock.release()
        self._tell_listeners()
        return report

    def _tell_listeners(self) -> None:
        for listener in list(self.scan_listeners):
            try:
                listener()
            except Exception:  # a listener's trouble must not fail the scan that completed
                log.exception("scan listener %r failed", listener)

    def _scan(self, started_by: str, progress: ScanProgress | None) -> ScanReport:
        started = time.monotonic()
        scan_id = self.fleet.start_scan(self.clock.now(), started_by)
        seen = SeenCounter()
        try:
            self.fleet.write_devices(
                fleet_rows(self.api, seen), scan_id=scan_id, now=self.clock.now(),
                on_batch=progress,
            )
        except Exception as error:  # any cause leaves the alerts stale: say so
            return self._scan_failed(scan_id, started, seen.count, error)
        now = self.clock.now()
        self.fleet.evaluate(scan_id, thresholds(self.settings, now), RULES)
        self.fleet.forget_unseen(scan_id)
        outgoing = self.delivery.announce(scan_id, now)
        duration = time.monotonic() - started
        self.fleet.finish_scan(scan_id, now=now, ok=True, devices=seen.count, duration=duration)
        self._record_metrics(duration)
        problem = self.problems.recovered(scan_id, now)
        self.delivery.notify(outgoing)
        digests = tuple(each.digest for each in outgoing)
        return ScanReport(scan_id, True, seen.count, duration, digests=digests, problem=problem)

    def redeliver(self) -> list[AlertDigest]:
        """Deliver the digests still pending (Slack refused them, the bot restarted since),
        built from what is true now; returns those delivered. Not while a scan runs (it
        delivers them itself)."""
        if not self._scan_lock.acquire(blocking=False):
            return []
        try:
            return self.delivery.redeliver(self.clock.now())
        finally:
            self._scan_lock.release()

    def _record_metrics(self, duration: float) -> None:
        by_state = {token_state_name(k): v for k, v in self.fleet.count_by_token_state().items()}
        metrics.record_scan(duration, by_state)

    def _scan_failed(
        self, scan_id: int, started: float, seen: int, error: Exception
    ) -> ScanReport:
        text = error_sentence(error, seen)
        metrics.record_scan_failure()
        if not isinstance(error, SigfoxError):
            log.exception("fleet scan %d failed", scan_id)
        now = self.clock.now()
        duration = time.monotonic() - started
        self.fleet.finish_scan(scan_id, now=now, ok=False, devices=seen, duration=duration,
                               error=text)
        problem = self.problems.failed(scan_id, now, text)
        return ScanReport(scan_id, False, seen, duration, text, problem=problem)

    def current_scan_problem(self) -> ScanProblem | None:
        return self.problems.current()

    def undelivered(self) -> list[Notification]:
        """The alert digests waiting in the notification log for Slack to take them."""
        return self.delivery.log.pending()

    # -- digests -----------------------------------------------------------------------------

    def open_digests(self, scan_id: int) -> tuple[AlertDigest, ...]:
        """The whole picture after scan `scan_id`, one digest per channel with anything open or
        changed by that scan, changed or not (what a one-off `sigfox-bot scan` prints). The
        caller owns the CSV files: remove them when done."""
        return self.delivery.picture(scan_id, self.clock.now())

    def alert_items(self, scan_id: int) -> Iterator[tuple[str | None, AlertItem]]:
        """Every open alert, and every one scan `scan_id` changed, with its channel."""
        return self.delivery.alert_items(scan_id)

    # -- daily digest ------------------------------------------------------------------------

    def send_daily_digest(self, late_note: str = "") -> list[DailyDigest]:
        """The daily "what ends soon" message, one per channel with something ending.

        Once a day is the schedule's business (`commands.schedules`), not this method's."""
        digests, _ = self.deliver_daily_digests(late_note)
        return digests

    def deliver_daily_digests(self, late_note: str = "", channels: Collection[str] | None = None
                              ) -> tuple[list[DailyDigest], list[str]]:
        """Build and hand out the daily digests (only to `channels` when given, "" being the
        default channel); returns them and the channels whose delivery raised (Slack down)."""
        digests = [d for d in self.daily_digests(late_note)
                   if channels is None or (d.channel or "") in channels]
        failed = [d.channel or "" for d in digests if self._deliver_daily(d) is not None]
        return digests, failed

    def send_daily(self, day: str, late_note: str = "") -> list[DailyDigest]:
        """`day`'s daily digests, each delivery in the notification log: one Slack refused waits
        there for `resend_daily`. Earlier days' digests still waiting are dropped."""
        sent = self.delivery.log
        sent.close_daily_before(day, self.clock.now())
        digests = self.daily_digests(late_note)
        for digest in digests:
            error = self._deliver_daily(digest)
            sent.daily_attempted(digest.channel or "", day, self.clock.now(), error)
        return digests

    def resend_daily(self, day: str, late_note: str) -> list[DailyDigest] | None:
        """`day`'s daily digests Slack refused, sent again: each taken by compare-and-set, so one
        caller sends it and a channel that got it never gets it twice. None: nothing waited."""
        sent = self.delivery.log
        taken = {n.route: n.id for n in sent.daily_pending(day)
                 if sent.take(n.id, self.clock.now())}
        if not taken:
            return None
        digests = [d for d in self.daily_digests(late_note) if (d.channel or "") in taken]
        for digest in digests:
            error = self._deliver_daily(digest)
            notification_id = taken.pop(digest.channel or "")
            if error is None:
                sent.delivered(notification_id, self.clock.now())
            else:
                sent.failed(notification_id, self.clock.now(), error)
        for notification_id in taken.values():  # nothing ends there any more: nothing to say
            sent.obsolete(notification_id, self.clock.now())
        return digests

    def daily_waiting(self, day: str) -> bool:
        """Whether a daily digest of `day` waits for Slack."""
        return bool(self.delivery.log.daily_pending(day))

    def _deliver_daily(self, digest: DailyDigest) -> str | None:
        """Hand one daily digest to the sink; the error when it raised (Slack down)."""
        try:
            self.sink.deliver_daily(digest)
        except Exception as error:
            log.exception("daily digest for %s not delivered; retried",
                          digest.channel or "the default channel")
            return f"{type(error).__name__}: {error}"
        finally:
            remove_file(digest.csv_path)
        return None

    def daily_digests(self, late_note: str = "") -> list[DailyDigest]:
        return self.answers.daily_digests(late_note)

    # -- answers for the command layer (no Sigfox call) --------------------------------------

    def expiring(self, days: int | None = None, *, limit: int = 20) -> ExpiringSummary:
        """Tokens ending within `days` (default warn_days), from the last scan only."""
        return self.answers.expiring(days, limit=limit)

    def expiring_csv(self, days: int | None = None) -> tuple[Path, str, int]:
        """Every token ending within `days` as a CSV file (path, file name, rows); the caller
        removes it once sent."""
        return self.answers.expiring_csv(days)

    def list_alerts_and_snoozes(self, *, limit: int = 10) -> AlertsOverview:
        waiting = tuple(PendingDigest(n.route or None, n.created_at, n.attempts)
                        for n in self.undelivered())
        return replace(self.answers.overview(limit=limit), undelivered=waiting)

    def fleet_summary(self) -> FleetSummary:
        return self.answers.fleet_summary(scan_failing=self.problems.failing())

    def snooze_history(self, device_id: str) -> list[SnoozeInfo]:
        return self.answers.snooze_history(device_id)

    def device_report(self, device_id: str) -> DeviceReport:
        return self.answers.device_report(device_id)

    def last_scan(self) -> ScanInfo | None:
        return self.answers.last_scan()

    def scan_timing(self) -> ScanTiming:
        return self.answers.scan_timing()

    def stamp(self, ts: float) -> str:
        """An instant as people read it here: `2025-06-01 09:00 CEST` in [alerts] timezone."""
        return human.moment(ts, self.settings.tz)

    def last_success(self) -> float | None:
        """When the last scan that completed finished; None before the first."""
        return self.answers.as_of()

    # -- changes from people -----------------------------------------------------------------

    def snooze(self, device_id: str, *, actor: Actor, duration: timedelta | None,
               reason: str = "", condition: Condition | str | None = None) -> SnoozeOutcome:
        """Silence a device's alerts for `duration`, or until they resolve (None)."""
        return self.snoozes.snooze(device_id, actor=actor, duration=duration, reason=reason,
                                   condition=condition)

    def resolve_for_device(self, device_id: str, reason: str = "renewed through the bot") -> int:
        """A renewal through the bot finished: its alerts are resolved (told at the next scan)."""
        return self.fleet.resolve_device(normalize_device_id(device_id), self.clock.now(), reason)
