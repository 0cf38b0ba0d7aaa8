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
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sigfox_chatops.commands.config import BotConfig
from sigfox_chatops.commands.planning import Plan, Request, plan_request, type_id_of
from sigfox_chatops.commands.policy import Actor, Operation, Policy
from sigfox_chatops.commands.ports import Clock, Notifier, Progress, ProgressKind, Target
from sigfox_chatops.commands.preflight import (
    Refusal,
    contract_of,
    day,
    is_deletable,
)
from sigfox_chatops.commands.states import (
    ACTIVE,
    CANCELLABLE,
    Kind,
    Step,
    WorkflowState,
)
from sigfox_chatops.commands.status import DeviceStatus, read_device_status
from sigfox_chatops.sigfox.errors import (
    SigfoxBadRequest,
    SigfoxConflict,
    SigfoxError,
    SigfoxForbidden,
    SigfoxNotFound,
)
from sigfox_chatops.sigfox.models import BulkJob, Device, DeviceCreate, JobKind, TokenState
from sigfox_chatops.storage.records import WorkflowRecord, job_label
from sigfox_chatops.storage.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

LEASE_SECONDS = 300.0
JOB_POLL_SECONDS = 5.0
JOB_TIMEOUT_SECONDS = 3600.0
RESUBMIT_AFTER_SECONDS = 60.0
DELETE_CONFIRM_TIMEOUT_SECONDS = 3600.0
MAX_BACKOFF_SECONDS = 900.0
WAIT_REPORT_FIRST = 300.0
WAIT_REPORT_MAX = 12 * 3600.0


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


class Core:
    """The operations of the bot, free of Slack: the Slack app, the CLI and the demo drive it."""

    def __init__(
        self,
        *,
        api: Any,
        store: Store,
        notifier: Notifier,
        clock: Clock,
        config: BotConfig,
        owner: str | None = None,
        on_renewed: Callable[[str], object] | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.config = config
        self.policy = Policy(config)
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Told the id of every device renewed or restarted through the bot (alerts resolve).
        self.on_renewed = on_renewed

    # -- requests ----------------------------------------------------------------------------

    def request(self, request: Request) -> Outcome:
        operation = Operation(request.kind.value)
        decision = self.policy.can_request(request.actor, operation)
        if not decision.allowed:
            return Outcome(False, decision.reason)
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
        state = WorkflowState.AWAITING_APPROVAL if plan.needs_approval else WorkflowState.APPROVED
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
            details={"devices": list(request.device_ids)},
        )
        workflow = self._workflow(workflow_id)
        advice = list(plan.restart_advice)
        details = {"summary": plan.summary, "restart_advice": advice}
        self._tell(workflow, ProgressKind.REQUESTED, plan.summary, **details)
        approval_id = None
        if plan.needs_approval:
            approval_id = self._ask_approval(workflow, request.actor.user_id, plan.summary)
        message = f"{job_label(workflow_id)}: {plan.summary}"
        if advice:
            message += (
                f"\nA restart would bring {', '.join(advice)} back without deleting its "
                f"history: `/sigfox restart {' '.join(advice)}` is the better first choice."
            )
        if plan.needs_approval:
            message += "\nWaiting for an approver."
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

    def _ask_approval(self, workflow: WorkflowRecord, requester: str, summary: str) -> int:
        now = self.clock.now()
        ttl = self.config.policy.approval_ttl.total_seconds()
        approval_id = self.store.create_approval(workflow.id, requester, summary, now, now + ttl)
        self._tell(
            workflow,
            ProgressKind.APPROVAL_NEEDED,
            f"Approval needed: {summary}",
            approval_id=approval_id,
            expires_at=now + ttl,
            summary=summary,
            requester=requester,
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
        verdict = self.policy.can_approve(actor, Operation(workflow.kind), approval.requested_by)
        if not verdict.allowed:
            self.store.audit(actor.user_id, "approval refused", now, workflow_id=workflow.id,
                             outcome="denied", details={"reason": verdict.reason})
            return Outcome(False, verdict.reason, workflow.id, approval_id)
        new_state = "approved" if approve else "rejected"
        if not self.store.decide_approval(approval_id, new_state, actor.user_id, now, reason):
            fresh = self.store.get_approval(approval_id)
            state, by = (fresh.state, fresh.decided_by) if fresh else ("decided", "")
            return Outcome(False, self._already_decided(state, by))
        return self._apply_decision(workflow, actor, approve, approval_id, reason)

    def _apply_decision(
        self, workflow: WorkflowRecord, actor: Actor, approve: bool, approval_id: int, reason: str
    ) -> Outcome:
        now = self.clock.now()
        target = WorkflowState.APPROVED if approve else WorkflowState.REJECTED
        moved = self.store.cas_workflow(
            workflow.id, [WorkflowState.AWAITING_APPROVAL.value], target.value, now, next_run=now
        )
        verb = "approved" if approve else "rejected"
        self.store.audit(actor.user_id, verb, now, workflow_id=workflow.id, outcome=verb)
        if not moved:
            return Outcome(False, "This job was cancelled meanwhile; nothing will run.")
        if not approve:
            self.store.release_device_locks(workflow.id)
        text = f"{verb.capitalize()} by <@{actor.user_id}>" + (f": {reason}" if reason else "")
        self._tell(self._workflow(workflow.id), ProgressKind.DECIDED, text,
                   approval_id=approval_id, decision=verb, decided_by=actor.user_id)
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
        if not self.store.cas_workflow(
            workflow.id, [s.value for s in CANCELLABLE], WorkflowState.CANCELLED.value, now,
            outcome="cancelled",
        ):
            return Outcome(False, self._cannot_cancel(self._workflow(workflow.id)))
        approval = self.store.approval_for(workflow.id)
        if approval:
            self.store.decide_approval(approval.id, "cancelled", actor.user_id, now)
        self.store.release_device_locks(workflow.id)
        self.store.audit(actor.user_id, "cancel", now, workflow_id=workflow.id)
        self._tell(self._workflow(workflow.id), ProgressKind.FINISHED,
                   f"Cancelled by <@{actor.user_id}>: nothing was changed.", outcome="cancelled")
        return Outcome(True, f"{job_label(workflow.id)} cancelled; nothing was changed.",
                       workflow.id)

    @staticmethod
    def _cannot_cancel(workflow: WorkflowRecord) -> str:
        if workflow.state == WorkflowState.RUNNING:
            return (
                f"{workflow.label} cannot be cancelled: its first change was already sent to "
                "Sigfox. The bot will finish it (the PAC is recorded), follow its thread."
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
        return Outcome(True, snapshot.current_pac, workflow_id, details={"device_id": device_id})

    # -- advancing ---------------------------------------------------------------------------

    def resume(self) -> int:
        """At start: free leases left by a dead process and advance everything unfinished."""
        self.store.break_leases()
        for workflow in self.store.list_workflows(states=[s.value for s in ACTIVE], limit=100000):
            if workflow.state in (WorkflowState.APPROVED, WorkflowState.RUNNING):
                self.store.update_workflow(workflow.id, self.clock.now(), next_run=0)
        return self.tick()

    def tick(self) -> int:
        """Advance every workflow that can move now; returns how many were looked at."""
        self._expire_approvals()
        now = self.clock.now()
        due = self.store.workflows_due(
            [WorkflowState.APPROVED.value, WorkflowState.RUNNING.value], now
        )
        for workflow_id in due:
            self.advance(workflow_id)
        return len(due)

    def advance(self, workflow_id: int) -> None:
        if not self.store.claim_workflow(workflow_id, self.owner, self.clock.now(), LEASE_SECONDS):
            return
        try:
            self._advance_claimed(self._workflow(workflow_id))
        finally:
            self.store.release_workflow(workflow_id, self.owner)

    def _advance_claimed(self, workflow: WorkflowRecord) -> None:
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
        for step in self.store.workflow_devices(workflow.id):
            if not Step(step.state).finished and step.next_run <= self.clock.now():
                self._run_step(workflow, step.device_id, runner)
        self._finish_if_done(self._workflow(workflow.id))

    def _run_step(self, workflow: WorkflowRecord, device_id: str, runner: Callable) -> None:
        step = self.store.device_step(workflow.id, device_id)
        if step is None:
            return
        try:
            runner(workflow, step)
        except SigfoxError as error:
            self._retry_later(workflow, device_id, error)

    def _retry_later(self, workflow: WorkflowRecord, device_id: str, error: SigfoxError) -> None:
        """A fault (429, 5xx, timeout): nothing is lost; the step checks the backend next time."""
        step = self.store.device_step(workflow.id, device_id)
        attempts = (step.attempts if step else 0) + 1
        delay = min(MAX_BACKOFF_SECONDS, self._tick_seconds() * 2 ** min(attempts, 10))
        now = self.clock.now()
        self.store.update_device_step(
            workflow.id, device_id, now, attempts=attempts, next_run=now + delay,
            last_error=str(error),
        )
        self._schedule(workflow.id, now + delay)
        log.warning("%s %s: %s; retrying in %.0fs", workflow.label, device_id,
                    type(error).__name__, delay)

    def _runner(self, kind: Kind) -> Callable[[WorkflowRecord, Any], None]:
        return {
            Kind.RENEW: self._step_renew,
            Kind.DELETE: self._step_delete,
            Kind.TRANSFER: self._step_transfer,
            Kind.RESTART: self._step_restart,
            Kind.UNSUBSCRIBE: self._step_unsubscribe,
        }[kind]

    # -- renew and delete --------------------------------------------------------------------

    def _step_delete(self, workflow: WorkflowRecord, step: Any) -> None:
        if self._delete_once(workflow, step):
            self._move(workflow, step.device_id, Step.DELETING, Step.DONE,
                       "Deleted; Sigfox no longer lists it. The PAC is recorded.")

    def _step_renew(self, workflow: WorkflowRecord, step: Any) -> None:
        handlers = {
            Step.PENDING: self._renew_delete,
            Step.DELETING: self._renew_delete,
            Step.AWAITING_RELEASE: self._renew_register,
            Step.REGISTERED: self._renew_report_contract,
            Step.AWAITING_UPLINK: self._renew_await_uplink,
            Step.CHECKING_CALLBACKS: self._renew_check_callbacks,
        }
        handlers[Step(step.state)](workflow, step)

    def _delete_once(self, workflow: WorkflowRecord, step: Any) -> bool:
        """Send the delete at most once; True once a read shows the device gone from Sigfox."""
        device_id = step.device_id
        if step.state == Step.PENDING and not self.store.cas_device(
            workflow.id, device_id, Step.PENDING, Step.DELETING, self.clock.now()
        ):
            return False
        device = self._call(workflow, device_id, "read device", self.api.find_device, device_id)
        if device is None:
            return True  # gone: our delete went through (maybe before a crash), or someone's
        sent_at = step.data.get("delete_sent_at")
        if sent_at is not None:
            return self._await_disappearance(workflow, device_id, float(sent_at))
        if not is_deletable(device):
            state = device.token.state.name if device.token and device.token.state else "unknown"
            self._fail(workflow, device_id, "delete",
                       f"{device_id} changed since the request: its token is now {state}; it "
                       "was not deleted. Check it with `/sigfox status`.")
            return False
        try:
            self._call(workflow, device_id, "delete", self.api.delete_device, device_id)
        except SigfoxNotFound:
            return True
        except (SigfoxBadRequest, SigfoxForbidden, SigfoxConflict) as error:
            self._fail(workflow, device_id, "delete", f"Sigfox refused the delete: {error}")
            return False
        now = self.clock.now()
        fresh = self.store.device_step(workflow.id, device_id)
        self.store.update_device_step(workflow.id, device_id, now,
                                      data={**(fresh.data if fresh else {}), "delete_sent_at": now})
        gone = self._call(workflow, device_id, "read device", self.api.find_device, device_id)
        return gone is None or self._await_disappearance(workflow, device_id, now)

    def _await_disappearance(self, workflow: WorkflowRecord, device_id: str, sent_at: float
                             ) -> bool:
        """Sigfox accepted the delete but still lists the device: look again later, and never
        send the delete a second time."""
        now = self.clock.now()
        if now - sent_at > DELETE_CONFIRM_TIMEOUT_SECONDS:
            self._fail(workflow, device_id, "delete",
                       f"Sigfox accepted the delete {_minutes(now - sent_at)} ago but still lists "
                       "the device. Check it in the Sigfox portal; the PAC is recorded.")
            return False
        retry = self._tick_seconds()
        self.store.update_device_step(workflow.id, device_id, now, next_run=now + retry)
        self._schedule(workflow.id, now + retry)
        return False

    def _renew_delete(self, workflow: WorkflowRecord, step: Any) -> None:
        if not self._delete_once(workflow, step):
            return
        now = self.clock.now()
        data = {**step.data, "deleted_at": now}
        if self._move(workflow, step.device_id, Step.DELETING, Step.AWAITING_RELEASE,
                      "Deleted. Waiting for Sigfox to release the id before registering it "
                      "again.", data=data):
            self._renew_register(workflow, self.store.device_step(workflow.id, step.device_id))

    def _renew_register(self, workflow: WorkflowRecord, step: Any) -> None:
        device_id = step.device_id
        snapshot = self.store.snapshot(workflow.id, device_id)
        assert snapshot is not None  # taken before the approval; the schema keeps it
        existing = self._call(workflow, device_id, "read device", self.api.find_device, device_id)
        if existing is None:
            try:
                self._call(workflow, device_id, "create", self.api.create_device,
                           self._creation(workflow, snapshot))
            except SigfoxConflict:
                self._wait_for_release(workflow, step)
                return
            except SigfoxBadRequest as error:
                self._fail(workflow, device_id, "re-register",
                           f"Sigfox refused to register it again: {error}")
                return
            existing = self._call(workflow, device_id, "read device", self.api.find_device,
                                  device_id)
        if existing is not None and existing.pac and existing.pac != snapshot.pac:
            self.store.record_new_pac(workflow.id, device_id, existing.pac)
        data = {**step.data, "registered_at": self.clock.now()}
        if self._move(workflow, device_id, Step.AWAITING_RELEASE, Step.REGISTERED,
                      "Registered again with the recorded PAC; its token is not consumed yet.",
                      data=data):
            self._renew_report_contract(workflow, self.store.device_step(workflow.id, device_id))

    def _creation(self, workflow: WorkflowRecord, snapshot: Any) -> DeviceCreate:
        targets = workflow.params.get("targets", {})
        flags = snapshot.flags
        return DeviceCreate(
            id=snapshot.device_id,
            name=snapshot.name or snapshot.device_id,
            device_type_id=targets.get(snapshot.device_id, snapshot.device_type_id),
            pac=snapshot.current_pac,
            lat=snapshot.lat,
            lng=snapshot.lng,
            prototype=flags.get("prototype"),
            automatic_renewal=flags.get("automaticRenewal"),
            activable=flags.get("activable"),
            product_certificate=flags.get("productCertificate"),
        )

    def _wait_for_release(self, workflow: WorkflowRecord, step: Any) -> None:
        now = self.clock.now()
        deleted_at = step.data.get("deleted_at", now)
        waited = now - deleted_at
        if waited > self.config.timing.release_timeout.total_seconds():
            self._fail(workflow, step.device_id, "re-register",
                       f"Sigfox still holds the id {_minutes(waited)} after the delete. The PAC "
                       "is recorded: an approver can see it with the Show PAC button and register "
                       "the device in the portal, or run `/sigfox renew` again later.")
            return
        retry = self.config.timing.release_retry.total_seconds()
        self.store.update_device_step(workflow.id, step.device_id, now, next_run=now + retry,
                                      attempts=step.attempts + 1)
        self._schedule(workflow.id, now + retry)
        self._report_wait(workflow, step, waited, "release",
                          f"Waiting for Sigfox to release the id, {_minutes(waited)}")

    def _report_wait(
        self, workflow: WorkflowRecord, step: Any, waited: float, wait: str, text: str
    ) -> None:
        """Say a wait goes on at growing intervals (5 min, 10, 20, …, then twice a day), so a
        week-long wait for a first message is a handful of lines, not two thousand."""
        key = f"reported_{wait}"
        last = float(step.data.get(key, -1.0))
        due = 0.0 if last < 0 else min(max(last, WAIT_REPORT_FIRST) * 2, WAIT_REPORT_MAX + last)
        if waited < due:
            return
        self.store.update_device_step(workflow.id, step.device_id, self.clock.now(),
                                      data={**step.data, key: waited})
        self._tell(workflow, ProgressKind.WAITING, text, device_id=step.device_id,
                   elapsed=waited, wait=wait)

    def _renew_report_contract(self, workflow: WorkflowRecord, step: Any) -> None:
        device_id = step.device_id
        type_id = workflow.params.get("targets", {}).get(device_id, "")
        device_type = self._call(workflow, device_id, "read device type",
                                 self.api.get_device_type, type_id)
        contract = contract_of(self.api, device_type)
        end = contract.end_time
        left = contract.tokens_left
        text = (
            f"Contract {contract.name or contract.id} ends {day(end)}"
            + (f", {left} tokens left" if left is not None else "")
            + ". Waiting for the device's first message."
        )
        data = {**step.data, "contract": contract.name or contract.id, "contract_end": end}
        self._move(workflow, device_id, Step.REGISTERED, Step.AWAITING_UPLINK, text, data=data)

    def _renew_await_uplink(self, workflow: WorkflowRecord, step: Any) -> None:
        device_id = step.device_id
        device = self._call(workflow, device_id, "read device", self.api.find_device, device_id)
        registered_ms = step.data.get("registered_at", 0) * 1000
        heard = device is not None and (
            (device.token is not None and device.token.state == TokenState.OK)
            or (device.last_com or 0) >= registered_ms
        )
        if heard and device is not None:
            token_end = device.token.end if device.token else None
            data = {**step.data, "token_end": token_end}
            text = "First message received" + (
                f"; token OK until {day(token_end)}." if token_end else "."
            )
            if self._move(workflow, device_id, Step.AWAITING_UPLINK, Step.CHECKING_CALLBACKS,
                          text, data=data):
                self._renew_check_callbacks(
                    workflow, self.store.device_step(workflow.id, device_id)
                )
            return
        self._keep_waiting_for_uplink(workflow, step)

    def _keep_waiting_for_uplink(self, workflow: WorkflowRecord, step: Any) -> None:
        now = self.clock.now()
        waited = now - step.data.get("registered_at", now)
        if waited > self.config.timing.first_message_timeout.total_seconds():
            self._fail(workflow, step.device_id, "first message",
                       f"Registered, but no message arrived in {_minutes(waited)}. Check the "
                       "device's power and coverage; it will take its token at its first message.")
            return
        poll = self.config.timing.first_message_poll.total_seconds()
        self.store.update_device_step(workflow.id, step.device_id, now, next_run=now + poll)
        self._schedule(workflow.id, now + poll)
        self._report_wait(workflow, step, waited, "uplink",
                          f"Waiting for the first message, {_minutes(waited)}")

    def _renew_check_callbacks(self, workflow: WorkflowRecord, step: Any) -> None:
        device_id = step.device_id
        snapshot = self.store.snapshot(workflow.id, device_id)
        type_id = workflow.params.get("targets", {}).get(device_id, "")
        callbacks = self._callbacks(workflow, device_id, type_id)
        enabled = [c for c in callbacks if c.enabled]
        if callbacks:
            text = (f"Callbacks checked: {len(enabled)} of the device type's {len(callbacks)} "
                    "callbacks are enabled and will receive its messages.")
        else:
            text = ("Callbacks checked: the device type has none, so its messages go nowhere "
                    "but the Sigfox portal. Declare one there if they should.")
        details: dict[str, Any] = {"callbacks": len(callbacks), "enabled": len(enabled)}
        if snapshot and snapshot.device_type_id and snapshot.device_type_id != type_id:
            previous = self._callbacks(workflow, device_id, snapshot.device_type_id)
            missing = _missing_callbacks(previous, callbacks)
            if missing:
                text += (
                    f" The previous device type had {len(missing)} callbacks the new one lacks: "
                    "an approver can copy them."
                )
                details["copy_callbacks_from"] = snapshot.device_type_id
        data = {**step.data, **details}
        self._move(workflow, device_id, Step.CHECKING_CALLBACKS, Step.DONE, text, data=data)

    def _callbacks(self, workflow: WorkflowRecord, device_id: str, type_id: str) -> list[Any]:
        return list(self._call(workflow, device_id, "read callbacks",
                               lambda: list(self.api.iter_device_type_callbacks(type_id))))

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

    # -- transfer and restart (bulk jobs) -----------------------------------------------------

    def _step_transfer(self, workflow: WorkflowRecord, step: Any) -> None:
        target = workflow.params["device_type_id"]

        def arrived(device: Device | None) -> bool:
            return device is not None and type_id_of(device) == target

        def submit(device_ids: list[str]) -> str:
            return self.api.bulk_transfer(target, device_ids)

        self._bulk_step(workflow, step, JobKind.TRANSFER, submit, arrived,
                        f"Transferred to {workflow.params.get('device_type_name')}.")

    def _step_restart(self, workflow: WorkflowRecord, step: Any) -> None:
        def back(device: Device | None) -> bool:
            return (
                device is not None
                and device.token is not None
                and device.token.state == TokenState.OK
            )

        self._bulk_step(workflow, step, JobKind.RESTART, self.api.bulk_restart, back,
                        "Restarted: the token is OK again.")

    def _bulk_step(
        self,
        workflow: WorkflowRecord,
        step: Any,
        kind: JobKind,
        submit: Callable[[list[str]], str],
        reached: Callable[[Device | None], bool],
        done_text: str,
    ) -> None:
        """One bulk job for every pending device; each device is then checked on its own:
        the device itself is the truth, the job only explains a failure."""
        if step.state == Step.PENDING:
            self._submit_bulk(workflow, kind, submit)
            return
        device_id = step.device_id
        device = self._call(workflow, device_id, "read device", self.api.find_device, device_id)
        if reached(device):
            self._move(workflow, device_id, step.state, Step.DONE, done_text)
            return
        now = self.clock.now()
        submitted_at = float(step.data.get("submitted_at", step.updated_at))
        job_id = step.data.get("job_id")
        if job_id:
            job = self._call(workflow, device_id, "read job", self.api.get_job, kind, job_id)
            error = _job_error(job, device_id)
            if error:
                self._fail(workflow, device_id, kind.value,
                           f"Sigfox's {kind.value} job {job_id} failed for {device_id}: {error}")
                return
        elif now - submitted_at > RESUBMIT_AFTER_SECONDS:
            self._resubmit(workflow, step, kind)
            return
        if now - submitted_at > JOB_TIMEOUT_SECONDS:
            self._fail(workflow, device_id, kind.value,
                       f"The {kind.value} job did not take effect within an hour; check the "
                       "device in the Sigfox portal before asking again.")
            return
        self.store.update_device_step(workflow.id, device_id, now, next_run=now + JOB_POLL_SECONDS)
        self._schedule(workflow.id, now + JOB_POLL_SECONDS)

    def _resubmit(self, workflow: WorkflowRecord, step: Any, kind: JobKind) -> None:
        """The submission was cut off (a crash, a timeout) and did not take effect: send it
        again. Transfers and restarts aim at a state, so a late first job does no harm."""
        now = self.clock.now()
        if self.store.cas_device(workflow.id, step.device_id, step.state, Step.PENDING.value, now,
                                 next_run=now):
            self._schedule(workflow.id, now)
            self._tell(workflow, ProgressKind.STEP_DONE,
                       f"The {kind.value} request may not have reached Sigfox and the device has "
                       "not changed: sending it again.", device_id=step.device_id)

    def _submit_bulk(
        self, workflow: WorkflowRecord, kind: JobKind, submit: Callable[[list[str]], str]
    ) -> None:
        now = self.clock.now()
        pending = [
            s.device_id for s in self.store.workflow_devices(workflow.id) if s.state == Step.PENDING
        ]
        claimed = [
            d for d in pending
            if self.store.cas_device(workflow.id, d, Step.PENDING, Step.SUBMITTING, now,
                                     data={"submitted_at": now})
        ]
        if not claimed:
            return
        try:
            job_id = self._call(workflow, ",".join(claimed), kind.value, submit, claimed)
        except SigfoxError as error:
            # Unknown outcome: the devices are watched, and submitted again if nothing changes.
            # Known refusal: back to pending, retried later with back-off.
            target = Step.AWAITING_JOB if error.outcome_unknown else Step.PENDING
            for device_id in claimed:
                self.store.cas_device(workflow.id, device_id, Step.SUBMITTING, target.value, now,
                                      last_error=str(error))
            if error.outcome_unknown:
                return
            raise
        for device_id in claimed:
            self.store.cas_device(workflow.id, device_id, Step.SUBMITTING, Step.AWAITING_JOB, now,
                                  data={"job_id": job_id, "submitted_at": now},
                                  next_run=now + JOB_POLL_SECONDS)
        self._schedule(workflow.id, now + JOB_POLL_SECONDS)
        self._tell(workflow, ProgressKind.STEP_DONE,
                   f"Sigfox {kind.value} job {job_id} started for {len(claimed)} device(s).",
                   job_id=job_id)

    # -- unsubscribe -------------------------------------------------------------------------

    def _step_unsubscribe(self, workflow: WorkflowRecord, step: Any) -> None:
        device_id = step.device_id
        when = int(workflow.params["unsubscribe_at_ms"])
        if step.state == Step.PENDING and not self.store.cas_device(
            workflow.id, device_id, Step.PENDING, Step.SUBMITTING, self.clock.now()
        ):
            return
        device = self._call(workflow, device_id, "read device", self.api.find_device, device_id)
        if device is None:
            self._fail(workflow, device_id, "unsubscribe", f"{device_id} is no longer in Sigfox.")
            return
        if _unsubscription_time(device) != when:
            self._call(workflow, device_id, "unsubscribe", self.api.unsubscribe_device,
                       device_id, when)
        self._move(workflow, device_id, Step.SUBMITTING, Step.DONE,
                   f"Unsubscription set for {day(when)}.")

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, workflow: WorkflowRecord, device_id: str, action: str,
              function: Callable[..., T], *args: Any) -> T:
        """Every Sigfox call of a workflow goes through here, into the audit log."""
        now = self.clock.now()
        try:
            result = function(*args)
        except SigfoxError as error:
            self.store.audit("bot", f"sigfox {action}", now, workflow_id=workflow.id,
                             device_id=device_id, outcome=type(error).__name__,
                             details={"status": error.status})
            raise
        self.store.audit("bot", f"sigfox {action}", now, workflow_id=workflow.id,
                         device_id=device_id, outcome="ok")
        return result

    def _move(self, workflow: WorkflowRecord, device_id: str, expected: str, new: Step,
              text: str, data: dict[str, Any] | None = None) -> bool:
        fields: dict[str, Any] = {"attempts": 0, "last_error": "", "next_run": 0}
        if data is not None:
            fields["data"] = data
        moved = self.store.cas_device(workflow.id, device_id, str(expected), new.value,
                                      self.clock.now(), **fields)
        if moved:
            self._tell(workflow, ProgressKind.STEP_DONE, text, device_id=device_id,
                       step=new.value, **(data or {}))
        return moved

    def _fail(self, workflow: WorkflowRecord, device_id: str, at: str, text: str) -> None:
        step = self.store.device_step(workflow.id, device_id)
        if step is None or Step(step.state).finished:
            return
        if self.store.cas_device(workflow.id, device_id, step.state, Step.FAILED.value,
                                 self.clock.now(), last_error=text,
                                 data={**step.data, "failed_at": at}):
            deleted = step.state not in (Step.PENDING.value,)
            self._tell(workflow, ProgressKind.FAILED, f"Failed at {at}: {text}",
                       device_id=device_id, step=at, pac_recorded=deleted and workflow.kind in (
                           Kind.RENEW, Kind.DELETE))

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
                   results={s.device_id: {"state": s.state, **_public(s.data),
                                          "error": s.last_error} for s in steps})

    def _announce_renewed(self, workflow: WorkflowRecord, steps: Sequence[Any]) -> None:
        if self.on_renewed is None or workflow.kind not in (Kind.RENEW, Kind.RESTART):
            return
        for step in steps:
            if step.state == Step.DONE:
                try:
                    self.on_renewed(step.device_id)
                except Exception:  # alert bookkeeping must not undo a finished renewal
                    log.exception("could not mark %s renewed", step.device_id)

    def _schedule(self, workflow_id: int, when: float) -> None:
        self.store.update_workflow(workflow_id, self.clock.now(), next_run=when)

    def _expire_approvals(self) -> None:
        now = self.clock.now()
        for approval in self.store.pending_approvals():
            if approval.expires_at <= now:
                self._expire(approval.id, self._workflow(approval.workflow_id))
            else:
                self._remind(approval)

    def _remind(self, approval: Any) -> None:
        reminder = self.config.timing.approval_reminder.total_seconds()
        now = self.clock.now()
        key = f"approval-reminder:{approval.id}"
        last = self.store.get_value(key) or approval.created_at
        if now - last < reminder:
            return
        self.store.set_value(key, now)
        workflow = self._workflow(approval.workflow_id)
        self._tell(workflow, ProgressKind.WAITING,
                   f"Still waiting for an approver ({_minutes(now - approval.created_at)}); "
                   f"the request expires in {_minutes(approval.expires_at - now)}.",
                   wait="approval", approval_id=approval.id, elapsed=now - approval.created_at)

    def _expire(self, approval_id: int, workflow: WorkflowRecord) -> None:
        now = self.clock.now()
        if not self.store.decide_approval(approval_id, "expired", "", now):
            return
        if self.store.cas_workflow(workflow.id, [WorkflowState.AWAITING_APPROVAL.value],
                                   WorkflowState.EXPIRED.value, now, outcome="expired"):
            self.store.release_device_locks(workflow.id)
            self._tell(self._workflow(workflow.id), ProgressKind.FINISHED,
                       "The approval request expired: nothing was deleted. Ask again if it is "
                       "still needed.", outcome="expired", approval_id=approval_id)

    def _tell(self, workflow: WorkflowRecord, kind: ProgressKind, text: str,
              device_id: str = "", **details: Any) -> None:
        now = self.clock.now()
        self.store.add_event(workflow.id, kind.value, text, now, device_id=device_id,
                             details=_public(details))
        devices = tuple(s.device_id for s in self.store.workflow_devices(workflow.id))
        progress = Progress(
            kind=kind,
            workflow_id=job_label(workflow.id),
            operation=workflow.kind,
            devices=(device_id,) if device_id else devices,
            text=(f"{device_id}: {text}" if device_id and len(devices) > 1 else text),
            target=Target(workflow.channel, workflow.thread),
            state=workflow.state,
            details={"requester": workflow.requester, **details},
        )
        try:
            self.notifier.notify(progress)
        except Exception:  # a chat outage must never stop a renewal half-way
            log.exception("could not deliver progress of %s", workflow.label)

    def _tick_seconds(self) -> float:
        return self.config.timing.tick.total_seconds()

    def _workflow(self, workflow_id: int) -> WorkflowRecord:
        workflow = self.store.get_workflow(workflow_id)
        if workflow is None:
            raise LookupError(f"workflow {workflow_id} vanished")
        return workflow

    # -- reads for people ---------------------------------------------------------------------

    def device_status(self, device_id: str) -> DeviceStatus | None:
        """Raises BackendUnavailable when Sigfox cannot answer."""
        return read_device_status(self.api, device_id)

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
        target = workflow.params.get("targets", {}).get(device_id, "") if workflow else ""
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
        missing = _missing_callbacks(previous, self._callbacks(workflow, device_id, target))
        for callback in missing:
            self._call(workflow, device_id, "copy callback", self.api.create_callback, target,
                       callback.to_create())
        return len(missing)


def _job_error(job: BulkJob, device_id: str) -> str:
    """What a finished job says went wrong for this device ("" when nothing did)."""
    if not job.done:
        return ""
    mine = [e.message or "no reason given" for e in job.errors if e.entity == device_id]
    if mine:
        return mine[0]
    if job.failed and job.total == job.failed and job.errors:  # the whole job failed
        return job.errors[0].message or "no reason given"
    return ""


def _unsubscription_time(device: Device) -> int | None:
    if device.token is not None and device.token.unsubscription_time:
        return device.token.unsubscription_time
    return device.unsubscription_time


def _missing_callbacks(previous: Sequence[Any], current: Sequence[Any]) -> list[Any]:
    have = {(c.callback_type, c.url, c.channel) for c in current}
    return [c for c in previous if (c.callback_type, c.url, c.channel) not in have]


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def _public(details: dict[str, Any]) -> dict[str, Any]:
    """Drop anything that looks like a PAC before it leaves the core."""
    return {k: v for k, v in details.items() if "pac" not in k.lower() or k == "pac_recorded"}


def _summary(kind: Kind, steps: Sequence[Any]) -> str:
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
