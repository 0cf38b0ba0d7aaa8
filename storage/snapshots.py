"""The snapshots: each device as it was before anything destructive, PAC included.

This record is what makes a renewal recoverable: the device is re-registered from it, and an
approver can read its PAC (audited) to register it by hand. Reached as `Store.snapshots`.
"""

from __future__ import annotations

import json
from typing import Any

from storage.db import SafeDatabase
from storage.records import Snapshot, from_row


class Snapshots:
    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    def save(
        self,
        workflow_id: int,
        device_id: str,
        *,
        pac: str,
        now: float,
        name: str = "",
        device_type_id: str = "",
        group_id: str = "",
        lat: float | None = None,
        lng: float | None = None,
        flags: dict[str, Any] | None = None,
    ) -> bool:
        """Record the device before anything destructive. The first capture is never replaced."""
        with self.database.transaction() as db:
            # Raw SQL: a conditional insert whose rowcount says whether this is the first
            # capture; the table API cannot tell an ignored row from a new one.
            cursor = db.execute(
                "INSERT OR IGNORE INTO snapshots (workflow_id, device_id, pac, name, "
                "device_type_id, group_id, lat, lng, flags, captured_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    workflow_id,
                    device_id,
                    pac,
                    name,
                    device_type_id,
                    group_id,
                    lat,
                    lng,
                    json.dumps(flags or {}),
                    now,
                ],
            )
            return cursor.rowcount == 1

    def record_new_pac(self, workflow_id: int, device_id: str, new_pac: str) -> None:
        with self.database.transaction() as db:
            db.execute(
                "UPDATE snapshots SET new_pac = ? WHERE workflow_id = ? AND device_id = ?",
                [new_pac, workflow_id, device_id],
            )

    def of(self, workflow_id: int, device_id: str) -> Snapshot | None:
        rows = self.database.query(
            "SELECT * FROM snapshots WHERE workflow_id = ? AND device_id = ?",
            (workflow_id, device_id),
        )
        return from_row(Snapshot, rows[0]) if rows else None
