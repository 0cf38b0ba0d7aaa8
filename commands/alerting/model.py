"""What alerts are, as the rest of the bot reads them: kinds, levels, items, digests, reports.

Plain, Slack-free values. The number of digests grows with the number of channels, never with
the fleet: per-device detail beyond a few lines goes into a CSV file (`commands.alerting.digests`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from commands import human
from commands.schedules import ScanTiming


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
CONDITION_RANK = {Condition.OFF_CONTRACT: 0, Condition.INVALID: 1, Condition.EXPIRING: 2}


class Level(IntEnum):
    WARNING = 1
    CRITICAL = 2


class Change(StrEnum):
    NEW = "new"
    WORSE = "worse"
    REPEAT = "repeat"
    RESOLVED = "resolved"


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
class PendingDigest:
    """An alert digest Slack has not taken yet, waiting in the notification log."""

    channel: str | None
    since: float  # when it was first due
    attempts: int

    def text(self, tz: ZoneInfo) -> str:
        where = human.channel(self.channel) if self.channel else "the default channel"
        return (f"The alert digest for {where} waits for Slack since "
                f"{human.moment(self.since, tz)} ({human.plural(self.attempts, 'attempt')}); "
                "it is tried again every few minutes.")


@dataclass(frozen=True)
class AlertsOverview:
    """For `/sigfox alerts`: open alerts by condition, the worst ones, active snoozes, digests
    waiting for Slack."""

    counts: tuple[ConditionCount, ...]
    total_open: int
    top: tuple[AlertItem, ...]
    snoozes: tuple[SnoozeInfo, ...]
    snoozes_total: int
    last_scan: ScanInfo | None
    scan_problem: ScanProblem | None
    timezone: str
    timing: ScanTiming | None = None
    undelivered: tuple[PendingDigest, ...] = ()


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


def condition_counts(raw: dict[tuple[str, int], int]) -> tuple[ConditionCount, ...]:
    """Counts by (condition, level), the most serious first."""
    counts = [ConditionCount(Condition(c), Level(lv), n) for (c, lv), n in raw.items() if n]
    counts.sort(key=lambda c: (-c.level, CONDITION_RANK[c.condition]))
    return tuple(counts)


def urgency(item: AlertItem) -> tuple[int, int, float, str]:
    """Sort key: the most urgent alert first."""
    return (-item.level, CONDITION_RANK[item.condition], item.token_end or 0.0, item.device_id)
