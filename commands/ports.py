"""The small interfaces through which the core talks to the outside world.

The core (`commands/`) never imports Slack or a terminal: progress leaves it as `Progress`
values handed to a `Notifier`; time comes from a `Clock` so tests and the demo can run a
30-minute release wait in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sigfox.models import (
    BulkJob,
    Callback,
    CallbackCreate,
    ContractInfo,
    Device,
    DeviceCreate,
    DeviceType,
    Group,
    JobKind,
)
from storage.records import job_label


class SigfoxApi(Protocol):
    """The Sigfox API v2 as the core uses it: `sigfox.client.SigfoxClient` is the real one.

    Only what the core calls is here, so a test double or a wrapper (a crash injector, a
    recorder) implements a small surface, and mypy checks every call the core makes.
    """

    @property
    def longest_call(self) -> float:
        """The longest one call can last, retries included (seconds)."""
        ...

    def iter_devices(self) -> Iterator[Device]: ...
    def iter_all_devices(self) -> Iterator[Device]: ...
    def find_device(self, device_id: str) -> Device | None: ...
    def iter_device_pages(self, *, min_id: str | None = None, max_id: str | None = None,
                          page_size: int = 100) -> Iterator[list[Device]]: ...
    def create_device(self, device: DeviceCreate) -> str: ...
    def delete_device(self, device_id: str) -> None: ...
    def update_device(self, device_id: str, **fields: Any) -> None: ...
    def forget_unapplied(self, method: str, endpoint: str, device_id: str, since: float
                         ) -> int: ...
    def unsubscribe_device(self, device_id: str, unsubscription_time_ms: int) -> None: ...
    def iter_device_types(self) -> Iterator[DeviceType]: ...
    def get_device_type(self, device_type_id: str) -> DeviceType: ...
    def iter_device_type_callbacks(self, device_type_id: str) -> Iterator[Callback]: ...
    def create_callback(self, device_type_id: str, body: CallbackCreate) -> str: ...
    def get_contract_info(self, contract_id: str) -> ContractInfo: ...
    def iter_groups(self) -> Iterator[Group]: ...
    def bulk_transfer(self, device_type_id: str, device_ids: Iterable[str]) -> str: ...
    def bulk_restart(self, device_ids: Iterable[str]) -> str: ...
    def bulk_create_devices(self, device_type_id: str, devices: Iterable[DeviceCreate], *,
                            prototype: bool | None = None,
                            product_certificate_key: str | None = None) -> str: ...
    def get_job(self, kind: JobKind, job_id: str) -> BulkJob: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (tests, the demo's fast tour)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class ProgressKind(StrEnum):
    REQUESTED = "requested"
    APPROVAL_NEEDED = "approval_needed"
    DECIDED = "decided"
    VOTE = "vote"  # one approval of several needed; the request stays open
    REMINDER = "reminder"  # remind those who may decide, privately
    ESCALATED = "escalated"  # a second list of approvers is asked too
    STEP_DONE = "step_done"
    WAITING = "waiting"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True)
class Target:
    """Where a job reports: opaque to the core (a Slack channel and thread, a terminal)."""

    channel: str = ""
    thread: str = ""


@dataclass(frozen=True)
class Progress:
    """One thing worth telling the people following a job. Never carries a PAC."""

    kind: ProgressKind
    workflow_id: int
    operation: str
    devices: tuple[str, ...]
    text: str
    target: Target = field(default_factory=Target)
    state: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def job(self) -> str:
        """The job as people see it: `J-0042`."""
        return job_label(self.workflow_id)


class Notifier(Protocol):
    def notify(self, progress: Progress) -> None:
        """Deliver one progress event. Must not raise for delivery problems it can retry."""
