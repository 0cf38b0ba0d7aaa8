"""The fleet as last scanned, the alerts raised on it, snoozes and scan records: all their SQL.

The alert rules themselves (which states raise which alert, at which level) are defined in
`commands/alerting/rules.py`; this module runs them, as the `StateRule`s and `EndingRule` it is
handed, bound as query parameters.

Built for 150,000 devices: a scan writes in batches (one transaction per 1,000 rows), the alert
rules run as set operations inside SQLite rather than row by row in Python, and readers page
through results by key so memory stays flat whatever the fleet size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from storage.db import SafeDatabase, get_value, set_value

BATCH_SIZE = 1000
CHUNK_SIZE = 1000


@dataclass(frozen=True)
class FleetRow:
    """What a scan keeps of one device. Never a PAC."""

    device_id: str
    name: str
    device_type_id: str
    device_type_name: str
    group_id: str
    group_name: str
    device_state: int | None
    token_state: int | None
    token_end: float | None
    last_com: float | None
    # Device, device type and contract allow automatic renewal and Sigfox does not say it
    # failed: its token ending is not a warning (docs/sigfox-semantics.md).
    renews_automatically: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Absolute instants (epoch seconds) the rules compare token ends with, and before which an
    alert told is due to be told again (`repeat_before`, read by the delivery's dedup)."""

    now: float
    warn_until: float
    critical_until: float
    repeat_before: float


@dataclass(frozen=True)
class StateRule:
    """An alert raised, at a fixed level, on a device whose token state or device state is one
    of these codes."""

    condition: str
    level: int
    token_states: tuple[int, ...] = ()
    device_states: tuple[int, ...] = ()


@dataclass(frozen=True)
class EndingRule:
    """An alert raised on a token in `token_state` ending by `warn_until` (`warning`), or by
    `critical_until` (`critical`); never on a device that renews automatically."""

    condition: str
    token_state: int
    warning: int
    critical: int


@dataclass(frozen=True)
class RuleSet:
    ending: EndingRule
    states: tuple[StateRule, ...]


# The rules: what a scan's devices raise, each rule's codes and levels bound as parameters.
# Raw SQL here and below: INSERT ... SELECT set operations over a whole scan, inside SQLite.
_ENDING_RULE = """
INSERT INTO temp.alert_now (device_id, condition, level)
SELECT device_id, :condition, CASE WHEN token_end <= :critical_until THEN :critical
                                   ELSE :warning END
  FROM fleet_devices
 WHERE scan_id = :scan AND token_state = :token_state AND token_end IS NOT NULL
   AND token_end <= :warn_until AND renews_automatically = 0
"""


def _state_rule(rule: StateRule, scan_id: int) -> tuple[str, list[Any]]:
    tokens = ", ".join("?" * len(rule.token_states)) or "NULL"
    devices = ", ".join("?" * len(rule.device_states)) or "NULL"
    sql = ("INSERT OR IGNORE INTO temp.alert_now (device_id, condition, level) "
           "SELECT device_id, ?, ? FROM fleet_devices WHERE scan_id = ? "
           f"AND (token_state IN ({tokens}) OR device_state IN ({devices}))")
    return sql, [rule.condition, rule.level, scan_id, *rule.token_states, *rule.device_states]


_DETAILS = """json_object('name', f.name, 'device_type', f.device_type_name,
    'device_type_id', f.device_type_id, 'group', f.group_name, 'group_id', f.group_id,
    'token_state', f.token_state, 'token_end', f.token_end, 'device_state', f.device_state)"""

# A reopened alert starts afresh: what was told of its earlier life is forgotten.
_FORGET_REOPENED = """
DELETE FROM notified_alerts WHERE EXISTS (
    SELECT 1 FROM temp.alert_now n JOIN alerts a
        ON a.device_id = n.device_id AND a.condition = n.condition
     WHERE a.state != 'open' AND n.device_id = notified_alerts.device_id
       AND n.condition = notified_alerts.condition)
"""

# Open (or reopen) the alerts whose condition holds.
_OPEN_ALERTS = f"""
INSERT INTO alerts (device_id, condition, level, state, first_seen, details)
SELECT n.device_id, n.condition, n.level, 'open', :now, {_DETAILS}
  FROM temp.alert_now n JOIN fleet_devices f ON f.device_id = n.device_id
 WHERE true
ON CONFLICT(device_id, condition) DO UPDATE SET
    level = excluded.level,
    details = excluded.details,
    first_seen = CASE WHEN alerts.state = 'open' THEN alerts.first_seen
                      ELSE excluded.first_seen END,
    state = 'open', resolved_at = 0, resolution = ''
"""

# An alert back to a lower level than it was told at: a new rise is news again (worse).
_LOWER_TOLD_LEVELS = """
UPDATE notified_alerts SET level = (
    SELECT n.level FROM temp.alert_now n
     WHERE n.device_id = notified_alerts.device_id AND n.condition = notified_alerts.condition)
 WHERE EXISTS (SELECT 1 FROM temp.alert_now n
                WHERE n.device_id = notified_alerts.device_id
                  AND n.condition = notified_alerts.condition AND n.level < notified_alerts.level)
"""

# Resolve open alerts whose condition no longer holds: `gone` (not in the fleet any more),
# `superseded` (the device moved to another condition) or `cleared`.
_RESOLVE_ALERTS = """
UPDATE alerts SET
    state = 'resolved', resolved_at = :now,
    resolution = CASE
        WHEN NOT EXISTS (SELECT 1 FROM fleet_devices f
                          WHERE f.device_id = alerts.device_id AND f.scan_id = :scan)
            THEN 'gone'
        WHEN EXISTS (SELECT 1 FROM temp.alert_now n WHERE n.device_id = alerts.device_id)
            THEN 'superseded'
        ELSE 'cleared' END
 WHERE state = 'open'
   AND NOT EXISTS (SELECT 1 FROM temp.alert_now n
                    WHERE n.device_id = alerts.device_id AND n.condition = alerts.condition)
"""

# A device that moved to another condition (a token that ran out turns Invalid) is told
# through its new alert: the old one's resolution needs no telling of its own.
_CLOSE_SUPERSEDED = """
UPDATE notified_alerts SET change = 'resolved'
 WHERE change != 'resolved' AND EXISTS (
    SELECT 1 FROM alerts a WHERE a.device_id = notified_alerts.device_id
       AND a.condition = notified_alerts.condition AND a.state = 'resolved'
       AND a.resolution = 'superseded' AND a.resolved_at = :now)
"""

# A snooze "until resolved" ends with the last open alert it covered.
_END_SNOOZES = """
UPDATE snoozes SET ended_at = :now
 WHERE ended_at = 0 AND until IS NULL
   AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.device_id = snoozes.device_id
                      AND a.state = 'open'
                      AND (snoozes.condition = '' OR a.condition = snoozes.condition))
"""


class FleetStore:
    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    # -- scans -------------------------------------------------------------------------------

    def start_scan(self, now: float, started_by: str) -> int:
        with self.database.transaction() as db:
            scans = db.table("scans").insert({"started_at": now, "started_by": started_by})
            return int(scans.last_rowid or 0)

    def finish_scan(
        self, scan_id: int, *, now: float, ok: bool, devices: int, duration: float, error: str = ""
    ) -> None:
        with self.database.transaction() as db:
            db.execute(
                "UPDATE scans SET finished_at = ?, ok = ?, devices = ?, duration = ?, error = ? "
                "WHERE id = ?",
                [now, int(ok), devices, duration, error, scan_id],
            )

    def last_scan(self, *, ok_only: bool = False) -> dict[str, Any] | None:
        where = "WHERE ok = 1" if ok_only else "WHERE finished_at > 0"
        rows = self.database.query(f"SELECT * FROM scans {where} ORDER BY id DESC LIMIT 1")
        return rows[0] if rows else None

    def failures_since_success(self) -> int:
        """Completed scans that failed since the last one that succeeded (back-off count)."""
        rows = self.database.query(
            "SELECT COUNT(*) AS n FROM scans WHERE finished_at > 0 AND ok = 0 "
            "AND id > (SELECT COALESCE(MAX(id), 0) FROM scans WHERE ok = 1)"
        )
        return int(rows[0]["n"])

    def recent_scans(self, limit: int = 10) -> list[dict[str, Any]]:
        return self.database.query("SELECT * FROM scans ORDER BY id DESC LIMIT ?", (limit,))

    # -- the fleet ---------------------------------------------------------------------------

    def write_devices(
        self,
        rows: Iterable[FleetRow],
        *,
        scan_id: int,
        now: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Upsert devices, BATCH_SIZE per transaction; returns how many were written."""
        batch: list[dict[str, Any]] = []
        written = 0
        for row in rows:
            batch.append({**asdict(row), "scan_id": scan_id, "seen_at": now})
            if len(batch) >= BATCH_SIZE:
                written += self._flush(batch, on_batch, written)
                batch = []
        if batch:
            written += self._flush(batch, on_batch, written)
        return written

    def _flush(
        self,
        batch: list[dict[str, Any]],
        on_batch: Callable[[int], None] | None,
        before: int,
    ) -> int:
        with self.database.transaction() as db:
            db.table("fleet_devices").upsert_all(batch, pk="device_id")
        if on_batch is not None:
            on_batch(before + len(batch))
        return len(batch)

    def forget_unseen(self, scan_id: int) -> int:
        """Drop devices a complete scan did not see (deleted from the backend)."""
        with self.database.transaction() as db:
            cursor = db.execute("DELETE FROM fleet_devices WHERE scan_id != ?", [scan_id])
            return cursor.rowcount

    def device(self, device_id: str) -> dict[str, Any] | None:
        rows = self.database.query(
            "SELECT * FROM fleet_devices WHERE device_id = ?", (device_id,)
        )
        return rows[0] if rows else None

    def count_devices(self) -> int:
        return int(self.database.query("SELECT COUNT(*) AS n FROM fleet_devices")[0]["n"])

    def count_by_token_state(self) -> dict[int | None, int]:
        rows = self.database.query(
            "SELECT token_state, COUNT(*) AS n FROM fleet_devices GROUP BY token_state"
        )
        return {row["token_state"]: row["n"] for row in rows}

    def count_ending(self, now: float, until: float, token_state: int) -> int:
        """Devices whose token, in `token_state` (the valid one), ends between now and until."""
        rows = self.database.query(
            "SELECT COUNT(*) AS n FROM fleet_devices WHERE token_state = ? "
            "AND token_end IS NOT NULL AND token_end <= ? AND token_end >= ?",
            (token_state, until, now),
        )
        return int(rows[0]["n"])

    def iter_ending(self, until: float, token_state: int) -> Iterator[dict[str, Any]]:
        """Devices whose token, in `token_state` (the valid one), ends by `until` (ended ones
        too), soonest first."""
        sql = (
            "SELECT * FROM fleet_devices WHERE token_state = ? AND token_end IS NOT NULL "
            "AND token_end <= ? AND (token_end, device_id) > (?, ?) "
            "ORDER BY token_end, device_id LIMIT ?"
        )
        last: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = self.database.query(sql, (token_state, until, *last, CHUNK_SIZE))
            yield from rows
            if len(rows) < CHUNK_SIZE:
                return
            last = (rows[-1]["token_end"], rows[-1]["device_id"])

    # -- alerts ------------------------------------------------------------------------------

    def evaluate(self, scan_id: int, limits: Thresholds, rules: RuleSet) -> None:
        """Apply `rules` to what scan `scan_id` saw: open and resolve alerts, in one go."""
        params = {"scan": scan_id, "now": limits.now}
        with self.database.transaction() as db:
            conn = db.conn
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS alert_now (device_id TEXT NOT NULL, "
                "condition TEXT NOT NULL, level INTEGER NOT NULL, "
                "PRIMARY KEY (device_id, condition)) WITHOUT ROWID"
            )
            conn.execute("DELETE FROM temp.alert_now")
            ending = rules.ending
            conn.execute(_ENDING_RULE, {
                "scan": scan_id, "condition": ending.condition, "token_state": ending.token_state,
                "warning": ending.warning, "critical": ending.critical,
                "warn_until": limits.warn_until, "critical_until": limits.critical_until})
            for rule in rules.states:
                conn.execute(*_state_rule(rule, scan_id))
            for statement in (_RESOLVE_ALERTS, _FORGET_REOPENED, _OPEN_ALERTS,
                              _LOWER_TOLD_LEVELS, _CLOSE_SUPERSEDED, _END_SNOOZES):
                conn.execute(statement, _only(statement, params))
            conn.execute("DELETE FROM temp.alert_now")

    def resolve_device(self, device_id: str, now: float, resolution: str) -> int:
        """Resolve a device's open alerts outside a scan; the next digest reports them."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolution = ? "
                "WHERE device_id = ? AND state = 'open'",
                [now, resolution, device_id],
            )
            db.execute(_END_SNOOZES.replace(":now", "?"), [now])
            return cursor.rowcount

    def iter_digest_rows(self, scan_id: int) -> Iterator[dict[str, Any]]:
        """Every open alert, and every resolved one whose resolution is still to tell or was
        told for scan `scan_id`, with what was last told of it (`told_level`, `told_change`,
        `told_at`, `told_scan`: NULL when never); by device, paged by key."""
        sql = (
            "SELECT a.*, n.level AS told_level, n.change AS told_change, "
            "n.notified_at AS told_at, n.scan_id AS told_scan "
            "FROM alerts a LEFT JOIN notified_alerts n "
            "ON n.device_id = a.device_id AND n.condition = a.condition "
            "WHERE (a.state = 'open' OR (n.change IS NOT NULL "
            "AND (n.change != 'resolved' OR n.scan_id = ?))) "
            "AND (a.device_id, a.condition) > (?, ?) "
            "ORDER BY a.device_id, a.condition LIMIT ?"
        )
        last = ("", "")
        while True:
            rows = self.database.query(sql, (scan_id, *last, CHUNK_SIZE))
            for row in rows:
                yield _decoded(row)
            if len(rows) < CHUNK_SIZE:
                return
            last = (rows[-1]["device_id"], rows[-1]["condition"])

    def alerts_of(self, device_id: str) -> list[dict[str, Any]]:
        rows = self.database.query(
            "SELECT * FROM alerts WHERE device_id = ? ORDER BY condition", (device_id,)
        )
        return [_decoded(r) for r in rows]

    def count_open_alerts(self) -> dict[tuple[str, int], int]:
        rows = self.database.query(
            "SELECT condition, level, COUNT(*) AS n FROM alerts WHERE state = 'open' "
            "GROUP BY condition, level"
        )
        return {(row["condition"], row["level"]): row["n"] for row in rows}

    def most_urgent(self, limit: int) -> list[dict[str, Any]]:
        rows = self.database.query(
            "SELECT * FROM alerts WHERE state = 'open' "
            "ORDER BY level DESC, json_extract(details, '$.token_end') IS NULL, "
            "json_extract(details, '$.token_end'), device_id LIMIT ?",
            (limit,),
        )
        return [_decoded(r) for r in rows]

    # -- snoozes -----------------------------------------------------------------------------

    def add_snooze(
        self,
        device_id: str,
        condition: str,
        until: float | None,
        snoozed_by: str,
        reason: str,
        now: float,
    ) -> int:
        with self.database.transaction() as db:
            snoozes = db.table("snoozes").insert({
                "device_id": device_id, "condition": condition, "until": until,
                "snoozed_by": snoozed_by, "reason": reason, "created_at": now,
            })
            return int(snoozes.last_rowid or 0)

    def active_snoozes(self, now: float, limit: int = 100) -> list[dict[str, Any]]:
        return self.database.query(
            "SELECT * FROM snoozes WHERE ended_at = 0 AND (until IS NULL OR until > ?) "
            "ORDER BY created_at DESC LIMIT ?",
            (now, limit),
        )

    def snoozes_of(self, device_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """Every snooze of one device, ended or not, newest first (for its history)."""
        return self.database.query(
            "SELECT * FROM snoozes WHERE device_id = ? ORDER BY created_at DESC LIMIT ?",
            (device_id, limit),
        )

    def count_active_snoozes(self, now: float) -> int:
        rows = self.database.query(
            "SELECT COUNT(*) AS n FROM snoozes WHERE ended_at = 0 "
            "AND (until IS NULL OR until > ?)",
            (now,),
        )
        return int(rows[0]["n"])

    # -- key/value ---------------------------------------------------------------------------

    def get_kv(self, key: str) -> Any:
        return get_value(self.database, key)

    def set_kv(self, key: str, value: Any) -> None:
        set_value(self.database, key, value)

    def claim_day(self, key: str, day: str, record: dict[str, Any]) -> bool:
        """Compare-and-set: record `day` (ISO date) under `key` only if it is later than the day
        recorded there. True for exactly one caller per day, across threads and processes."""
        value = json.dumps({**record, "day": day}, sort_keys=True)
        with self.database.transaction() as db:
            # Raw SQL: an upsert whose update is conditional (the compare-and-set on the day).
            cursor = db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value "
                "WHERE COALESCE(json_extract(kv.value, '$.day'), '') < ?",
                [key, value, day],
            )
            return cursor.rowcount == 1

    def replace_kv(self, key: str, expected: Any, value: Any) -> bool:
        """Compare-and-set: store `value` only if `expected` is what is stored now."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE kv SET value = ? WHERE key = ? AND value = ?",
                [json.dumps(value, sort_keys=True), key, json.dumps(expected, sort_keys=True)],
            )
            return cursor.rowcount == 1

    def delete_kv(self, key: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM kv WHERE key = ?", [key])


def _only(statement: str, params: dict[str, Any]) -> dict[str, Any]:
    """sqlite3 refuses named parameters a statement does not use; pass only those it does."""
    return {k: v for k, v in params.items() if f":{k}" in statement}


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["details"] = json.loads(out.get("details") or "{}")
    return out
