"""Typed rows of the bot's database. Plain data: the rules live in `commands/`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

R = TypeVar("R")

# Columns stored as JSON text; every other column maps to its field as it is.
JSON_COLUMNS = frozenset({"params", "data", "details", "flags", "message_ref", "deciders"})


def from_row(cls: type[R], row: dict[str, Any]) -> R:
    """Build a record from a row: its own columns only (a table may carry more, such as a
    workflow's lease), JSON columns decoded."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {
        key: json.loads(value) if key in JSON_COLUMNS else value
        for key, value in row.items()
        if key in names
    }
    return cls(**values)


def job_label(workflow_id: int) -> str:
    """How people see a workflow id: `J-0042`."""
    return f"J-{workflow_id:04d}"


def parse_job_label(text: str) -> int | None:
    text = text.strip().upper()
    if text.startswith("J-"):
        text = text[2:]
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class WorkflowRecord:
    id: int
    kind: str
    state: str
    requester: str
    channel: str
    thread: str
    params: dict[str, Any]
    attempts: int
    next_run: float
    last_error: str
    outcome: str
    version: int
    created_at: float
    updated_at: float

    @property
    def label(self) -> str:
        return job_label(self.id)


@dataclass(frozen=True)
class StepRecord:
    """Where one device of a workflow stands."""

    workflow_id: int
    device_id: str
    state: str
    attempts: int
    next_run: float
    last_error: str
    data: dict[str, Any]
    version: int
    updated_at: float


@dataclass(frozen=True)
class ApprovalRecord:
    id: int
    workflow_id: int
    state: str
    requested_by: str
    summary: str
    decided_by: str
    decided_at: float
    reason: str
    created_at: float
    expires_at: float
    message_ref: dict[str, Any] = field(default_factory=dict)
    required: int = 1  # distinct approvers needed
    deciders: list[str] = field(default_factory=list)  # users and groups asked, in order
    requester_may_approve: int = 0
    escalated_at: float = 0.0
    reminders: int = 0  # direct-message reminders sent so far
    request_reason: str = ""
    starts_at: float = 0.0  # approved: the job starts then (the wait timer's end)


@dataclass(frozen=True)
class VoteRecord:
    """One person's Approve or Reject on an approval request."""

    approval_id: int
    user_id: str
    decision: str
    reason: str
    time: float


@dataclass(frozen=True)
class VoteResult:
    """What a vote did: `recorded` (more approvals needed), `approved`, `rejected`,
    `duplicate` (this person already voted) or `closed` (no longer pending: `state`)."""

    result: str
    state: str
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """What the operator's text file held: enough to register the device again.

    `repr` hides the PAC so a snapshot printed in a log or a traceback leaks nothing.
    """

    workflow_id: int
    device_id: str
    pac: str = field(repr=False)
    new_pac: str = field(repr=False)
    name: str
    device_type_id: str
    group_id: str
    lat: float | None
    lng: float | None
    flags: dict[str, Any]
    captured_at: float

    @property
    def current_pac(self) -> str:
        """The PAC that registers the device now: the new one once it was re-registered."""
        return self.new_pac or self.pac


@dataclass(frozen=True)
class EventRecord:
    id: int
    workflow_id: int
    device_id: str
    time: float
    kind: str
    text: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    time: float
    actor: str
    action: str
    workflow_id: int | None
    device_id: str
    outcome: str
    details: dict[str, Any]
