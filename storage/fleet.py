"""The fleet as last scanned, the alerts raised on it, snoozes and scan records: all their SQL.

Built for 150,000 devices: a scan writes in batches (one transaction per 1,000 rows), the alert
rules run as set operations inside SQLite rather than row by row in Python, and readers page
through results by key so memory stays flat whatever the fleet size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import astuple, dataclass
from typing import Any

from storage.db import SafeDatabase, get_value, set_value

BATCH_SIZE = 1000
CHUNK_SIZE = 1000

WARNING = 1
CRITICAL = 2

# Conditions, as stored in alerts.condition.
EXPIRING = "expiring"
INVALID = "invalid"
OFF_CONTRACT = "off_contract"

TOKEN_OK = 0
TOKEN_OFF_CONTRACT = 1
TOKEN_INVALID = 3
DEVICE_OFF_CONTRACT = 2


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
    """Absolute instants (epoch seconds) the rules compare token ends with."""

    now: float
    warn_until: float
    critical_until: float
    repeat_before: float


_UPSERT_DEVICE = """
INSERT INTO fleet_devices (device_id, name, device_type_id, device_type_name, group_id,
    group_name, device_state, token_state, token_end, last_com, renews_automatically, scan_id,
    seen_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(device_id) DO UPDATE SET
    name = excluded.name, device_type_id = excluded.device_type_id,
    device_type_name = excluded.device_type_name, group_id = excluded.group_id,
    group_name = excluded.group_name, device_state = excluded.device_state,
    token_state = excluded.token_state, token_end = excluded.token_end,
    last_com = excluded.last_com, renews_automatically = excluded.renews_automatically,
    scan_id = excluded.scan_id, seen_at = excluded.seen_at
"""

# The rules, one SELECT per condition, over the devices the scan just saw.
_CURRENT_CONDITIONS = f"""
INSERT INTO temp.alert_now (device_id, condition, level)
SELECT device_id, '{EXPIRING}',
       CASE WHEN token_end <= :critical_until THEN {CRITICAL} ELSE {WARNING} END
  FROM fleet_devices
 WHERE scan_id = :scan AND token_state = {TOKEN_OK} AND token_end IS NOT NULL
   AND token_end <= :warn_until AND renews_automatically = 0
UNION ALL
SELECT device_id, '{INVALID}', {CRITICAL} FROM fleet_devices
 WHERE scan_id = :scan AND token_state = {TOKEN_INVALID}
UNION ALL
SELECT device_id, '{OFF_CONTRACT}', {CRITICAL} FROM fleet_devices
 WHERE scan_id = :scan
   AND (token_state = {TOKEN_OFF_CONTRACT} OR device_state = {DEVICE_OFF_CONTRACT})
"""

_DETAILS = """json_object('name', f.name, 'device_type', f.device_type_name,
    'device_type_id', f.device_type_id, 'group', f.group_name, 'group_id', f.group_id,
    'token_state', f.token_state, 'token_end', f.token_end, 'device_state', f.device_state)"""

# Open (or reopen) the alerts whose condition holds; a reopened one starts afresh.
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
    announced_level = CASE WHEN alerts.state = 'open'
                           THEN MIN(alerts.announced_level, excluded.level) ELSE 0 END,
    last_announced = CASE WHEN alerts.state = 'open' THEN alerts.last_announced ELSE 0 END,
    state = 'open', resolved_at = 0, resolution = ''
"""

# Resolve open alerts whose condition no longer holds. Telling people about it only makes
# sense if they were told about the alert; a device that merely moved to another condition
# (a token that ran out turns Invalid) is announced through its new alert instead.
_RESOLVE_ALERTS = """
UPDATE alerts SET
    state = 'resolved', resolved_at = :now,
    resolution = CASE
        WHEN NOT EXISTS (SELECT 1 FROM fleet_devices f
                          WHERE f.device_id = alerts.device_id AND f.scan_id = :scan)
            THEN 'gone'
        WHEN EXISTS (SELECT 1 FROM temp.alert_now n WHERE n.device_id = alerts.device_id)
            THEN 'superseded'
        ELSE 'cleared' END,
    change = CASE WHEN announced_level > 0
                   AND NOT EXISTS (SELECT 1 FROM temp.alert_now n
                                    WHERE n.device_id = alerts.device_id)
                  THEN 'resolved' ELSE '' END,
    change_scan = :scan
 WHERE state = 'open'
   AND NOT EXISTS (SELECT 1 FROM temp.alert_now n
                    WHERE n.device_id = alerts.device_id AND n.condition = alerts.condition)
"""

_NOT_SNOOZED = """NOT EXISTS (SELECT 1 FROM snoozes s
    WHERE s.device_id = alerts.device_id AND s.ended_at = 0
      AND (s.condition = '' OR s.condition = alerts.condition)
      AND (s.until IS NULL OR s.until > :now))"""

# Announce what is new, worse than what was last said, or due for a reminder; not if snoozed.
_ANNOUNCE_ALERTS = f"""
UPDATE alerts SET
    change = CASE WHEN announced_level = 0 THEN 'new'
                  WHEN announced_level < level THEN 'worse' ELSE 'repeat' END,
    change_scan = :scan, announced_level = level, last_announced = :now
 WHERE state = 'open'
   AND (announced_level < level OR last_announced <= :repeat_before)
   AND {_NOT_SNOOZED}
"""

# Resolutions recorded between scans (a renewal through the bot) join this scan's digest.
_ADOPT_PENDING = (
    "UPDATE alerts SET change_scan = :scan WHERE change = 'resolved' AND change_scan = 0"
)

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
            cursor = db.execute(
                "INSERT INTO scans (started_at, started_by) VALUES (?, ?)", [now, started_by]
            )
            return int(cursor.lastrowid or 0)

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
        batch: list[tuple[Any, ...]] = []
        written = 0
        for row in rows:
            batch.append((*astuple(row), scan_id, now))
            if len(batch) >= BATCH_SIZE:
                written += self._flush(batch, on_batch, written)
                batch = []
        if batch:
            written += self._flush(batch, on_batch, written)
        return written

    def _flush(
        self,
        batch: list[tuple[Any, ...]],
        on_batch: Callable[[int], None] | None,
        before: int,
    ) -> int:
        with self.database.transaction() as db:
            db.conn.executemany(_UPSERT_DEVICE, batch)
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

    def count_ending(self, now: float, until: float) -> int:
        rows = self.database.query(
            "SELECT COUNT(*) AS n FROM fleet_devices WHERE token_state = ? "
            "AND token_end IS NOT NULL AND token_end <= ? AND token_end >= ?",
            (TOKEN_OK, until, now),
        )
        return int(rows[0]["n"])

    def iter_ending(self, until: float) -> Iterator[dict[str, Any]]:
        """Devices whose valid token ends by `until` (ended ones too), soonest first."""
        sql = (
            "SELECT * FROM fleet_devices WHERE token_state = ? AND token_end IS NOT NULL "
            "AND token_end <= ? AND (token_end, device_id) > (?, ?) "
            "ORDER BY token_end, device_id LIMIT ?"
        )
        last: tuple[float, str] = (float("-inf"), "")
        while True:
            rows = self.database.query(sql, (TOKEN_OK, until, *last, CHUNK_SIZE))
            yield from rows
            if len(rows) < CHUNK_SIZE:
                return
            last = (rows[-1]["token_end"], rows[-1]["device_id"])

    # -- alerts ------------------------------------------------------------------------------

    def evaluate(self, scan_id: int, limits: Thresholds) -> None:
        """Apply the rules to what scan `scan_id` saw: open, resolve, announce, in one go."""
        params = {
            "scan": scan_id,
            "now": limits.now,
            "warn_until": limits.warn_until,
            "critical_until": limits.critical_until,
            "repeat_before": limits.repeat_before,
        }
        with self.database.transaction() as db:
            conn = db.conn
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS alert_now (device_id TEXT NOT NULL, "
                "condition TEXT NOT NULL, level INTEGER NOT NULL, "
                "PRIMARY KEY (device_id, condition)) WITHOUT ROWID"
            )
            conn.execute("DELETE FROM temp.alert_now")
            for statement in (_CURRENT_CONDITIONS, _RESOLVE_ALERTS, _OPEN_ALERTS,
                              _ANNOUNCE_ALERTS, _ADOPT_PENDING, _END_SNOOZES):
                conn.execute(statement, _only(statement, params))
            conn.execute("DELETE FROM temp.alert_now")

    def resolve_device(self, device_id: str, now: float, resolution: str) -> int:
        """Resolve a device's open alerts outside a scan; the next digest reports them."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolution = ?, "
                "change = CASE WHEN announced_level > 0 THEN 'resolved' ELSE '' END, "
                "change_scan = 0 WHERE device_id = ? AND state = 'open'",
                [now, resolution, device_id],
            )
            db.execute(_END_SNOOZES.replace(":now", "?"), [now])
            return cursor.rowcount

    def iter_alerts(
        self, *, open_only: bool = False, changed_in: int | Collection[int] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Alerts paged by key: open ones, those changed by a scan (or scans), or both (OR)."""
        clauses: list[str] = []
        params: list[Any] = []
        if open_only:
            clauses.append("state = 'open'")
        if changed_in is not None:
            scans = [changed_in] if isinstance(changed_in, int) else sorted(changed_in)
            marks = ", ".join("?" * len(scans))
            clauses.append(f"(change_scan IN ({marks}) AND change != '')")
            params.extend(scans)
        where = " OR ".join(clauses) or "1"
        sql = (
            f"SELECT * FROM alerts WHERE ({where}) AND (device_id, condition) > (?, ?) "
            "ORDER BY device_id, condition LIMIT ?"
        )
        last = ("", "")
        while True:
            rows = self.database.query(sql, (*params, *last, CHUNK_SIZE))
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
            cursor = db.execute(
                "INSERT INTO snoozes (device_id, condition, until, snoozed_by, reason, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [device_id, condition, until, snoozed_by, reason, now],
            )
            return int(cursor.lastrowid or 0)

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
