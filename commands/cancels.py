"""A cancel asked while a destructive call could still land (issue 11): kept, then done or not.

A job whose DELETE (or create, or bulk submission) got no answer is untouched only if that call
never took effect, and nobody can know before the call's `lands_by` (commands/writeahead.py).
Refusing the cancel "until then" leaves people to come back at the right minute. Instead the
cancel is accepted as pending: noted on the job (`Intents.ask_cancel`, after which nothing more
is sent for it), audited, said in the thread with the time it will be decided. At that time the
engine reads the backend (`WriteAhead.resolve_for_cancel`): if every call is verified not to
have taken effect, the job is cancelled with nothing changed; if one did (the DELETE landed),
the cancel is dropped, the audit log and the thread say why, and the job carries on safely
(the PAC is recorded; the device is re-registered). Either way the audit log and the job agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from commands.bookkeeping import Bookkeeper, clock_time
from commands.config import BotConfig
from commands.outcome import Outcome
from commands.policy import Actor
from commands.ports import Clock, ProgressKind
from commands.states import WorkflowState
from commands.stops import StopRest
from commands.writeahead import WriteAhead
from sigfox.errors import SigfoxError
from storage.intents import CANCEL_ASKED, IN_FLIGHT, LANDED
from storage.records import WorkflowRecord
from storage.store import Store

log = logging.getLogger(__name__)

RUNNING = [WorkflowState.RUNNING.value]


@dataclass(frozen=True, kw_only=True)
class PendingCancels:
    """Cancels accepted before the job's unanswered calls can be checked, carried out after."""

    store: Store
    clock: Clock
    landing_clock: Clock
    config: BotConfig
    books: Bookkeeper
    write_ahead: WriteAhead
    stops: StopRest

    def ask(self, workflow: WorkflowRecord, actor: Actor) -> Outcome | None:
        """Accept a cancel of a running job whose only calls so far may or may not have landed;
        None when that is not the case (nothing sent in flight, or one took effect)."""
        intents = self.store.intents.of_workflow(workflow.id)
        unanswered = [i for i in intents if i.state == IN_FLIGHT]
        if workflow.state != WorkflowState.RUNNING or not unanswered or any(
                i.state == LANDED for i in intents):
            return None
        now = self.clock.now()
        check_at = now + max(max(i.lands_by for i in unanswered) - self.landing_clock.now(), 0)
        when = clock_time(check_at, self.config.alerts.tz, now)
        asked = {"by": actor.user_id, "at": now, "check_at": check_at}
        if not self.store.intents.ask_cancel(workflow.id, RUNNING, asked):
            return self._already_asked(workflow.id)
        call = f"the {unanswered[-1].action} of {unanswered[-1].device_id}"
        self.store.audit(actor.user_id, "cancel asked", now, workflow_id=workflow.id,
                         outcome="pending", details={"check_at": check_at, "call": call})
        self.books.schedule(workflow.id, check_at)
        self.books.tell(workflow, ProgressKind.WAITING,
                        f"Cancel asked by <@{actor.user_id}>: Sigfox did not answer {call}, "
                        f"which may still take effect. The job will be cancelled at {when}, "
                        "once Sigfox can confirm the device was untouched; nothing more is sent "
                        "meanwhile.", wait="cancel", until=check_at)
        return Outcome(True, f"{workflow.label} will be cancelled at {when}, once Sigfox can "
                             f"confirm the device was untouched ({call} got no answer and may "
                             "still take effect). If it did, the job goes on and its thread "
                             "says why.", workflow.id, details={"pending": True,
                                                                "check_at": check_at})

    def _already_asked(self, workflow_id: int) -> Outcome | None:
        asked = self.books.workflow(workflow_id).params.get(CANCEL_ASKED)
        if not asked:
            return None  # the job moved meanwhile: the caller's refusal says where it stands
        when = clock_time(float(asked["check_at"]), self.config.alerts.tz, self.clock.now())
        return Outcome(True, f"A cancel of {self.books.workflow(workflow_id).label} is already "
                             f"asked (by <@{asked['by']}>): it is decided at {when}.",
                       workflow_id, details={"pending": True})

    def carry_out(self, workflow: WorkflowRecord) -> bool:
        """Before the engine runs a job's steps: decide its pending cancel once its calls can be
        checked. True when the job must not run now (cancelled, or still waiting to check)."""
        asked: dict[str, Any] | None = workflow.params.get(CANCEL_ASKED)
        if not asked:
            return False
        try:
            remaining = self.write_ahead.resolve_for_cancel(workflow)
        except SigfoxError as error:  # cannot check now: the next tick tries again
            log.warning("%s: cannot check for the asked cancel (%s)", workflow.label,
                        type(error).__name__)
            return self._later(workflow, self.books.tick_seconds())
        if remaining > 0:
            return self._later(workflow, remaining)
        now = self.clock.now()
        if self.store.intents.cancel_untouched(workflow.id, RUNNING,
                                               WorkflowState.CANCELLED.value, now, "cancelled"):
            self._cancelled(workflow, asked, now)
            return True
        self._refused(workflow, asked, now)
        return False

    def _later(self, workflow: WorkflowRecord, seconds: float) -> bool:
        self.books.schedule(workflow.id, self.clock.now() + seconds)
        return True

    def _cancelled(self, workflow: WorkflowRecord, asked: dict[str, Any], now: float) -> None:
        self.store.release_device_locks(workflow.id)
        self.store.audit(str(asked["by"]), "cancel", now, workflow_id=workflow.id,
                         outcome="cancelled", details={"asked_at": asked["at"]})
        self.books.tell(self.books.workflow(workflow.id), ProgressKind.FINISHED,
                        f"Cancelled as <@{asked['by']}> asked: Sigfox shows the device "
                        "untouched; nothing was changed.", outcome="cancelled")

    def _refused(self, workflow: WorkflowRecord, asked: dict[str, Any], now: float) -> None:
        """A call took effect after all: the cancel is dropped and the job goes on."""
        landed = [i for i in self.store.intents.of_workflow(workflow.id) if i.state == LANDED]
        call = f"the {landed[-1].action} of {landed[-1].device_id}" if landed else "a change"
        self.store.intents.drop_cancel(workflow.id)
        self.store.audit(str(asked["by"]), "cancel", now, workflow_id=workflow.id,
                         outcome="refused", details={"asked_at": asked["at"],
                                                     "reason": f"{call} took effect"})
        # What can still be honoured: the devices nothing was sent for are stopped.
        untouched = self.store.untouched_steps(workflow.id)
        then = ("so the job goes on for the devices already changed and is stopped for the "
                f"{untouched} not touched yet (below)" if untouched else
                "so the job goes on from there (follow it here)")
        self.books.tell(self.books.workflow(workflow.id), ProgressKind.STEP_DONE,
                        f"The cancel asked by <@{asked['by']}> cannot be done: {call} took "
                        f"effect at Sigfox, {then}.", cancel="refused")
        if untouched:
            self.stops.stop(self.books.workflow(workflow.id), Actor(str(asked["by"])))
