"""Proactive alerts: scan the fleet, apply the rules, hand grouped digests to a sink.

The scanner walks the device list once per scan (the client paces it to Sigfox's limits) and
streams what it sees into SQLite; the rules then run inside SQLite (see `storage.fleet`). What
leaves this module are typed, Slack-free objects: one `AlertDigest` per channel per scan with
something to say, a `ScanProblem` when a scan fails or recovers, a `DailyDigest` per channel.
The number of those objects grows with the number of channels, never with the fleet: per-device
detail beyond a few lines goes into a CSV file.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from commands import human, metrics
from commands.config import AlertsConfig, BotConfig
from commands.policy import Actor, Operation, Policy
from commands.ports import Clock, SigfoxApi
from commands.schedules import ScanTiming, scan_timing
from sigfox.errors import SigfoxError
from sigfox.models import Device, normalize_device_id
from storage.db import SafeDatabase
from storage.fleet import FleetRow, FleetStore, Thresholds

log = logging.getLogger(__name__)
T = TypeVar("T")

DAY = 86_400.0
TOP_LIMIT = 5  # devices named in a digest; the rest is in its CSV
NOTE_LIMIT = 20  # threaded lines per kind before they collapse into one summary line
SCAN_PROBLEM_KEY = "alerts.scan_problem"
# Digests a sink failed to deliver, as {channel or "": [scan ids]}: their changes are told again
# at the next scan, so a Slack outage during a scan delays announcements instead of losing them.
UNDELIVERED_KEY = "alerts.undelivered"
UNDELIVERED_SCANS_KEPT = 100  # per channel: a long outage must not grow the record forever


class Condition(StrEnum):
    EXPIRING = "expiring"
    INVALID = "invalid"
    OFF_CONTRACT = "off_contract"

    @property
    def label(self) -> str:
        return _CONDITION_LABELS[self]


_CONDITION_LABELS = {
    Condition.EXPIRING: "token ending",
    Condition.INVALID: "token Invalid",
    Condition.OFF_CONTRACT: "Off Contract",
}
# Devices already silent come first among equals: they need a renewal now.
_CONDITION_RANK = {Condition.OFF_CONTRACT: 0, Condition.INVALID: 1, Condition.EXPIRING: 2}


class Level(IntEnum):
    WARNING = 1
    CRITICAL = 2


class Change(StrEnum):
    NEW = "new"
    WORSE = "worse"
    REPEAT = "repeat"
    RESOLVED = "resolved"


TOKEN_STATE_NAMES = {0: "ok", 1: "off_contract", 2: "not_applicable", 3: "invalid", None: "none"}


# --------------------------------------------------------------------------- what leaves


@dataclass(frozen=True)
class AlertItem:
    """One alert (device and condition) as people read it. Never carries a PAC."""

    device_id: str
    condition: Condition
    level: Level
    name: str = ""
    device_type: str = ""
    group: str = ""
    token_end: float | None = None
    first_seen: float = 0.0
    change: Change | None = None
    resolution: str = ""
    state: str = "open"

    def describe(self, tz: ZoneInfo, now: float | None = None, *, code: bool = False) -> str:
        """`1A2B3C Water meter v2: token ends 2025-06-01 (in 3 days)`: each fact once."""
        who = human.device(self.device_id, self.name, self.device_type, code=code)
        return f"{who}: {self.what(tz, now)}"

    def what(self, tz: ZoneInfo, now: float | None = None) -> str:
        if self.condition is Condition.EXPIRING:
            return f"token ends {human.day_and_relative(self.token_end, tz, now)}"
        if self.condition is Condition.INVALID:
            return f"token Invalid since {human.day_and_relative(self.token_end, tz, None)}"
        # When the token ended is known; whether the device still sends is not (the scan
        # reads the token, and Sigfox stops delivering an Off Contract device's messages).
        if self.token_end is None:
            return "Off Contract"
        return f"Off Contract since {human.day(self.token_end, tz)}"


@dataclass(frozen=True)
class ConditionCount:
    condition: Condition
    level: Level
    count: int

    @property
    def label(self) -> str:
        prefix = "critical" if self.level is Level.CRITICAL else "warning"
        return f"{self.condition.label} ({prefix})"


@dataclass(frozen=True)
class AlertDigest:
    """What one channel is told after one scan: totals, the worst devices, what changed."""

    channel: str | None
    scan_id: int
    created_at: float
    timezone: str
    counts: tuple[ConditionCount, ...]
    total_open: int
    changes: dict[Change, int]
    top: tuple[AlertItem, ...]
    announced: tuple[AlertItem, ...]  # new/worse/repeat, one line each; empty if too many
    resolved: tuple[AlertItem, ...]  # likewise
    csv_path: Path | None = None
    csv_name: str = ""
    csv_rows: int = 0

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def announced_total(self) -> int:
        return sum(self.changes.get(c, 0) for c in (Change.NEW, Change.WORSE, Change.REPEAT))

    @property
    def resolved_total(self) -> int:
        return self.changes.get(Change.RESOLVED, 0)

    @property
    def announced_collapsed(self) -> bool:
        return self.announced_total > len(self.announced)

    @property
    def resolved_collapsed(self) -> bool:
        return self.resolved_total > len(self.resolved)

    def title(self) -> str:
        return f"Sigfox fleet alerts: {self.total_open:,} open"

    def changes_line(self) -> str:
        parts = [f"{self.changes[c]:,} {c.value}" for c in Change if self.changes.get(c)]
        return ", ".join(parts) if parts else "no change"

    def announced_summary(self) -> str:
        return (f"{self.announced_total:,} alerts to look at ({self.changes_line()}): too many "
                f"to list here, see {self.csv_name} (column `change`).")

    def resolved_summary(self) -> str:
        return (f"{self.resolved_total:,} alerts resolved: see {self.csv_name} "
                "(column `change` = resolved).")


@dataclass(frozen=True)
class ScanProblem:
    """A scan that failed (once, when it starts failing) or the scan that recovered."""

    resolved: bool
    channel: str | None
    since: float
    error: str
    scan_id: int
    at: float
    thread: str = ""  # the resolution only: what the sink returned for the failure's message

    def text(self) -> str:
        if self.resolved:
            return ("Fleet scans work again: the last one completed. Alerts are up to date "
                    "again.")
        return (f"The fleet scan failed: {self.error} Alerts are not up to date until a scan "
                "completes; the bot retries, within minutes at first, then at each scan interval.")


@dataclass(frozen=True)
class ExpiringDevice:
    device_id: str
    name: str
    device_type: str
    group: str
    token_end: float
    renews: bool = False  # renews automatically: listed, but not a warning


@dataclass(frozen=True)
class WeekBucket:
    """Tokens ending in one week (Monday to Sunday, in the configured time zone)."""

    start: date
    count: int
    devices: tuple[ExpiringDevice, ...]

    @property
    def label(self) -> str:
        return human.week_of(self.start)


@dataclass(frozen=True)
class ExpiringSummary:
    """What ends in the next `days` days, from the last scan (no Sigfox call)."""

    days: int
    as_of: float | None  # when the data was scanned; None: never scanned
    now: float
    timezone: str
    total: int
    weeks: tuple[WeekBucket, ...]
    devices: tuple[ExpiringDevice, ...]  # soonest first, at most the limit asked
    renewing: int = 0  # of `total`, how many renew automatically (not warnings)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DailyDigest:
    channel: str | None
    summary: ExpiringSummary
    open_alerts: tuple[ConditionCount, ...]
    csv_path: Path | None = None
    csv_name: str = ""
    late_note: str = ""  # why the digest comes after digest_time, when it is more than a bit late


@dataclass(frozen=True)
class ScanInfo:
    id: int
    started_at: float
    finished_at: float
    ok: bool
    devices: int
    duration: float
    error: str
    started_by: str


@dataclass(frozen=True)
class ScanReport:
    """What a scan did; `digests` were already handed to the sink."""

    scan_id: int
    ok: bool
    devices: int
    duration: float
    error: str = ""
    digests: tuple[AlertDigest, ...] = ()
    problem: ScanProblem | None = None


@dataclass(frozen=True)
class SnoozeInfo:
    id: int
    device_id: str
    condition: str  # "" = every condition of the device
    until: float | None  # None = until resolved
    snoozed_by: str
    reason: str
    created_at: float


@dataclass(frozen=True)
class SnoozeOutcome:
    ok: bool
    message: str
    snooze: SnoozeInfo | None = None


@dataclass(frozen=True)
class AlertsOverview:
    """For `/sigfox alerts`: open alerts by condition, the worst ones, active snoozes."""

    counts: tuple[ConditionCount, ...]
    total_open: int
    top: tuple[AlertItem, ...]
    snoozes: tuple[SnoozeInfo, ...]
    snoozes_total: int
    last_scan: ScanInfo | None
    scan_problem: ScanProblem | None
    timezone: str
    timing: ScanTiming | None = None


@dataclass(frozen=True)
class FleetSummary:
    """For App Home and metrics."""

    devices: int
    by_token_state: dict[str, int]
    ending_7_days: int
    ending_30_days: int
    open_alerts: int
    last_scan: ScanInfo | None
    scan_failing: bool
    timing: ScanTiming | None = None


@dataclass(frozen=True)
class DeviceReport:
    """For the Details button: what the last scan saw of a device, its alerts and snoozes."""

    device_id: str
    known: bool
    name: str = ""
    device_type: str = ""
    group: str = ""
    token_state: str = "none"
    token_end: float | None = None
    alerts: tuple[AlertItem, ...] = ()
    snoozes: tuple[SnoozeInfo, ...] = ()
    scanned_at: float | None = None


class AlertSink(Protocol):
    """Where alerts are delivered (Slack, a terminal). Files named in them may vanish after.

    A delivery that raises was not made: the service tells it again later. `deliver_scan_problem`
    may return a reference to the message it posted (Slack: its ts); the service keeps it in
    the database and hands it back in the resolution's `thread`, across restarts.
    """

    def deliver_digest(self, digest: AlertDigest) -> None: ...

    def deliver_scan_problem(self, problem: ScanProblem) -> str | None: ...

    def deliver_daily(self, digest: DailyDigest) -> None: ...


ScanProgress = Callable[[int], None]


# --------------------------------------------------------------------------- the service


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
        audit: Callable[..., None] | None = None,
    ) -> None:
        self.api = api
        self.fleet = FleetStore(database)
        self.sink = sink
        self.config = config
        self.policy = Policy(config)
        self.clock = clock
        self._audit = audit
        self._scan_lock = threading.Lock()
        # Called after every scan that completed, ok or not (the schedule moves the next one).
        self.scan_listeners: list[Callable[[], None]] = []

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
        seen = _Counter()
        try:
            self.fleet.write_devices(
                self._rows(seen), scan_id=scan_id, now=self.clock.now(), on_batch=progress
            )
        except Exception as error:  # any cause leaves the alerts stale: say so
            return self._scan_failed(scan_id, started, seen.count, error)
        now = self.clock.now()
        self.fleet.evaluate(scan_id, self._thresholds(now))
        self.fleet.forget_unseen(scan_id)
        digests = self._build_digests(scan_id, now)
        duration = time.monotonic() - started
        self.fleet.finish_scan(scan_id, now=now, ok=True, devices=seen.count, duration=duration)
        self._record_metrics(duration)
        problem = self._scan_recovered(scan_id, now)
        self._deliver(scan_id, digests)
        return ScanReport(scan_id, True, seen.count, duration, digests=digests, problem=problem)

    def _record_metrics(self, duration: float) -> None:
        by_state = {TOKEN_STATE_NAMES.get(k, f"unknown_{k}"): v
                    for k, v in self.fleet.count_by_token_state().items()}
        metrics.record_scan(duration, by_state)

    def _rows(self, seen: _Counter) -> Iterator[FleetRow]:
        # The device list names neither type nor group unless asked field by field; two
        # short lists give the names routes may use, for a handful of calls per scan.
        types = list(self.api.iter_device_types())
        type_names = {t.id: t.name or "" for t in types}
        group_names = {g.id: g.name or "" for g in self.api.iter_groups()}
        renewal = _RenewalAllowed(self.api, {t.id for t in types if t.automatic_renewal})
        for device in self.api.iter_all_devices():
            seen.count += 1
            yield fleet_row(device, type_names, group_names, renews=renewal.renews(device))

    def _thresholds(self, now: float) -> Thresholds:
        return Thresholds(
            now=now,
            warn_until=now + self.settings.warn_days * DAY,
            critical_until=now + self.settings.critical_days * DAY,
            repeat_before=now - self.settings.repeat_after.total_seconds(),
        )

    def _scan_failed(
        self, scan_id: int, started: float, seen: int, error: Exception
    ) -> ScanReport:
        text = _error_sentence(error, seen)
        metrics.record_scan_failure()
        if not isinstance(error, SigfoxError):
            log.exception("fleet scan %d failed", scan_id)
        now = self.clock.now()
        duration = time.monotonic() - started
        self.fleet.finish_scan(scan_id, now=now, ok=False, devices=seen, duration=duration,
                               error=text)
        problem = self._record_failure(scan_id, now, text)
        return ScanReport(scan_id, False, seen, duration, text, problem=problem)

    def _record_failure(self, scan_id: int, now: float, text: str) -> ScanProblem | None:
        """Remember the failure and tell it once: not once a scan, but again if never told."""
        known = self.fleet.get_kv(SCAN_PROBLEM_KEY) or {}
        record = {"since": known.get("since", now), "error": text, "scan_id": scan_id,
                  "delivered": known.get("delivered", False), "thread": known.get("thread", ""),
                  "channel": known.get("channel", self.settings.channel)}
        problem = None
        if not record["delivered"]:
            problem = ScanProblem(False, self.settings.channel, record["since"], text, scan_id,
                                  now)
            record |= self._tell_problem(problem)
        self.fleet.set_kv(SCAN_PROBLEM_KEY, record)
        return problem

    def _tell_problem(self, problem: ScanProblem) -> dict[str, Any]:
        try:
            ref = self.sink.deliver_scan_problem(problem)
        except Exception:  # Slack down too: the next failing scan tries again
            log.exception("could not deliver the scan failure alert; will retry")
            return {}
        return {"delivered": True, "thread": ref or "", "channel": problem.channel}

    def _scan_recovered(self, scan_id: int, now: float) -> ScanProblem | None:
        known = self.fleet.get_kv(SCAN_PROBLEM_KEY)
        if not known:
            return None
        self.fleet.delete_kv(SCAN_PROBLEM_KEY)
        if not known.get("delivered", True):
            return None  # nobody was told it failed: no news that it works again
        # The failure's message is only a thread to answer in the channel it was posted to.
        same = known.get("channel", self.settings.channel) == self.settings.channel
        problem = ScanProblem(True, self.settings.channel, known["since"], known["error"],
                              scan_id, now, thread=known.get("thread", "") if same else "")
        self._safely(self.sink.deliver_scan_problem, problem)
        return problem

    def current_scan_problem(self) -> ScanProblem | None:
        known = self.fleet.get_kv(SCAN_PROBLEM_KEY)
        if not known:
            return None
        return ScanProblem(False, self.settings.channel, known["since"], known["error"],
                           known["scan_id"], known["since"])

    # -- digests -----------------------------------------------------------------------------

    def open_digests(self, scan_id: int) -> tuple[AlertDigest, ...]:
        """The whole picture after scan `scan_id`, one digest per channel with anything open or
        changed by that scan, changed or not (what a one-off `sigfox-bot scan` prints). The
        caller owns the CSV files: remove them when done."""
        return self._build_digests(scan_id, self.clock.now(), everything=True)

    def alert_items(self, scan_id: int) -> Iterator[tuple[str | None, AlertItem]]:
        """Every open alert, and every one scan `scan_id` changed, with its channel."""
        router = _Router(self.settings)
        for row in self.fleet.iter_alerts(open_only=True, changed_in={scan_id}):
            changed = row["change_scan"] == scan_id and bool(row["change"])
            yield router.channel(row["details"]), alert_item(row, changed=changed)

    def _build_digests(self, scan_id: int, now: float, *, everything: bool = False
                       ) -> tuple[AlertDigest, ...]:
        """Stream the open and changed alerts once, aggregating per channel (flat memory).

        Changes of earlier scans whose digest did not reach a channel count as this scan's.
        With `everything`, channels without a change get their digest too.
        """
        router = _Router(self.settings)
        pending = {} if everything else self._undelivered()
        scans = {scan_id}.union(*pending.values())
        groups: dict[str | None, _ChannelDigest] = {}
        try:
            for row in self.fleet.iter_alerts(open_only=True, changed_in=scans):
                channel = router.channel(row["details"])
                changed = row["change_scan"] == scan_id or (
                    row["change_scan"] in pending.get(channel or "", ()) and bool(row["change"]))
                if not changed and row["state"] != "open":
                    continue  # told in its own scan's digest, to another channel
                item = alert_item(row, changed=changed)
                if channel not in groups:
                    groups[channel] = _ChannelDigest(channel, scan_id, self.settings.tz, now)
                groups[channel].add(item)
            return tuple(g.finish(self.settings.timezone) for g in groups.values()
                         if g.changed or everything)
        finally:
            for group in groups.values():
                group.discard_unless(group.changed or everything)

    def _deliver(self, scan_id: int, digests: Iterable[AlertDigest]) -> None:
        """Deliver each digest; remember the channels it failed for, to tell them next scan."""
        pending = self._undelivered()
        failed: dict[str, list[int]] = {}
        for digest in digests:
            try:
                self.sink.deliver_digest(digest)
            except Exception:  # Slack down: the scan's state stands, the telling waits
                log.exception("alert digest of scan %d for %s not delivered; retried at the "
                              "next scan", scan_id, digest.channel or "the default channel")
                key = digest.channel or ""
                scans = sorted({*pending.get(key, ()), scan_id})
                failed[key] = scans[-UNDELIVERED_SCANS_KEPT:]
            finally:
                _remove(digest.csv_path)
        # Delivered channels were told everything pending for them; the others had nothing left.
        self._set_undelivered(failed)

    def _undelivered(self) -> dict[str, set[int]]:
        raw = self.fleet.get_kv(UNDELIVERED_KEY) or {}
        return {channel: set(scans) for channel, scans in raw.items()}

    def _set_undelivered(self, failed: dict[str, list[int]]) -> None:
        if failed:
            self.fleet.set_kv(UNDELIVERED_KEY, failed)
        else:
            self.fleet.delete_kv(UNDELIVERED_KEY)

    @staticmethod
    def _safely(deliver: Callable[[T], object], what: T) -> None:
        # Delivery failing (Slack down) must not undo a scan; the state is already recorded.
        try:
            deliver(what)
        except Exception:
            log.exception("alert delivery failed")

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
        failed: list[str] = []
        for digest in digests:
            try:
                self.sink.deliver_daily(digest)
            except Exception:
                log.exception("daily digest for %s not delivered; retried",
                              digest.channel or "the default channel")
                failed.append(digest.channel or "")
            finally:
                _remove(digest.csv_path)
        return digests, failed

    def daily_digests(self, late_note: str = "") -> list[DailyDigest]:
        now = self.clock.now()
        days = self.settings.warn_days
        router = _Router(self.settings)
        per_channel: dict[str | None, _ExpiringCollector] = {}
        for row in self.fleet.iter_ending(now + days * DAY):
            channel = router.channel(row)
            if channel not in per_channel:
                per_channel[channel] = _ExpiringCollector(self.settings.tz, limit=10,
                                                          csv_prefix="ending")
            per_channel[channel].add(expiring_device(row))
        as_of = self._as_of()
        counts = self._open_counts()
        return [
            DailyDigest(channel, c.summary(days, as_of, now, self.settings.timezone), counts,
                        c.csv_path, c.csv_name, late_note)
            for channel, c in per_channel.items()
        ]

    # -- answers for the command layer (no Sigfox call) --------------------------------------

    def expiring(self, days: int | None = None, *, limit: int = 20) -> ExpiringSummary:
        """Tokens ending within `days` (default warn_days), from the last scan only."""
        days = self.settings.warn_days if days is None else days
        if days < 0:
            raise ValueError("days must be zero or more")
        now = self.clock.now()
        collector = _ExpiringCollector(self.settings.tz, limit=limit)
        for row in self.fleet.iter_ending(now + days * DAY):
            collector.add(expiring_device(row))
        return collector.summary(days, self._as_of(), now, self.settings.timezone)

    def expiring_csv(self, days: int | None = None) -> tuple[Path, str, int]:
        """Every token ending within `days` as a CSV file: (path, file name, rows). The caller
        removes the file once it has sent it."""
        days = self.settings.warn_days if days is None else days
        now = self.clock.now()
        collector = _ExpiringCollector(self.settings.tz, limit=0, csv_prefix="ending")
        for row in self.fleet.iter_ending(now + days * DAY):
            collector.add(expiring_device(row))
        collector.summary(days, self._as_of(), now, self.settings.timezone)  # closes the file
        assert collector.csv_path is not None
        name = f"sigfox-tokens-ending-{days}d-{human.file_stamp(now, self.settings.tz)}.csv"
        return collector.csv_path, name, collector.total

    def list_alerts_and_snoozes(self, *, limit: int = 10) -> AlertsOverview:
        now = self.clock.now()
        counts = self._open_counts()
        return AlertsOverview(
            counts=counts,
            total_open=sum(c.count for c in counts),
            top=tuple(alert_item(r) for r in self.fleet.most_urgent(limit)),
            snoozes=tuple(snooze_info(r) for r in self.fleet.active_snoozes(now, limit)),
            snoozes_total=self.fleet.count_active_snoozes(now),
            last_scan=self.last_scan(),
            scan_problem=self.current_scan_problem(),
            timezone=self.settings.timezone,
            timing=self.scan_timing(),
        )

    def fleet_summary(self) -> FleetSummary:
        now = self.clock.now()
        states = {TOKEN_STATE_NAMES.get(k, f"unknown_{k}"): v
                  for k, v in self.fleet.count_by_token_state().items()}
        return FleetSummary(
            devices=self.fleet.count_devices(),
            by_token_state=states,
            ending_7_days=self.fleet.count_ending(now, now + 7 * DAY),
            ending_30_days=self.fleet.count_ending(now, now + 30 * DAY),
            open_alerts=sum(self.fleet.count_open_alerts().values()),
            last_scan=self.last_scan(),
            scan_failing=self.fleet.get_kv(SCAN_PROBLEM_KEY) is not None,
            timing=self.scan_timing(),
        )

    def snooze_history(self, device_id: str) -> list[SnoozeInfo]:
        """The snoozes of a device, newest first, with who and why (for `/sigfox history`)."""
        return [snooze_info(r) for r in self.fleet.snoozes_of(normalize_device_id(device_id))]

    def device_report(self, device_id: str) -> DeviceReport:
        did = normalize_device_id(device_id)
        row = self.fleet.device(did)
        alerts = tuple(alert_item(r) for r in self.fleet.alerts_of(did) if r["state"] == "open")
        snoozes = tuple(snooze_info(s) for s in self.fleet.active_snoozes(self.clock.now(), 1000)
                        if s["device_id"] == did)
        if row is None:
            return DeviceReport(did, False, alerts=alerts, snoozes=snoozes)
        return DeviceReport(
            did, True, row["name"], row["device_type_name"], row["group_name"],
            TOKEN_STATE_NAMES.get(row["token_state"], str(row["token_state"])),
            row["token_end"], alerts, snoozes, row["seen_at"],
        )

    def last_scan(self) -> ScanInfo | None:
        row = self.fleet.last_scan()
        return scan_info(row) if row else None

    def scan_timing(self) -> ScanTiming:
        """When the last scan completed and the next is due, from the database alone."""
        return scan_timing(self.fleet, self.settings.scan_interval, self.clock.now())

    def stamp(self, ts: float) -> str:
        """An instant as people read it here: `2025-06-01 09:00 CEST` in [alerts] timezone."""
        return human.moment(ts, self.settings.tz)

    def last_success(self) -> float | None:
        """When the last scan that completed finished; None before the first."""
        return self._as_of()

    def _as_of(self) -> float | None:
        row = self.fleet.last_scan(ok_only=True)
        return row["finished_at"] if row else None

    def _open_counts(self) -> tuple[ConditionCount, ...]:
        return _condition_counts(self.fleet.count_open_alerts())

    # -- changes from people -----------------------------------------------------------------

    def snooze(
        self,
        device_id: str,
        *,
        actor: Actor,
        duration: timedelta | None,
        reason: str = "",
        condition: Condition | str | None = None,
    ) -> SnoozeOutcome:
        """Silence a device's alerts for `duration`, or until they resolve (None)."""
        decision = self.policy.can_request(actor, Operation.SNOOZE)
        if not decision.allowed:
            return SnoozeOutcome(False, decision.reason)
        try:
            did = normalize_device_id(device_id)
            wanted = Condition(condition) if condition else None
        except ValueError as error:
            return SnoozeOutcome(False, f"{error}.")
        refusal = self._snooze_refusal(did, wanted, duration)
        if refusal:
            return SnoozeOutcome(False, refusal)
        return self._record_snooze(did, wanted, duration, actor.user_id, reason.strip())

    def _snooze_refusal(
        self, device_id: str, condition: Condition | None, duration: timedelta | None
    ) -> str:
        if duration is not None and duration <= timedelta(0):
            return "A snooze needs a duration longer than zero."
        if duration is None and not self._has_open_alert(device_id, condition):
            what = f"{condition.label} alert" if condition else "open alert"
            return (f"Device {device_id} has no {what} to snooze until resolved; snooze it "
                    "for a duration instead.")
        return ""

    def _has_open_alert(self, device_id: str, condition: Condition | None) -> bool:
        return any(a["state"] == "open" and (condition is None or a["condition"] == condition)
                   for a in self.fleet.alerts_of(device_id))

    def _record_snooze(
        self, device_id: str, condition: Condition | None, duration: timedelta | None,
        who: str, reason: str,
    ) -> SnoozeOutcome:
        now = self.clock.now()
        until = None if duration is None else now + duration.total_seconds()
        why = reason or "no reason given"
        snooze_id = self.fleet.add_snooze(device_id, condition or "", until, who, why, now)
        if self._audit is not None:
            self._audit(who, "snooze", now, device_id=device_id, outcome="ok",
                        details={"condition": condition or "", "until": until, "reason": why})
        info = SnoozeInfo(snooze_id, device_id, condition or "", until, who, why, now)
        return SnoozeOutcome(True, snooze_text(info, self.settings.tz), info)

    def resolve_for_device(self, device_id: str, reason: str = "renewed through the bot") -> int:
        """A renewal through the bot finished: its alerts are resolved (told at the next scan)."""
        return self.fleet.resolve_device(normalize_device_id(device_id), self.clock.now(), reason)


# --------------------------------------------------------------------------- conversions


class _RenewalAllowed:
    """Whether a device's token renews by itself: the device, its device type and its own
    contract allow automatic renewal, and `automaticRenewalStatus` does not say it failed.
    Each contract is read once per scan; one that can't be read counts as not renewing (the
    reading that keeps the warning)."""

    def __init__(self, api: SigfoxApi, renewing_types: set[str]) -> None:
        self.api = api
        self.renewing_types = renewing_types
        self.contracts: dict[str, bool] = {}

    def renews(self, device: Device) -> bool:
        type_id = device.device_type.id if device.device_type else None
        if not device.automatic_renewal or device.renewal_refused or not device.contract_id:
            return False
        if type_id not in self.renewing_types:
            return False
        return self._contract_renews(device.contract_id)

    def _contract_renews(self, contract_id: str) -> bool:
        if contract_id not in self.contracts:
            try:
                contract = self.api.get_contract_info(contract_id)
            except SigfoxError:
                return False  # not remembered: the next device tries again
            self.contracts[contract_id] = bool(contract.automatic_renewal)
        return self.contracts[contract_id]


def fleet_row(
    device: Device,
    type_names: dict[str, str] | None = None,
    group_names: dict[str, str] | None = None,
    *,
    renews: bool = False,
) -> FleetRow:
    """What the fleet table keeps of a device (its PAC is deliberately not among it)."""
    token = device.token
    type_id = (device.device_type.id or "") if device.device_type else ""
    group_id = (device.group.id or "") if device.group else ""
    return FleetRow(
        device_id=device.id.upper(),
        name=device.name or "",
        device_type_id=type_id,
        device_type_name=_ref_name(device.device_type, type_names),
        group_id=group_id,
        group_name=_ref_name(device.group, group_names),
        device_state=int(device.state) if device.state is not None else None,
        token_state=int(token.state) if token and token.state is not None else None,
        token_end=token.end / 1000 if token and token.end else None,
        last_com=device.last_com / 1000 if device.last_com else None,
        renews_automatically=renews,
    )


def _ref_name(ref: Any, names: dict[str, str] | None) -> str:
    if ref is None:
        return ""
    return ref.name or (names or {}).get(ref.id or "", "")


def alert_item(row: dict[str, Any], *, changed: bool = False) -> AlertItem:
    details = row.get("details") or {}
    change = Change(row["change"]) if changed and row.get("change") else None
    return AlertItem(
        device_id=row["device_id"],
        condition=Condition(row["condition"]),
        level=Level(row["level"]),
        name=details.get("name") or "",
        device_type=details.get("device_type") or "",
        group=details.get("group") or "",
        token_end=details.get("token_end"),
        first_seen=row.get("first_seen") or 0.0,
        change=change,
        resolution=row.get("resolution") or "",
        state=row.get("state") or "open",
    )


def expiring_device(row: dict[str, Any]) -> ExpiringDevice:
    return ExpiringDevice(row["device_id"], row["name"], row["device_type_name"],
                          row["group_name"], row["token_end"],
                          bool(row.get("renews_automatically")))


def snooze_info(row: dict[str, Any]) -> SnoozeInfo:
    return SnoozeInfo(row["id"], row["device_id"], row["condition"], row["until"],
                      row["snoozed_by"], row["reason"], row["created_at"])


def scan_info(row: dict[str, Any]) -> ScanInfo:
    return ScanInfo(row["id"], row["started_at"], row["finished_at"], bool(row["ok"]),
                    row["devices"], row["duration"], row["error"], row["started_by"])


def snooze_text(info: SnoozeInfo, tz: ZoneInfo) -> str:
    what = f"{Condition(info.condition).label} alerts" if info.condition else "alerts"
    until = "until they resolve" if info.until is None else f"until {human.moment(info.until, tz)}"
    return (f"Snoozed {what} of device {info.device_id} {until}, by <@{info.snoozed_by}>: "
            f"{info.reason}.")


def _condition_counts(raw: dict[tuple[str, int], int]) -> tuple[ConditionCount, ...]:
    counts = [ConditionCount(Condition(c), Level(lv), n) for (c, lv), n in raw.items() if n]
    counts.sort(key=lambda c: (-c.level, _CONDITION_RANK[c.condition]))
    return tuple(counts)


def _urgency(item: AlertItem) -> tuple[int, int, float, str]:
    return (-item.level, _CONDITION_RANK[item.condition], item.token_end or 0.0, item.device_id)


def _error_sentence(error: Exception, seen: int) -> str:
    where = f"after {seen:,} devices" if seen else "before any device was read"
    if isinstance(error, SigfoxError):
        return f"Sigfox refused or failed the fleet listing {where}: {error}."
    return f"The scan stopped {where} on an unexpected error ({type(error).__name__})."


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def _temp_csv(prefix: str) -> tuple[Any, Path]:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by its owner
        "w", newline="", encoding="utf-8", prefix=f"sigfox-{prefix}-", suffix=".csv",
        delete=False,
    )
    return handle, Path(handle.name)


# --------------------------------------------------------------------------- aggregation


class _Counter:
    def __init__(self) -> None:
        self.count = 0


class _Router:
    """Channel of a device from its type and group (ids and names), memoised per pair."""

    def __init__(self, settings: AlertsConfig) -> None:
        self._settings = settings
        self._cache: dict[tuple[str, str, str, str], str | None] = {}

    def channel(self, fields: dict[str, Any]) -> str | None:
        key = (
            fields.get("device_type_id") or "",
            fields.get("device_type") or fields.get("device_type_name") or "",
            fields.get("group_id") or "",
            fields.get("group") or fields.get("group_name") or "",
        )
        if key not in self._cache:
            types = tuple(v for v in key[:2] if v)
            groups = tuple(v for v in key[2:] if v)
            self._cache[key] = self._settings.channel_for(types, groups)
        return self._cache[key]


CSV_HEADER = ("device_id", "name", "device_type", "group", "condition", "level", "token_end",
              "first_seen", "state", "change")


@dataclass
class _ChannelDigest:
    """Per-channel aggregates while alerts stream past: counts, top N, a few lines, the CSV."""

    channel: str | None
    scan_id: int
    tz: ZoneInfo
    now: float
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    changes: Counter[Change] = field(default_factory=Counter)
    top: list[AlertItem] = field(default_factory=list)
    announced: list[AlertItem] = field(default_factory=list)
    resolved: list[AlertItem] = field(default_factory=list)
    rows: int = 0

    def __post_init__(self) -> None:
        self._file, self.csv_path = _temp_csv(f"alerts-{self.channel or 'default'}")
        self._writer = csv.writer(self._file)
        self._writer.writerow(CSV_HEADER)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def add(self, item: AlertItem) -> None:
        self._write(item)
        if item.change is not None:
            self.changes[item.change] += 1
            kept = self.resolved if item.change is Change.RESOLVED else self.announced
            if len(kept) <= NOTE_LIMIT:
                kept.append(item)
        if item.state == "open":
            self.counts[(item.condition, item.level)] += 1
            self._keep_top(item)

    def _keep_top(self, item: AlertItem) -> None:
        self.top.append(item)
        if len(self.top) > 5 * TOP_LIMIT:
            self.top = sorted(self.top, key=_urgency)[:TOP_LIMIT]

    def _write(self, item: AlertItem) -> None:
        end = human.moment(item.token_end, self.tz) if item.token_end else ""
        self._writer.writerow((
            item.device_id, item.name, item.device_type, item.group, item.condition.value,
            item.level.name.lower(), end, human.moment(item.first_seen, self.tz) if item.first_seen
            else "", item.state, item.change.value if item.change else "",
        ))
        self.rows += 1

    def finish(self, timezone: str) -> AlertDigest:
        self._file.close()
        stamp = human.file_stamp(self.now, self.tz)
        return AlertDigest(
            channel=self.channel, scan_id=self.scan_id, created_at=self.now, timezone=timezone,
            counts=_condition_counts(dict(self.counts)), total_open=sum(self.counts.values()),
            changes=dict(self.changes), top=tuple(sorted(self.top, key=_urgency)[:TOP_LIMIT]),
            announced=_bounded(sorted(self.announced, key=_urgency)),
            resolved=_bounded(self.resolved), csv_path=self.csv_path,
            csv_name=f"sigfox-alerts-{stamp}.csv", csv_rows=self.rows,
        )

    def discard_unless(self, kept: bool) -> None:
        if not self._file.closed:
            self._file.close()
        if not kept:
            _remove(self.csv_path)


def _bounded(items: list[AlertItem]) -> tuple[AlertItem, ...]:
    """Every line if there are few; none (one summary line instead) past NOTE_LIMIT."""
    return tuple(items) if len(items) <= NOTE_LIMIT else ()


class _ExpiringCollector:
    """Weekly buckets and the soonest devices, streaming; optionally a CSV of all of them."""

    def __init__(self, tz: ZoneInfo, *, limit: int, csv_prefix: str | None = None) -> None:
        self.tz = tz
        self.limit = limit
        self.total = 0
        self.renewing = 0
        self.devices: list[ExpiringDevice] = []
        self.weeks: Counter[date] = Counter()
        self.week_devices: dict[date, list[ExpiringDevice]] = {}
        self.csv_path: Path | None = None
        self.csv_name = ""
        self._writer: Any = None
        if csv_prefix:
            self._file, self.csv_path = _temp_csv(csv_prefix)
            self._writer = csv.writer(self._file)
            self._writer.writerow(("device_id", "name", "device_type", "group", "token_end"))
            self.csv_name = "sigfox-tokens-ending.csv"

    def add(self, device: ExpiringDevice) -> None:
        """Rows arrive soonest first, so the first ones kept are the ones to show."""
        self.total += 1
        self.renewing += device.renews
        if len(self.devices) < self.limit:
            self.devices.append(device)
        week = _week_start(device.token_end, self.tz)
        self.weeks[week] += 1
        shown = self.week_devices.setdefault(week, [])
        if len(shown) < 5:
            shown.append(device)
        if self._writer is not None:
            self._writer.writerow((device.device_id, device.name, device.device_type,
                                   device.group, human.moment(device.token_end, self.tz)))

    def summary(self, days: int, as_of: float | None, now: float, timezone: str
                ) -> ExpiringSummary:
        if self._writer is not None:
            self._file.close()
        weeks = tuple(WeekBucket(w, n, tuple(self.week_devices[w]))
                      for w, n in sorted(self.weeks.items()))
        return ExpiringSummary(days, as_of, now, timezone, self.total, weeks,
                               tuple(self.devices), self.renewing)


def _week_start(ts: float, tz: ZoneInfo) -> date:
    day = datetime.fromtimestamp(ts, tz=tz).date()
    return day - timedelta(days=day.weekday())
