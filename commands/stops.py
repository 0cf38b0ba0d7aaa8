"""Stopping the rest of a running job (issue 13): the devices it has not touched yet.

A job over many devices cannot be cancelled once its first change took effect at Sigfox, but
an operator who sees it going wrong (a wrong list, a wrong contract) must be able to stop it
for the devices it has not changed yet. `/sigfox cancel` (or Cancel on the job's card) on
such a job stops every device step untouched at Sigfox (`pending`, or `deleting` with no call
written ahead that landed or still could), in one compare-and-set transaction
(`Store.stop_untouched`): a tick about to act on one of those devices claims it from
`pending` or writes its call ahead first, so either the tick got there first (the device is
touched and is finished as before, its PAC kept) or the stop did and nothing is ever sent
for it. A device whose call was sent, or may have been (a DELETE or create unanswered,
`submitting`, in a submitted bulk job, deleted and waiting to be registered again), is
touched: it is finished. The job ends when those are,
`stopped` (part-way), and its summary counts the stopped devices apart from the failed ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from commands import human
from commands.bookkeeping import Bookkeeper, clock_time
from commands.config import BotConfig
from commands.outcome import Outcome
from commands.policy import Actor
from commands.ports import Clock, ProgressKind
from commands.states import StepState, WorkflowState
from storage.records import StepRecord, WorkflowRecord
from storage.store import STOP_ASKED, Store

RUNNING = [WorkflowState.RUNNING.value]
NAMED_UP_TO = 10  # devices named in a line; past that, a count

# Why a touched device is still being finished, by where its step stands.
_STILL_FINISHING = {
    StepState.DELETING: "its DELETE was sent (or may have been)",
    StepState.SUBMITTING: "its change was sent to Sigfox (or may have been)",
    StepState.AWAITING_JOB: "it is in a Sigfox bulk job already submitted",
    StepState.AWAITING_RELEASE: "deleted, waiting for Sigfox to release its id to register it "
                                "again with its recorded PAC",
    StepState.REGISTERED: "registered again, its contract being read",
    StepState.AWAITING_UPLINK: "registered again, waiting for its first message",
    StepState.CHECKING_CALLBACKS: "registered again, its callbacks being checked",
}


@dataclass(frozen=True, kw_only=True)
class StopRest:
    """Stops a running job's untouched devices, says so, and sweeps those found untouched
    later (a submission verified not to have reached Sigfox)."""

    store: Store
    clock: Clock
    config: BotConfig
    books: Bookkeeper

    def stop(self, workflow: WorkflowRecord, actor: Actor) -> Outcome | None:
        """Stop the job's untouched devices (the caller checked `actor` may cancel it). None
        when there is none to stop and the job was not stopped before: the caller answers
        as it did before stops existed."""
        now = self.clock.now()
        asked = {"by": actor.user_id, "at": now}
        stopped = self.store.stop_untouched(workflow.id, RUNNING, asked, now)
        if stopped is None:
            return self._already_stopped(self.books.workflow(workflow.id))
        if not stopped:
            return None
        steps = self.store.workflow_devices(workflow.id)
        finishing = _finishing(steps)
        self.store.audit(actor.user_id, "stop", now, workflow_id=workflow.id, outcome="stopped",
                         details={"stopped": len(stopped), "finishing": len(finishing),
                                  "devices": stopped})
        said = _what_happened(workflow.label, stopped, finishing, steps)
        self.books.tell(self.books.workflow(workflow.id), ProgressKind.STEP_DONE,
                        f"Stopped by <@{actor.user_id}>. {said}", stop="stopped",
                        stopped=len(stopped), finishing=len(finishing))
        return Outcome(True, f"{workflow.label} stopped. {said}", workflow.id,
                       details={"stopped": len(stopped), "finishing": len(finishing)})

    def _already_stopped(self, workflow: WorkflowRecord) -> Outcome | None:
        asked: dict[str, Any] | None = workflow.params.get(STOP_ASKED)
        if not asked:
            return None  # the job left `running` meanwhile: the caller says where it stands
        counts = Counter(s.state for s in self.store.workflow_devices(workflow.id))
        when = clock_time(float(asked["at"]), self.config.alerts.tz, self.clock.now())
        finishing = sum(n for state, n in counts.items() if not StepState(state).finished)
        ends = (f"{finishing} device(s) are still being finished; the job ends when they are "
                "done." if finishing and workflow.state == WorkflowState.RUNNING else
                f"it has ended ({workflow.state}).")
        return Outcome(False, f"{workflow.label} was already stopped by <@{asked['by']}> at "
                              f"{when}: {counts[StepState.STOPPED]} device(s) stopped "
                              f"untouched, and {ends} Nothing more was changed.",
                       workflow.id, details={"stopped_already": True})

    def sweep(self, workflow: WorkflowRecord) -> None:
        """Before a stopped job's steps run: those found untouched since (a call verified not
        to have reached Sigfox) are stopped too. A job never stopped costs no transaction:
        the mark, once written, stays (and the guards in storage hold whatever this sees)."""
        if not workflow.params.get(STOP_ASKED):
            return
        stopped = self.store.stop_leftovers(workflow.id, self.clock.now())
        if stopped:
            self.books.tell(workflow, ProgressKind.STEP_DONE,
                            f"{_named(stopped)}: the job's change was found not to have reached "
                            "Sigfox, so nothing more is sent for them; stopped too.",
                            stop="stopped", stopped=len(stopped))


def _finishing(steps: Sequence[StepRecord]) -> list[StepRecord]:
    return [s for s in steps if not StepState(s.state).finished]


def _what_happened(label: str, stopped: Sequence[str], finishing: Sequence[StepRecord],
                   steps: Sequence[StepRecord]) -> str:
    """"980 device(s) stopped ...; 20 still being finished: ...; the job ends when ..."."""
    said = (f"{len(stopped)} device(s) the job had not changed at Sigfox are stopped and "
            f"left as they are ({_named(stopped)}).")
    ended = Counter(s.state for s in steps if s.state in (StepState.DONE, StepState.FAILED))
    if ended:
        said += (f" Already finished before the stop: {ended[StepState.DONE]} done, "
                 f"{ended[StepState.FAILED]} failed.")
    if not finishing:
        return said + f" Nothing else is under way: {label} ends now."
    why = Counter(s.state for s in finishing)
    reasons = "; ".join(f"{n} {_STILL_FINISHING.get(StepState(state), 'under way')}"
                        for state, n in sorted(why.items()))
    deleted = any(s.state in (StepState.DELETING, StepState.AWAITING_RELEASE) for s in finishing)
    pacs = " Their PACs stay recorded." if deleted else ""
    return (f"{said} {len(finishing)} device(s) are still being finished, because Sigfox "
            f"already has (or may have) their change: {reasons}.{pacs} {label} ends when "
            "they are done.")


def _named(device_ids: Sequence[str]) -> str:
    rest = human.and_more(len(device_ids), NAMED_UP_TO)
    return " ".join(filter(None, [", ".join(device_ids[:NAMED_UP_TO]), rest]))


def stopped_summary(kind: str, steps: Sequence[StepRecord]) -> str:
    """The head of a stopped job's end summary: stopped devices apart from failed ones."""
    counts = Counter(s.state for s in steps)
    stopped = [s.device_id for s in steps if s.state == StepState.STOPPED]
    return (f"{kind.capitalize()} stopped part-way: {counts[StepState.DONE]} of {len(steps)} "
            f"device(s) done, {counts[StepState.FAILED]} failed, {len(stopped)} stopped "
            f"untouched ({_named(stopped)}).")
