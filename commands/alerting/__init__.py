"""Proactive alerts: scan the fleet, apply the rules, deliver grouped digests.

What it offers (everything the bot, the CLI and the demo need; the modules behind it are its own):

- `AlertService` (service.py): the alerts of one database: `scan`, the answers for the command
  layer, snoozes, the daily digest;
- the model (model.py): `Condition`, `Level`, `Change`, `AlertItem`, `ConditionCount`,
  `AlertDigest`, `DailyDigest`, `ScanProblem`, `ScanReport`, `ExpiringSummary`, `DeviceReport`,
  `AlertsOverview`, `PendingDigest`, `FleetSummary`, `SnoozeInfo`, `SnoozeOutcome`, and
  `AlertSink`, the port a digest is delivered through;
- `NOTE_LIMIT` (digests.py): the per-alert lines a digest tells before it only counts them;
- `scan_timing_of` (answers.py): when the last scan completed and the next is due, from a
  database alone.

Inside: `rules` (the alert rules, run by `storage.fleet`), `scan` (reading the fleet, a failing
scan), `stages` (inhibit, silence, dedup, group, notify), `delivery` (the stages run over the
notification log of `storage.notifications`), `digests` (per-channel aggregates, routing, CSV
files), `answers` (the read side), `snoozes`, `rows` (table rows to values).
"""

from commands.alerting.answers import scan_timing_of
from commands.alerting.digests import NOTE_LIMIT, TOP_LIMIT
from commands.alerting.model import (
    AlertDigest,
    AlertItem,
    AlertSink,
    AlertsOverview,
    Change,
    Condition,
    ConditionCount,
    DailyDigest,
    DeviceReport,
    ExpiringDevice,
    ExpiringSummary,
    FleetSummary,
    Level,
    PendingDigest,
    ScanInfo,
    ScanProblem,
    ScanReport,
    SnoozeInfo,
    SnoozeOutcome,
    WeekBucket,
)
from commands.alerting.service import AlertService

__all__ = [
    "NOTE_LIMIT",
    "TOP_LIMIT",
    "AlertDigest",
    "AlertItem",
    "AlertService",
    "AlertSink",
    "AlertsOverview",
    "Change",
    "Condition",
    "ConditionCount",
    "DailyDigest",
    "DeviceReport",
    "ExpiringDevice",
    "ExpiringSummary",
    "FleetSummary",
    "Level",
    "PendingDigest",
    "ScanInfo",
    "ScanProblem",
    "ScanReport",
    "SnoozeInfo",
    "SnoozeOutcome",
    "WeekBucket",
    "scan_timing_of",
]
