"""What each kind of workflow does to one device, step by step.

Every step reads the backend first and then acts, so running it again after a crash or a
fault is harmless; the bookkeeping (audited calls, compare-and-set moves) is the
`Bookkeeper` it holds, destructive calls go through the `WriteAhead` it holds.
A renewal is done only when the backend shows the device's token in state OK; how the fields
read here are understood is in docs/sigfox-semantics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from commands.bookkeeping import Bookkeeper, elapsed_text
from commands.bulk_creates import SINGLE_CREATE, BulkRegistrations, JobVerdict
from commands.bulk_jobs import BulkJobs
from commands.config import BotConfig
from commands.ports import Clock, ProgressKind, SigfoxApi
from commands.preflight import contract_of, day, is_deletable
from commands.read_ahead import DELETE_READS_FIRST, READS_FIRST, WORTH_A_PAGE, ReadAhead
from commands.states import Kind, StepState
from commands.writeahead import (
    CREATE,
    DELETE,
    UNSUBSCRIBE,
    NotSent,
    WriteAhead,
    unsubscription_time,
)
from sigfox.errors import (
    SigfoxBadRequest,
    SigfoxConflict,
    SigfoxForbidden,
    SigfoxNotFound,
)
from sigfox.models import Callback, Device, DeviceCreate, DeviceState, TokenState
from storage.records import Snapshot, StepRecord, WorkflowRecord
from storage.store import Store

log = logging.getLogger(__name__)

DELETE_CONFIRM_TIMEOUT_SECONDS = 3600.0


@dataclass(frozen=True, kw_only=True)
class StepRunner:
    """Runs one device's step of a job, by the job's kind: renew, delete, transfer, restart
    and unsubscribe. Every destructive call goes through `WriteAhead.send`, after
    `WriteAhead.settled` (see commands/writeahead.py)."""

    store: Store
    api: SigfoxApi
    clock: Clock
    config: BotConfig
    books: Bookkeeper
    write_ahead: WriteAhead
    bulk: BulkJobs
    read_ahead: ReadAhead = field(default_factory=ReadAhead)
    # Registrations of several devices in bulk create jobs (None: each device on its own).
    registrations: BulkRegistrations | None = None
    # Devices per job: fixed when the job is created, asked at nearly every step.
    _job_sizes: dict[int, int] = field(default_factory=dict, init=False, repr=False)

    def run(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        """Move the device's step as far as it can go now (it may raise `SigfoxError`)."""
        runners: dict[Kind, Callable[[WorkflowRecord, StepRecord], None]] = {
            Kind.RENEW: self._step_renew,
            Kind.DELETE: self._step_delete,
            Kind.TRANSFER: self._step_transfer,
            Kind.RESTART: self._step_restart,
            Kind.UNSUBSCRIBE: self._step_unsubscribe,
        }
        runners[Kind(workflow.kind)](workflow, step)

    def _read_device(self, workflow: WorkflowRecord, device_id: str) -> Device | None:
        return self.books.call(workflow, device_id, "read device", self.api.find_device,
                               device_id)

    def runs_together(self, workflow: WorkflowRecord) -> bool:
        """Whether some steps of the workflow are done for several devices in one call: a
        renewal by delete of several devices registers them in bulk create jobs."""
        return (self.registrations is not None and workflow.kind == Kind.RENEW
                and workflow.params.get("method", "delete") == "delete"
                and self._reads_in_pages(workflow))

    def run_together(self, workflow: WorkflowRecord, due: list[StepRecord]) -> list[StepRecord]:
        """Before (and after) the tick runs the due steps one by one: what several of them
        do in one call (commands/bulk_creates.py). Returns the steps still to run."""
        if self.registrations is None or not self.runs_together(workflow):
            return due
        handled = self.registrations.submit_due(workflow, due, self._creation)
        return [step for step in due if step.device_id not in handled]

    def reads_first(self, workflow: WorkflowRecord) -> frozenset[str]:
        """The states in which the workflow's steps start by reading their device, for the
        tick to read those devices first, in pages (commands/read_ahead.py)."""
        deletes = workflow.kind == Kind.DELETE or (
            workflow.kind == Kind.RENEW and workflow.params.get("method", "delete") == "delete")
        if deletes:
            return DELETE_READS_FIRST
        return READS_FIRST

    def _settled(self, workflow: WorkflowRecord, device_id: str) -> bool:
        """`WriteAhead.settled`; when it had a call to settle, what this tick's pages showed
        of the device is dropped: they may have been read before that call landed."""
        if not self.store.intents.unresolved(device_id):
            return True
        settled = self.write_ahead.settled(workflow, device_id)
        self.read_ahead.forget(workflow.id, device_id)
        return settled

    def _read_device_paged(self, workflow: WorkflowRecord, device_id: str, *,
                           gone_expected: bool) -> Device | None:
        """The device as this tick's pages showed it (kept for the tick, see
        `ReadAhead.seen`), else read now on its own. A page not listing it says it is gone
        only where that is what the job's own write made it (`gone_expected`: after its
        DELETE was answered, before registering it again); otherwise its own read says so."""
        known, device = self.read_ahead.seen(workflow.id, device_id)
        if known and (device is not None or gone_expected):
            return device
        return self._read_device(workflow, device_id)

    def _read_device_ahead(self, workflow: WorkflowRecord, device_id: str) -> Device | None:
        """The device as this tick's page read showed it (commands/read_ahead.py), else read
        now on its own: only its own answer may say it is gone."""
        device = self.read_ahead.take(workflow.id, device_id)
        return device if device is not None else self._read_device(workflow, device_id)

    def copy_missing_callbacks(self, workflow: WorkflowRecord, device_id: str, source: str,
                               target: str) -> int:
        """Create on `target` the callbacks `source` has and it lacks; returns how many."""
        previous = self._callbacks(workflow, device_id, source)
        missing = missing_callbacks(previous, self._callbacks(workflow, device_id, target))
        for callback in missing:
            self.books.call(workflow, device_id, "copy callback", self.api.create_callback,
                            target, callback.to_create())
        return len(missing)

    def _step_delete(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        if self._delete_once(workflow, step):
            self.books.move(workflow, step.device_id, StepState.DELETING, StepState.DONE,
                            "Deleted; Sigfox no longer lists it. The PAC is recorded.")

    def _step_renew(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        # Workflows recorded before renewals chose their method were all delete-and-re-register.
        method = workflow.params.get("method", "delete")
        if method == "restart":
            self._step_restart(workflow, step)
            return
        if method == "transfer":
            self._renew_by_transfer(workflow, step)
            return
        if method == "automatic renewal":
            self._renew_by_automatic_renewal(workflow, step)
            return
        handlers = {
            StepState.PENDING: self._renew_delete,
            StepState.DELETING: self._renew_delete,
            StepState.AWAITING_RELEASE: self._renew_register,
            StepState.SUBMITTING: self._renew_await_registration,  # in a bulk create job
            StepState.AWAITING_JOB: self._renew_await_registration,
            StepState.REGISTERED: self._renew_report_contract,
            StepState.AWAITING_UPLINK: self._renew_await_uplink,
            StepState.CHECKING_CALLBACKS: self._check_callbacks,
        }
        handlers[StepState(step.state)](workflow, step)

    def _delete_once(self, workflow: WorkflowRecord, step: StepRecord) -> bool:
        """Send the delete once it is known that no earlier one can still land; True once a
        read shows the device gone from Sigfox."""
        device_id = step.device_id
        if step.state == StepState.PENDING and not self.store.cas_device(
            workflow.id, device_id, StepState.PENDING, StepState.DELETING, self.clock.now()
        ):
            return False
        if not self._settled(workflow, device_id):
            return False
        sent_at = step.data.get("delete_sent_at")
        if sent_at is None and self.write_ahead.landed(workflow.id, device_id, DELETE) is not None:
            sent_at = self._note_delete_sent(workflow, device_id)  # answered, then a crash
        device = self._read_device_paged(workflow, device_id, gone_expected=sent_at is not None)
        if device is None:
            return True  # gone: our delete went through (maybe before a crash), or someone's
        if sent_at is not None:
            return self._await_disappearance(workflow, device_id, float(sent_at))
        if not is_deletable(device):
            state = device.token.state.name if device.token and device.token.state else "unknown"
            self.books.fail(workflow, device_id, "delete",
                            f"{device_id} changed since the request: its token is now {state}; it "
                            "was not deleted. Check it with `/sigfox status`.")
            return False
        try:
            self.write_ahead.send(workflow, [device_id], DELETE, self.api.delete_device, device_id)
        except NotSent:
            return False
        except SigfoxNotFound:
            return True
        except (SigfoxBadRequest, SigfoxForbidden, SigfoxConflict) as error:
            self.books.fail(workflow, device_id, "delete", f"Sigfox refused the delete: {error}")
            return False
        finally:
            self.read_ahead.forget(workflow.id, device_id)
        now = self._note_delete_sent(workflow, device_id)
        if self._reads_in_pages(workflow):  # seen gone at the next tick, with the others
            return self._await_disappearance(workflow, device_id, now)
        gone = self._read_device(workflow, device_id)
        return gone is None or self._await_disappearance(workflow, device_id, now)

    def _note_delete_sent(self, workflow: WorkflowRecord, device_id: str) -> float:
        now = self.clock.now()
        fresh = self.store.device_step(workflow.id, device_id)
        self.store.update_device_step(workflow.id, device_id, now,
                                      data={**(fresh.data if fresh else {}), "delete_sent_at": now})
        return now

    def _await_disappearance(self, workflow: WorkflowRecord, device_id: str, sent_at: float
                             ) -> bool:
        """Sigfox accepted the delete but still lists the device: look again later, and never
        send the delete a second time."""
        now = self.clock.now()
        if now - sent_at > DELETE_CONFIRM_TIMEOUT_SECONDS:
            self.books.fail(
                workflow, device_id, "delete",
                f"Sigfox accepted the delete {elapsed_text(now - sent_at)} ago but still lists "
                "the device. Check it in the Sigfox portal; the PAC is recorded.")
            return False
        retry = self.books.tick_seconds()
        self.store.update_device_step(workflow.id, device_id, now, next_run=now + retry)
        self.books.schedule(workflow.id, now + retry)
        return False

    def _renew_delete(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        if not self._delete_once(workflow, step):
            return
        now = self.clock.now()
        data = {**step.data, "deleted_at": now}
        moved = self.books.move(workflow, step.device_id, StepState.DELETING,
                                StepState.AWAITING_RELEASE, "Deleted. Waiting for Sigfox to "
                                "release the id before registering it again.", data=data)
        # Several devices: registered together once the tick's steps ran (`run_together`).
        if moved and not self.runs_together(workflow):
            self._renew_register(workflow, self.books.device_step(workflow, step.device_id))

    def _renew_register(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        device_id = step.device_id
        snapshot = self.store.snapshots.of(workflow.id, device_id)
        assert snapshot is not None  # taken before the approval; the schema keeps it
        # A DELETE or a create could still land:
        if not self._settled(workflow, device_id):
            return
        existing = self._read_device_paged(workflow, device_id, gone_expected=True)
        if existing is None:
            try:
                self.write_ahead.send(workflow, [device_id], CREATE, self.api.create_device,
                                      self._creation(workflow, snapshot))
            except NotSent:
                return
            except SigfoxConflict:
                self._wait_for_release(workflow, step)
                return
            except SigfoxBadRequest as error:
                if says_held(str(error)):  # some backends answer 400 "already exists" while holding
                    self._wait_for_release(workflow, step)
                    return
                self.books.fail(workflow, device_id, "re-register",
                                f"Sigfox refused to register it again: {error}. The PAC is "
                                "recorded: an approver can see it with the Show PAC button and "
                                "register the device in the Sigfox portal.")
                return
            finally:
                self.read_ahead.forget(workflow.id, device_id)
            if self._reads_in_pages(workflow):
                # Read back (its new PAC) at the next tick, with the job's other devices, in
                # pages; until then it stays waiting for release, which a listed device ends.
                self._look_again_next_tick(workflow, device_id)
                return
            existing = self._read_device(workflow, device_id)
        self._registered(workflow, step, existing)

    def _registered(self, workflow: WorkflowRecord, step: StepRecord, device: Device | None
                    ) -> None:
        """Listed again: keep its new PAC (registering consumes the old one), move on."""
        device_id = step.device_id
        snapshot = self.store.snapshots.of(workflow.id, device_id)
        if device is not None and device.pac and snapshot and device.pac != snapshot.pac:
            self.store.snapshots.record_new_pac(workflow.id, device_id, device.pac)
        data = {**step.data, "registered_at": self.clock.now()}
        if self.books.move(workflow, device_id, step.state, StepState.REGISTERED,
                           "Registered again with the recorded PAC; its token is not consumed yet.",
                           data=data):
            self._renew_report_contract(workflow, self.books.device_step(workflow, device_id))

    def _renew_await_registration(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        """In a bulk create job: registered once listed; else its job's status says whether
        to look again, wait for release (the next round's job), or create it alone."""
        assert self.registrations is not None  # only it puts a renewal's step in a job
        if not self._settled(workflow, step.device_id):
            return
        device = self.registrations.listed(workflow, step)
        if device is not None:
            self._registered(workflow, step, device)
            return
        verdict, _reason = self.registrations.verdict(workflow, step, says_held)
        if verdict == JobVerdict.RUNNING:
            return
        data = {k: v for k, v in step.data.items() if k not in ("job_id", "create_job_done")}
        if verdict == JobVerdict.REFUSED:
            data[SINGLE_CREATE] = True  # POST /devices/ says why, by its status code
            # Sigfox's reason stays out of the log (its text is Sigfox's, not known to hold
            # no PAC); the device's own create, next, says it in the thread if it fails.
            log.info("%s %s: the create job did not register it: creating it alone",
                     workflow.label, step.device_id)
        now = self.clock.now()
        if not self.store.cas_device(workflow.id, step.device_id, step.state,
                                     StepState.AWAITING_RELEASE, now, data=data, next_run=0):
            return
        fresh = self.books.device_step(workflow, step.device_id)
        if verdict == JobVerdict.HELD:
            self._wait_for_release(workflow, fresh, float(step.data.get("submitted_at", now)))
        elif verdict == JobVerdict.RESUBMIT:
            self.books.schedule(workflow.id, now)
            self.books.tell(workflow, ProgressKind.STEP_DONE,
                            "The create request did not take effect (checked once it could "
                            "no longer land): sending it again.", device_id=step.device_id)
        else:
            self._renew_register(workflow, fresh)

    def _reads_in_pages(self, workflow: WorkflowRecord) -> bool:
        """Whether the job's devices are read together at each tick (several of them): then
        the read after a write waits for the next tick's pages; a job of one device reads
        its device at once, one call either way."""
        size = self._job_sizes.get(workflow.id)
        if size is None:
            size = self._job_sizes[workflow.id] = sum(self.store.step_states(workflow.id).values())
        return size >= WORTH_A_PAGE

    def _look_again_next_tick(self, workflow: WorkflowRecord, device_id: str) -> None:
        now = self.clock.now()
        retry = self.books.tick_seconds()
        self.store.update_device_step(workflow.id, device_id, now, next_run=now + retry)
        self.books.schedule(workflow.id, now + retry)

    def _creation(self, workflow: WorkflowRecord, snapshot: Snapshot) -> DeviceCreate:
        flags = snapshot.flags
        return DeviceCreate(
            id=snapshot.device_id,
            name=snapshot.name or snapshot.device_id,
            device_type_id=target_type_id(workflow, snapshot.device_id) or snapshot.device_type_id,
            pac=snapshot.current_pac,
            lat=snapshot.lat,
            lng=snapshot.lng,
            prototype=flags.get("prototype"),
            automatic_renewal=flags.get("automaticRenewal"),
            activable=flags.get("activable"),
            product_certificate=flags.get("productCertificate"),
        )

    def _wait_for_release(self, workflow: WorkflowRecord, step: StepRecord,
                          tried_at: float | None = None) -> None:
        """Sigfox still holds the deleted id: try again later. Past `release_timeout` the job
        stays open and keeps trying (a deleted, unregistered device must never be left behind
        silently): people are asked once whether to keep waiting or to stop and register the
        device by hand with its PAC."""
        now = self.clock.now()
        deleted_at = step.data.get("deleted_at", now)
        waited = now - deleted_at
        timeout = self.config.timing.release_timeout.total_seconds()
        deadline = float(step.data.get("release_deadline", deleted_at + timeout))
        if now > deadline and not step.data.get("release_overdue"):
            step.data.update(release_overdue=True)
            self.store.update_device_step(workflow.id, step.device_id, now, data=step.data)
            self.books.tell(
                workflow, ProgressKind.WAITING,
                f"Sigfox still holds the id {elapsed_text(waited)} after the delete, "
                f"longer than release_timeout. The job stays open and keeps trying every "
                f"{elapsed_text(self.config.timing.release_retry.total_seconds())}. An "
                "approver can keep waiting, or stop and see the PAC to register the "
                "device in the Sigfox portal.",
                device_id=step.device_id, wait="release_overdue", release_overdue=True,
                elapsed=waited)
        # Counted from the attempt (`tried_at`: a bulk job's submission, the same for all its
        # devices, so that they are due together again and make one job the next time).
        next_run = (now if tried_at is None else min(tried_at, now)) + \
            self.config.timing.release_retry.total_seconds()
        self.store.update_device_step(workflow.id, step.device_id, now, next_run=next_run,
                                      attempts=step.attempts + 1)
        self.books.schedule(workflow.id, next_run)
        self.books.report_wait(workflow, step, waited, "release",
                               f"Waiting for Sigfox to release the id, {elapsed_text(waited)}")

    def _renew_report_contract(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        device_id = step.device_id
        type_id = target_type_id(workflow, device_id)
        # Read once per tick for all the job's devices on this type (commands/read_ahead.py).
        device_type = self.read_ahead.shared(
            workflow.id, ("device type", type_id),
            lambda: self.books.call(workflow, device_id, "read device type",
                                    self.api.get_device_type, type_id))
        contract = self.read_ahead.shared(
            workflow.id, ("contract of", type_id),
            lambda: self.books.call(workflow, device_id, "read contract", contract_of,
                                    self.api, device_type))
        end = contract.end_time
        left = contract.tokens_left
        text = (
            f"Contract {contract.name or contract.id} ends {day(end)}"
            + (f", {left} tokens left" if left is not None else "")
            + ". Waiting for the device's first message."
        )
        data = {**step.data, "contract": contract.name or contract.id, "contract_end": end}
        self.books.move(workflow, device_id, StepState.REGISTERED, StepState.AWAITING_UPLINK,
                        text, data=data)

    def _renew_await_uplink(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        """Done only when Sigfox shows the token in state OK; a message that leaves the device
        Off Contract, Invalid or not activable fails the step with Sigfox's own words."""
        device_id = step.device_id
        if "registered_at" not in step.data:  # reached by a transfer: the wait starts now
            step.data["registered_at"] = self.clock.now()
            self.store.update_device_step(workflow.id, device_id, self.clock.now(),
                                          data=step.data)
        device = self._read_device_ahead(workflow, device_id)
        if device is None:
            self.books.fail(workflow, device_id, "first message",
                            f"{device_id} is no longer listed by Sigfox. Check it in the Sigfox "
                            "portal; the PAC is recorded.")
            return
        failure = first_message_failure(device)
        if failure:
            self.books.fail(workflow, device_id, "first message", failure)
            return
        if device.token_state == TokenState.OK and device.token is not None:
            token_end = device.token.end
            data = {**step.data, "token_end": token_end}
            text = "First message received" + (
                f"; token OK until {day(token_end)}." if token_end else "."
            )
            if self.books.move(workflow, device_id, StepState.AWAITING_UPLINK,
                               StepState.CHECKING_CALLBACKS, text, data=data):
                self._check_callbacks(workflow, self.books.device_step(workflow, device_id))
            return
        self._keep_waiting_for_uplink(workflow, step)

    def _renew_by_transfer(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        """Renewal by transfer: the job moves the device, then its first message must take a
        token (state OK) on the new type's contract."""
        if step.state == StepState.AWAITING_UPLINK:
            self._renew_await_uplink(workflow, step)
            return
        if step.state == StepState.CHECKING_CALLBACKS:
            self._check_callbacks(workflow, step)
            return
        self._transfer(workflow, step, f"Transferred to {workflow.params.get('device_type_name')}; "
                       "waiting for its first message to take a token.",
                       then=StepState.AWAITING_UPLINK)

    def _renew_by_automatic_renewal(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        """Switch on the device's automatic renewal (a PUT, nothing deleted), then check it."""
        device_id = step.device_id
        if step.state == StepState.PENDING and not self.store.cas_device(
            workflow.id, device_id, StepState.PENDING, StepState.SUBMITTING, self.clock.now()
        ):
            return
        device = self._read_device(workflow, device_id)
        if device is None or device.token_state != TokenState.OK:
            label = device.token_state.name if device and device.token_state else "gone"
            self.books.fail(
                workflow, device_id, "automatic renewal",
                f"{device_id}'s token is no longer valid ({label}); automatic renewal was "
                "not switched on. Check it with `/sigfox status`.")
            return
        if not device.automatic_renewal:
            self.books.call(workflow, device_id, "switch on automatic renewal",
                            lambda: self.api.update_device(device_id, automatic_renewal=True))
            device = self._read_device(workflow, device_id)
        if device is None or not device.automatic_renewal:
            self.books.fail(
                workflow, device_id, "automatic renewal",
                "Sigfox accepted the change but the device still shows automatic renewal "
                "off. Check it in the Sigfox portal.")
            return
        end = device.token.end if device.token else None
        self.books.move(
            workflow, device_id, StepState.SUBMITTING, StepState.DONE,
            f"Automatic renewal switched on: the token, OK until {day(end)}, is renewed "
            "by the device's first message after that date.",
            data={**step.data, "token_end": end})

    def _keep_waiting_for_uplink(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        now = self.clock.now()
        waited = now - step.data.get("registered_at", now)
        if waited > self.config.timing.first_message_timeout.total_seconds():
            self.books.fail(
                workflow, step.device_id, "first message",
                f"Registered, but no message arrived in {elapsed_text(waited)}. Check the "
                "device's power and coverage; it will take its token at its first message.")
            return
        poll = self.config.timing.first_message_poll.total_seconds()
        self.store.update_device_step(workflow.id, step.device_id, now, next_run=now + poll)
        self.books.schedule(workflow.id, now + poll)
        self.books.report_wait(workflow, step, waited, "uplink",
                               f"Waiting for the first message, {elapsed_text(waited)}")

    def _check_callbacks(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        device_id = step.device_id
        snapshot = self.store.snapshots.of(workflow.id, device_id)
        type_id = target_type_id(workflow, device_id)
        callbacks = self._shared_callbacks(workflow, device_id, type_id)
        enabled = [c for c in callbacks if c.enabled]
        if callbacks:
            text = (f"Callbacks checked: {len(enabled)} of the device type's {len(callbacks)} "
                    "callbacks are enabled and will receive its messages.")
        else:
            text = ("Callbacks checked: the device type has none, so its messages go nowhere "
                    "but the Sigfox portal. Declare one there if they should.")
        details: dict[str, Any] = {"callbacks": len(callbacks), "enabled": len(enabled)}
        if snapshot and snapshot.device_type_id and snapshot.device_type_id != type_id:
            previous = self._shared_callbacks(workflow, device_id, snapshot.device_type_id)
            missing = missing_callbacks(previous, callbacks)
            if missing:
                text += (
                    f" The previous device type had {len(missing)} callbacks the new one lacks: "
                    "an approver can copy them."
                )
                details["copy_callbacks_from"] = snapshot.device_type_id
        data = {**step.data, **details}
        self.books.move(workflow, device_id, StepState.CHECKING_CALLBACKS, StepState.DONE, text,
                        data=data)

    def _shared_callbacks(self, workflow: WorkflowRecord, device_id: str, type_id: str
                          ) -> list[Callback]:
        """The device type's callbacks, read once per tick for the job's devices on it."""
        return self.read_ahead.shared(workflow.id, ("callbacks", type_id),
                                      lambda: self._callbacks(workflow, device_id, type_id))

    def _callbacks(self, workflow: WorkflowRecord, device_id: str, type_id: str) -> list[Callback]:
        return list(self.books.call(workflow, device_id, "read callbacks",
                                    lambda: list(self.api.iter_device_type_callbacks(type_id))))

    def _step_transfer(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        if step.state == StepState.CHECKING_CALLBACKS:
            self._check_callbacks(workflow, step)
            return
        # A new device type may send its messages elsewhere: check callbacks, as a renewal does.
        self._transfer(workflow, step, f"Transferred to {workflow.params.get('device_type_name')}.",
                       then=StepState.CHECKING_CALLBACKS,
                       details={"device_type_id": workflow.params["device_type_id"]})

    def _transfer(self, workflow: WorkflowRecord, step: StepRecord, done_text: str, *,
                  then: StepState, details: dict[str, Any] | None = None) -> None:
        """The bulk transfer to the workflow's device type, shared by transfer and renewal."""
        moved = self.bulk.transfer(workflow, step, done_text, then=then, details=details)
        if moved and then == StepState.CHECKING_CALLBACKS:
            self._check_callbacks(workflow, self.books.device_step(workflow, step.device_id))

    def _step_restart(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        self.bulk.restart(workflow, step)

    def _step_unsubscribe(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        device_id = step.device_id
        when = int(workflow.params["unsubscribe_at_ms"])
        if step.state == StepState.PENDING and not self.store.cas_device(
            workflow.id, device_id, StepState.PENDING, StepState.SUBMITTING, self.clock.now()
        ):
            return
        if not self.write_ahead.settled(workflow, device_id):
            return
        device = self._read_device(workflow, device_id)
        if device is None:
            self.books.fail(workflow, device_id, "unsubscribe",
                            f"{device_id} is no longer in Sigfox.")
            return
        if unsubscription_time(device) != when:
            try:
                self.write_ahead.send(workflow, [device_id], UNSUBSCRIBE,
                                      self.api.unsubscribe_device, device_id, when,
                                      details={"at_ms": when})
            except NotSent:
                return
        self.books.move(workflow, device_id, StepState.SUBMITTING, StepState.DONE,
                        f"Unsubscription set for {day(when)}.")


_HELD_WORDS = ("already exist", "still exist", "being deleted", "held", "not yet released",
               "not released")


def says_held(text: str) -> bool:
    """A 400 to a re-create, or a create job's error for a device, whose text says the id
    still exists or is held: the backend has not finished with the delete. Message texts may
    change, so this only widens the wait (the reading that cannot strand a device); any other
    400 fails with Sigfox's reason, any other job error is learnt from the device's own
    create."""
    text = text.lower()
    return any(word in text for word in _HELD_WORDS)


_FIRST_MESSAGE_CAUSES = {
    TokenState.OFF_CONTRACT: (
        "the contract had no token left when the message arrived (other devices may have taken "
        "them meanwhile), or it stopped taking activations",
        "when the contract has tokens again, `/sigfox restart {id}` brings it back without "
        "deleting anything",
    ),
    TokenState.INVALID: (
        "its token ended and was not renewed",
        "make it send another message: it then takes a new token or turns Off Contract",
    ),
}


def first_message_failure(device: Device) -> str:
    """Why the device cannot be called renewed ("" while it may still take its token)."""
    state = device.token_state
    detail = device.token.detail_message if device.token else None
    if state in _FIRST_MESSAGE_CAUSES:
        cause, then = _FIRST_MESSAGE_CAUSES[state]
        said = f"Sigfox says “{detail}”" if detail else f"Sigfox shows its token {state.name}"
        return (f"After registering, the device is {state.name.replace('_', ' ').title()}: "
                f"{said}. Likely cause: {cause}. Next: {then.format(id=device.id)}.")
    if state is None and (device.activable is False or device.state == DeviceState.NOT_ACTIVABLE):
        return ("After registering, Sigfox shows the device NOT_ACTIVABLE: it cannot take a "
                "token. Likely cause: it was registered with activable false. Next: make it "
                "activable in the Sigfox portal; its next message then takes a token.")
    return ""


def target_type_id(workflow: WorkflowRecord, device_id: str) -> str:
    """The device type a renewal or a transfer puts the device on."""
    targets = workflow.params.get("targets", {})
    return str(targets.get(device_id) or workflow.params.get("device_type_id", ""))


def missing_callbacks(previous: Sequence[Callback], current: Sequence[Callback]
                      ) -> list[Callback]:
    """The callbacks of `previous` that `current` lacks (same type, URL and channel)."""
    have = {(c.callback_type, c.url, c.channel) for c in current}
    return [c for c in previous if (c.callback_type, c.url, c.channel) not in have]
