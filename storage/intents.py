"""Write-ahead intents: a row for every destructive call, written before the call is sent.

An intent is `in_flight` from before the request leaves until its outcome is known: `landed`
(Sigfox answered 2xx, or a read after `lands_by` shows the call's effect) or `not_landed` (a
refusal, or a read after `lands_by` shows no effect). `lands_by` is the latest time the call
could still take effect; the rules that use it are in `commands/writeahead.py`. Every change
is a compare-and-set in one transaction, so two workers, or a worker and a person cancelling,
cannot both act on the same device.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from storage.db import SafeDatabase
from storage.stops import STOPPED, job_stopped, stop_untouched_steps

IN_FLIGHT = "in_flight"
LANDED = "landed"
NOT_LANDED = "not_landed"


@dataclass(frozen=True)
class IntentRecord:
    id: int
    workflow_id: int
    device_id: str
    action: str
    batch: str
    state: str
    sent_at: float
    lands_by: float
    resolved_at: float
    outcome: str
    details: dict[str, Any]


def _record(row: dict[str, Any]) -> IntentRecord:
    return IntentRecord(**{**row, "details": json.loads(row["details"])})


# A cancel asked while a call could still land waits in the workflow's params (see ask_cancel).
CANCEL_ASKED = "cancel_asked"
_NO_CANCEL_ASKED = f"json_extract(params, '$.{CANCEL_ASKED}') IS NULL"


class Intents:
    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    def open(self, *, workflow_id: int, device_ids: Sequence[str], action: str, now: float,
             lands_by: float, running: Iterable[str], details: dict[str, Any] | None = None
             ) -> str | None:
        """Record that `action` is about to be sent for `device_ids`; returns the batch id.

        None, and nothing recorded, when the workflow is no longer in one of the `running`
        states (cancelled meanwhile), when a cancel of it waits for its calls to settle
        (`ask_cancel`), when one of the devices was stopped in it, or when any of the devices
        still has an unresolved intent, of this workflow or another: its call could still land.
        """
        states = list(running)
        batch = uuid.uuid4().hex
        with self.database.transaction() as db:
            marks = ", ".join("?" for _ in states)
            alive = db.execute(f"SELECT 1 FROM workflows WHERE id = ? AND state IN ({marks}) "
                               f"AND {_NO_CANCEL_ASKED}", [workflow_id, *states]).fetchone()
            if (alive is None or self._any_unresolved(db, device_ids)
                    or self._any_stopped(db, workflow_id, device_ids)):
                return None
            detail_text = json.dumps(details or {}, sort_keys=True)
            db.table("intents").insert_all(
                {"workflow_id": workflow_id, "device_id": device_id, "action": action,
                 "batch": batch, "state": IN_FLIGHT, "sent_at": now, "lands_by": lands_by,
                 "details": detail_text}
                for device_id in device_ids
            )
        return batch

    @staticmethod
    def _any_unresolved(db: Any, device_ids: Sequence[str]) -> bool:
        marks = ", ".join("?" for _ in device_ids)
        row = db.execute(
            f"SELECT 1 FROM intents WHERE state = ? AND device_id IN ({marks}) LIMIT 1",
            [IN_FLIGHT, *device_ids],
        ).fetchone()
        return row is not None

    @staticmethod
    def _any_stopped(db: Any, workflow_id: int, device_ids: Sequence[str]) -> bool:
        """A device of the job stopped by a person (storage/store.py `stop_untouched`): no call
        is sent for it, whatever state a step held when it started."""
        marks = ", ".join("?" for _ in device_ids)
        row = db.execute(
            f"SELECT 1 FROM workflow_devices WHERE workflow_id = ? AND state = '{STOPPED}' "
            f"AND device_id IN ({marks}) LIMIT 1", [workflow_id, *device_ids],
        ).fetchone()
        return row is not None

    def answered(self, batch: str, landed: bool, now: float, outcome: str) -> None:
        """Sigfox answered: the call was executed (2xx) or refused (4xx, a local refusal)."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE intents SET state = ?, resolved_at = ?, outcome = ? "
                "WHERE batch = ? AND state = ?",
                [LANDED if landed else NOT_LANDED, now, outcome, batch, IN_FLIGHT],
            )

    def unanswered(self, batch: str, lands_by: float, outcome: str) -> None:
        """No answer (timeout, 5xx, dropped connection): still in flight, until `lands_by` at
        the latest (never later than the bound written before the call)."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE intents SET lands_by = MIN(lands_by, ?), outcome = ? "
                "WHERE batch = ? AND state = ?",
                [lands_by, outcome, batch, IN_FLIGHT],
            )

    def resolve(self, intent_id: int, landed: bool, now: float, outcome: str) -> bool:
        """After `lands_by`, a read of the backend decided; False if someone else resolved it.
        A call of a stopped job found not to have landed leaves its device untouched: the
        device is stopped in the same transaction (storage/stops.py), before a step can send
        it again."""
        with self.database.transaction() as db:
            cursor = db.execute(
                "UPDATE intents SET state = ?, resolved_at = ?, outcome = ? "
                "WHERE id = ? AND state = ? RETURNING workflow_id",
                [LANDED if landed else NOT_LANDED, now, outcome, intent_id, IN_FLIGHT],
            )
            row = cursor.fetchone()
            if row is not None and not landed and job_stopped(db, int(row[0])):
                stop_untouched_steps(db, int(row[0]), now)
            return row is not None

    def unresolved(self, device_id: str) -> list[IntentRecord]:
        rows = self.database.query(
            "SELECT * FROM intents WHERE device_id = ? AND state = ? ORDER BY id",
            (device_id, IN_FLIGHT),
        )
        return [_record(r) for r in rows]

    def of_step(self, workflow_id: int, device_id: str) -> list[IntentRecord]:
        rows = self.database.query(
            "SELECT * FROM intents WHERE workflow_id = ? AND device_id = ? ORDER BY id",
            (workflow_id, device_id),
        )
        return [_record(r) for r in rows]

    def of_workflow(self, workflow_id: int) -> list[IntentRecord]:
        rows = self.database.query(
            "SELECT * FROM intents WHERE workflow_id = ? ORDER BY id", (workflow_id,)
        )
        return [_record(r) for r in rows]

    def cancel_untouched(self, workflow_id: int, expected: Iterable[str], new_state: str,
                         now: float, outcome: str) -> bool:
        """Move the workflow to `new_state` only if none of its calls was executed or could
        still be: every intent it wrote is `not_landed`. One transaction with `open`'s check,
        so a step cannot slip a call in between."""
        states = list(expected)
        marks = ", ".join("?" for _ in states)
        with self.database.transaction() as db:
            touched = db.execute(
                "SELECT 1 FROM intents WHERE workflow_id = ? AND state != ? LIMIT 1",
                [workflow_id, NOT_LANDED],
            ).fetchone()
            if touched is not None:
                return False
            cursor = db.execute(
                f"UPDATE workflows SET state = ?, outcome = ?, updated_at = ?, "
                f"version = version + 1 WHERE id = ? AND state IN ({marks})",
                [new_state, outcome, now, workflow_id, *states],
            )
            return cursor.rowcount == 1

    def ask_cancel(self, workflow_id: int, expected: Iterable[str], asked: dict[str, Any]
                   ) -> bool:
        """Note a cancel to carry out once the workflow's calls are settled: from then on
        `open` sends nothing more for it. False when it left the `expected` states, or when a
        cancel was already asked."""
        states = list(expected)
        marks = ", ".join("?" for _ in states)
        with self.database.transaction() as db:
            cursor = db.execute(
                f"UPDATE workflows SET params = json_set(params, '$.{CANCEL_ASKED}', json(?)), "
                f"version = version + 1 WHERE id = ? AND state IN ({marks}) "
                f"AND {_NO_CANCEL_ASKED}",
                [json.dumps(asked, sort_keys=True), workflow_id, *states],
            )
            return cursor.rowcount == 1

    def drop_cancel(self, workflow_id: int) -> bool:
        """The asked cancel cannot be done (a call took effect): the job may send again."""
        with self.database.transaction() as db:
            cursor = db.execute(
                f"UPDATE workflows SET params = json_remove(params, '$.{CANCEL_ASKED}'), "
                f"version = version + 1 WHERE id = ? AND NOT {_NO_CANCEL_ASKED}",
                [workflow_id],
            )
            return cursor.rowcount == 1
