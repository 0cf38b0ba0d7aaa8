"""The core's facade: the operations of the bot, free of Slack, over the objects that do them.

A workflow is a row with a state; every device in it has a step. Nothing waits in a thread:
`tick()` advances whatever is due and returns. Each step first reads the backend, then acts,
and each transition is a compare-and-set in SQLite, so a crash, a restart, two workers, a double
click or a replayed request never sends a destructive call twice, and the snapshot taken before
the delete (PAC included) is always there to re-register the device.

`Core` builds and holds, each with its own dependencies:
- `Bookkeeper` (bookkeeping.py): audited calls, compare-and-set moves, progress told;
- `WriteAhead` (writeahead.py): destructive calls, their intent written first;
- `StepRunner` (steps.py): what each kind of job does to one device, with `BulkJobs`
  (bulk_jobs.py) for the Sigfox bulk transfers and restarts;
- `ApprovalRounds` (approvals.py): asking, deciding, reminders, escalation, expiry;
- `PendingCancels` (cancels.py): a cancel asked while a destructive call could still land;
- `WorkflowEngine` (engine.py): `tick`, advancing the jobs that can move.
What is left here is what a person asks for: a request, a cancel, a PAC, a release wait's
choice, a callback copy, and the reads the edges show.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from commands.approvals import ApprovalRounds, clean_reason
from commands.bookkeeping import Bookkeeper, elapsed_text
from commands.bulk_creates import BulkRegistrations
from commands.bulk_jobs import BulkJobs
from commands.cancels import PendingCancels
from commands.config import BotConfig
from commands.engine import WorkflowEngine
from commands.outcome import Outcome
from commands.planning import Plan, Request, plan_request, type_id_of
from commands.policy import Actor, Operation, Policy
from commands.ports import Clock, Notifier, ProgressKind, SigfoxApi
from commands.preflight import Refusal
from commands.read_ahead import ReadAhead
from commands.read_models import ApprovalRequest, JobSummary, ReadModels
from commands.states import CANCELLABLE, StepState, WorkflowState
from commands.status import DeviceStatus, read_device_status
from commands.steps import StepRunner, target_type_id
from commands.stops import StopRest
from commands.ticks import Stopwatch, TickStats
from commands.writeahead import WriteAhead
from sigfox.device_reads import ReadCount
from sigfox.errors import SigfoxError
from sigfox.models import Device
from storage.records import EventRecord, StepRecord, WorkflowRecord, job_label
from storage.store import Store

__all__ = ["Core", "Outcome"]


class Core:
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
        self.reads = ReadModels(store)  # what the edges read (bot/ never reads `store`)
        self.books = Bookkeeper(store=store, notifier=notifier, clock=clock, config=config)
        self.write_ahead = WriteAhead(store=store, api=api, clock=clock,
                                      landing_clock=self.landing_clock, config=config,
                                      books=self.books)
        read_ahead = ReadAhead()  # the devices a tick reads in pages for its steps
        bulk = BulkJobs(store=store, api=api, clock=clock, books=self.books,
                        write_ahead=self.write_ahead, read_ahead=read_ahead)
        registrations = BulkRegistrations(store=store, api=api, clock=clock, config=config,
                                          books=self.books, write_ahead=self.write_ahead,
                                          read_ahead=read_ahead)
        self.steps = StepRunner(store=store, api=api, clock=clock, config=config,
                                books=self.books, write_ahead=self.write_ahead, bulk=bulk,
                                read_ahead=read_ahead, registrations=registrations)
        self.approvals = ApprovalRounds(store=store, policy=self.policy, clock=clock,
                                        config=config, books=self.books)
        self.stops = StopRest(store=store, clock=clock, config=config, books=self.books)
        self.cancels = PendingCancels(store=store, clock=clock, landing_clock=self.landing_clock,
                                      config=config, books=self.books,
                                      write_ahead=self.write_ahead, stops=self.stops)
        self.engine = WorkflowEngine(
            store=store, clock=clock, config=config, books=self.books,
            write_ahead=self.write_ahead, steps=self.steps, approvals=self.approvals,
            cancels=self.cancels, stops=self.stops,
            owner=owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}", on_renewed=on_renewed,
            stopwatch=stopwatch)

    # -- advancing (the engine's) --------------------------------------------------------------

    def resume(self) -> int:
        """At start: free leases left by a dead process and advance everything unfinished."""
        return self.engine.resume()

    def tick(self, budget: float | None = None) -> int:
        """Advance every workflow that can move now (see `WorkflowEngine.tick`)."""
        return self.engine.tick(budget)

    def advance(self, workflow_id: int) -> None:
        self.engine.advance(workflow_id)

    @property
    def last_tick(self) -> TickStats | None:
        return self.engine.last_tick

    def note_uplink(self, device_id: str) -> list[int]:
        """The backend's DATA callback: the renewals waiting for this device are due now."""
        return self.engine.note_uplink(device_id)

    def handle_uplink(self, device_id: str) -> list[int]:
        """Note the uplink and advance the waiting renewals at once (CLI, demo, tests)."""
        return self.engine.handle_uplink(device_id)

    # -- the approval rounds' answers ------------------------------------------------------------

    def decide(self, approval_id: int, actor: Actor, approve: bool, reason: str = "") -> Outcome:
        """Approve or reject. Checked against the policy now; the first valid decision wins."""
        return self.approvals.decide(approval_id, actor, approve, reason)

    def may_decide(self, approval_id: int, actor: Actor) -> str:
        """Why `actor` cannot decide this request now, or "" when they can."""
        return self.approvals.may_decide(approval_id, actor)

    def reason_refusal(self, operation: Operation, devices: int, reason: str) -> str:
        """Why a request without a reason cannot go on, or "" when it may."""
        return self.approvals.reason_refusal(operation, devices, reason)

    # -- requests ----------------------------------------------------------------------------

    def request(self, request: Request, on_read: ReadCount | None = None) -> Outcome:
        """`on_read(read, wanted)` is told as the request's devices are read from Sigfox."""
        operation = Operation(request.kind.value)
        decision = self.policy.can_request(request.actor, operation)
        if not decision.allowed:
            return Outcome(False, decision.reason)
        missing_reason = self.approvals.reason_refusal(operation, len(request.device_ids),
                                                       clean_reason(request.reason))
        if missing_reason:
            return Outcome(False, missing_reason)
        try:
            plan = plan_request(self.api, self.clock.now(), request, on_read)
        except Refusal as refusal:
            return Outcome(False, f"{refusal} Nothing was changed.")
        except SigfoxError as error:
            return Outcome(False, f"Could not check the device with Sigfox: {error}. "
                           "Nothing was changed; try again in a moment.")
        return self._open_workflow(request, plan)

    def _open_workflow(self, request: Request, plan: Plan) -> Outcome:
        now = self.clock.now()
        operation = Operation(request.kind.value)
        needed = self.approvals.approvals_needed(operation, len(request.device_ids),
                                                 plan.needs_approval)
        reason = clean_reason(request.reason)
        state = WorkflowState.AWAITING_APPROVAL if needed else WorkflowState.APPROVED
        workflow_id, busy = self.store.create_workflow(
            kind=request.kind.value,
            state=state.value,
            requester=request.actor.user_id,
            device_ids=request.device_ids,
            device_state=StepState.PENDING.value,
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
            self.books.schedule(workflow_id, self.approvals.start_time(operation, now))
        workflow = self.books.workflow(workflow_id)
        advice = list(plan.restart_advice)
        details: dict[str, Any] = {"summary": plan.summary, "restart_advice": advice,
                                   "reason": reason}
        said = plan.summary + (f"\nReason: {reason}" if reason else "")
        self.books.tell(workflow, ProgressKind.REQUESTED, said, **details)
        approval_id = None
        if needed:
            approval_id = self.approvals.ask(workflow, request.actor.user_id, plan.summary,
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
            self.store.snapshots.save(
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
            # A call that may still land: the cancel is decided once it can be checked.
            pending = self.cancels.ask(self.books.workflow(workflow.id), actor)
            # A change took effect: the devices nothing was sent for can still be stopped.
            stopped = pending or self.stops.stop(self.books.workflow(workflow.id), actor)
            return stopped or Outcome(False, self._cannot_cancel(self.books.workflow(workflow.id)))
        self.store.release_device_locks(workflow.id)
        self.store.audit(actor.user_id, "cancel", now, workflow_id=workflow.id)
        self.books.tell(self.books.workflow(workflow.id), ProgressKind.FINISHED,
                        f"Cancelled by <@{actor.user_id}>: nothing was changed.",
                        outcome="cancelled")
        return Outcome(True, f"{job_label(workflow.id)} cancelled; nothing was changed.",
                       workflow.id)

    def _cancel_untouched(self, workflow: WorkflowRecord, now: float) -> bool:
        """A running job may still be cancelled while its devices are verified untouched:
        no destructive call sent, or every one sent verified not to have taken effect (an
        unanswered one is checked now, by a read, if it can no longer land)."""
        if workflow.state != WorkflowState.RUNNING:
            return False
        try:
            self.write_ahead.resolve_for_cancel(workflow)
        except SigfoxError:
            return False  # cannot verify now: the message says to try again
        return self.store.intents.cancel_untouched(
            workflow.id, [WorkflowState.RUNNING.value], WorkflowState.CANCELLED.value, now,
            outcome="cancelled")

    def _cannot_cancel(self, workflow: WorkflowRecord) -> str:
        # (A call that may still land, with none known to have, makes a pending cancel.)
        if workflow.state == WorkflowState.RUNNING:
            return (
                f"{workflow.label} cannot be cancelled: its first change was already sent to "
                "Sigfox and took effect. The bot will finish it (the PAC is recorded), follow "
                "its thread."
            )
        return f"{workflow.label} has already ended ({workflow.state}); there is nothing to cancel."

    def reveal_pac(self, workflow_id: int, device_id: str, actor: Actor) -> Outcome:
        """The recorded PAC, for an approver who asks: private, and audited."""
        workflow = self.store.get_workflow(workflow_id)
        snapshot = self.store.snapshots.of(workflow_id, device_id) if workflow else None
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
        self.books.tell(workflow, ProgressKind.STEP_DONE,
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
        self.books.tell(self.books.workflow(workflow_id), ProgressKind.STEP_DONE, text,
                        device_id=device_id)
        return Outcome(True, text, workflow_id)

    def stop_waiting_for_release(self, workflow_id: int, device_id: str, actor: Actor
                                 ) -> Outcome:
        """An approver stops the wait: the step fails (the device stays deleted and unregistered)
        and the PAC goes to that approver alone (`details["pac"]`), to register it by hand."""
        step, refusal = self._overdue_release(workflow_id, device_id, actor)
        if step is None:
            return Outcome(False, refusal, workflow_id)
        workflow = self.books.workflow(workflow_id)
        self.books.fail(workflow, device_id, "re-register",
                        f"<@{actor.user_id}> stopped waiting while Sigfox still held the id: "
                        f"{device_id} is deleted and not registered. Register it in the Sigfox "
                        "portal with its recorded PAC (Show PAC, approvers only).")
        self.engine.finish_if_done(self.books.workflow(workflow_id))
        shown = self.reveal_pac(workflow_id, device_id, actor)
        details = {"device_id": device_id, "pac": shown.message} if shown.ok else {}
        return Outcome(True, f"Stopped waiting for {device_id}; register it in the Sigfox "
                       "portal with the PAC shown to you only.", workflow_id,
                 details=details)

    def _overdue_release(self, workflow_id: int, device_id: str, actor: Actor
                         ) -> tuple[StepRecord | None, str]:
        workflow = self.store.get_workflow(workflow_id)
        step = self.store.device_step(workflow_id, device_id) if workflow else None
        if workflow is None or step is None or step.state != StepState.AWAITING_RELEASE:
            return None, (f"{job_label(workflow_id)} is not waiting for Sigfox to release "
                          f"{device_id} any more; nothing to decide.")
        if not self.policy.can_approve(actor, Operation(workflow.kind), "").allowed:
            return None, "Only approvers may decide about a release wait."
        return step, ""

    # -- reads for people ---------------------------------------------------------------------

    def device_status(self, device_id: str) -> DeviceStatus | None:
        """Raises BackendUnavailable when Sigfox cannot answer."""
        return read_device_status(self.api, device_id)

    def approval_request(self, approval_id: int) -> ApprovalRequest | None:
        """An approval request as the people deciding see it (a read model, for the edges)."""
        return self.reads.approval_request(approval_id)

    def approvals_awaiting(self, actor: Actor) -> list[ApprovalRequest]:
        """The pending requests whose decision `actor` may take now, oldest first."""
        return [request for request in self.reads.pending_approvals()
                if not self.approvals.may_decide(request.approval_id, actor)]

    def approvable_operations(self, actor: Actor) -> list[Operation]:
        """The operations needing approval that `actor` may approve (`whoami`, App Home)."""
        return [operation for operation in Operation
                if operation.guarded and self.policy.can_approve(actor, operation, "").allowed]

    def job_devices(self, workflow_id: int) -> tuple[str, ...]:
        """The devices of a job, in the order they were asked for."""
        return self.reads.job_devices(workflow_id)

    def device_history(self, device_id: str, limit: int = 40) -> list[EventRecord]:
        """What the bot did to a device, newest last (`/sigfox history`)."""
        return self.reads.device_history(device_id, limit=limit)

    def workflow_counts(self) -> dict[str, int]:
        """Workflows by state (metrics, health); raises when the database is unusable."""
        return self.reads.workflow_counts()

    def approvals_waiting(self) -> int:
        """How many requests wait for a decision (metrics)."""
        return len(self.reads.pending_approvals())

    def jobs(self, active_only: bool = True) -> list[JobSummary]:
        """The jobs, newest first (`/sigfox jobs`, App Home)."""
        return self.reads.jobs(active_only)

    # -- callbacks after a move to another device type --------------------------------------

    _copy_guard = threading.Lock()  # two clicks at once must not create each callback twice

    def copy_callbacks(self, workflow_id: int, device_id: str, actor: Actor) -> Outcome:
        """Create on the device's new type the callbacks its previous type had and the new one
        lacks (what `StepRunner._check_callbacks` offered). Approvers only: it changes what every
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
                copied = self.steps.copy_missing_callbacks(workflow, device_id, source, target)
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
        self.books.tell(workflow, ProgressKind.STEP_DONE, text, device_id=device_id)
        return Outcome(True, text, workflow_id, details={"copied": copied})
