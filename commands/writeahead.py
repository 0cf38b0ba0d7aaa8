"""Write-ahead for destructive calls: never twice, never while one could still land.

The invariant, for every device:

    A destructive call (DELETE, the single create POST /devices/, a bulk transfer or restart
    submission, an unsubscribe) is sent only after an intent naming it is committed, and
    only when no earlier intent on that device is unresolved. An intent is resolved by
    Sigfox's answer, or, when there was none (timeout, 5xx, dropped connection, a crash
    during the call), by a read of the backend made only after `lands_by`: the latest time
    the call could still take effect (the client's longest call, plus the landing margin
    [timing] landing_margin, plus [timing] bulk_job_landing for a bulk job's submission,
    which Sigfox runs some time after accepting it). Nothing is sent again while a call could
    be in flight, so a create is never sent while a DELETE could still land, and a late DELETE
    can never remove the re-created device.

How the pieces hold it up:
- `storage.intents.Intents.open` checks "no unresolved intent on these devices" and "the
  workflow still runs" and writes the intent in one transaction; the call is made only when
  it returns a batch id. A crash before the commit sends nothing; a crash after it leaves an
  intent `in_flight` whose `lands_by` was bounded before the call left.
- Sigfox's answer settles it at once: 2xx `landed`, a refusal (4xx, a local pacing refusal)
  `not_landed`. No answer shortens `lands_by` to the moment the client gave up plus the
  margin, never lengthens it.
- `WriteAhead.settled` runs before every step acts on a device: while an intent is in flight
  and
  `lands_by` is ahead, the step waits (rescheduled for then, told in the thread once); after
  it, one read decides `landed` (the device shows the call's effect) or `not_landed`.
- A job whose calls are all `not_landed` (or that sent none) left the device untouched and
  may be cancelled (`Intents.cancel_untouched`, same transaction discipline).

`lands_by` is measured on `landing_clock`: real time, because whether a request can still
reach Sigfox depends on the network, not on the workflows' clock (virtual in tests and the
demo's fast tour). In production both are the system clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from commands import human
from commands.bookkeeping import Bookkeeper
from commands.config import BotConfig
from commands.planning import type_id_of
from commands.ports import Clock, ProgressKind, SigfoxApi
from commands.states import StepState, WorkflowState
from sigfox.errors import SigfoxError
from sigfox.models import Device, TokenState
from storage.intents import LANDED, IntentRecord
from storage.records import WorkflowRecord
from storage.store import Store

T = TypeVar("T")

DELETE = "delete"
CREATE = "create"
TRANSFER = "transfer"
RESTART = "restart"
UNSUBSCRIBE = "unsubscribe"
# The outcome of an intent settled by a read (no answer from Sigfox, so no job id in it).
RESOLVED_BY_READ = "read after lands_by"


class NotSent(Exception):
    """The call was not sent: the workflow stopped running, or a call on one of the devices
    is still unresolved. Nothing was changed."""


@dataclass(frozen=True, kw_only=True)
class WriteAhead:
    """Destructive calls with their intent written first, and the reads that settle them."""

    store: Store
    api: SigfoxApi
    clock: Clock
    landing_clock: Clock
    config: BotConfig
    books: Bookkeeper

    def _lands_within(self, bulk: bool) -> float:
        """How long after a call starts it may still take effect (crash bound)."""
        return self.api.longest_call + self._landing_margin(bulk)

    def _landing_margin(self, bulk: bool) -> float:
        """After the client gave up: a bulk job accepted meanwhile still has to run."""
        timing = self.config.timing
        margin = timing.landing_margin + (timing.bulk_job_landing if bulk else timedelta(0))
        return margin.total_seconds()

    def open_intent(self, workflow: WorkflowRecord, device_ids: Sequence[str], action: str,
                    details: dict[str, Any] | None = None, *, bulk: bool = False) -> str:
        """Write the intent (the batch id); `NotSent` when it cannot be written. `bulk`: a
        bulk job's submission, which Sigfox runs some time after accepting it."""
        sent_at = self.landing_clock.now()
        batch = self.store.intents.open(
            workflow_id=workflow.id, device_ids=device_ids, action=action, now=sent_at,
            lands_by=sent_at + self._lands_within(bulk), running=[WorkflowState.RUNNING.value],
            details=details,
        )
        if batch is None:
            raise NotSent(f"{action} of {', '.join(device_ids)} not sent")
        return batch

    def send(self, workflow: WorkflowRecord, device_ids: Sequence[str], action: str,
             function: Callable[..., T], *args: Any, details: dict[str, Any] | None = None,
             batch: str | None = None, bulk: bool = False) -> T:
        """Write the intent (unless `batch` is one already written), send the call, record
        Sigfox's answer. Raises `NotSent` when the intent cannot be written; re-raises the
        call's `SigfoxError` after recording it. `bulk` as for `open_intent`."""
        batch = batch or self.open_intent(workflow, device_ids, action, details, bulk=bulk)
        try:
            result = self.books.call(workflow, ",".join(device_ids), action, function, *args)
        except SigfoxError as error:
            ended = self.landing_clock.now()
            if error.outcome_unknown:
                self.store.intents.unanswered(batch, ended + self._landing_margin(bulk),
                                              type(error).__name__)
                self._tell_landing_wait(workflow, device_ids, action, batch,
                                        self._landing_margin(bulk))
            else:
                self.store.intents.answered(batch, False, ended, type(error).__name__)
            raise
        self.store.intents.answered(batch, True, self.landing_clock.now(),
                                    result if isinstance(result, str) else "ok")
        return result

    def settled(self, workflow: WorkflowRecord, device_id: str) -> bool:
        """True when no call on the device can still land (resolving, by one read, those
        whose time has passed). False when one still could: the step is rescheduled."""
        pending = self.store.intents.unresolved(device_id)
        if not pending:
            return True
        now = self.landing_clock.now()
        latest = max(intent.lands_by for intent in pending)
        if latest > now:
            self._wait_for_landing(workflow, device_id, pending, latest - now)
            return False
        self._resolve(workflow, device_id, pending)
        return True

    def _resolve(self, workflow: WorkflowRecord, device_id: str,
                 pending: Sequence[IntentRecord]) -> None:
        """One read decides every unanswered call on the device whose time has passed."""
        now = self.landing_clock.now()
        device = self.books.call(workflow, device_id, "read device", self.api.find_device,
                                 device_id)
        for intent in pending:
            landed = shows_effect(intent, device)
            if not landed and intent.action == DELETE:
                # Verified not executed: it stops counting against the hourly limit.
                self.api.forget_unapplied("DELETE", "/devices/{id}", device_id, intent.sent_at)
            if self.store.intents.resolve(intent.id, landed, now, RESOLVED_BY_READ):
                verdict = "took effect" if landed else "did not reach Sigfox"
                step = self.store.device_step(workflow.id, device_id)
                if step is not None and step.state == StepState.STOPPED:  # storage/stops.py
                    verdict += ", and the job was stopped: nothing more is sent for it"
                self.books.tell(workflow, ProgressKind.STEP_DONE,
                                f"Checked after the unanswered {intent.action}: it {verdict}.",
                                device_id=device_id, intent=intent.action, landed=landed)

    def resolve_for_cancel(self, workflow: WorkflowRecord) -> float:
        """Before a cancel: settle, by a read, the workflow's unanswered calls that can no
        longer land. Returns how long until the others can be checked (0 when none left)."""
        now = self.landing_clock.now()
        remaining = 0.0
        for step in self.store.workflow_devices(workflow.id):
            pending = [i for i in self.store.intents.unresolved(step.device_id)
                       if i.workflow_id == workflow.id]
            if not pending:
                continue
            latest = max(i.lands_by for i in pending)
            if latest > now:
                remaining = max(remaining, latest - now)
            else:
                self._resolve(workflow, step.device_id, pending)
        return remaining

    def _wait_for_landing(self, workflow: WorkflowRecord, device_id: str,
                          pending: Sequence[IntentRecord], remaining: float) -> None:
        now = self.clock.now()
        when = now + remaining
        self.store.update_device_step(workflow.id, device_id, now, next_run=when)
        self.books.schedule(workflow.id, when)
        last = pending[-1]
        self._tell_landing_wait(workflow, [device_id], last.action, last.batch, remaining)

    def _tell_landing_wait(self, workflow: WorkflowRecord, device_ids: Sequence[str],
                           action: str, batch: str, remaining: float) -> None:
        """Say once per unanswered call (told when it happens, or after a restart when the
        bot finds it) what the job waits for, and until when."""
        first = device_ids[0]
        step = self.store.device_step(workflow.id, first)
        key = f"landing_told_{batch}"
        if step is None or step.data.get(key):
            return
        now = self.clock.now()
        self.store.update_device_step(workflow.id, first, now, data={**step.data, key: True})
        who = ", ".join(device_ids) if len(device_ids) <= 3 else f"{len(device_ids)} devices"
        self.books.tell(workflow, ProgressKind.WAITING,
                        f"Sigfox gave no clean answer to the {action}, which may still take "
                        f"effect: checking that it did nothing before sending anything more for "
                        f"{who}, in {human.duration(max(remaining, 1.0))}.",
                        device_id=first if len(device_ids) == 1 else "", wait="landing",
                        until=now + remaining)

    def landing_wait_until(self, device_id: str) -> float | None:
        """When (on the workflows' clock) every unresolved call on the device is settled."""
        pending = self.store.intents.unresolved(device_id)
        if not pending:
            return None
        remaining = max(i.lands_by for i in pending) - self.landing_clock.now()
        return self.clock.now() + max(remaining, 0.0)

    def landed(self, workflow_id: int, device_id: str, action: str) -> IntentRecord | None:
        """The last call of `action` this workflow made on the device that took effect."""
        done = [i for i in self.store.intents.of_step(workflow_id, device_id)
                if i.action == action and i.state == LANDED]
        return done[-1] if done else None

    def last_intent(self, workflow_id: int, device_id: str, action: str
                    ) -> IntentRecord | None:
        mine = [i for i in self.store.intents.of_step(workflow_id, device_id)
                if i.action == action]
        return mine[-1] if mine else None


def answered_job_id(intent: IntentRecord | None) -> str:
    """The job id Sigfox answered the submission with, kept in its intent (a crash may have
    kept it there only); none when the submission got no answer (settled by a read)."""
    if intent is None or intent.state != LANDED or intent.outcome == RESOLVED_BY_READ:
        return ""
    return intent.outcome


def shows_effect(intent: IntentRecord, device: Device | None) -> bool:
    """Whether the device, read after `lands_by`, shows that the call took effect."""
    if intent.action == DELETE:
        return device is None
    if intent.action == CREATE:
        return device is not None
    if device is None:
        return False
    if intent.action == TRANSFER:
        return type_id_of(device) == intent.details.get("device_type_id")
    if intent.action == RESTART:
        return device.token is not None and device.token.state == TokenState.OK
    if intent.action == UNSUBSCRIBE:
        return unsubscription_time(device) == intent.details.get("at_ms")
    return True  # an action this code does not know: assume the worst, it took effect


def unsubscription_time(device: Device) -> int | None:
    if device.token is not None and device.token.unsubscription_time:
        return device.token.unsubscription_time
    return device.unsubscription_time
