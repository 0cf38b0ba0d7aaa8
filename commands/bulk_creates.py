"""Registering again, in Sigfox bulk create jobs (POST /devices/bulk), the devices of a renewal
by delete that are due to be registered together.

A renewal by delete registers each deleted device again with its recorded PAC, retrying every
`release_retry` while Sigfox still holds the id. One create per device per attempt is a call
per device per retry round; one bulk job carries them all. Before and after the tick's steps
run, the job's devices waiting for release that are due, that this tick's pages showed gone and
that no call could still land on, are claimed together (compare-and-set) and submitted as one
job per device type (and shared flags), through the `WriteAhead` as every destructive call: the
intent is written first, its batch records Sigfox's answer (the job id) so that a crash after
the answer finds the job again, and a submission with no answer is settled by a read once it
can no longer land (the device listed: it was created).

Each device is then read with the job's others, in pages, until it shows (registered again);
the job's status (`registrationJobStatus`: `jobDone`, and an error per failed entity) explains
the others: an id Sigfox still holds goes back to waiting for release, to be retried in the
next round's job; any other reason is learnt by creating that device alone (POST /devices/
answers with a status code, which a job error lacks). Sigfox accepts 5 bulk jobs per 10
minutes (shared with transfers and restarts): the client's pacer counts them in the database
and refuses a sixth with the date it may go, which the claimed devices wait for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from commands.bookkeeping import Bookkeeper, clock_time
from commands.bulk_jobs import JOB_POLL_SECONDS, JOB_TIMEOUT_SECONDS, job_error
from commands.config import BotConfig
from commands.ports import Clock, ProgressKind, SigfoxApi
from commands.read_ahead import ReadAhead
from commands.states import StepState
from commands.writeahead import CREATE, RESOLVED_BY_READ, NotSent, WriteAhead, answered_job_id
from sigfox.errors import SigfoxBadRequest, SigfoxConflict, SigfoxError, SigfoxForbidden
from sigfox.models import BulkJob, Device, DeviceCreate, JobKind
from storage.intents import LANDED, NOT_LANDED
from storage.records import Snapshot, StepRecord, WorkflowRecord
from storage.store import Store

log = logging.getLogger(__name__)

MIN_DEVICES = 2  # one device is one POST /devices/ either way, and spends no bulk job
SINGLE_CREATE = "single_create"  # step data: this device is registered by its own create
JOB_SEEN_DONE = "create_job_done"  # step data: its job was seen done, the device not yet

Creation = Callable[[WorkflowRecord, Snapshot], DeviceCreate]


class JobVerdict(Enum):
    """What the job's status says of a device the pages did not show yet."""

    RUNNING = "running"  # not done, or done and the device not listed yet: look again
    HELD = "held"  # Sigfox still holds the id: wait for release, then the next job
    REFUSED = "refused"  # another reason: create the device alone to learn it
    RESUBMIT = "resubmit"  # never sent, or verified not to have taken effect


@dataclass(frozen=True, kw_only=True)
class BulkRegistrations:
    """Submits the due registrations of a renewal by delete as bulk create jobs, and reads
    each device's outcome from the job's status."""

    store: Store
    api: SigfoxApi
    clock: Clock
    config: BotConfig
    books: Bookkeeper
    write_ahead: WriteAhead
    read_ahead: ReadAhead

    def submit_due(self, workflow: WorkflowRecord, due: Sequence[StepRecord],
                   creation: Creation) -> set[str]:
        """Submit, as bulk jobs, the due steps that may register now; returns the devices
        handled (submitted, or waiting for a bulk slot), which the tick does not run again.
        Runs before and after the tick's steps (`WorkflowEngine`), never while one of the
        job's steps runs."""
        groups: dict[str, list[tuple[StepRecord, DeviceCreate]]] = {}
        for step in due:
            if not self._may_join(workflow, step):
                continue
            snapshot = self.store.snapshots.of(workflow.id, step.device_id)
            if snapshot is None:
                continue
            body = creation(workflow, snapshot)
            groups.setdefault(_shared_fields(body), []).append((step, body))
        handled: set[str] = set()
        for group in groups.values():
            if len(group) >= MIN_DEVICES:
                handled |= self._submit(workflow, group)
        return handled

    def _may_join(self, workflow: WorkflowRecord, step: StepRecord) -> bool:
        """Due for a registration attempt, shown gone by this tick's pages, and no call on it
        that could still land (that is for its own step to settle first)."""
        if step.state != StepState.AWAITING_RELEASE or step.data.get(SINGLE_CREATE):
            return False
        known, device = self.read_ahead.seen(workflow.id, step.device_id)
        return known and device is None and not self.store.intents.unresolved(step.device_id)

    def _submit(self, workflow: WorkflowRecord, group: list[tuple[StepRecord, DeviceCreate]]
                ) -> set[str]:
        now = self.clock.now()
        claimed = [(step, body) for step, body in group if self.store.cas_device(
            workflow.id, step.device_id, StepState.AWAITING_RELEASE, StepState.SUBMITTING, now,
            data={**step.data, "submitted_at": now}, next_run=now + JOB_POLL_SECONDS)]
        ids = [step.device_id for step, _ in claimed]
        if not ids:
            return set()
        type_id = claimed[0][1].device_type_id
        try:
            batch = self.write_ahead.open_intent(workflow, ids, CREATE,
                                                 {"device_type_id": type_id, "bulk": True},
                                                 bulk=True)
        except NotSent:  # cancelled meanwhile, or a call on one of them is unresolved
            self._back_to_release(workflow, claimed, now + self.books.tick_seconds())
            return set()
        bodies = [body for _, body in claimed]
        first = bodies[0]
        certificate = first.product_certificate.key if first.product_certificate else None
        try:
            job_id = self.write_ahead.send(
                workflow, ids, CREATE, self._bulk_create, type_id, bodies, first.prototype,
                certificate, batch=batch, bulk=True)
        except SigfoxError as error:
            return self._not_submitted(workflow, claimed, error)
        for step, _ in claimed:
            self.store.cas_device(workflow.id, step.device_id, StepState.SUBMITTING,
                                  StepState.AWAITING_JOB, now,
                                  data={**step.data, "job_id": job_id, "submitted_at": now},
                                  next_run=now + JOB_POLL_SECONDS)
        self.books.schedule(workflow.id, now + JOB_POLL_SECONDS)
        self.books.tell(workflow, ProgressKind.STEP_DONE,
                        f"Sigfox create job {job_id} started for {len(ids)} device(s): "
                        "registering them again with their recorded PACs.", job_id=job_id)
        return set(ids)

    def _bulk_create(self, type_id: str, bodies: list[DeviceCreate], prototype: bool | None,
                     certificate: str | None) -> str:
        return self.api.bulk_create_devices(type_id, bodies, prototype=prototype,
                                            product_certificate_key=certificate)

    def _not_submitted(self, workflow: WorkflowRecord,
                       claimed: list[tuple[StepRecord, DeviceCreate]], error: SigfoxError
                       ) -> set[str]:
        """No answer: the devices are watched (their steps settle the intent by a read once
        it can no longer land). Refused for a while (the 5-jobs limit, a 429): they wait for
        then, all together. Refused outright: each is created alone, to learn why."""
        now = self.clock.now()
        ids = {step.device_id for step, _ in claimed}
        if error.outcome_unknown:
            for step, _ in claimed:
                self.store.cas_device(workflow.id, step.device_id, StepState.SUBMITTING,
                                      StepState.AWAITING_JOB, now, last_error=str(error))
            return ids
        if isinstance(error, SigfoxBadRequest | SigfoxForbidden | SigfoxConflict):
            log.info("%s: Sigfox refused a create job (%s): creating the devices one by one",
                     workflow.label, type(error).__name__)
            self._back_to_release(workflow, claimed, now, single=True)
            return ids
        when = max(error.retry_at or now + self.books.tick_seconds() * 2, now)
        self._back_to_release(workflow, claimed, when, last_error=str(error))
        if error.retry_at is not None:
            self.books.tell(
                workflow, ProgressKind.WAITING,
                f"Waiting for {error.waiting_for} until "
                f"{clock_time(when, self.config.alerts.tz, now)} to register {len(ids)} "
                "device(s) again in one job.", wait="sigfox", retry_at=when)
        return ids

    def _back_to_release(self, workflow: WorkflowRecord,
                         claimed: list[tuple[StepRecord, DeviceCreate]], when: float, *,
                         single: bool = False, last_error: str = "") -> None:
        now = self.clock.now()
        for step, _ in claimed:
            data = {**step.data, SINGLE_CREATE: True} if single else step.data
            self.store.cas_device(workflow.id, step.device_id, StepState.SUBMITTING,
                                  StepState.AWAITING_RELEASE, now, data=data, next_run=when,
                                  last_error=last_error)
        self.books.schedule(workflow.id, when)

    # -- each device, after the submission -------------------------------------------------

    def verdict(self, workflow: WorkflowRecord, step: StepRecord,
                held: Callable[[str], bool]) -> tuple[JobVerdict, str]:
        """For a device the pages did not show: what its job says, and Sigfox's reason when
        it failed. Polls again later when there is nothing to conclude yet."""
        device_id = step.device_id
        last = self.write_ahead.last_intent(workflow.id, device_id, CREATE)
        job_id = step.data.get("job_id") or answered_job_id(last)
        if not job_id:
            if last is None or last.state == NOT_LANDED:
                return JobVerdict.RESUBMIT, ""
            return self._poll_later(workflow, step), ""
        job = self.read_ahead.shared(  # one status read per tick for all the job's devices
            workflow.id, ("create job", job_id),
            lambda: self.books.call(workflow, device_id, "read job", self.api.get_job,
                                    JobKind.CREATE, job_id))
        if not job.done:
            return self._poll_later(workflow, step), ""
        error = job_error(job, device_id)
        if error:
            return (JobVerdict.HELD if held(error) else JobVerdict.REFUSED), error
        return self._done_not_listed(workflow, step, job), ""

    def _done_not_listed(self, workflow: WorkflowRecord, step: StepRecord, job: BulkJob
                         ) -> JobVerdict:
        """The job is done and names no error for the device, but the pages (read before the
        status) do not list it: read with the others at the next tick."""
        if not step.data.get(JOB_SEEN_DONE):
            self.store.update_device_step(workflow.id, step.device_id, self.clock.now(),
                                          data={**step.data, JOB_SEEN_DONE: job.job_id})
        return self._poll_later(workflow, step)

    def _poll_later(self, workflow: WorkflowRecord, step: StepRecord) -> JobVerdict:
        now = self.clock.now()
        submitted_at = float(step.data.get("submitted_at", step.updated_at))
        if now - submitted_at > JOB_TIMEOUT_SECONDS:
            return JobVerdict.REFUSED
        when = now + min(JOB_POLL_SECONDS, self.books.tick_seconds())
        self.store.update_device_step(workflow.id, step.device_id, now, next_run=when)
        self.books.schedule(workflow.id, when)
        return JobVerdict.RUNNING

    def listed(self, workflow: WorkflowRecord, step: StepRecord) -> Device | None:
        """The device as this tick's pages showed it; else its own read once something said
        it exists (its job done without an error for it, or a read settling an unanswered
        submission found it), as the pages may be older than that."""
        device = self.read_ahead.take(workflow.id, step.device_id)
        if device is None and (step.data.get(JOB_SEEN_DONE) or self._seen_created(workflow,
                                                                                  step)):
            device = self.books.call(workflow, step.device_id, "read device",
                                     self.api.find_device, step.device_id)
        return device

    def _seen_created(self, workflow: WorkflowRecord, step: StepRecord) -> bool:
        last = self.write_ahead.last_intent(workflow.id, step.device_id, CREATE)
        return last is not None and last.state == LANDED and last.outcome == RESOLVED_BY_READ


def _shared_fields(body: DeviceCreate) -> str:
    """What one bulk job gives all its devices: the device type, and the flags the Swagger
    puts on the job rather than on each device (prototype, product certificate)."""
    certificate = body.product_certificate.key if body.product_certificate else None
    return json.dumps([body.device_type_id, body.prototype, certificate])
