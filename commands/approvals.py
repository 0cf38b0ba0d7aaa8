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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from commands.bookkeeping import Bookkeeper, elapsed_text
from commands.config import BotConfig
from commands.human import slack_person
from commands.outcome import Outcome
from commands.policy import Actor, Operation, Policy
from commands.ports import Clock, ProgressKind
from commands.states import WorkflowState
from storage.records import ApprovalRecord, WorkflowRecord, job_label
from storage.store import Store

# Operations whose large requests must say why (Teleport's request reason).
REASON_OPERATIONS = frozenset({Operation.RENEW, Operation.DELETE})
MAX_REASON = 500


def clean_reason(text: str) -> str:
    """A reason as typed, on one line, within MAX_REASON characters."""
    return " ".join(text.split())[:MAX_REASON]


@dataclass(frozen=True, kw_only=True)
class ApprovalRounds:
    """The core's approval rounds: asking, who may decide, reminders, escalation, expiry and
    the wait timer once approved."""

    store: Store
    policy: Policy
    clock: Clock
    config: BotConfig
    books: Bookkeeper

    def ask(self, workflow: WorkflowRecord, requester: str, summary: str, needed: int = 1,
            reason: str = "") -> int:
        """Open the approval request of a new job and tell it; returns its id."""
        now = self.clock.now()
        ttl = self.config.policy.approval_ttl.total_seconds()
        operation = Operation(workflow.kind)
        approval_id = self.store.create_approval(
            workflow.id, requester, summary, now, now + ttl, required=needed,
            deciders=self.policy.deciders(operation), request_reason=reason,
            requester_may_approve=self.policy.requester_may_approve(operation, needed))
        self.books.tell(
            workflow,
            ProgressKind.APPROVAL_NEEDED,
            f"Approval needed: {summary}",
            approval_id=approval_id,
            expires_at=now + ttl,
            summary=summary,
            requester=requester,
            reason=reason,
            **self.deciding(approval_id),
        )
        return approval_id

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

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, approval_id: int, actor: Actor, approve: bool, reason: str = "") -> Outcome:
        """Approve or reject. Checked against the policy now; the first valid decision wins."""
        approval = self.store.get_approval(approval_id)
        if approval is None:
            return Outcome(False, f"There is no approval request {approval_id}.")
        workflow = self.books.workflow(approval.workflow_id)
        now = self.clock.now()
        if approval.state != "pending":
            return Outcome(False, self._already_decided(approval.state, approval.decided_by))
        if now >= approval.expires_at:
            self.expire(approval.id, workflow)
            return Outcome(
                False, "This request expired; nothing was deleted. Ask again if still needed."
            )
        verdict = self.policy.can_approve(actor, Operation(workflow.kind), approval.requested_by,
                                          needed=approval.required,
                                          escalated=bool(approval.escalated_at))
        if not verdict.allowed:
            self.store.audit(actor.user_id, "approval refused", now, workflow_id=workflow.id,
                             outcome="denied", details={"reason": verdict.reason})
            return Outcome(False, verdict.reason, workflow.id, approval_id)
        reason = clean_reason(reason)
        starts_at = self.start_time(Operation(workflow.kind), now)
        # A settling vote moves the job in the same transaction (or is void if a cancel or an
        # expiry got there first): one outcome, one record.
        moves = {"approved": (WorkflowState.APPROVED.value, {"next_run": starts_at}),
                 "rejected": (WorkflowState.REJECTED.value, {"next_run": now})}
        vote = self.store.cast_vote(approval_id, actor.user_id,
                                    "approved" if approve else "rejected", now, reason, moves)
        if vote.result == "closed":
            fresh = self.store.get_approval(approval_id)
            state, by = (fresh.state, fresh.decided_by) if fresh else ("decided", "")
            if state == "pending":  # the job was cancelled or expired as the vote came in
                state, by = vote.state, ""
            return Outcome(False, self._already_decided(state, by))
        if vote.result == "duplicate":
            return Outcome(False, "You already approved this request; it needs "
                           f"{approval.required} different approvers, so one more "
                           "colleague must approve it.", workflow.id, approval_id)
        if vote.result == "recorded":
            return self._partial_approval(workflow, actor, approval_id, vote.approvers)
        return self._apply_decision(workflow, actor, approve, approval_id, reason)

    def _partial_approval(self, workflow: WorkflowRecord, actor: Actor, approval_id: int,
                          approvers: Sequence[str]) -> Outcome:
        """One approval of several: recorded and shown; the request stays open."""
        now = self.clock.now()
        state = self.deciding(approval_id)
        count = f"{len(approvers)} of {state['required']}"
        self.store.audit(actor.user_id, "approval vote", now, workflow_id=workflow.id,
                         outcome="approved", details={"approvals": count})
        self.books.tell(workflow, ProgressKind.VOTE, f"Approved by <@{actor.user_id}> ({count}).",
                        approval_id=approval_id, decided_by=actor.user_id, **state)
        left = state["required"] - len(approvers)
        return Outcome(True, f"{job_label(workflow.id)}: your approval is recorded ({count}); "
                       f"waiting for {left} more approver(s).", workflow.id, approval_id)

    def _apply_decision(
        self, workflow: WorkflowRecord, actor: Actor, approve: bool, approval_id: int, reason: str
    ) -> Outcome:
        # The vote already moved the workflow and wrote its audit row (`Store.cast_vote`), in
        # one transaction.
        now = self.clock.now()
        fresh = self.books.workflow(workflow.id)
        starts_at = fresh.next_run if approve else now
        verb = "approved" if approve else "rejected"
        if not approve:
            self.store.release_device_locks(workflow.id)
        text = f"{verb.capitalize()} by <@{actor.user_id}>" + (f": {reason}" if reason else "")
        self.books.tell(self.books.workflow(workflow.id), ProgressKind.DECIDED, text,
                        approval_id=approval_id, decision=verb, decided_by=actor.user_id,
                        reason=reason)
        if approve and starts_at > now:
            self.store.set_approval_start(approval_id, starts_at)
            self.report_wait_timer(self.books.workflow(workflow.id), now)
        if not approve:
            self.books.tell(self.books.workflow(workflow.id), ProgressKind.FINISHED,
                            "Rejected: nothing was changed.", outcome="rejected")
        return Outcome(True, f"{job_label(workflow.id)} {verb}.", workflow.id, approval_id)

    @staticmethod
    def _already_decided(state: str, by: str) -> str:
        who = f" by <@{by}>" if by else ""
        return f"This request was already {state}{who}; nothing more to do."

    # -- while a request waits ------------------------------------------------------------

    def follow_up_pending(self) -> None:
        """Expire the pending requests whose time is up; escalate and remind the others."""
        now = self.clock.now()
        for approval in self.store.pending_approvals():
            if approval.expires_at <= now:
                self.expire(approval.id, self.books.workflow(approval.workflow_id))
            else:
                self.escalate_and_remind(approval)

    def expire(self, approval_id: int, workflow: WorkflowRecord) -> None:
        now = self.clock.now()
        if self.store.expire_approval(approval_id, now):  # the job expires with it
            self.store.release_device_locks(workflow.id)
            self.books.tell(self.books.workflow(workflow.id), ProgressKind.FINISHED,
                            "The approval request expired: nothing was deleted. Ask again if "
                            "it is still needed.", outcome="expired", approval_id=approval_id)

    def escalate_and_remind(self, approval: ApprovalRecord) -> None:
        """For a pending request not yet expired: escalate, then remind, each when its date
        (from the database) has come."""
        now = self.clock.now()
        workflow = self.books.workflow(approval.workflow_id)
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
        self.books.tell(workflow, ProgressKind.ESCALATED, text, approval_id=approval.id,
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
        self.books.tell(workflow, ProgressKind.REMINDER, text, wait="approval",
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
        self.books.tell(workflow, ProgressKind.WAITING, text, wait="wait_timer",
                        starts_at=workflow.next_run)
