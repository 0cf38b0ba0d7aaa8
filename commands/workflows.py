"""The durable workflows: renew, delete, transfer, restart and unsubscribe.

A workflow is a row with a state; every device in it has a step. Nothing waits in a thread:
`tick()` advances whatever is due and returns. Each step first reads the backend, then acts,
and each transition is a compare-and-set in SQLite, so a crash, a restart, two workers, a double
click or a replayed request never sends a destructive call twice, and the snapshot taken before
the delete (PAC included) is always there to re-register the device.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from commands import human
from commands.approvals import ApprovalRounds, clean_reason
from commands.bookkeeping import clock_time, elapsed_text, public_details
from commands.config import BotConfig
from commands.planning import Plan, Request, plan_request, type_id_of
from commands.policy import Actor, Operation, Policy
from commands.ports import Clock, Notifier, ProgressKind, SigfoxApi
from commands.preflight import Refusal, day
from commands.read_models import ApprovalRequest, approval_request
from commands.states import (
    ACTIVE,
    CANCELLABLE,
    Kind,
    Step,
    WorkflowState,
)
from commands.status import DeviceStatus, read_device_status
from commands.steps import DeviceSteps, missing_callbacks, target_type_id
from commands.ticks import Stopwatch, TickStats
from sigfox.errors import SigfoxError
from sigfox.models import Device
from storage.intents import IN_FLIGHT
from storage.records import DeviceStep, EventRecord, WorkflowRecord, job_label
from storage.store import Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 900.0


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


class Core(ApprovalRounds, DeviceSteps):
    """The operations of the bot, free of Slack: the Slack app, the CLI and the demo drive it."""

    def __init__(
        self,
        *,
        api: SigfoxApi,
        store: Store,
        notifier: Notifier,
        clock: Clock,
        config: BotConfig,
        owner: str | None = None,
        on_renewed: Callable[[str], object] | None = None,
        stopwatch: Stopwatch = time.perf_counter,
        landing_clock: Clock | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.notifier = notifier
        self.clock = clock
        # Real time for "could a call still land" (see commands/writeahead.py); the same as
        # `clock` unless tests or the demo run the workflows on a virtual one.
        self.landing_clock = landing_clock or clock
        self.config = config
        self.policy = Policy(config)
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Told the id of every device renewed or restarted through the bot (alerts resolve).
        self.on_renewed = on_renewed
        # Real elapsed time for the tick's budget and timings (the clock may be virtual).
        self.stopwatch = stopwatch
        self.last_tick: TickStats | None = None

    # -- requests ----------------------------------------------------------------------------

    def request(self, request: Request) -> Outcome:
        operation = Operation(request.kind.value)
        decision = self.policy.can_request(request.actor, operation)
        if not decision.allowed:
            return Outcome(False, decision.reason)
        missing_reason = self.reason_refusal(operation, len(request.device_ids),
                                             clean_reason(request.reason))
        if missing_reason:
            return Outcome(False, missing_reason)
        try:
            plan = plan_request(self.api, self.clock.now(), request)
        except Refusal as refusal:
            return Outcome(False, f"{refusal} Nothing was changed.")
        except SigfoxError as error:
            return Outcome(False, f"Could not check the device with Sigfox: {error}. "
                                  "Nothing was changed; try again in a moment.")
        return self._open_workflow(request, plan)

    def _open_workflow(self, request: Request, plan: Plan) -> Outcome:
        now = self.clock.now()
        operation = Operation(request.kind.value)
        needed = self.approvals_needed(operation, len(request.device_ids), plan.needs_approval)
        reason = clean_reason(request.reason)
        state = WorkflowState.AWAITING_APPROVAL if needed else WorkflowState.APPROVED
        workflow_id, busy = self.store.create_workflow(
            kind=request.kind.value,
            state=state.value,
            requester=request.actor.user_id,
            device_ids=request.device_ids,
            device_state=Step.PENDING.value,
            now=now,
            channel=request.target.channel,
            thread=request.target.thread,
            params=plan.params,
        )
        if workflow_id is None:
            return self._join(busy)
        self._record_snapshots(workflow_id, plan.devices, now)
        self.store.audit(
            request.actor.user_id,
            f"request {request.kind.value}",
            now,
            workflow_id=workflow_id,
            details={"devices": list(request.device_ids), "reason": reason,
                     "approvals_needed": needed},
        )
        if not needed:  # no approval: the wait timer (if any) runs from now
            self._schedule(workflow_id, self.start_time(operation, now))
        workflow = self._workflow(workflow_id)
        advice = list(plan.restart_advice)
        details: dict[str, Any] = {"summary": plan.summary, "restart_advice": advice,
                                   "reason": reason}
        said = plan.summary + (f"\nReason: {reason}" if reason else "")
        self._tell(workflow, ProgressKind.REQUESTED, said, **details)
        approval_id = None
        if needed:
            approval_id = self._ask_approval(workflow, request.actor.user_id, plan.summary,
                                             needed, reason)
        message = f"{job_label(workflow_id)}: {plan.summary}"
        if advice:
            message += (
                f"\nA restart would bring {', '.join(advice)} back without deleting its "
                f"history: `/sigfox restart {' '.join(advice)}` is the better first choice."
            )
        if needed:
            message += ("\nWaiting for an approver." if needed == 1 else
                        f"\nWaiting for {needed} approvers other than you.")
        return Outcome(True, message, workflow_id, approval_id, details=details)

    def _join(self, busy: dict[str, int]) -> Outcome:
        holders = sorted(set(busy.values()))
        first = holders[0]
        devices = ", ".join(sorted(busy))
        return Outcome(
            True,
            f"{devices} already has a job in progress: {job_label(first)}. Follow it there; "
            "a second job on the same device is not started.",
            first,
            joined=True,
        )

    def _record_snapshots(self, workflow_id: int, devices: Iterable[Device], now: float) -> None:
        for device in devices:
            location = device.location
            self.store.save_snapshot(
                workflow_id,
                device.id,
                pac=device.pac or "",
                now=now,
                name=device.name or "",
                device_type_id=type_id_of(device),
                group_id=device.group.id if device.group and device.group.id else "",
                lat=location.lat if location else None,
                lng=location.lng if location else None,
                flags={
                    "activable": device.activable,
                    "automaticRenewal": device.automatic_renewal,
                    "prototype": device.prototype,
                    "productCertificate": (
                        device.product_certificate.key if device.product_certificate else None
                    ),
                },
            )

    def _ask_approval(self, workflow: WorkflowRecord, requester: str, summary: str,
                      needed: int = 1, reason: str = "") -> int:
        now = self.clock.now()
        ttl = self.config.policy.approval_ttl.total_seconds()
        operation = Operation(workflow.kind)
        approval_id = self.store.create_approval(
            workflow.id, requester, summary, now, now + ttl, required=needed,
            deciders=self.policy.deciders(operation), request_reason=reason,
            requester_may_approve=self.policy.requester_may_approve(operation, needed))
        self._tell(
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

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, approval_id: int, actor: Actor, approve: bool, reason: str = "") -> Outcome:
        """Approve or reject. Checked against the policy now; the first valid decision wins."""
        approval = self.store.get_approval(approval_id)
        if approval is None:
            return Outcome(False, f"There is no approval request {approval_id}.")
        workflow = self._workflow(approval.workflow_id)
        now = self.clock.now()
        if approval.state != "pending":
            return Outcome(False, self._already_decided(approval.state, approval.decided_by))
        if now >= approval.expires_at:
            self._expire(approval.id, workflow)
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
        self._tell(workflow, ProgressKind.VOTE, f"Approved by <@{actor.user_id}> ({count}).",
                   approval_id=approval_id, decided_by=actor.user_id, **state)
        left = state["required"] - len(approvers)
        return Outcome(True, f"{job_label(workflow.id)}: your approval is recorded ({count}); "
                             f"waiting for {left} more approver(s).", workflow.id, approval_id)

    def _apply_decision(
        self, workflow: WorkflowRecord, actor: Actor, approve: bool, approval_id: int, reason: str
    ) -> Outcome:
        # The vote already moved the workflow (`Store.cast_vote`), in the same transaction.
        now = self.clock.now()
        fresh = self._workflow(workflow.id)
        starts_at = fresh.next_run if approve else now
        verb = "approved" if approve else "rejected"
        self.store.audit(actor.user_id, verb, now, workflow_id=workflow.id, outcome=verb,
                         details={"reason": reason} if reason else None)
        if not approve:
            self.store.release_device_locks(workflow.id)
        text = f"{verb.capitalize()} by <@{actor.user_id}>" + (f": {reason}" if reason else "")
        self._tell(self._workflow(workflow.id), ProgressKind.DECIDED, text,
                   approval_id=approval_id, decision=verb, decided_by=actor.user_id,
                   reason=reason)
        if approve and starts_at > now:
            self.store.set_approval_start(approval_id, starts_at)
            self.report_wait_timer(self._workflow(workflow.id), now)
        if not approve:
            self._tell(self._workflow(workflow.id), ProgressKind.FINISHED,
                       "Rejected: nothing was changed.", outcome="rejected")
        return Outcome(True, f"{job_label(workflow.id)} {verb}.", workflow.id, approval_id)

    @staticmethod
    def _already_decided(state: str, by: str) -> str:
        who = f" by <@{by}>" if by else ""
        return f"This request was already {state}{who}; nothing more to do."

    def cancel(self, workflow_id: int, actor: Actor) -> Outcome:
        workflow = self.store.get_workflow(workflow_id)
        if workflow is None:
            return Outcome(False, f"There is no job {job_label(workflow_id)}: see `/sigfox jobs`.")
        verdict = self.policy.can_cancel(actor, Operation(workflow.kind), workflow.requester)
        if not verdict.allowed:
            return Outcome(False, verdict.reason)
        now = self.clock.now()
        if not self.store.cancel_workflow(
            workflow.id, [s.value for s in CANCELLABLE], now, actor.user_id,
        ) and not self._cancel_untouched(workflow, now):
            return Outcome(False, self._cannot_cancel(self._workflow(workflow.id)))
        self.store.release_device_locks(workflow.id)
        self.store.audit(actor.user_id, "cancel", now, workflow_id=workflow.id)
        self._tell(self._workflow(workflow.id), ProgressKind.FINISHED,
                   f"Cancelled by <@{actor.user_id}>: nothing was changed.", outcome="cancelled")
        return Outcome(True, f"{job_label(workflow.id)} cancelled; nothing was changed.",
                       workflow.id)

    def _cancel_untouched(self, workflow: WorkflowRecord, now: float) -> bool:
        """A running job may still be cancelled while its devices are verified untouched:
        no destructive call sent, or every one sent verified not to have taken effect (an
        unanswered one is checked now, by a read, if it can no longer land)."""
        if workflow.state != WorkflowState.RUNNING:
            return False
        try:
            self._resolve_for_cancel(workflow)
        except SigfoxError:
            return False  # cannot verify now: the message says to try again
        return self.store.intents.cancel_untouched(
            workflow.id, [WorkflowState.RUNNING.value], WorkflowState.CANCELLED.value, now,
            outcome="cancelled")

    def _cannot_cancel(self, workflow: WorkflowRecord) -> str:
        if workflow.state == WorkflowState.RUNNING:
            intents = self.store.intents.of_workflow(workflow.id)
            unanswered = [i for i in intents if i.state == IN_FLIGHT]
            if unanswered:
                wait = max(i.lands_by for i in unanswered) - self.landing_clock.now()
                when = f"in {human.duration(wait)}" if wait > 0 else "now"
                return (
                    f"{workflow.label} cannot be cancelled yet: Sigfox did not answer the "
                    f"{unanswered[-1].action} it was sent, which may still take effect. Ask "
                    f"again {when}: if the bot then finds the device unchanged, the job is "
                    "cancelled with nothing changed."
                )
            return (
                f"{workflow.label} cannot be cancelled: its first change was already sent to "
                "Sigfox and took effect. The bot will finish it (the PAC is recorded), follow "
                "its thread."
            )
        return f"{workflow.label} has already ended ({workflow.state}); there is nothing to cancel."

    def reveal_pac(self, workflow_id: int, device_id: str, actor: Actor) -> Outcome:
        """The recorded PAC, for an approver who asks: private, and audited."""
        workflow = self.store.get_workflow(workflow_id)
        snapshot = self.store.snapshot(workflow_id, device_id) if workflow else None
        if workflow is None or snapshot is None:
            label = job_label(workflow_id)
            return Outcome(False, f"No PAC was recorded for {device_id} in {label}.")
        verdict = self.policy.can_approve(actor, Operation(workflow.kind), "")
        now = self.clock.now()
        self.store.audit(actor.user_id, "reveal pac", now, workflow_id=workflow_id,
                         device_id=device_id, outcome="shown" if verdict.allowed else "denied")
        if not verdict.allowed:
            return Outcome(False, "Only approvers may see a recorded PAC.")
        # In the open: the team sees who looked (never what they saw).
        self._tell(workflow, ProgressKind.STEP_DONE,
                   f"<@{actor.user_id}> viewed the PAC of {device_id}.", pac_viewed=device_id)
        return Outcome(True, snapshot.current_pac, workflow_id, details={"device_id": device_id})

    # -- a release wait past its timeout ------------------------------------------------------

    def keep_waiting_for_release(self, workflow_id: int, device_id: str, actor: Actor) -> Outcome:
        """An approver chooses to wait another `release_timeout` for Sigfox to free the id."""
        step, refusal = self._overdue_release(workflow_id, device_id, actor)
        if step is None:
            return Outcome(False, refusal, workflow_id)
        now = self.clock.now()
        timeout = self.config.timing.release_timeout.total_seconds()
        data = {**step.data, "release_overdue": False, "release_deadline": now + timeout}
        self.store.update_device_step(workflow_id, device_id, now, data=data)
        self.store.audit(actor.user_id, "keep waiting for release", now, workflow_id=workflow_id,
                         device_id=device_id)
        text = (f"<@{actor.user_id}> chose to keep waiting for Sigfox to release {device_id}, "
                f"another {elapsed_text(timeout)}.")
        self._tell(self._workflow(workflow_id), ProgressKind.STEP_DONE, text, device_id=device_id)
        return Outcome(True, text, workflow_id)

    def stop_waiting_for_release(self, workflow_id: int, device_id: str, actor: Actor
                                 ) -> Outcome:
        """An approver stops the wait: the step fails (the device stays deleted and unregistered)
        and the PAC goes to that approver alone (`details["pac"]`), to register it by hand."""
        step, refusal = self._overdue_release(workflow_id, device_id, actor)
        if step is None:
            return Outcome(False, refusal, workflow_id)
        workflow = self._workflow(workflow_id)
        self._fail(workflow, device_id, "re-register",
                   f"<@{actor.user_id}> stopped waiting while Sigfox still held the id: "
                   f"{device_id} is deleted and not registered. Register it in the Sigfox "
                   "portal with its recorded PAC (Show PAC, approvers only).")
        self._finish_if_done(self._workflow(workflow_id))
        shown = self.reveal_pac(workflow_id, device_id, actor)
        details = {"device_id": device_id, "pac": shown.message} if shown.ok else {}
        return Outcome(True, f"Stopped waiting for {device_id}; register it in the Sigfox "
                             "portal with the PAC shown to you only.", workflow_id,
                       details=details)

    def _overdue_release(self, workflow_id: int, device_id: str, actor: Actor
                         ) -> tuple[Any, str]:
        workflow = self.store.get_workflow(workflow_id)
        step = self.store.device_step(workflow_id, device_id) if workflow else None
        if workflow is None or step is None or step.state != Step.AWAITING_RELEASE:
            return None, (f"{job_label(workflow_id)} is not waiting for Sigfox to release "
                          f"{device_id} any more; nothing to decide.")
        if not self.policy.can_approve(actor, Operation(workflow.kind), "").allowed:
            return None, "Only approvers may decide about a release wait."
        return step, ""

    # -- advancing ---------------------------------------------------------------------------

    def resume(self) -> int:
        """At start: free leases left by a dead process and advance everything unfinished."""
        self.store.break_leases()
        # An approved job keeps its start (its wait timer ends when it ends, restart or not).
        for workflow in self.store.list_workflows(states=[s.value for s in ACTIVE], limit=100000):
            if workflow.state == WorkflowState.RUNNING:
                self.store.update_workflow(workflow.id, self.clock.now(), next_run=0)
        return self.tick()

    def tick(self, budget: float | None = None) -> int:
        """Advance every workflow that can move now; returns how many were looked at.

        Nothing in it sleeps: a step waiting on Sigfox records when to run again and the tick
        moves on. `budget` (real seconds) bounds it: once spent, no further step starts, and
        what is still due goes first at the next tick (due work is taken oldest first).
        `last_tick` keeps what it did and its slowest step."""
        self.last_tick = stats = TickStats(self.stopwatch, budget)
        self._expire_approvals()
        self.count_down_wait_timers()
        now = self.clock.now()
        due = self.store.workflows_due(
            [WorkflowState.APPROVED.value, WorkflowState.RUNNING.value], now
        )
        for looked, workflow_id in enumerate(due):
            if stats.out_of_time():
                stats.left_due = len(due) - looked
                return looked
            self.advance(workflow_id, stats)
        return len(due)

    def advance(self, workflow_id: int, stats: TickStats | None = None) -> None:
        if not self.store.claim_workflow(workflow_id, self.owner, self.clock.now(), LEASE_SECONDS):
            return
        try:
            self._advance_claimed(self._workflow(workflow_id), stats or TickStats(self.stopwatch))
        finally:
            self.store.release_workflow(workflow_id, self.owner)

    def _advance_claimed(self, workflow: WorkflowRecord, stats: TickStats) -> None:
        now = self.clock.now()
        if workflow.state == WorkflowState.APPROVED:
            if not self.store.cas_workflow(
                workflow.id, [WorkflowState.APPROVED.value], WorkflowState.RUNNING.value, now
            ):
                return
            workflow = self._workflow(workflow.id)
        if workflow.state != WorkflowState.RUNNING:
            return
        runner = self._runner(Kind(workflow.kind))
        now = self.clock.now()
        due = [step for step in self.store.workflow_devices(workflow.id)
               if not Step(step.state).finished and step.next_run <= now]
        self._run_steps(workflow, due, runner, stats)
        self._finish_if_done(self._workflow(workflow.id))

    def _run_steps(self, workflow: WorkflowRecord, due: list[DeviceStep],
                   runner: Callable[[WorkflowRecord, DeviceStep], None], stats: TickStats
                   ) -> None:
        """The due steps side by side, `concurrent_steps` at most: each spends its time waiting
        for Sigfox's answers, so a thousand-device job ticks in steps x latency / width, not
        steps x latency. Nothing else changes: every call still goes through the client's
        pacing (per endpoint, per device), and each step moves by compare-and-set, so a step
        that another thread (or process) moved meanwhile does not run twice."""
        def run(step: DeviceStep) -> None:
            # Past the tick's budget a step does not start: it stays due, and
            # `_finish_if_done` schedules the job for now, so the next tick takes it.
            if not stats.out_of_time():
                stats.timed(workflow.label, step.device_id, step.state,
                            partial(self._run_step, workflow, step.device_id, runner))

        width = min(self.config.timing.concurrent_steps, len(due))
        if width <= 1:
            for step in due:
                run(step)
            return
        with ThreadPoolExecutor(max_workers=width,
                                thread_name_prefix=f"{workflow.label}-steps") as pool:
            for _ in pool.map(run, due):
                pass

    def _run_step(
        self,
        workflow: WorkflowRecord,
        device_id: str,
        runner: Callable[[WorkflowRecord, DeviceStep], None],
    ) -> None:
        step = self.store.device_step(workflow.id, device_id)
        if step is None:
            return
        try:
            runner(workflow, step)
        except SigfoxError as error:
            self._retry_later(workflow, device_id, error)

    def _retry_later(self, workflow: WorkflowRecord, device_id: str, error: SigfoxError) -> None:
        """A fault (429, 5xx, timeout, a limit): nothing is lost; the step checks the backend
        next time. When the client said when the call may be made (`retry_at`), that date is
        the step's next run, and the thread says what it waits for until when; the tick has
        moved on to the next device meanwhile."""
        step = self.store.device_step(workflow.id, device_id)
        attempts = (step.attempts if step else 0) + 1
        now = self.clock.now()
        if error.retry_at is not None:
            next_run = max(error.retry_at, now)
        else:
            next_run = now + min(MAX_BACKOFF_SECONDS, self._tick_seconds() * 2 ** min(attempts, 10))
        landing = self._landing_wait_until(device_id)  # an unanswered call: read only after
        if landing is not None:
            next_run = max(next_run, landing)
        self.store.update_device_step(
            workflow.id, device_id, now, attempts=attempts, next_run=next_run,
            last_error=str(error),
        )
        self._schedule(workflow.id, next_run)
        log.warning("%s %s: %s; retrying in %.0fs", workflow.label, device_id,
                    type(error).__name__, next_run - now)
        if error.retry_at is not None and step is not None:
            self._report_sigfox_wait(workflow, step, error.waiting_for, next_run)

    def _report_sigfox_wait(self, workflow: WorkflowRecord, step: DeviceStep, waiting_for: str,
                            until: float) -> None:
        """"Waiting for Sigfox's per-device limit until 10:42": said when the wait starts or
        changes, and again only when it moved on by more than a minute (a 429 throttle retried
        every few seconds edits one line, it does not fill the thread)."""
        told = step.data.get("sigfox_wait") or {}
        if told.get("for") == waiting_for and until <= float(told.get("until", 0)) + 60:
            return
        fresh = self.store.device_step(workflow.id, step.device_id)
        data = {**(fresh.data if fresh else step.data),
                "sigfox_wait": {"for": waiting_for, "until": until}}
        self.store.update_device_step(workflow.id, step.device_id, self.clock.now(), data=data)
        when = clock_time(until, self.config.alerts.tz, self.clock.now())
        self._tell(workflow, ProgressKind.WAITING, f"Waiting for {waiting_for} until {when}.",
                   device_id=step.device_id, wait="sigfox", waiting_for=waiting_for,
                   retry_at=until)

    # -- the first message ---------------------------------------------------------------------

    def note_uplink(self, device_id: str) -> list[int]:
        """The backend's DATA callback: make every renewal waiting for this device due now.
        Reads nothing from Sigfox, so the callback's HTTP answer is immediate; returns the
        workflows to advance."""
        device_id = device_id.upper()
        steps = self.store.active_steps_for_device(device_id, [Step.AWAITING_UPLINK.value])
        now = self.clock.now()
        for step in steps:
            self.store.update_device_step(step.workflow_id, device_id, now, next_run=now)
            self.store.update_workflow(step.workflow_id, now, next_run=now)
        return [s.workflow_id for s in steps]

    def handle_uplink(self, device_id: str) -> list[int]:
        """Note the uplink and advance the waiting renewals at once (CLI, demo, tests)."""
        workflow_ids = self.note_uplink(device_id)
        for workflow_id in workflow_ids:
            self.advance(workflow_id)
        return workflow_ids

    def _finish_if_done(self, workflow: WorkflowRecord) -> None:
        steps = self.store.workflow_devices(workflow.id)
        if not all(Step(s.state).finished for s in steps):
            pending = [s.next_run for s in steps if not Step(s.state).finished]
            self._schedule(workflow.id, min(pending))
            return
        failed = [s for s in steps if s.state == Step.FAILED]
        state = WorkflowState.FAILED if failed else WorkflowState.DONE
        if not self.store.cas_workflow(workflow.id, [WorkflowState.RUNNING.value], state.value,
                                       self.clock.now(), outcome=state.value):
            return
        self.store.release_device_locks(workflow.id)
        self._announce_renewed(workflow, steps)
        summary = _summary(Kind(workflow.kind), steps)
        kind = ProgressKind.FAILED if failed else ProgressKind.FINISHED
        self._tell(self._workflow(workflow.id), kind, summary, outcome=state.value,
                   results={s.device_id: {"state": s.state, **public_details(s.data),
                                          "error": s.last_error} for s in steps})

    def _announce_renewed(self, workflow: WorkflowRecord, steps: Sequence[DeviceStep]) -> None:
        if self.on_renewed is None or workflow.kind not in (Kind.RENEW, Kind.RESTART):
            return
        for step in steps:
            if step.state == Step.DONE:
                try:
                    self.on_renewed(step.device_id)
                except Exception:  # alert bookkeeping must not undo a finished renewal
                    log.exception("could not mark %s renewed", step.device_id)

    def _expire_approvals(self) -> None:
        now = self.clock.now()
        for approval in self.store.pending_approvals():
            if approval.expires_at <= now:
                self._expire(approval.id, self._workflow(approval.workflow_id))
            else:
                self.escalate_and_remind(approval)

    def _expire(self, approval_id: int, workflow: WorkflowRecord) -> None:
        now = self.clock.now()
        if self.store.expire_approval(approval_id, now):  # the job expires with it
            self.store.release_device_locks(workflow.id)
            self._tell(self._workflow(workflow.id), ProgressKind.FINISHED,
                       "The approval request expired: nothing was deleted. Ask again if it is "
                       "still needed.", outcome="expired", approval_id=approval_id)

    # -- reads for people ---------------------------------------------------------------------

    def device_status(self, device_id: str) -> DeviceStatus | None:
        """Raises BackendUnavailable when Sigfox cannot answer."""
        return read_device_status(self.api, device_id)

    def approval_request(self, approval_id: int) -> ApprovalRequest | None:
        """An approval request as the people deciding see it (a read model, for the edges)."""
        return approval_request(self.store, approval_id)

    def approvals_awaiting(self, actor: Actor) -> list[ApprovalRequest]:
        """The pending requests whose decision `actor` may take now, oldest first."""
        waiting = (approval_request(self.store, a.id) for a in self.store.pending_approvals()
                   if not self.may_decide(a.id, actor))
        return [request for request in waiting if request is not None]

    def job_devices(self, workflow_id: int) -> tuple[str, ...]:
        """The devices of a job, in the order they were asked for."""
        return tuple(s.device_id for s in self.store.workflow_devices(workflow_id))

    def device_history(self, device_id: str, limit: int = 40) -> list[EventRecord]:
        """What the bot did to a device, newest last (`/sigfox history`)."""
        return self.store.device_history(device_id, limit=limit)

    def workflow_counts(self) -> dict[str, int]:
        """Workflows by state (metrics, health); raises when the database is unusable."""
        return self.store.count_workflows_by_state()

    def approvals_waiting(self) -> int:
        return len(self.store.pending_approvals())

    def jobs(self, active_only: bool = True) -> list[WorkflowRecord]:
        states = [s.value for s in ACTIVE] if active_only else None
        return self.store.list_workflows(states=states)

    # -- callbacks after a move to another device type --------------------------------------

    _copy_guard = threading.Lock()  # two clicks at once must not create each callback twice

    def copy_callbacks(self, workflow_id: int, device_id: str, actor: Actor) -> Outcome:
        """Create on the device's new type the callbacks its previous type had and the new one
        lacks (what `_renew_check_callbacks` offered). Approvers only: it changes what every
        device of that type sends where. Only what is still missing is created, so a second
        click, or a retry after a failure half-way, copies nothing twice."""
        workflow = self.store.get_workflow(workflow_id)
        step = self.store.device_step(workflow_id, device_id) if workflow else None
        source = step.data.get("copy_callbacks_from", "") if step else ""
        target = target_type_id(workflow, device_id) if workflow else ""
        if workflow is None or not source or not target:
            return Outcome(False, f"{job_label(workflow_id)} offered no callbacks to copy for "
                                  f"{device_id}.")
        if not self.policy.can_approve(actor, Operation(workflow.kind), "").allowed:
            return Outcome(False, "Only approvers may copy callbacks between device types.")
        try:
            with self._copy_guard:
                copied = self._copy_missing_callbacks(workflow, device_id, source, target)
        except (SigfoxError, ValueError) as error:
            return Outcome(False, f"Copying the callbacks failed: {error}. Those already "
                                  "copied stay; click again to copy the rest.", workflow_id)
        self.store.audit(actor.user_id, "copy callbacks", self.clock.now(),
                         workflow_id=workflow_id, device_id=device_id, outcome="ok",
                         details={"copied": copied, "from": source, "to": target})
        if not copied:
            return Outcome(True, "The new device type already has every callback of the "
                                 "previous one; nothing was copied.", workflow_id)
        text = (f"<@{actor.user_id}> copied {copied} callback(s) from the previous device type "
                "to the new one.")
        self._tell(workflow, ProgressKind.STEP_DONE, text, device_id=device_id)
        return Outcome(True, text, workflow_id, details={"copied": copied})

    def _copy_missing_callbacks(self, workflow: WorkflowRecord, device_id: str, source: str,
                                target: str) -> int:
        previous = self._callbacks(workflow, device_id, source)
        missing = missing_callbacks(previous, self._callbacks(workflow, device_id, target))
        for callback in missing:
            self._call(workflow, device_id, "copy callback", self.api.create_callback, target,
                       callback.to_create())
        return len(missing)

def _summary(kind: Kind, steps: Sequence[DeviceStep]) -> str:
    done = [s for s in steps if s.state == Step.DONE]
    failed = [s for s in steps if s.state == Step.FAILED]
    head = f"{kind.value.capitalize()} finished: {len(done)} of {len(steps)} device(s) done"
    lines = [head + (f", {len(failed)} failed." if failed else ".")]
    for step in done:
        if step.data.get("token_end"):
            lines.append(f"• {step.device_id}: token OK until {day(step.data['token_end'])}")
    for step in failed:
        lines.append(f"• {step.device_id}: {step.last_error}")
    return "\n".join(lines)
