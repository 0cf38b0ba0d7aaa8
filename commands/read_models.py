"""What the edges (Slack, the terminal) read from the core: plain values, no store rows.

`bot/` shows these; it never reads the core's store for them, so the store's shape can change
without the Slack side noticing. `ReadModels` is the one reader: the core offers it as
`Core.reads`, and the Slack notifier (built before the core it reports for) gets its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from commands.states import ACTIVE, Kind, StepState
from storage.records import EventRecord, WorkflowRecord, job_label
from storage.store import STOP_ASKED, Store


@dataclass(frozen=True)
class JobSummary:
    """A job as the edges show it: what it does, where it stands, who asked, where it reports.
    `deletes` says whether it deletes devices (and so has PACs worth showing): a renewal by
    restart, transfer or automatic renewal keeps the device."""

    id: int
    kind: str
    state: str
    requester: str
    channel: str
    updated_at: float
    deletes: bool
    stopped_by: str = ""  # who stopped it for its untouched devices ("" when nobody did)

    @property
    def label(self) -> str:
        return job_label(self.id)


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
    decided_by: str = ""  # who settled it (approved or rejected)
    decided_at: float = 0.0
    decision_reason: str = ""  # the decider's
    posted: Mapping[str, str] = field(default_factory=dict)  # where the edge posted it

    @property
    def job(self) -> str:
        return job_label(self.workflow_id)


class ReadModels:
    """The core's records as the edges read them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def approval_request(self, approval_id: int) -> ApprovalRequest | None:
        """The request as it stands now, or None when there is no such request."""
        return approval_request(self.store, approval_id)

    def approval_of_job(self, workflow_id: int) -> ApprovalRequest | None:
        """The job's approval request, or None when it needed none."""
        approval = self.store.approval_for(workflow_id)
        return approval_request(self.store, approval.id) if approval else None

    def pending_approvals(self) -> list[ApprovalRequest]:
        """Every request still waiting for a decision, oldest first."""
        waiting = (approval_request(self.store, a.id) for a in self.store.pending_approvals())
        return [request for request in waiting if request is not None]

    def job(self, workflow_id: int) -> JobSummary | None:
        workflow = self.store.get_workflow(workflow_id)
        return _summary(workflow) if workflow else None

    def jobs(self, active_only: bool = True) -> list[JobSummary]:
        """The jobs, newest first; only those not finished when `active_only`."""
        states = [s.value for s in ACTIVE] if active_only else None
        return [_summary(w) for w in self.store.list_workflows(states=states)]

    def job_devices(self, workflow_id: int) -> tuple[str, ...]:
        """The devices of a job, in the order they were asked for."""
        return tuple(s.device_id for s in self.store.workflow_devices(workflow_id))

    def device_states(self, workflow_id: int) -> dict[str, str]:
        """Where each device of a job stands (its step state), in the order asked for."""
        return {s.device_id: s.state for s in self.store.workflow_devices(workflow_id)}

    def step_counts(self, workflow_id: int) -> dict[str, int]:
        """How many of the job's devices stand in each step state."""
        return self.store.step_states(workflow_id)

    def stop_note(self, job: JobSummary) -> str:
        """Where a job stopped for its untouched devices stands: "stopped by <@U1>: 980
        stopped untouched, 20 being finished" ("" for a job nobody stopped)."""
        if not job.stopped_by:
            return ""
        counts = self.step_counts(job.id)
        stopped = counts.get(StepState.STOPPED.value, 0)
        finishing = sum(n for state, n in counts.items() if not StepState(state).finished)
        note = f"stopped by <@{job.stopped_by}>: {stopped:,} stopped untouched"
        return note + (f", {finishing:,} being finished" if finishing else "")

    def device_history(self, device_id: str, limit: int = 40) -> list[EventRecord]:
        """What the bot did to a device, newest last (`/sigfox history`)."""
        return self.store.device_history(device_id, limit=limit)

    def workflow_counts(self) -> dict[str, int]:
        """Workflows by state (metrics, health); raises when the database is unusable."""
        return self.store.count_workflows_by_state()


def _summary(workflow: WorkflowRecord) -> JobSummary:
    # Jobs recorded before renewals chose their method all deleted and re-registered.
    method = (workflow.params or {}).get("method", "delete")
    deletes = workflow.kind == Kind.DELETE or (workflow.kind == Kind.RENEW and method == "delete")
    stopped = (workflow.params or {}).get(STOP_ASKED) or {}
    return JobSummary(workflow.id, workflow.kind, workflow.state, workflow.requester,
                      workflow.channel, workflow.updated_at, deletes,
                      stopped_by=str(stopped.get("by", "")))


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
        escalated_at=approval.escalated_at, decided_by=approval.decided_by,
        decided_at=approval.decided_at, decision_reason=approval.reason,
        posted={str(k): str(v) for k, v in (approval.message_ref or {}).items()},
    )
