"""`Outcome`: the core's answer to a person's request or click."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.records import job_label


@dataclass(frozen=True)
class Outcome:
    """The answer to a person's request or click. `message` is safe to show anywhere."""

    ok: bool
    message: str
    workflow_id: int | None = None
    approval_id: int | None = None
    joined: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return job_label(self.workflow_id) if self.workflow_id else ""

