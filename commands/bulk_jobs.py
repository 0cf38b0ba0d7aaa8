"""Sigfox bulk jobs (transfer, restart) for the devices of a workflow.

The pending devices of a job are claimed together and submitted as one bulk job (Sigfox
accepts five per ten minutes); each device is then read on its own until it shows the job's
effect: the device is the truth, the job only explains a failure. The submission goes through
the `WriteAhead` like every destructive call, so a cut-off submission is sent again only once
it is verified not to have taken effect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commands.bookkeeping import Bookkeeper
from commands.planning import type_id_of
from commands.ports import Clock, ProgressKind, SigfoxApi
from commands.read_ahead import ReadAhead
from commands.states import StepState
from commands.writeahead import NotSent, WriteAhead, answered_job_id
from sigfox.errors import SigfoxError
from sigfox.models import BulkJob, Device, JobKind, TokenState
from storage.intents import NOT_LANDED
from storage.records import StepRecord, WorkflowRecord
from storage.store import Store

JOB_POLL_SECONDS = 5.0
JOB_TIMEOUT_SECONDS = 3600.0
_CLAIMING = threading.Lock()  # see BulkJobs._submit


@dataclass(frozen=True, kw_only=True)
class BulkJobs:
    """Submits a workflow's pending devices as one Sigfox bulk job and watches each device."""

    store: Store
    api: SigfoxApi
    clock: Clock
    books: Bookkeeper
    write_ahead: WriteAhead
    read_ahead: ReadAhead = field(default_factory=ReadAhead)

    def transfer(self, workflow: WorkflowRecord, step: StepRecord, done_text: str, *,
                 then: StepState, details: dict[str, Any] | None = None) -> bool:
        """The bulk transfer to the workflow's device type, shared by transfer and renewal.
        True when the device arrived and moved to `then`."""
        target = workflow.params["device_type_id"]

        def arrived(device: Device | None) -> bool:
            return device is not None and type_id_of(device) == target

        def submit(device_ids: list[str]) -> str:
            return self.api.bulk_transfer(target, device_ids)

        return self._advance(workflow, step, JobKind.TRANSFER, submit, arrived, done_text,
                             then=then, details=details)

    def restart(self, workflow: WorkflowRecord, step: StepRecord) -> None:
        def back(device: Device | None) -> bool:
            return (
                device is not None
                and device.token is not None
                and device.token.state == TokenState.OK
            )

        self._advance(workflow, step, JobKind.RESTART, self.api.bulk_restart, back,
                      "Restarted: the token is OK again.")

    def _advance(
        self,
        workflow: WorkflowRecord,
        step: StepRecord,
        kind: JobKind,
        submit: Callable[[list[str]], str],
        reached: Callable[[Device | None], bool],
        done_text: str,
        then: StepState = StepState.DONE,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """One bulk job for every pending device; each device is then checked on its own:
        the device itself is the truth, the job only explains a failure. True when this
        device reached the job's effect and moved to `then`."""
        if step.state == StepState.PENDING:
            self._submit(workflow, kind, submit, details)
            return False
        device_id = step.device_id
        # The submission could still land:
        if not self.write_ahead.settled(workflow, device_id):
            return False
        # As this tick's page read showed it (commands/read_ahead.py), else read on its own.
        device = self.read_ahead.take(workflow.id, device_id)
        if device is None:
            device = self.books.call(workflow, device_id, "read device", self.api.find_device,
                                     device_id)
        if reached(device):
            return self.books.move(workflow, device_id, step.state, then, done_text)
        now = self.clock.now()
        submitted_at = float(step.data.get("submitted_at", step.updated_at))
        last = self.write_ahead.last_intent(workflow.id, device_id, kind.value)
        # Sigfox's answer carries the job id; a crash may have kept it in the intent only.
        job_id = step.data.get("job_id") or answered_job_id(last)
        if job_id:
            job = self.books.call(workflow, device_id, "read job", self.api.get_job, kind, job_id)
            error = job_error(job, device_id)
            if error:
                self.books.fail(
                    workflow, device_id, kind.value,
                    f"Sigfox's {kind.value} job {job_id} failed for {device_id}: {error}")
                return False
        elif last is None or last.state == NOT_LANDED:
            # Never sent (a crash before its intent), or verified not to have taken effect.
            with _CLAIMING:  # a live claimer writes the intent under this lock: look again
                last = self.write_ahead.last_intent(workflow.id, device_id, kind.value)
            if last is None or last.state == NOT_LANDED:
                self._resubmit(workflow, step, kind)
                return False
        if now - submitted_at > JOB_TIMEOUT_SECONDS:
            self.books.fail(workflow, device_id, kind.value,
                            f"The {kind.value} job did not take effect within an hour; check the "
                            "device in the Sigfox portal before asking again.")
            return False
        self.store.update_device_step(workflow.id, device_id, now, next_run=now + JOB_POLL_SECONDS)
        self.books.schedule(workflow.id, now + JOB_POLL_SECONDS)
        return False

    def _resubmit(self, workflow: WorkflowRecord, step: StepRecord, kind: JobKind) -> None:
        """The submission was cut off (a crash, a timeout) and it is verified that it did not
        take effect (see `WriteAhead.settled`): send it again."""
        now = self.clock.now()
        if self.store.cas_device(workflow.id, step.device_id, step.state,
                                 StepState.PENDING.value, now, next_run=now):
            self.books.schedule(workflow.id, now)
            self.books.tell(
                workflow, ProgressKind.STEP_DONE,
                f"The {kind.value} request did not take effect (checked once it could no "
                "longer land): sending it again.", device_id=step.device_id)

    def _submit(
        self, workflow: WorkflowRecord, kind: JobKind, submit: Callable[[list[str]], str],
        details: dict[str, Any] | None = None,
    ) -> None:
        now = self.clock.now()
        # One claimer at a time: the steps of a job run side by side, and two threads claiming
        # the pending devices at once would split them over two jobs (of 5 per 10 minutes).
        # The intent is written under the same lock, so a device seen `submitting` without an
        # intent (see `_advance`) was left so by a process that died.
        with _CLAIMING:
            pending = [s.device_id for s in self.store.workflow_devices(workflow.id)
                       if s.state == StepState.PENDING]
            claimed = [
                d for d in pending
                # The poll is scheduled with the claim: the job's other steps of this tick
                # see the device no longer due, and its devices are read together, in pages.
                if self.store.cas_device(workflow.id, d, StepState.PENDING,
                                         StepState.SUBMITTING, now, data={"submitted_at": now},
                                         next_run=now + JOB_POLL_SECONDS)
            ]
            if not claimed:
                return
            try:
                batch = self.write_ahead.open_intent(workflow, claimed, kind.value, details,
                                                     bulk=True)
            except NotSent:
                # Cancelled meanwhile, or a call on one of them is unresolved: not sent, back
                # to pending; the next tick looks again.
                for device_id in claimed:
                    self.store.cas_device(workflow.id, device_id, StepState.SUBMITTING,
                                          StepState.PENDING.value, now,
                                          next_run=now + self.books.tick_seconds())
                return
        try:
            job_id = self.write_ahead.send(workflow, claimed, kind.value, submit, claimed,
                                           batch=batch, bulk=True)
        except SigfoxError as error:
            # Unknown outcome: the devices are watched, and submitted again if nothing changes.
            # Known refusal: back to pending, retried later with back-off.
            target = StepState.AWAITING_JOB if error.outcome_unknown else StepState.PENDING
            for device_id in claimed:
                self.store.cas_device(workflow.id, device_id, StepState.SUBMITTING,
                                      target.value, now, last_error=str(error))
            if error.outcome_unknown:
                return
            raise
        for device_id in claimed:
            self.store.cas_device(workflow.id, device_id, StepState.SUBMITTING,
                                  StepState.AWAITING_JOB, now,
                                  data={"job_id": job_id, "submitted_at": now},
                                  next_run=now + JOB_POLL_SECONDS)
        self.books.schedule(workflow.id, now + JOB_POLL_SECONDS)
        self.books.tell(workflow, ProgressKind.STEP_DONE,
                        f"Sigfox {kind.value} job {job_id} started for {len(claimed)} device(s).",
                        job_id=job_id)


def job_error(job: BulkJob, device_id: str) -> str:
    """What a finished job says went wrong for this device ("" when nothing did)."""
    if not job.done:
        return ""
    mine = [e.message or "no reason given" for e in job.errors if e.entity == device_id]
    if mine:
        return mine[0]
    if job.failed and job.total == job.failed and job.errors:  # the whole job failed
        return job.errors[0].message or "no reason given"
    return ""
