"""Grouping alerts as they stream past: per-channel digests, weekly buckets, their CSV files.

Memory stays flat whatever the fleet: each aggregate keeps counts, the few devices it names and
a CSV file it writes row by row; the caller removes the files once delivered.
"""

from __future__ import annotations

import csv
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from commands import human
from commands.alerting.model import (
    AlertDigest,
    AlertItem,
    Change,
    ExpiringDevice,
    ExpiringSummary,
    WeekBucket,
    condition_counts,
    urgency,
)
from commands.config import AlertsConfig

TOP_LIMIT = 5  # devices named in a digest; the rest is in its CSV
NOTE_LIMIT = 20  # threaded lines per kind before they collapse into one summary line


def remove_file(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def temp_csv(prefix: str) -> tuple[Any, Path]:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by its owner
        "w", newline="", encoding="utf-8", prefix=f"sigfox-{prefix}-", suffix=".csv",
        delete=False,
    )
    return handle, Path(handle.name)


class Router:
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
class ChannelDigest:
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
        self._file, self.csv_path = temp_csv(f"alerts-{self.channel or 'default'}")
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
            self.top = sorted(self.top, key=urgency)[:TOP_LIMIT]

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
            counts=condition_counts(dict(self.counts)), total_open=sum(self.counts.values()),
            changes=dict(self.changes), top=tuple(sorted(self.top, key=urgency)[:TOP_LIMIT]),
            announced=_bounded(sorted(self.announced, key=urgency)),
            resolved=_bounded(self.resolved), csv_path=self.csv_path,
            csv_name=f"sigfox-alerts-{stamp}.csv", csv_rows=self.rows,
        )

    def discard_unless(self, kept: bool) -> None:
        if not self._file.closed:
            self._file.close()
        if not kept:
            remove_file(self.csv_path)


def _bounded(items: list[AlertItem]) -> tuple[AlertItem, ...]:
    """Every line if there are few; none (one summary line instead) past NOTE_LIMIT."""
    return tuple(items) if len(items) <= NOTE_LIMIT else ()


class ExpiringCollector:
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
            self._file, self.csv_path = temp_csv(csv_prefix)
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
