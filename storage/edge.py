"""What the edges (the Slack side, the terminal) keep for themselves in the bot's database.

Where a job's thread and an approval request were posted, the direct messages sent about a
request, a long command waiting for its reason, and the keys of the deliveries already handled
(so a Slack retry runs nothing twice). The core never reads these; the edges read the core
through its read models (`commands/read_models.py`), never through `Store`.
"""

from __future__ import annotations

import json
from typing import Any

from storage.db import SafeDatabase, get_value, set_value


class EdgeRecords:
    def __init__(self, database: SafeDatabase) -> None:
        self.database = database

    def get_value(self, key: str) -> Any:
        return get_value(self.database, key)

    def set_value(self, key: str, value: Any) -> None:
        set_value(self.database, key, value)

    def note_approval_posted(self, approval_id: int, message_ref: dict[str, Any]) -> None:
        """Where the request with its buttons was posted (the read model's `posted`)."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE approvals SET message_ref = ? WHERE id = ?",
                [json.dumps(message_ref), approval_id],
            )

    def claim_idempotency_key(self, key: str, now: float) -> bool:
        """True the first time a key is seen: a Slack retry or a replay sees False."""
        with self.database.transaction() as db:
            # Raw SQL: a claim (conditional insert) whose rowcount says whether this caller
            # saw the key first; the table API cannot tell an ignored row from a new one.
            cursor = db.execute(
                "INSERT OR IGNORE INTO idempotency_keys (key, created_at) VALUES (?, ?)",
                [key, now],
            )
            return cursor.rowcount == 1

    def forget_idempotency_keys(self, older_than: float) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", [older_than])
