"""Opening the bot's SQLite file: owner-only permissions, WAL mode, versioned migrations.

Everything that must survive a crash lives in this one file (`SIGFOX_BOT_DB`). The schema is
versioned with `PRAGMA user_version`; each migration runs once, in order, in one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from storage.buttons import create_tables as create_button_tables
from storage.notifications import add_daily_digests
from storage.notifications import create_tables as create_notification_log

DEFAULT_DB_PATH = "sigfox-bot.db"

# A migration is SQL, or a function given the sqlite-utils `Database` (the table API).
Migration = str | Callable[[Database], None]

# Append only: a released migration is never edited, a change is a new entry.
MIGRATIONS: tuple[Migration, ...] = (
    # 1: workflows, their devices and events, approvals, snapshots, audit, idempotency.
    """
    CREATE TABLE workflows (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        requester TEXT NOT NULL,
        channel TEXT NOT NULL DEFAULT '',
        thread TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL DEFAULT '{}',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_run REAL NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL DEFAULT '',
        lease_owner TEXT NOT NULL DEFAULT '',
        lease_until REAL NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX workflows_state_next ON workflows(state, next_run);
    CREATE TABLE workflow_devices (
        workflow_id INTEGER NOT NULL REFERENCES workflows(id),
        device_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_run REAL NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        data TEXT NOT NULL DEFAULT '{}',
        version INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (workflow_id, device_id)
    );
    CREATE INDEX workflow_devices_device ON workflow_devices(device_id);
    -- One destructive workflow per device at a time: the primary key is the guard.
    CREATE TABLE device_locks (
        device_id TEXT PRIMARY KEY,
        workflow_id INTEGER NOT NULL REFERENCES workflows(id)
    );
    CREATE TABLE workflow_events (
        id INTEGER PRIMARY KEY,
        workflow_id INTEGER NOT NULL REFERENCES workflows(id),
        device_id TEXT NOT NULL DEFAULT '',
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX workflow_events_wf ON workflow_events(workflow_id);
    CREATE INDEX workflow_events_device ON workflow_events(device_id);
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY,
        workflow_id INTEGER NOT NULL UNIQUE REFERENCES workflows(id),
        state TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        decided_by TEXT NOT NULL DEFAULT '',
        decided_at REAL NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        message_ref TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX approvals_state ON approvals(state);
    CREATE TABLE snapshots (
        workflow_id INTEGER NOT NULL REFERENCES workflows(id),
        device_id TEXT NOT NULL,
        pac TEXT NOT NULL,
        new_pac TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        device_type_id TEXT NOT NULL DEFAULT '',
        group_id TEXT NOT NULL DEFAULT '',
        lat REAL,
        lng REAL,
        flags TEXT NOT NULL DEFAULT '{}',
        captured_at REAL NOT NULL,
        PRIMARY KEY (workflow_id, device_id)
    );
    CREATE INDEX snapshots_device ON snapshots(device_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        workflow_id INTEGER,
        device_id TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_device ON audit(device_id);
    CREATE TABLE idempotency_keys (
        key TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        result TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: fleet scan state, alerts and snoozes.
    """
    CREATE TABLE fleet_devices (
        device_id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        device_type_id TEXT NOT NULL DEFAULT '',
        group_id TEXT NOT NULL DEFAULT '',
        device_state INTEGER,
        token_state INTEGER,
        token_end REAL,
        last_com REAL,
        scan_id INTEGER NOT NULL DEFAULT 0,
        seen_at REAL NOT NULL
    );
    CREATE INDEX fleet_devices_token_end ON fleet_devices(token_end);
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL DEFAULT 0,
        ok INTEGER NOT NULL DEFAULT 0,
        devices INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE alerts (
        device_id TEXT NOT NULL,
        condition TEXT NOT NULL,
        level INTEGER NOT NULL,
        state TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_announced REAL NOT NULL DEFAULT 0,
        resolved_at REAL NOT NULL DEFAULT 0,
        details TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (device_id, condition)
    );
    CREATE INDEX alerts_state ON alerts(state);
    CREATE TABLE snoozes (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL,
        condition TEXT NOT NULL DEFAULT '',
        until REAL,
        snoozed_by TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE INDEX snoozes_device ON snoozes(device_id);
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 3: what alert digests need: names for routing, who was told what, how a scan went.
    """
    ALTER TABLE fleet_devices ADD COLUMN device_type_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE fleet_devices ADD COLUMN group_name TEXT NOT NULL DEFAULT '';
    CREATE INDEX fleet_devices_scan ON fleet_devices(scan_id);
    ALTER TABLE alerts ADD COLUMN announced_level INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE alerts ADD COLUMN channel TEXT NOT NULL DEFAULT '';
    ALTER TABLE alerts ADD COLUMN resolution TEXT NOT NULL DEFAULT '';
    ALTER TABLE alerts ADD COLUMN change TEXT NOT NULL DEFAULT '';
    ALTER TABLE alerts ADD COLUMN change_scan INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX alerts_change ON alerts(change_scan, change);
    ALTER TABLE snoozes ADD COLUMN ended_at REAL NOT NULL DEFAULT 0;
    ALTER TABLE scans ADD COLUMN duration REAL NOT NULL DEFAULT 0;
    ALTER TABLE scans ADD COLUMN started_by TEXT NOT NULL DEFAULT '';
    """,
    # 4: approvals that scale with the risk: N distinct approvers (one vote each), who may
    # decide, escalation, reminders counted, the requester's reason, the wait timer's end.
    """
    ALTER TABLE approvals ADD COLUMN required INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE approvals ADD COLUMN deciders TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE approvals ADD COLUMN requester_may_approve INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE approvals ADD COLUMN escalated_at REAL NOT NULL DEFAULT 0;
    ALTER TABLE approvals ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE approvals ADD COLUMN request_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE approvals ADD COLUMN starts_at REAL NOT NULL DEFAULT 0;
    CREATE TABLE approval_votes (
        approval_id INTEGER NOT NULL REFERENCES approvals(id),
        user_id TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        time REAL NOT NULL,
        PRIMARY KEY (approval_id, user_id)
    );
    """,
    # 5: Sigfox calls counted against the long limits (one per hour per device, bulk jobs), so
    # a restart remembers them (storage/call_ledger.py).
    """
    CREATE TABLE sigfox_calls (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX sigfox_calls_key ON sigfox_calls(key, at);
    CREATE INDEX sigfox_calls_at ON sigfox_calls(at);
    """,
    # 6: a token ending on a device that renews automatically is not a warning.
    """
    ALTER TABLE fleet_devices ADD COLUMN renews_automatically INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: write-ahead intents: every destructive call recorded before it is sent, resolved
    # after (see storage/intents.py).
    """
    CREATE TABLE intents (
        id INTEGER PRIMARY KEY,
        workflow_id INTEGER NOT NULL REFERENCES workflows(id),
        device_id TEXT NOT NULL,
        action TEXT NOT NULL,
        batch TEXT NOT NULL,
        state TEXT NOT NULL,
        sent_at REAL NOT NULL,
        lands_by REAL NOT NULL,
        resolved_at REAL NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX intents_device ON intents(device_id, state);
    CREATE INDEX intents_workflow ON intents(workflow_id);
    CREATE INDEX intents_batch ON intents(batch);
    """,
    # 8: the messages (and Home tabs) carrying each job's buttons: a click counts only from
    # one of them (storage/buttons.py).
    create_button_tables,
    # 9: the alerts' notification log, replacing the digests Slack refused kept as JSON in kv
    # and the announcement columns of `alerts`, both carried forward (storage/notifications.py).
    create_notification_log,
    # 10: the daily digest's deliveries in the same log, instead of the channels Slack refused
    # it to kept as JSON in kv (carried forward).
    add_daily_digests,
)


class SafeDatabase:
    """A sqlite-utils `Database` shared by the bot's threads, one writer at a time.

    SQLite serialises writers anyway; the lock keeps Python's single connection consistent
    across the Slack handler threads and the scheduler's. Cross-process safety comes from
    SQLite's own locking and from compare-and-set updates.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        conn = _connect(self.path)
        self.db = Database(conn)
        # Called before each outermost write transaction, before the lock is taken: where a
        # thread may yield to more urgent work without holding up anyone (the bot's ack gate).
        self.before_transaction: Callable[[], None] | None = None
        self._held = threading.local()  # .depth: how deep this thread is inside the lock

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock:
            self._held.depth = getattr(self._held, "depth", 0) + 1
            try:
                yield
            finally:
                self._held.depth -= 1

    def held_here(self) -> bool:
        """True while the calling thread holds the database (inside a transaction or query)."""
        return getattr(self._held, "depth", 0) > 0

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        if self.before_transaction is not None and not self.held_here():
            self.before_transaction()
        with self._locked():
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(
        self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]:
        with self._locked():
            return list(self.db.query(sql, params))

    def close(self) -> None:
        with self.lock:
            self.db.conn.close()


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        _create_private(Path(path))
    # isolation_level=None: we issue BEGIN/COMMIT ourselves so a compare-and-set and the
    # records that go with it land together or not at all.
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    _migrate(conn)
    if path != ":memory:":
        for suffix in ("-wal", "-shm"):
            side = Path(path + suffix)
            if side.exists():
                side.chmod(0o600)
    return conn


def backup_database(source: str | Path, destination: str | Path) -> int:
    """Copy the database at `source` to `destination` while the bot may be writing to it.

    SQLite's online backup gives a consistent copy without stopping the bot. The copy holds
    every recorded PAC, so it is created readable by its owner only, whatever the umask; an
    existing destination is refused rather than overwritten. Returns the copy's size in bytes.
    """
    source_path, copy_path = Path(source), Path(destination)
    if not source_path.is_file():
        raise FileNotFoundError(f"no database at {source_path}")
    if copy_path.exists():
        raise FileExistsError(f"{copy_path} exists already; name a new file for the copy")
    _create_private(copy_path)
    # A plain connection, not open_database(): a backup must never migrate the bot's database.
    with closing(sqlite3.connect(source_path)) as live, closing(sqlite3.connect(copy_path)) as copy:
        live.backup(copy)
    return copy_path.stat().st_size


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only: it holds PACs, which are credentials."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    path.chmod(0o600)


def _migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(script):
                script(Database(conn))
            else:
                for statement in _statements(script):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def get_value(database: SafeDatabase, key: str) -> Any:
    """A small JSON value kept under `key` in the `kv` table (None when absent)."""
    rows = database.query("SELECT value FROM kv WHERE key = ?", (key,))
    return json.loads(rows[0]["value"]) if rows else None


def set_value(database: SafeDatabase, key: str, value: Any) -> None:
    with database.transaction() as db:
        db.table("kv").upsert({"key": key, "value": json.dumps(value, sort_keys=True)}, pk="key")


def schema_version(database: SafeDatabase) -> int:
    return int(database.query("PRAGMA user_version")[0]["user_version"])


def open_database(path: str | Path | None = None) -> SafeDatabase:
    """Open (creating and migrating as needed) the bot's database."""
    return SafeDatabase(path or os.environ.get("SIGFOX_BOT_DB") or DEFAULT_DB_PATH)
