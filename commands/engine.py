"""The workflow engine: it advances every job that can move, and never waits in a thread.

`tick()` expires and follows up approval requests, then takes the due jobs oldest first and
runs their due device steps (side by side, `concurrent_steps` at most) through the
`StepRunner`. Each job is claimed with a lease first, so two workers or two processes never run
the same job at once; each move is a compare-and-set (see commands/bookkeeping.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from commands.approvals import ApprovalRounds
from commands.bookkeeping import Bookkeeper, clock_time, public_details
from commands.cancels import PendingCancels
from commands.config import BotConfig
from commands.ports import Clock, ProgressKind
from commands.preflight import day
from commands.states import ACTIVE, Kind, StepState, WorkflowState
from commands.steps import StepRunner
from commands.stops import StopRest, stopped_summary
from commands.ticks import Stopwatch, TickStats
from commands.writeahead import WriteAhead
from sigfox.errors import SigfoxError
from storage.records import StepRecord, WorkflowRecord
from storage.store import Store

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0
MAX_BACKOFF_SECONDS = 900.0


@dataclass(kw_only=True)
class WorkflowEngine:
    """Advances the jobs: claims each due one, runs its due steps, retries faults later, and
    finishes it when every device is done or failed."""

    store: Store
    clock: Clock
    config: BotConfig
    books: Bookkeeper
    write_ahead: WriteAhead
    steps: StepRunner
    approvals: ApprovalRounds
    cancels: PendingCancels
    stops: StopRest
    owner: str  # names this process's leases
    # Told the id of every device renewed or restarted through the bot (alerts resolve).
    on_renewed: Callable[[str], object] | None = None
    # Real elapsed time for the tick's budget and timings (the clock may be virtual).
    stopwatch: Stopwatch = time.perf_counter
    last_tick: TickStats | None = field(default=None, init=False)

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
        self.approvals.follow_up_pending()
        self.approvals.count_down_wait_timers()
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
            self._advance_claimed(self.books.workflow(workflow_id),
                                  stats or TickStats(self.stopwatch))
        finally:
            self.store.release_workflow(workflow_id, self.owner)

    def _advance_claimed(self, workflow: WorkflowRecord, stats: TickStats) -> None:
        now = self.clock.now()
        if workflow.state == WorkflowState.APPROVED:
            if not self.store.cas_workflow(
                workflow.id, [WorkflowState.APPROVED.value], WorkflowState.RUNNING.value, now
            ):
                return
            workflow = self.books.workflow(workflow.id)
        if workflow.state != WorkflowState.RUNNING:
            return
        if self.cancels.carry_out(workflow):  # a cancel asked while a call could land
            return
        self.stops.sweep(workflow)  # a stopped job: what is untouched again stays untouched
        due = self._read_ahead(workflow, self._due_steps(workflow))
        try:
            due = self.steps.run_together(workflow, due)
            self._run_steps(workflow, due, stats)
            if self.steps.runs_together(workflow):  # what the steps just made due for it
                self.steps.run_together(workflow, self._due_steps(workflow))
        finally:
            self.steps.read_ahead.drop(workflow.id)
        self.finish_if_done(self.books.workflow(workflow.id))

    def _due_steps(self, workflow: WorkflowRecord) -> list[StepRecord]:
        now = self.clock.now()
        return [step for step in self.store.workflow_devices(workflow.id)
                if not StepState(step.state).finished and step.next_run <= now]

    def _read_ahead(self, workflow: WorkflowRecord, due: list[StepRecord]) -> list[StepRecord]:
        """The devices the due steps start by reading, in pages (see commands/read_ahead.py);
        returns the steps to run now (those whose page the list limit holds back wait)."""
        def audit(devices: int, outcome: str) -> None:
            self.store.audit("bot", "sigfox read devices", self.clock.now(),
                             workflow_id=workflow.id, outcome=outcome,
                             details={"devices": devices})

        deferred = self.steps.read_ahead.load(self.steps.api, workflow.id, due, audit,
                                              self.steps.reads_first(workflow))
        if deferred is None:
            return due
        now = self.clock.now()
        for device_id in deferred.device_ids:
            self.store.update_device_step(workflow.id, device_id, now,
                                          next_run=max(deferred.retry_at, now))
        return [s for s in due if s.device_id not in deferred.device_ids]

    def _run_steps(self, workflow: WorkflowRecord, due: list[StepRecord], stats: TickStats
                   ) -> None:
        """The due steps side by side, `concurrent_steps` at most: each spends its time waiting
        for Sigfox's answers, so a thousand-device job ticks in steps x latency / width, not
        steps x latency. Nothing else changes: every call still goes through the client's
        pacing (per endpoint, per device), and each step moves by compare-and-set, so a step
        that another thread (or process) moved meanwhile does not run twice."""
        def run(step: StepRecord) -> None:
            # Past the tick's budget a step does not start: it stays due, and
            # `finish_if_done` schedules the job for now, so the next tick takes it.
            if not stats.out_of_time():
                stats.timed(workflow.label, step.device_id, step.state,
                            partial(self._run_step, workflow, step.device_id))

        width = min(self.config.timing.concurrent_steps, len(due))
        if width <= 1:
            for step in due:
                run(step)
            return
        with ThreadPoolExecutor(max_workers=width,
                                thread_name_prefix=f"{workflow.label}-steps") as pool:
            for _ in pool.map(run, due):
                pass

    def _run_step(self, workflow: WorkflowRecord, device_id: str) -> None:
        step = self.store.device_step(workflow.id, device_id)
        # Rescheduled since the tick began (the bulk job just submitted for it by another
        # step): no longer due. Its devices are read together, in pages, when it is. Finished
        # since (stopped by a person while the tick ran the others): nothing to do, ever.
        if step is None or step.next_run > self.clock.now() or StepState(step.state).finished:
            return
        try:
            self.steps.run(workflow, step)
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
            backoff = self.books.tick_seconds() * 2 ** min(attempts, 10)
            next_run = now + min(MAX_BACKOFF_SECONDS, backoff)
        # An unanswered call: read only after it can no longer land.
        landing = self.write_ahead.landing_wait_until(device_id)
        if landing is not None:
            next_run = max(next_run, landing)
        self.store.update_device_step(
            workflow.id, device_id, now, attempts=attempts, next_run=next_run,
            last_error=str(error),
        )
        self.books.schedule(workflow.id, next_run)
        log.warning("%s %s: %s; retrying in %.0fs", workflow.label, device_id,
                    type(error).__name__, next_run - now)
        if error.retry_at is not None and step is not None:
            self._report_sigfox_wait(workflow, step, error.waiting_for, next_run)

    def _report_sigfox_wait(self, workflow: WorkflowRecord, step: StepRecord, waiting_for: str,
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
        self.books.tell(workflow, ProgressKind.WAITING, f"Waiting for {waiting_for} until {when}.",
                        device_id=step.device_id, wait="sigfox", waiting_for=waiting_for,
                        retry_at=until)

    # -- the first message ---------------------------------------------------------------------

    def note_uplink(self, device_id: str) -> list[int]:
        """The backend's DATA callback: make every renewal waiting for this device due now.
        Reads nothing from Sigfox, so the callback's HTTP answer is immediate; returns the
        workflows to advance."""
        device_id = device_id.upper()
        steps = self.store.active_steps_for_device(device_id, [StepState.AWAITING_UPLINK.value])
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

    def finish_if_done(self, workflow: WorkflowRecord) -> None:
        steps = self.store.workflow_devices(workflow.id)
        if not all(StepState(s.state).finished for s in steps):
            pending = [s.next_run for s in steps if not StepState(s.state).finished]
            self.books.schedule(workflow.id, min(pending))
            return
        failed = [s for s in steps if s.state == StepState.FAILED]
        stopped = any(s.state == StepState.STOPPED for s in steps)
        state = (WorkflowState.STOPPED if stopped else
                 WorkflowState.FAILED if failed else WorkflowState.DONE)
        if not self.store.cas_workflow(workflow.id, [WorkflowState.RUNNING.value], state.value,
                                       self.clock.now(), outcome=state.value):
            return
        self.store.release_device_locks(workflow.id)
        self._announce_renewed(workflow, steps)
        summary = _summary(Kind(workflow.kind), steps)
        if stopped:
            summary = "\n".join([stopped_summary(workflow.kind, steps),
                                 *summary.splitlines()[1:]])
        kind = ProgressKind.FAILED if failed and not stopped else ProgressKind.FINISHED
        self.books.tell(self.books.workflow(workflow.id), kind, summary, outcome=state.value,
                        results={s.device_id: {"state": s.state, **public_details(s.data),
                                               "error": s.last_error} for s in steps})

    def _announce_renewed(self, workflow: WorkflowRecord, steps: Sequence[StepRecord]) -> None:
        if self.on_renewed is None or workflow.kind not in (Kind.RENEW, Kind.RESTART):
            return
        for step in steps:
            if step.state == StepState.DONE:
                try:
                    self.on_renewed(step.device_id)
                except Exception:  # alert bookkeeping must not undo a finished renewal
                    log.exception("could not mark %s renewed", step.device_id)


def _summary(kind: Kind, steps: Sequence[StepRecord]) -> str:
    done = [s for s in steps if s.state == StepState.DONE]
    failed = [s for s in steps if s.state == StepState.FAILED]
    head = f"{kind.value.capitalize()} finished: {len(done)} of {len(steps)} device(s) done"
    lines = [head + (f", {len(failed)} failed." if failed else ".")]
    for step in done:
        if step.data.get("token_end"):
            lines.append(f"• {step.device_id}: token OK until {day(step.data['token_end'])}")
    for step in failed:
        lines.append(f"• {step.device_id}: {step.last_error}")
    return "\n".join(lines)

