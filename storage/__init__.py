"""The bot's database: SQLite through sqlite-utils, and all of the bot's SQL.

- `open_database`, `SafeDatabase`, `DEFAULT_DB_PATH` (db.py): the file, its migrations, one
  connection shared under a lock; `backup_database`, an owner-only online copy;
- `Store` (store.py): workflows, their devices, approvals, events and the audit log, each state
  change a compare-and-set; with `Store.intents` (intents.py, the write-ahead of destructive
  calls) and `Store.snapshots` (snapshots.py, each device before anything destructive, PAC
  included);
- `EdgeRecords` (edge.py): what the edges keep for themselves (where they posted, delivery
  keys); they read the core through its read models, never through `Store`;
- `FleetStore` (fleet.py): the last fleet scan, alert state and snoozes, and the alert rules'
  queries (`RuleSet`, `StateRule`, `EndingRule`: the rules themselves are the core's);
- `NotificationLog` (notifications.py): the alert digests meant for each channel, delivered or
  pending, and what each alert was last told as;
- the typed rows (records.py): `WorkflowRecord`, `StepRecord`, `ApprovalRecord`, `Snapshot`,
  `EventRecord`, `AuditEntry`, and `job_label` (how people see a workflow id, `J-0042`).
"""

from storage.db import DEFAULT_DB_PATH, SafeDatabase, backup_database, open_database
from storage.edge import EdgeRecords
from storage.fleet import EndingRule, FleetStore, RuleSet, StateRule
from storage.notifications import NotificationLog
from storage.records import (
    ApprovalRecord,
    AuditEntry,
    EventRecord,
    Snapshot,
    StepRecord,
    WorkflowRecord,
    job_label,
)
from storage.store import Store

__all__ = [
    "DEFAULT_DB_PATH",
    "ApprovalRecord",
    "AuditEntry",
    "EdgeRecords",
    "EndingRule",
    "EventRecord",
    "FleetStore",
    "NotificationLog",
    "RuleSet",
    "SafeDatabase",
    "Snapshot",
    "StateRule",
    "StepRecord",
    "Store",
    "WorkflowRecord",
    "backup_database",
    "job_label",
    "open_database",
]
