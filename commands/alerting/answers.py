"""What people ask of the alerts, answered from the last scan (no Sigfox call): what ends
soon, open alerts and snoozes, a device's report, the fleet's summary, the daily digests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from commands import human
from commands.alerting.digests import ExpiringCollector, Router
from commands.alerting.model import (
    AlertsOverview,
    ConditionCount,
    DailyDigest,
    DeviceReport,
    ExpiringSummary,
    FleetSummary,
    ScanInfo,
    ScanProblem,
    SnoozeInfo,
    condition_counts,
)
from commands.alerting.rows import alert_item, expiring_device, scan_info, snooze_info
from commands.alerting.rules import DAY, EXPIRING, token_state_name
from commands.config import AlertsConfig
from commands.ports import Clock
from commands.schedules import ScanTiming, scan_timing
from sigfox.models import normalize_device_id
from storage.db import SafeDatabase
from storage.fleet import FleetStore


def scan_timing_of(database: SafeDatabase, settings: AlertsConfig, now: float) -> ScanTiming:
    """When the last scan completed and the next is due, from a database alone (what
    `sigfox-bot check` says of a bot that may not be running)."""
    return scan_timing(FleetStore(database), settings.scan_interval, now)


class AlertAnswers:
    """The read side of the alerts, over the fleet tables."""

    def __init__(self, fleet: FleetStore, settings: Callable[[], AlertsConfig], clock: Clock,
                 scan_problem: Callable[[], ScanProblem | None]) -> None:
        self.fleet = fleet
        self._settings = settings
        self.clock = clock
        self._scan_problem = scan_problem

    @property
    def settings(self) -> AlertsConfig:
        return self._settings()

    def expiring(self, days: int | None = None, *, limit: int = 20) -> ExpiringSummary:
        """Tokens ending within `days` (default warn_days), from the last scan only."""
        days = self.settings.warn_days if days is None else days
        if days < 0:
            raise ValueError("days must be zero or more")
        now = self.clock.now()
        collector = ExpiringCollector(self.settings.tz, limit=limit)
        for row in self.fleet.iter_ending(now + days * DAY, EXPIRING.token_state):
            collector.add(expiring_device(row))
        return collector.summary(days, self.as_of(), now, self.settings.timezone)

    def expiring_csv(self, days: int | None = None) -> tuple[Path, str, int]:
        """Every token ending within `days` as a CSV file: (path, file name, rows). The caller
        removes the file once it has sent it."""
        days = self.settings.warn_days if days is None else days
        now = self.clock.now()
        collector = ExpiringCollector(self.settings.tz, limit=0, csv_prefix="ending")
        for row in self.fleet.iter_ending(now + days * DAY, EXPIRING.token_state):
            collector.add(expiring_device(row))
        collector.summary(days, self.as_of(), now, self.settings.timezone)  # closes the file
        assert collector.csv_path is not None
        name = f"sigfox-tokens-ending-{days}d-{human.file_stamp(now, self.settings.tz)}.csv"
        return collector.csv_path, name, collector.total

    def daily_digests(self, late_note: str = "") -> list[DailyDigest]:
        """The daily "what ends soon" message, one per channel with something ending."""
        now = self.clock.now()
        days = self.settings.warn_days
        router = Router(self.settings)
        per_channel: dict[str | None, ExpiringCollector] = {}
        for row in self.fleet.iter_ending(now + days * DAY, EXPIRING.token_state):
            channel = router.channel(row)
            if channel not in per_channel:
                per_channel[channel] = ExpiringCollector(self.settings.tz, limit=10,
                                                         csv_prefix="ending")
            per_channel[channel].add(expiring_device(row))
        as_of = self.as_of()
        counts = self.open_counts()
        return [
            DailyDigest(channel, c.summary(days, as_of, now, self.settings.timezone), counts,
                        c.csv_path, c.csv_name, late_note)
            for channel, c in per_channel.items()
        ]

    def overview(self, *, limit: int = 10) -> AlertsOverview:
        now = self.clock.now()
        counts = self.open_counts()
        return AlertsOverview(
            counts=counts,
            total_open=sum(c.count for c in counts),
            top=tuple(alert_item(r) for r in self.fleet.most_urgent(limit)),
            snoozes=tuple(snooze_info(r) for r in self.fleet.active_snoozes(now, limit)),
            snoozes_total=self.fleet.count_active_snoozes(now),
            last_scan=self.last_scan(),
            scan_problem=self._scan_problem(),
            timezone=self.settings.timezone,
            timing=self.scan_timing(),
        )

    def fleet_summary(self, scan_failing: bool) -> FleetSummary:
        now = self.clock.now()
        states = {token_state_name(k): v for k, v in self.fleet.count_by_token_state().items()}
        return FleetSummary(
            devices=self.fleet.count_devices(),
            by_token_state=states,
            ending_7_days=self.fleet.count_ending(now, now + 7 * DAY, EXPIRING.token_state),
            ending_30_days=self.fleet.count_ending(now, now + 30 * DAY, EXPIRING.token_state),
            open_alerts=sum(self.fleet.count_open_alerts().values()),
            last_scan=self.last_scan(),
            scan_failing=scan_failing,
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
            token_state_name(row["token_state"]), row["token_end"], alerts, snoozes,
            row["seen_at"],
        )

    def last_scan(self) -> ScanInfo | None:
        row = self.fleet.last_scan()
        return scan_info(row) if row else None

    def scan_timing(self) -> ScanTiming:
        """When the last scan completed and the next is due, from the database alone."""
        return scan_timing(self.fleet, self.settings.scan_interval, self.clock.now())

    def as_of(self) -> float | None:
        """When the last scan that completed finished; None before the first."""
        row = self.fleet.last_scan(ok_only=True)
        return row["finished_at"] if row else None

    def open_counts(self) -> tuple[ConditionCount, ...]:
        return condition_counts(self.fleet.count_open_alerts())
