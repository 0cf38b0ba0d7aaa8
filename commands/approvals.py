"""Approvals that scale with the risk: how many people a request needs, reminders to those who
may decide, escalation to a second list, and the wait timer before an approved job starts.

Every date here is derived from the database, never from when this process started: the n-th
reminder is due at `created_at + n * remind_every`, the escalation at `created_at +
escalate_after`, an approved job starts at its approval's `starts_at` (the workflow's
`next_run`). A restart, or two workers, therefore change no date and send nothing twice (each
move is a compare-and-set on the approval row).
"""

from __future__ import annotations

import math
from typing import Any

from commands.bookkeeping import WorkflowBookkeeping, elapsed_text
from commands.human import slack_person
from commands.policy import Actor, Operation, Policy
from commands.ports import ProgressKind
from commands.states import WorkflowState
from storage.records import ApprovalRecord, WorkflowRecord

# Operations whose large requests must say why (Teleport's request reason).
REASON_OPERATIONS = frozenset({Operation.RENEW, Operation.DELETE})
MAX_REASON = 500


def clean_reason(text: str) -> str:
    """A reason as typed, on one line, within MAX_REASON characters."""
    return " ".join(text.split())[:MAX_REASON]


class ApprovalRounds(WorkflowBookkeeping):
    """The core's approval schedule; mixed into `Core`, which sets `policy`."""

    policy: Policy

    # -- rules at request time ------------------------------------------------------------

    def approvals_needed(self, operation: Operation, devices: int, built_in: bool) -> int:
        return self.policy.approvals_needed(operation, devices, 1 if built_in else 0)

    def reason_refusal(self, operation: Operation, devices: int, reason: str) -> str:
        """Why a request without a reason cannot go on, or "" when it may."""
        if operation not in REASON_OPERATIONS or not self.policy.is_large(devices) or reason:
            return ""
        threshold = self.policy.settings.large_job_devices
        return (f"A {operation.noun} of {devices} devices is a large job (from {threshold}, "
                "[policy] large_job_devices): say why you ask. In Slack the bot asks in a form; "
                "nothing was changed.")

    def may_decide(self, approval_id: int, actor: Actor) -> str:
        """Why `actor` cannot decide this request now, or "" when they can. Changes nothing:
        for showing a form or a button only to those whose decision would count."""
        approval = self.store.get_approval(approval_id)
        workflow = self.store.get_workflow(approval.workflow_id) if approval else None
        if approval is None or workflow is None:
            return f"There is no approval request {approval_id}."
        if approval.state != "pending":
            return f"This request was already {approval.state}; nothing more to do."
        if self.clock.now() >= approval.expires_at:
            return "This request expired; nothing was changed. Ask again if still needed."
        verdict = self.policy.can_approve(actor, Operation(workflow.kind), approval.requested_by,
                                          needed=approval.required,
                                          escalated=bool(approval.escalated_at))
        if not verdict.allowed:
            return verdict.reason
        if any(v.user_id == actor.user_id for v in self.store.votes(approval_id)):
            return "You already approved this request; another approver must decide now."
        return ""

    # -- while a request waits ------------------------------------------------------------

    def escalate_and_remind(self, approval: ApprovalRecord) -> None:
        """For a pending request not yet expired: escalate, then remind, each when its date
        (from the database) has come."""
        now = self.clock.now()
        workflow = self._workflow(approval.workflow_id)
        just_asked: list[str] = []
        if self._escalation_due(approval, now):
            just_asked = self._escalate(approval, workflow, now)
            approval = self.store.get_approval(approval.id) or approval
        # Those just asked by the escalation need no reminder in the same minute.
        self._remind_if_due(approval, workflow, now, skip=just_asked)

    def _escalation_due(self, approval: ApprovalRecord, now: float) -> bool:
        settings = self.policy.settings
        if approval.escalated_at or settings.escalate_after is None:
            return False
        if not settings.escalation_approvers:
            return False
        return now >= approval.created_at + settings.escalate_after.total_seconds()

    def _escalate(self, approval: ApprovalRecord, workflow: WorkflowRecord,
                  now: float) -> list[str]:
        """Ask the second list; returns who was asked (none when another worker did)."""
        asked = [p for p in self.policy.settings.escalation_approvers
                 if p not in approval.deciders]
        deciders = [*approval.deciders, *asked]
        if not self.store.escalate_approval(approval.id, now, deciders):
            return []  # another worker did, or it was decided meanwhile
        waited = elapsed_text(now - approval.created_at)
        names = ", ".join(slack_person(p) for p in asked) or "nobody new"
        text = (f"No decision after {waited}: now also asked {names} "
                "(escalation_approvers); the first approvers keep their right to decide.")
        self.store.audit("bot", "escalate", now, workflow_id=workflow.id,
                         details={"approval_id": approval.id, "asked": asked})
        self._tell(workflow, ProgressKind.ESCALATED, text, approval_id=approval.id,
                   asked=asked, at=now, **self.deciding(approval.id))
        return asked

    def _remind_if_due(self, approval: ApprovalRecord, workflow: WorkflowRecord,
                       now: float, skip: list[str]) -> None:
        every = self.policy.remind_every(self.config.timing.approval_reminder).total_seconds()
        due = approval.created_at + (approval.reminders + 1) * every
        if now < due:
            return
        # After a long outage, one reminder, counted as all those missed: the next keeps its date.
        sent_now = math.floor((now - approval.created_at) / every)
        if not self.store.count_reminder(approval.id, approval.reminders, sent_now):
            return
        text = (f"Still waiting for an approver ({elapsed_text(now - approval.created_at)}); the "
                f"request expires in {elapsed_text(approval.expires_at - now)}.")
        deciding = self.deciding(approval.id)
        deciding["excluded"] = [*deciding.get("excluded", []), *skip]
        self._tell(workflow, ProgressKind.REMINDER, text, wait="approval",
                   approval_id=approval.id, elapsed=now - approval.created_at,
                   expires_at=approval.expires_at, summary=approval.summary,
                   reminder=sent_now, **deciding)

    def deciding(self, approval_id: int) -> dict[str, Any]:
        """Who has approved and who may still decide: for the message and the reminders."""
        approval = self.store.get_approval(approval_id)
        if approval is None:
            return {}
        approved = [v.user_id for v in self.store.votes(approval_id) if v.decision == "approved"]
        excluded = list(approved)
        if not approval.requester_may_approve:
            excluded.append(approval.requested_by)
        return {"required": approval.required, "approved_by": approved,
                "deciders": list(approval.deciders), "excluded": excluded,
                "escalated_at": approval.escalated_at}

    # -- once approved: the wait timer ------------------------------------------------------

    def start_time(self, operation: Operation, now: float) -> float:
        return now + self.policy.wait_timer(operation).total_seconds()

    def count_down_wait_timers(self) -> None:
        """Keep the "starts in N min" line of jobs in their wait timer current, a line per
        minute at most (the start itself is the workflow's `next_run`, in the database)."""
        now = self.clock.now()
        for workflow in self.store.list_workflows(states=[WorkflowState.APPROVED.value],
                                                  limit=1000):
            if workflow.next_run > now:
                self.report_wait_timer(workflow, now)

    def report_wait_timer(self, workflow: WorkflowRecord, now: float) -> None:
        minutes = math.ceil((workflow.next_run - now) / 60)
        key = f"wait-timer-reported:{workflow.id}"
        if self.store.get_value(key) == minutes:
            return
        self.store.set_value(key, minutes)
        text = (f"Approved; starts in {minutes} min unless cancelled (the requester or an "
                "approver can still cancel it).")
        self._tell(workflow, ProgressKind.WAITING, text, wait="wait_timer",
                   starts_at=workflow.next_run)
