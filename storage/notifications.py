"""The alerts' notification log: every digest meant for a route (a channel), whether and when it
was delivered, how many attempts it took; and, per alert, what was last told of it.

Three tables (migration 9 in `storage/db.py`: `create_tables` below): `notifications` (one
row per digest: route, scan, state `pending`, `delivered` or `obsolete`, attempts, last error),
`notification_alerts` (what a pending digest tells, rewritten at each attempt) and
`notified_alerts` (per device and condition, the level and change last delivered: what the
pipeline's dedup compares with). A digest's telling is recorded only once the sink took it, in
the transaction marking it delivered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

if TYPE_CHECKING:  # storage.db runs this module's migration: no import cycle at run time
    from storage.db import SafeDatabase

PENDING = "pending"
DELIVERED = "delivered"
OBSOLETE = "obsolete"  # nothing left to tell by the time it was built again
SENDING = "sending"  # a daily digest one process took to send again (compare-and-set)

DIGEST = "digest"  # an alert digest: what a scan changed, for one route
DAILY = "daily"  # the daily "what ends soon" digest of one day, for one route
STAGE_ROWS = 500  # rows per INSERT statement when staging (SQLite allows 32,766 parameters)


@dataclass(frozen=True)
class Told:
    """One alert a digest tells: a change (`new`, `worse`, `repeat`, `resolved`) at a level."""

    device_id: str
    condition: str
    level: int
    change: str


@dataclass(frozen=True)
class Notification:
    id: int
    route: str
    scan_id: int
    state: str
    created_at: float
    attempts: int
    last_attempt_at: float
    delivered_at: float
    last_error: str
    told: int
    kind: str = DIGEST
    day: str = ""  # a daily digest's day (ISO date)


class NotificationLog:
    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    def open(self, route: str, scan_id: int, now: float) -> int:
        """The pending notification of `route`, about scan `scan_id`: the one already waiting
        (its attempts carry on, what it tells is written afresh) or a new one."""
        with self.database.transaction() as db:
            table = db.table("notifications")
            waiting = list(table.rows_where("route = ? AND state = ? AND kind = ?",
                                            [route, PENDING, DIGEST], order_by="id", limit=1))
            if waiting:
                notification_id = int(waiting[0]["id"])
                table.update(notification_id, {"scan_id": scan_id})
                db.table("notification_alerts").delete_where(
                    "notification_id = ?", [notification_id])
                return notification_id
            table.insert({"route": route, "scan_id": scan_id, "state": PENDING,
                          "created_at": now})
            return int(table.last_rowid or 0)

    def stage(self, notification_id: int, told: Iterable[Told]) -> None:
        """Add to what a pending notification tells (in batches, as the digest is grouped).
        An upsert: a second process building the same route's digest at once (a one-off scan
        given the bot's database) rewrites the rows instead of failing."""
        with self.database.transaction() as db:
            db.table("notification_alerts").upsert_all(
                ({"notification_id": notification_id, "device_id": t.device_id,
                  "condition": t.condition, "level": t.level, "change": t.change} for t in told),
                pk=("notification_id", "device_id", "condition"), batch_size=STAGE_ROWS)

    def delivered(self, notification_id: int, now: float) -> bool:
        """The sink took it: its alerts are told (for dedup) and it is closed, at once.
        False when it was not pending any more (delivered by someone else meanwhile)."""
        with self.database.transaction() as db:
            changed = db.execute(
                "UPDATE notifications SET state = ?, delivered_at = ?, last_attempt_at = ?, "
                "attempts = attempts + 1, last_error = '', told = (SELECT COUNT(*) FROM "
                "notification_alerts WHERE notification_id = notifications.id) "
                "WHERE id = ? AND state IN (?, ?)",
                [DELIVERED, now, now, notification_id, PENDING, SENDING]).rowcount
            if changed != 1:
                return False
            db.execute(_RECORD_TOLD, [now, notification_id])
            db.table("notification_alerts").delete_where("notification_id = ?",
                                                         [notification_id])
            return True

    def failed(self, notification_id: int, now: float, error: str) -> None:
        """An attempt that did not deliver: counted, the error kept; it stays pending."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE notifications SET state = ?, attempts = attempts + 1, "
                "last_attempt_at = ?, last_error = ? WHERE id = ? AND state IN (?, ?)",
                [PENDING, now, error[:500], notification_id, PENDING, SENDING])

    def obsolete(self, notification_id: int, now: float) -> None:
        """A pending notification with nothing left to tell (what it was to say resolved before
        anyone heard of it): closed, never sent."""
        with self.database.transaction() as db:
            db.execute("UPDATE notifications SET state = ?, last_attempt_at = ? "
                       "WHERE id = ? AND state IN (?, ?)",
                       [OBSOLETE, now, notification_id, PENDING, SENDING])
            db.table("notification_alerts").delete_where("notification_id = ?",
                                                         [notification_id])

    def pending(self) -> list[Notification]:
        """The alert digests waiting for their route."""
        return [Notification(**row) for row in self._rows(
            "notifications", "state = ? AND kind = ?", [PENDING, DIGEST], order_by="id")]

    # -- the daily digest ----------------------------------------------------------------------

    def daily_attempted(self, route: str, day: str, now: float, error: str | None) -> int:
        """The first attempt at `day`'s daily digest for `route`: delivered, or (`error`)
        pending, to be taken again (`take`)."""
        with self.database.transaction() as db:
            table = db.table("notifications")
            table.insert({"kind": DAILY, "day": day, "route": route, "scan_id": 0,
                          "state": PENDING if error else DELIVERED, "created_at": now,
                          "attempts": 1, "last_attempt_at": now,
                          "delivered_at": 0.0 if error else now, "last_error": error or ""})
            return int(table.last_rowid or 0)

    def daily_pending(self, day: str) -> list[Notification]:
        """`day`'s daily digests still waiting for their route."""
        return [Notification(**row) for row in self._rows(
            "notifications", "kind = ? AND day = ? AND state = ?", [DAILY, day, PENDING],
            order_by="id")]

    def take(self, notification_id: int, now: float) -> bool:
        """Compare-and-set: take a pending daily digest to send it again; True for exactly one
        caller, across threads and processes (`delivered` or `failed` settles it)."""
        with self.database.transaction() as db:
            return db.execute(
                "UPDATE notifications SET state = ?, last_attempt_at = ? WHERE id = ? "
                "AND state = ?", [SENDING, now, notification_id, PENDING]).rowcount == 1

    def close_daily_before(self, day: str, now: float) -> None:
        """Daily digests of earlier days still pending are never sent: a stale digest is not
        news."""
        with self.database.transaction() as db:
            db.execute("UPDATE notifications SET state = ?, last_attempt_at = ? WHERE kind = ? "
                       "AND day < ? AND state IN (?, ?)",
                       [OBSOLETE, now, DAILY, day, PENDING, SENDING])

    def recent(self, limit: int = 20) -> list[Notification]:
        return [Notification(**row) for row in self._rows(
            "notifications", None, [], order_by="id desc", limit=limit)]

    def told(self, device_id: str, condition: str) -> dict[str, Any] | None:
        """What was last delivered of one alert (None: never told)."""
        rows = self._rows("notified_alerts", "device_id = ? AND condition = ?",
                          [device_id, condition])
        return rows[0] if rows else None

    def _rows(self, table: str, where: str | None, params: list[Any], **options: Any
              ) -> list[dict[str, Any]]:
        with self.database.lock:  # one connection shared by threads: read under its lock
            return list(self.database.db.table(table).rows_where(where, params, **options))


# Each alert a delivered notification told becomes the last word on that alert.
# Raw SQL: an INSERT ... SELECT in the transaction that marks the notification delivered.
_RECORD_TOLD = """
INSERT INTO notified_alerts (device_id, condition, level, change, route, scan_id,
                             notification_id, notified_at)
SELECT s.device_id, s.condition, s.level, s.change, n.route, n.scan_id, n.id, ?
  FROM notification_alerts s JOIN notifications n ON n.id = s.notification_id
 WHERE s.notification_id = ?
ON CONFLICT(device_id, condition) DO UPDATE SET
    level = excluded.level, change = excluded.change, route = excluded.route,
    scan_id = excluded.scan_id, notification_id = excluded.notification_id,
    notified_at = excluded.notified_at
"""


# --------------------------------------------------------------------------- migration 9


def create_tables(db: Database) -> None:
    """Migration 9 (storage/db.py): the notification log, replacing the
    `alerts.undelivered` kv row and the announcement columns of `alerts`, carried forward."""
    db.table("notifications").create({
        "id": int, "route": str, "scan_id": int, "state": str, "created_at": float,
        "attempts": int, "last_attempt_at": float, "delivered_at": float, "last_error": str,
        "told": int,
    }, pk="id", not_null={"route", "scan_id", "state", "created_at", "attempts",
                          "last_attempt_at", "delivered_at", "last_error", "told"},
        defaults={"route": "", "attempts": 0, "last_attempt_at": 0.0, "delivered_at": 0.0,
                  "last_error": "", "told": 0})
    db.table("notifications").create_index(["state", "route"])
    # What each alert was last told as, by a delivered notification: what dedup compares with.
    db.table("notified_alerts").create({
        "device_id": str, "condition": str, "level": int, "change": str, "route": str,
        "scan_id": int, "notification_id": int, "notified_at": float,
    }, pk=("device_id", "condition"), not_null={"level", "change", "route", "scan_id",
                                                "notification_id", "notified_at"},
        defaults={"route": "", "scan_id": 0, "notification_id": 0, "notified_at": 0.0})
    db.table("notified_alerts").create_index(["scan_id"])
    # What a notification not yet delivered will tell (rewritten at each attempt).
    db.table("notification_alerts").create({
        "notification_id": int, "device_id": str, "condition": str, "level": int, "change": str,
    }, pk=("notification_id", "device_id", "condition"))
    _carry_announcements_forward(db)


UNDELIVERED_KV = "alerts.undelivered"  # before migration 9: {channel: [scan ids]} as JSON


def _carry_announcements_forward(db: Database) -> None:
    """What earlier versions announced becomes the log: delivered announcements are entries,
    the digests Slack refused become pending notifications, so an upgrade tells nothing twice
    and loses nothing (an undelivered `worse` or `repeat` is told again as such)."""
    row = db.execute("SELECT value FROM kv WHERE key = ?", [UNDELIVERED_KV]).fetchone()
    undelivered: dict[str, list[int]] = json.loads(row[0]) if row else {}
    untold = {scan for scans in undelivered.values() for scan in scans}
    db.table("notified_alerts").insert_all(
        entry for alert in db.table("alerts").rows_where("announced_level > 0")
        if (entry := _told_entry(alert, untold)) is not None)
    scans = db.table("scans").rows_where(select="id, finished_at")
    finished = {r["id"]: r["finished_at"] for r in scans}
    db.table("notifications").insert_all(
        {"route": channel, "scan_id": max(scans), "state": "pending", "attempts": 1,
         "created_at": finished.get(max(scans), 0.0),
         "last_error": "carried over from an earlier version"}
        for channel, scans in undelivered.items() if scans)
    db.table("kv").delete_where("key = ?", [UNDELIVERED_KV])


def _told_entry(alert: dict[str, Any], untold: set[int]) -> dict[str, Any] | None:
    change, scan = alert["change"], alert["change_scan"]
    lost = bool(change) and (scan in untold or (change == "resolved" and scan == 0))
    if alert["state"] != "open" and not (lost and change == "resolved"):
        return None  # its resolution was told (or never needed telling): nothing to compare
    if lost and change == "new":
        return None  # never reached anyone: told as new
    entry = {"device_id": alert["device_id"], "condition": alert["condition"],
             "level": alert["announced_level"], "change": "new", "scan_id": scan,
             "notified_at": alert["last_announced"]}
    if lost and change == "worse":
        entry["level"] = alert["announced_level"] - 1  # below the level it reached: worse
    if lost and change == "repeat":
        entry["notified_at"] = 0.0  # due again
    return entry


# --------------------------------------------------------------------------- migration 10


DAILY_KV = "alerts.daily_digest"  # the daily digest's day claim; before migration 10 it also
# held the channels Slack refused the day's digest to, as JSON ("undelivered")


def add_daily_digests(db: Database) -> None:
    """Migration 10 (storage/db.py): the daily digest's deliveries join the log (`kind`,
    `day`); the channels a kv record still lists as refused today become pending rows."""
    table = db.table("notifications")
    table.add_column("kind", str, not_null_default=DIGEST)
    table.add_column("day", str, not_null_default="")
    table.create_index(["kind", "day", "state"])
    row = db.execute("SELECT value FROM kv WHERE key = ?", [DAILY_KV]).fetchone()
    record: dict[str, Any] = json.loads(row[0]) if row else {}
    refused = record.pop("undelivered", None) or []
    table.insert_all(
        {"kind": DAILY, "day": record.get("day", ""), "route": channel, "scan_id": 0,
         "state": PENDING, "created_at": record.get("sent_at", 0.0), "attempts": 1,
         "last_attempt_at": record.get("sent_at", 0.0),
         "last_error": "carried over from an earlier version"}
        for channel in refused)
    if row:
        db.table("kv").update(DAILY_KV, {"value": json.dumps(record, sort_keys=True)})
