"""The bookkeeping every workflow step shares: audited Sigfox calls, compare-and-set moves,
failures, scheduling, and the progress people see (recorded, then handed to the notifier).

`Bookkeeper` is one object held by the engine, the device steps, the write-ahead and the
approval rounds: each of them records and tells through it, so there is one way to do both."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, TypeVar

from commands.config import BotConfig
from commands.ports import Clock, Notifier, Progress, ProgressKind, Target
from commands.states import Kind, StepState
from sigfox.errors import SigfoxError
from storage.records import StepRecord, WorkflowRecord
from storage.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

WAIT_REPORT_FIRST = 300.0
WAIT_REPORT_MAX = 12 * 3600.0


@dataclass(frozen=True, kw_only=True)
class Bookkeeper:
    """What a step does besides its own work: audited calls, moves, failures, the schedule,
    and progress told to the notifier."""

    store: Store
    notifier: Notifier
    clock: Clock
    config: BotConfig

    def call(self, workflow: WorkflowRecord, device_id: str, action: str,
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

    def move(self, workflow: WorkflowRecord, device_id: str, expected: str, new: StepState,
             text: str, data: dict[str, Any] | None = None) -> bool:
        fields: dict[str, Any] = {"attempts": 0, "last_error": "", "next_run": 0}
        if data is not None:
            fields["data"] = data
        moved = self.store.cas_device(workflow.id, device_id, str(expected), new.value,
                                      self.clock.now(), **fields)
        if moved:
            self.tell(workflow, ProgressKind.STEP_DONE, text, device_id=device_id,
                      step=new.value, **(data or {}))
        return moved

    def fail(self, workflow: WorkflowRecord, device_id: str, at: str, text: str) -> None:
        step = self.store.device_step(workflow.id, device_id)
        if step is None or StepState(step.state).finished:
            return
        if self.store.cas_device(workflow.id, device_id, step.state, StepState.FAILED.value,
                                 self.clock.now(), last_error=text,
                                 data={**step.data, "failed_at": at}):
            # Only a renewal that deletes has a PAC worth showing (not a restart or transfer).
            deleting = workflow.params.get("method", "delete") == "delete"
            deleted = step.state not in (StepState.PENDING.value,) and deleting
            self.tell(workflow, ProgressKind.FAILED, f"Failed at {at}: {text}",
                      device_id=device_id, step=at, pac_recorded=deleted and workflow.kind in (
                          Kind.RENEW, Kind.DELETE))

    def schedule(self, workflow_id: int, when: float) -> None:
        self.store.update_workflow(workflow_id, self.clock.now(), next_run=when)

    def tell(self, workflow: WorkflowRecord, kind: ProgressKind, text: str,
             device_id: str = "", **details: Any) -> None:
        now = self.clock.now()
        self.store.add_event(workflow.id, kind.value, text, now, device_id=device_id,
                             details=public_details(details))
        # A device's event reads one count, not the job's device list: a thousand-device job
        # tells a thousand of them.
        if device_id:
            devices: tuple[str, ...] = (device_id,)
            several = sum(self.store.step_states(workflow.id).values()) > 1
        else:
            devices = tuple(s.device_id for s in self.store.workflow_devices(workflow.id))
            several = len(devices) > 1
        progress = Progress(
            kind=kind,
            workflow_id=workflow.id,
            operation=workflow.kind,
            devices=devices,
            text=(f"{device_id}: {text}" if device_id and several else text),
            target=Target(workflow.channel, workflow.thread),
            state=workflow.state,
            details={"requester": workflow.requester, **details},
        )
        try:
            self.notifier.notify(progress)
        except Exception:  # a chat outage must never stop a renewal half-way
            log.exception("could not deliver progress of %s", workflow.label)

    def tick_seconds(self) -> float:
        return self.config.timing.tick.total_seconds()

    def workflow(self, workflow_id: int) -> WorkflowRecord:
        workflow = self.store.get_workflow(workflow_id)
        if workflow is None:
            raise LookupError(f"workflow {workflow_id} vanished")
        return workflow

    def device_step(self, workflow: WorkflowRecord, device_id: str) -> StepRecord:
        """The device's step as it stands now (after a move), which must exist."""
        step = self.store.device_step(workflow.id, device_id)
        if step is None:
            raise LookupError(f"step of {device_id} in {workflow.label} vanished")
        return step

    def report_wait(
        self, workflow: WorkflowRecord, step: StepRecord, waited: float, wait: str, text: str
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
        self.tell(workflow, ProgressKind.WAITING, text, device_id=step.device_id,
                  elapsed=waited, wait=wait)


def elapsed_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def clock_time(at: float, tz: tzinfo, now: float) -> str:
    """`10:42 UTC` today; `Tue 1 Dec 10:42 UTC` when it is not within the day."""
    moment = datetime.fromtimestamp(at, tz=tz)
    zone = moment.tzname() or ""
    if abs(at - now) < 20 * 3600:
        return f"{moment:%H:%M} {zone}".strip()
    return f"{moment:%a} {moment.day} {moment:%b %H:%M} {zone}".strip()


def public_details(details: dict[str, Any]) -> dict[str, Any]:
    """Drop anything that looks like a PAC before it leaves the core."""
    return {k: v for k, v in details.items() if "pac" not in k.lower() or k == "pac_recorded"}
