"""Where the bot put each job's buttons, so a click is honoured only from there (issue 11).

A signed click proves Slack sent it, not that it was made on the message that carries the
button: Slack lets a click name any `message_ts`, and the same value (an approval id, a job id)
can be pasted into another message's button. So every message the bot posts with a job's
buttons is recorded here when it is posted, as (channel, ts) -> (job, kind), and every Home
tab it publishes as (user, view id). The Slack edge (`bot/listeners/binding.py`) decides which
kinds carry which buttons; this module only keeps the facts.

The tables are created and backfilled in migration 8 (storage/db.py), through the sqlite-utils
table API: messages posted before it (approval requests, reminders, job cards, all kept by the
notifier already) stay clickable after an upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

if TYPE_CHECKING:  # storage.db runs this module's migration: no import cycle at run time
    from storage.db import SafeDatabase

# What a recorded message is; which buttons each kind may carry is the Slack edge's business.
APPROVAL = "approval"  # the approval request in the job's thread: Approve, Reject
REMINDER = "reminder"  # a reminder or escalation sent by direct message: Approve, Reject
CARD = "card"  # the job's parent message: Cancel
RELEASE = "release"  # "Sigfox still holds the id": Keep waiting, Stop waiting
SUMMARY = "summary"  # the job's end: Show PAC, Copy callbacks

MESSAGES = "button_messages"
KEEP_HOMES = 10
HOMES = "home_views"

# The notifier's own records of what it posted before this table existed (bot/notifier.py).
_CARD_KEYS = "slack.job."
_DM_KEYS = "slack.approval-dms."


class ButtonMessages:
    """The messages (and Home tabs) the bot posted with a job's buttons."""

    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    def record(self, workflow_id: int, channel: str, ts: str, kind: str, now: float) -> None:
        """The message at (`channel`, `ts`) carries `workflow_id`'s buttons of `kind`."""
        with self.database.transaction() as db:
            db.table(MESSAGES).insert({"channel": channel, "ts": ts, "workflow_id": workflow_id,
                                       "kind": kind, "posted_at": now}, replace=True)

    def kind_of(self, workflow_id: int, channel: str, ts: str) -> str | None:
        """The kind of message the bot recorded at (`channel`, `ts`) for this job, or None
        when it posted no button of this job there."""
        with self.database.lock:
            rows = list(self.database.db.table(MESSAGES).rows_where(
                "channel = ? AND ts = ? AND workflow_id = ?", [channel, ts, workflow_id],
                limit=1))
        return str(rows[0]["kind"]) if rows else None

    def of_job(self, workflow_id: int) -> list[dict[str, Any]]:
        """Every message recorded for a job, oldest first (diagnostics and tests)."""
        with self.database.lock:
            return list(self.database.db.table(MESSAGES).rows_where(
                "workflow_id = ?", [workflow_id], order_by="posted_at, rowid"))

    def record_home(self, user_id: str, view_id: str, now: float) -> None:
        """The bot published `user_id`'s Home tab as view `view_id`. The last `KEEP_HOMES`
        views of each person are kept (a tab left open in a second client still counts)."""
        with self.database.transaction() as db:
            homes = db.table(HOMES)
            homes.insert({"user_id": user_id, "view_id": view_id, "published_at": now},
                         replace=True)
            older = [row["view_id"] for row in homes.rows_where(
                "user_id = ?", [user_id], order_by="published_at DESC", offset=KEEP_HOMES)]
            for old in older:
                homes.delete((user_id, old))

    def is_home_of(self, user_id: str, view_id: str) -> bool:
        with self.database.lock:
            return bool(list(self.database.db.table(HOMES).rows_where(
                "user_id = ? AND view_id = ?", [user_id, view_id], limit=1)))


def create_tables(db: Database) -> None:
    """Migration 8: the two tables, then what the notifier had already posted."""
    db.table(MESSAGES).create({"channel": str, "ts": str, "workflow_id": int, "kind": str,
                         "posted_at": float}, pk=("channel", "ts"), not_null={
                             "channel", "ts", "workflow_id", "kind", "posted_at"})
    db.table(MESSAGES).create_index(["workflow_id"])
    db.table(HOMES).create({"user_id": str, "view_id": str, "published_at": float},
                     pk=("user_id", "view_id"), not_null={"user_id", "view_id", "published_at"})
    db.table(MESSAGES).insert_all(_posted_before(db), replace=True)


def _posted_before(db: Database) -> Iterable[dict[str, Any]]:
    """Approval requests, reminders and job cards recorded by the notifier so far."""
    approvals = db.table("approvals").rows_where(select="id, workflow_id, message_ref, created_at")
    for approval in approvals:
        ref = _json(approval["message_ref"])
        if ref.get("channel") and ref.get("ts"):
            yield _row(ref, approval["workflow_id"], APPROVAL, approval["created_at"])
        for dm in _json(_kv(db, f"{_DM_KEYS}{approval['id']}")) or []:
            yield _row(dm, approval["workflow_id"], REMINDER, approval["created_at"])
    for entry in db.table("kv").rows_where("key LIKE ?", [f"{_CARD_KEYS}%"]):
        label = entry["key"][len(_CARD_KEYS):]  # J-0042
        ref = _json(entry["value"])
        number = label.partition("-")[2]
        if number.isdigit() and ref.get("channel") and ref.get("ts"):
            yield _row(ref, int(number), CARD, 0.0)


def _row(ref: dict[str, Any], workflow_id: int, kind: str, at: float) -> dict[str, Any]:
    return {"channel": str(ref["channel"]), "ts": str(ref["ts"]), "workflow_id": workflow_id,
            "kind": kind, "posted_at": at}


def _kv(db: Database, key: str) -> str:
    rows = list(db.table("kv").rows_where("key = ?", [key], limit=1))
    return str(rows[0]["value"]) if rows else ""


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}
