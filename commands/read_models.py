"""What the edges (Slack, the terminal) read from the core: plain values, no store rows.

`bot/` shows these; it never reads the core's store for them, so the store's shape can change
without the Slack side noticing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.records import job_label
from storage.store import Store


@dataclass(frozen=True)
class ApprovalRequest:
    """An approval request as the people deciding see it. `summary` is the core's plan: never
    a PAC. `deciders` are the users and user groups asked; `excluded` the users whose decision
    no longer counts (approved already; the requester when self-approval is off)."""

    approval_id: int
    workflow_id: int
    operation: str
    devices: tuple[str, ...]
    summary: str
    requester: str
    expires_at: float
    state: str
    required: int = 1
    approved_by: tuple[str, ...] = ()  # user ids, in the order they approved
    deciders: tuple[str, ...] = ()
    excluded: frozenset[str] = field(default_factory=frozenset)
    reason: str = ""  # the requester's
    escalated_at: float = 0.0

    @property
    def job(self) -> str:
        return job_label(self.workflow_id)


def approval_request(store: Store, approval_id: int) -> ApprovalRequest | None:
    """The request as the store has it now, or None when there is no such request."""
    approval = store.get_approval(approval_id)
    if approval is None:
        return None
    workflow = store.get_workflow(approval.workflow_id)
    devices = tuple(s.device_id for s in store.workflow_devices(approval.workflow_id))
    approved = tuple(v.user_id for v in store.votes(approval.id) if v.decision == "approved")
    requester = set() if approval.requester_may_approve else {approval.requested_by}
    return ApprovalRequest(
        approval.id, approval.workflow_id, workflow.kind if workflow else "", devices,
        approval.summary, approval.requested_by, approval.expires_at, approval.state,
        required=approval.required, approved_by=approved, deciders=tuple(approval.deciders),
        excluded=frozenset(approved) | requester, reason=approval.request_reason,
        escalated_at=approval.escalated_at,
    )
