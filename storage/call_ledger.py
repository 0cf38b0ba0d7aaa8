"""The Sigfox calls that count against the long limits, kept in the bot's database.

`sigfox.pacing` decides what counts (what the server may have executed); this module keeps the
count, as `sigfox.call_ledger.CallLedger` says, where a restart cannot lose it, and where two
processes on one database see the same count: each reservation is a check and an insert in
one `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

from storage.db import SafeDatabase

# Longer than any durable window (an hour): older rows can never matter again.
KEEP_SECONDS = 24 * 3600.0


class SqliteCallLedger:
    """Implements `sigfox.call_ledger.CallLedger` on the `sigfox_calls` table."""

    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    def reserve(self, key: str, calls: int, window: float, now: float) -> tuple[int | None, float]:
        with self.database.transaction() as db:
            db.execute("DELETE FROM sigfox_calls WHERE at <= ?", [now - KEEP_SECONDS])
            recent = db.execute(
                "SELECT at FROM sigfox_calls WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?",
                [key, now - window, calls],
            ).fetchall()
            if len(recent) >= calls:
                # The oldest of the last `calls` must leave the window before another fits.
                return None, max(now, float(recent[-1][0]) + window)
            calls_table = db.table("sigfox_calls").insert({"key": key, "at": now})
            return int(calls_table.last_rowid or 0), now

    def settle(self, entry: int, done: float) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE sigfox_calls SET at = MAX(at, ?) WHERE id = ?", [done, entry])

    def release(self, entry: int) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM sigfox_calls WHERE id = ?", [entry])

    def forget(self, key: str, since: float) -> int:
        with self.database.transaction() as db:
            cursor = db.execute("DELETE FROM sigfox_calls WHERE key = ? AND at >= ?", [key, since])
            return cursor.rowcount

    def recorded(self, key: str) -> list[float]:
        """When the calls still counted under `key` were made (for diagnostics and tests)."""
        rows = self.database.query(
            "SELECT at FROM sigfox_calls WHERE key = ? ORDER BY at", (key,)
        )
        return [float(row["at"]) for row in rows]
