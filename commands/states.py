"""Names of workflow and device-step states, in one place."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    RENEW = "renew"
    DELETE = "delete"
    TRANSFER = "transfer"
    RESTART = "restart"
    UNSUBSCRIBE = "unsubscribe"


class WorkflowState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"  # ready to run; nothing sent to Sigfox yet
    RUNNING = "running"  # the first change was (or is being) sent: no cancel from here
    DONE = "done"
    STOPPED = "stopped"  # ended part-way: the devices nothing was sent for were stopped
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset(
    {
        WorkflowState.DONE,
        WorkflowState.FAILED,
        WorkflowState.REJECTED,
        WorkflowState.EXPIRED,
        WorkflowState.CANCELLED,
        WorkflowState.STOPPED,
    }
)
ACTIVE = frozenset(set(WorkflowState) - FINISHED)
CANCELLABLE = frozenset({WorkflowState.AWAITING_APPROVAL, WorkflowState.APPROVED})


class StepState(StrEnum):
    """Where one device of a workflow stands."""

    PENDING = "pending"
    DELETING = "deleting"  # the delete may have been sent: check the backend before acting
    AWAITING_RELEASE = "awaiting_release"  # deleted; re-create until the backend frees the id
    REGISTERED = "registered"
    AWAITING_UPLINK = "awaiting_uplink"
    CHECKING_CALLBACKS = "checking_callbacks"
    SUBMITTING = "submitting"  # a bulk job or an unsubscribe may have been sent
    AWAITING_JOB = "awaiting_job"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"  # its job was stopped before anything was sent for this device

    @property
    def finished(self) -> bool:
        return self in (StepState.DONE, StepState.FAILED, StepState.STOPPED)
