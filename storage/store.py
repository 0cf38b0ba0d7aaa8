"""The workflow store: every record that makes a job recoverable after a crash.

Each state change is a compare-and-set on the state it leaves (`UPDATE ... WHERE state = ?`):
when two workers, a double click or a replayed Slack request race, exactly one update matches a
row and the others see `False`. Every move leaves the state it was made from, so the state alone
is the guard; `version` only counts a row's changes (for whoever inspects the database), no
query compares it. All SQL of the workflows lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from storage.db import SafeDatabase, get_value, set_value
from storage.intents import Intents
from storage.records import (
    JSON_COLUMNS,
    ApprovalRecord,
    AuditEntry,
    EventRecord,
    StepRecord,
    VoteRecord,
    VoteResult,
    WorkflowRecord,
    from_row,
)
from storage.snapshots import Snapshots
from storage.stops import (
    PENDING,
    STOP_ASKED,
    STOPPED_JOB,
    UNTOUCHED,
    job_stopped,
    stop_untouched_steps,
)

__all__ = ["STOP_ASKED", "Store"]


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v, sort_keys=True) if k in JSON_COLUMNS else v for k, v in fields.items()}


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    encoded = _encode(fields)
    return ", ".join(f"{k} = ?" for k in encoded), list(encoded.values())


class _Overtaken(Exception):
    """Rolls a vote or an expiry back: the workflow left `awaiting_approval` meanwhile."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


class Store:
    def __init__(self, database: SafeDatabase) -> None:
        self.database = database
        self.intents = Intents(database)
        self.snapshots = Snapshots(database)

    # -- workflows -------------------------------------------------------------------------

    def create_workflow(
        self,
        *,
        kind: str,
        state: str,
        requester: str,
        device_ids: Sequence[str],
        device_state: str,
        now: float,
        channel: str = "",
        thread: str = "",
        params: dict[str, Any] | None = None,
        lock_devices: bool = True,
    ) -> tuple[int | None, dict[str, int]]:
        """Insert a workflow and its devices, or report the workflows already holding them.

        Returns `(new_id, {})`, or `(None, {device_id: workflow_id})` when a device is busy
        with another destructive workflow (the new request must join that one instead).
        """
        with self.database.transaction() as db:
            busy = self._busy_devices(db, device_ids) if lock_devices else {}
            if busy:
                return None, busy
            workflows = db.table("workflows").insert({
                "kind": kind, "state": state, "requester": requester, "channel": channel,
                "thread": thread, "params": json.dumps(params or {}), "next_run": now,
                "created_at": now, "updated_at": now,
            })
            workflow_id = int(workflows.last_rowid or 0)
            db.table("workflow_devices").insert_all(
                {"workflow_id": workflow_id, "device_id": device_id, "state": device_state,
                 "updated_at": now}
                for device_id in device_ids
            )
            if lock_devices:
                db.table("device_locks").insert_all(
                    {"device_id": device_id, "workflow_id": workflow_id}
                    for device_id in device_ids
                )
            return workflow_id, {}

    @staticmethod
    def _busy_devices(db: Any, device_ids: Sequence[str]) -> dict[str, int]:
        if not device_ids:
            return {}
        marks = ", ".join("?" for _ in device_ids)
        rows = db.execute(
            f"SELECT device_id, workflow_id FROM device_locks WHERE device_id IN ({marks})",
            list(device_ids),
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    def release_device_locks(self, workflow_id: int) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM device_locks WHERE workflow_id = ?", [workflow_id])

    def get_workflow(self, workflow_id: int) -> WorkflowRecord | None:
        rows = self.database.query("SELECT * FROM workflows WHERE id = ?", (workflow_id,))
        return from_row(WorkflowRecord, rows[0]) if rows else None

    def list_workflows(
        self, *, states: Iterable[str] | None = None, limit: int = 50
    ) -> list[WorkflowRecord]:
        params: list[str | int]
        if states is None:
            sql, params = "SELECT * FROM workflows ORDER BY id DESC LIMIT ?", [limit]
        else:
            wanted = list(states)
            marks = ", ".join("?" for _ in wanted)
            sql = f"SELECT * FROM workflows WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?"
            params = [*wanted, limit]
        return [from_row(WorkflowRecord, r) for r in self.database.query(sql, tuple(params))]

    def count_workflows_by_state(self) -> dict[str, int]:
        rows = self.database.query("SELECT state, COUNT(*) AS n FROM workflows GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    def workflows_due(self, states: Iterable[str], now: float) -> list[int]:
        wanted = list(states)
        marks = ", ".join("?" for _ in wanted)
        rows = self.database.query(
            f"SELECT id FROM workflows WHERE state IN ({marks}) AND next_run <= ? "
            "ORDER BY next_run, id",  # oldest due first: a tick cut short never starves one
            (*wanted, now),
        )
        return [row["id"] for row in rows]

    def cas_workflow(
        self, workflow_id: int, expected: Iterable[str], new_state: str, now: float, **fields: Any
    ) -> bool:
        """Move a workflow from one of `expected` to `new_state`; False if someone else did."""
        wanted = list(expected)
        assignments, values = _assignments({"state": new_state, "updated_at": now, **fields})
        marks = ", ".join("?" for _ in wanted)
        with self.database.transaction() as db:
            cursor = db.execute(
                f"UPDATE workflows SET {assignments}, version = version + 1 "
                f"WHERE id = ? AND state IN ({marks})",
                [*values, workflow_id, *wanted],
            )
            return cursor.rowcount == 1

    def update_workflow(self, workflow_id: int, now: float, **fields: Any) -> None:
        assignments, values = _assignments({"updated_at": now, **fields})
        with self.database.transaction() as db:
            db.execute(
                f"UPDATE workflows SET {assignments}, version = version + 1 WHERE id = ?",
                [*values, workflow_id],
            )

    def claim_workflow(self, workflow_id: int, owner: str, now: float, ttl: float) -> bool:
        """Take a lease so one worker at a time advances a workflow; a dead one's lease lapses."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE workflows SET lease_owner = ?, lease_until = ? "
                "WHERE id = ? AND (lease_owner = '' OR lease_owner = ? OR lease_until < ?)",
                [owner, now + ttl, workflow_id, owner, now],
            )
            return cursor.rowcount == 1

    def release_workflow(self, workflow_id: int, owner: str) -> None:
        with self.database.transaction() as db:
            db.execute(
                "UPDATE workflows SET lease_owner = '', lease_until = 0 "
                "WHERE id = ? AND lease_owner = ?",
                [workflow_id, owner],
            )

    def break_leases(self) -> int:
        """At start: no worker of this database survives a restart, so no lease is held."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE workflows SET lease_owner = '', lease_until = 0 WHERE lease_owner != ''"
            )
            return cursor.rowcount

    # -- devices of a workflow ---------------------------------------------------------------

    def workflow_devices(self, workflow_id: int) -> list[StepRecord]:
        rows = self.database.query(
            "SELECT * FROM workflow_devices WHERE workflow_id = ? ORDER BY rowid", (workflow_id,)
        )
        return [from_row(StepRecord, r) for r in rows]

    def step_states(self, workflow_id: int) -> dict[str, int]:
        """How many of a job's devices are in each step state (one aggregate, not N rows)."""
        rows = self.database.query(
            "SELECT state, COUNT(*) AS n FROM workflow_devices WHERE workflow_id = ? "
            "GROUP BY state", (workflow_id,))
        return {str(r["state"]): int(r["n"]) for r in rows}

    def device_step(self, workflow_id: int, device_id: str) -> StepRecord | None:
        rows = self.database.query(
            "SELECT * FROM workflow_devices WHERE workflow_id = ? AND device_id = ?",
            (workflow_id, device_id),
        )
        return from_row(StepRecord, rows[0]) if rows else None

    def cas_device(
        self,
        workflow_id: int,
        device_id: str,
        expected: str,
        new_state: str,
        now: float,
        **fields: Any,
    ) -> bool:
        """Move a device's step from `expected` to `new_state`; False if someone else did.
        A step of a stopped job never leaves `pending` (see `stop_untouched`): the claim that
        precedes every first call on a device loses to the stop, whichever came first."""
        assignments, values = _assignments({"state": new_state, "updated_at": now, **fields})
        unstopped = f" AND NOT ({STOPPED_JOB})" if expected == PENDING else ""
        with self.database.transaction() as db:
            cursor = db.execute(
                f"UPDATE workflow_devices SET {assignments}, version = version + 1 "
                f"WHERE workflow_id = ? AND device_id = ? AND state = ?{unstopped}",
                [*values, workflow_id, device_id, expected],
            )
            return cursor.rowcount == 1

    def stop_untouched(self, workflow_id: int, running: Iterable[str], asked: dict[str, Any],
                       now: float) -> list[str] | None:
        """Stop a running job for its devices untouched at Sigfox (`UNTOUCHED`): in one
        transaction, the stop is noted on the job (`asked`, under `STOP_ASKED` in its params),
        every untouched step moves to `stopped` and its device is free for another job.
        A tick about to act on one of them claims it from `pending` (`cas_device`) or writes
        its call ahead (`Intents.open`) first, so it either got there before (the device is
        touched, and finished) or loses and sends nothing. Returns the devices stopped; []
        (and nothing noted) when none is untouched; None when the job left `running` or was
        already stopped."""
        states = list(running)
        marks = ", ".join("?" for _ in states)
        with self.database.transaction() as db:
            noted = db.execute(
                f"UPDATE workflows SET params = json_set(params, '$.{STOP_ASKED}', json(?)), "
                f"version = version + 1, updated_at = ? WHERE id = ? AND state IN ({marks}) "
                f"AND json_extract(params, '$.{STOP_ASKED}') IS NULL AND EXISTS (SELECT 1 "
                f"FROM workflow_devices WHERE workflow_id = workflows.id AND {UNTOUCHED})",
                [json.dumps(asked, sort_keys=True), now, workflow_id, *states])
            if noted.rowcount == 1:
                return stop_untouched_steps(db, workflow_id, now)
            row = db.execute(
                f"SELECT json_extract(params, '$.{STOP_ASKED}') IS NULL AND state IN ({marks}) "
                "FROM workflows WHERE id = ?", [*states, workflow_id]).fetchone()
            return [] if row is not None and row[0] else None

    def stop_leftovers(self, workflow_id: int, now: float) -> list[str]:
        """For a stopped job: the steps found untouched since (a call verified not to have
        reached Sigfox) are stopped too. [] for a job not stopped."""
        with self.database.transaction() as db:
            if not job_stopped(db, workflow_id):
                return []
            return stop_untouched_steps(db, workflow_id, now)

    def untouched_steps(self, workflow_id: int) -> int:
        """How many of a job's steps are untouched at Sigfox (see `UNTOUCHED`)."""
        rows = self.database.query(
            f"SELECT COUNT(*) AS n FROM workflow_devices WHERE workflow_id = ? AND {UNTOUCHED}",
            (workflow_id,))
        return int(rows[0]["n"])

    def update_device_step(
        self, workflow_id: int, device_id: str, now: float, **fields: Any
    ) -> None:
        assignments, values = _assignments({"updated_at": now, **fields})
        with self.database.transaction() as db:
            db.execute(
                f"UPDATE workflow_devices SET {assignments}, version = version + 1 "
                "WHERE workflow_id = ? AND device_id = ?",
                [*values, workflow_id, device_id],
            )

    def active_steps_for_device(self, device_id: str, states: Iterable[str]) -> list[StepRecord]:
        wanted = list(states)
        marks = ", ".join("?" for _ in wanted)
        rows = self.database.query(
            f"SELECT * FROM workflow_devices WHERE device_id = ? AND state IN ({marks})",
            (device_id, *wanted),
        )
        return [from_row(StepRecord, r) for r in rows]

    # -- events and audit --------------------------------------------------------------------

    def add_event(
        self,
        workflow_id: int,
        kind: str,
        text: str,
        now: float,
        *,
        device_id: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        with self.database.transaction() as db:
            db.table("workflow_events").insert({
                "workflow_id": workflow_id, "device_id": device_id, "time": now, "kind": kind,
                "text": text, "details": json.dumps(details or {}),
            })

    def events(self, workflow_id: int) -> list[EventRecord]:
        rows = self.database.query(
            "SELECT * FROM workflow_events WHERE workflow_id = ? ORDER BY id", (workflow_id,)
        )
        return [from_row(EventRecord, r) for r in rows]

    def device_history(self, device_id: str, limit: int = 50) -> list[EventRecord]:
        rows = self.database.query(
            "SELECT e.* FROM workflow_events e WHERE e.device_id = ? OR e.workflow_id IN "
            "(SELECT workflow_id FROM workflow_devices WHERE device_id = ?) "
            "ORDER BY e.id DESC LIMIT ?",
            (device_id, device_id, limit),
        )
        return [from_row(EventRecord, r) for r in reversed(rows)]

    def audit(
        self,
        actor: str,
        action: str,
        now: float,
        *,
        workflow_id: int | None = None,
        device_id: str = "",
        outcome: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        with self.database.transaction() as db:
            db.table("audit").insert({
                "time": now, "actor": actor, "action": action, "workflow_id": workflow_id,
                "device_id": device_id, "outcome": outcome, "details": json.dumps(details or {}),
            })

    def audit_entries(
        self, *, workflow_id: int | None = None, device_id: str | None = None
    ) -> list[AuditEntry]:
        clauses: list[str] = []
        params: list[str | int] = []
        if workflow_id is not None:
            clauses.append("workflow_id = ?")
            params.append(workflow_id)
        if device_id is not None:
            clauses.append("device_id = ?")
            params.append(device_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.database.query(f"SELECT * FROM audit {where} ORDER BY id", tuple(params))
        return [from_row(AuditEntry, r) for r in rows]

    # -- approvals ---------------------------------------------------------------------------

    def create_approval(
        self, workflow_id: int, requested_by: str, summary: str, now: float, expires_at: float,
        *, required: int = 1, deciders: Sequence[str] = (), requester_may_approve: bool = False,
        request_reason: str = "",
    ) -> int:
        with self.database.transaction() as db:
            approvals = db.table("approvals").insert({
                "workflow_id": workflow_id, "state": "pending", "requested_by": requested_by,
                "summary": summary, "created_at": now, "expires_at": expires_at,
                "required": required, "deciders": json.dumps(list(deciders)),
                "requester_may_approve": int(requester_may_approve),
                "request_reason": request_reason,
            })
            return int(approvals.last_rowid or 0)

    def cast_vote(self, approval_id: int, user_id: str, decision: str, now: float,
                  reason: str = "",
                  moves: Mapping[str, tuple[str, dict[str, Any]]] | None = None) -> VoteResult:
        """Record one person's Approve or Reject, once, and settle the request when it is due:
        one Reject refuses, `required` distinct approvals approve. One transaction, so two
        approvers clicking together can neither both settle it nor vote twice.

        `moves` maps a settling decision to the workflow's new state (and fields): the workflow
        moves from awaiting approval in the same transaction, or, when a cancel or an expiry
        got there first, nothing is recorded and the vote is `closed`. A settling decision's
        audit row is written in that transaction too, so a cancel that follows an approval is
        always audited after it. So the approval, the job and the audit log never tell
        different stories."""
        try:
            return self._cast_vote(approval_id, user_id, decision, now, reason, moves or {})
        except _Overtaken as overtaken:
            return VoteResult("closed", overtaken.state)

    def _cast_vote(self, approval_id: int, user_id: str, decision: str, now: float,
                   reason: str, moves: Mapping[str, tuple[str, dict[str, Any]]]) -> VoteResult:
        with self.database.transaction() as db:
            rows = db.execute("SELECT state, required FROM approvals WHERE id = ?",
                              [approval_id]).fetchall()
            if not rows or rows[0][0] != "pending":
                return VoteResult("closed", rows[0][0] if rows else "missing")
            required = int(rows[0][1])
            # Raw SQL: a conditional insert; its rowcount says whether this is the user's
            # first vote (the table API cannot tell an ignored row from a new one).
            inserted = db.execute(
                "INSERT OR IGNORE INTO approval_votes (approval_id, user_id, decision, reason, "
                "time) VALUES (?, ?, ?, ?, ?)", [approval_id, user_id, decision, reason, now])
            approvers = tuple(r[0] for r in db.execute(
                "SELECT user_id FROM approval_votes WHERE approval_id = ? AND decision = "
                "'approved' ORDER BY time, rowid", [approval_id]).fetchall())
            if inserted.rowcount != 1:
                return VoteResult("duplicate", "pending", approvers)
            if decision == "approved" and len(approvers) < required:
                return VoteResult("recorded", "pending", approvers)
            if decision in moves:
                self._move_awaiting_workflow(db, approval_id, now, *moves[decision])
            # Raw SQL: compare-and-set on the approval's state, and an INSERT ... SELECT that
            # audits it in the same transaction.
            db.execute("UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, "
                       "reason = ? WHERE id = ? AND state = 'pending'",
                       [decision, user_id, now, reason, approval_id])
            db.execute("INSERT INTO audit (time, actor, action, workflow_id, outcome, details) "
                       "SELECT ?, ?, ?, workflow_id, ?, ? FROM approvals WHERE id = ?",
                       [now, user_id, decision, decision,
                        json.dumps({"reason": reason} if reason else {}), approval_id])
            return VoteResult(decision, decision, approvers)

    @staticmethod
    def _move_awaiting_workflow(db: Any, approval_id: int, now: float, new_state: str,
                                fields: dict[str, Any]) -> None:
        """Inside a transaction: the approval's workflow leaves `awaiting_approval`, or the
        transaction is rolled back (`_Overtaken`) with the state it has instead."""
        assignments, values = _assignments({"state": new_state, "updated_at": now, **fields})
        workflow_id = "(SELECT workflow_id FROM approvals WHERE id = ?)"
        cursor = db.execute(
            f"UPDATE workflows SET {assignments}, version = version + 1 "
            f"WHERE id = {workflow_id} AND state = 'awaiting_approval'",
            [*values, approval_id])
        if cursor.rowcount != 1:
            row = db.execute(f"SELECT state FROM workflows WHERE id = {workflow_id}",
                             [approval_id]).fetchone()
            raise _Overtaken(row[0] if row else "missing")

    def expire_approval(self, approval_id: int, now: float) -> bool:
        """The request and its job expire together, or neither (a decision or a cancel got
        there first)."""
        try:
            with self.database.transaction() as db:
                cursor = db.execute(
                    "UPDATE approvals SET state = 'expired', decided_at = ? "
                    "WHERE id = ? AND state = 'pending'", [now, approval_id])
                if cursor.rowcount != 1:
                    return False
                self._move_awaiting_workflow(db, approval_id, now, "expired",
                                             {"outcome": "expired"})
                return True
        except _Overtaken:
            return False

    def cancel_workflow(self, workflow_id: int, expected: Iterable[str], now: float,
                        by: str) -> bool:
        """Cancel the job and close its pending request in one transaction: a vote or an
        expiry sees either both or neither."""
        wanted = list(expected)
        marks = ", ".join("?" for _ in wanted)
        with self.database.transaction() as db:
            cursor = db.execute(
                f"UPDATE workflows SET state = 'cancelled', outcome = 'cancelled', "
                f"updated_at = ?, version = version + 1 WHERE id = ? AND state IN ({marks})",
                [now, workflow_id, *wanted])
            if cursor.rowcount != 1:
                return False
            db.execute("UPDATE approvals SET state = 'cancelled', decided_by = ?, "
                       "decided_at = ? WHERE workflow_id = ? AND state = 'pending'",
                       [by, now, workflow_id])
            return True

    def votes(self, approval_id: int) -> list[VoteRecord]:
        rows = self.database.query(
            "SELECT * FROM approval_votes WHERE approval_id = ? ORDER BY time, rowid",
            (approval_id,))
        return [from_row(VoteRecord, r) for r in rows]

    def escalate_approval(self, approval_id: int, now: float, deciders: Sequence[str]) -> bool:
        """Mark a pending request escalated, once; False when it was already or is decided."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE approvals SET escalated_at = ?, deciders = ? "
                "WHERE id = ? AND state = 'pending' AND escalated_at = 0",
                [now, json.dumps(list(deciders)), approval_id])
            return cursor.rowcount == 1

    def count_reminder(self, approval_id: int, sent_before: int, sent_now: int) -> bool:
        """Move the reminder count on, once: two workers due together send one reminder."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE approvals SET reminders = ? "
                "WHERE id = ? AND state = 'pending' AND reminders = ?",
                [sent_now, approval_id, sent_before])
            return cursor.rowcount == 1

    def set_approval_start(self, approval_id: int, starts_at: float) -> None:
        with self.database.transaction() as db:
            db.execute("UPDATE approvals SET starts_at = ? WHERE id = ?",
                       [starts_at, approval_id])

    def get_approval(self, approval_id: int) -> ApprovalRecord | None:
        rows = self.database.query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return from_row(ApprovalRecord, rows[0]) if rows else None

    def approval_for(self, workflow_id: int) -> ApprovalRecord | None:
        rows = self.database.query(
            "SELECT * FROM approvals WHERE workflow_id = ?", (workflow_id,)
        )
        return from_row(ApprovalRecord, rows[0]) if rows else None

    def pending_approvals(self) -> list[ApprovalRecord]:
        rows = self.database.query("SELECT * FROM approvals WHERE state = 'pending' ORDER BY id")
        return [from_row(ApprovalRecord, r) for r in rows]

    # -- small key/value settings ------------------------------------------------------------

    def get_value(self, key: str) -> Any:
        return get_value(self.database, key)

    def set_value(self, key: str, value: Any) -> None:
        set_value(self.database, key, value)
