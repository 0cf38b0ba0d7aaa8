"""The devices a tick's due steps are about to read, read first in pages of 100.

After a bulk restart or transfer, each device of the job is checked on its own ("the device is
the truth"); a renewal waiting for first messages polls each device. One list call per device
is a thousand calls of the list limit (50 per 10 s) for a thousand-device job: 200 s a round.
So before the due steps run, the devices of those that start by reading their device are read
in pages (`sigfox.device_reads`), ceil(N/100) calls, and each such step takes its device from
here instead of asking Sigfox again. A read is used once, by the tick that made it, and only
when it shows the device: a device the pages do not show is read again by its own step, whose
answer alone may say it is gone. The tick never waits: where the list limit has no slot free
now, the pages read so far are kept and the other steps wait for the slot (`Deferred`), rather
than each spending a slot of its own; where Sigfox fails, every step reads as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from commands.ports import SigfoxApi
from commands.states import StepState
from sigfox.device_reads import ReadsCutShort, read_devices
from sigfox.errors import SigfoxError
from sigfox.models import Device
from storage.records import StepRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

# Steps that begin by reading their device: waiting for a bulk job to show, or for a first
# message.
READS_FIRST = frozenset({StepState.AWAITING_JOB.value, StepState.AWAITING_UPLINK.value})
# And in a job that deletes (a delete, a renewal by delete and register): the read before the
# delete, the look after it for the device gone, the read before each attempt to register it
# again and the look after one for the device back (see `seen`).
DELETE_READS_FIRST = READS_FIRST | {StepState.PENDING.value, StepState.DELETING.value,
                                    StepState.AWAITING_RELEASE.value,
                                    StepState.SUBMITTING.value}  # in a bulk create job
WORTH_A_PAGE = 2  # one device is one call either way


@dataclass(frozen=True)
class Deferred:
    """Devices the read-ahead could not read yet (a list slot is not free): their steps wait
    until `retry_at` instead of each asking for a slot of its own."""

    device_ids: frozenset[str]
    retry_at: float


@dataclass
class _SharedRead:
    """One read many steps wait for: its answer, or the Sigfox error it met."""

    ready: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: SigfoxError | None = None


class ReadAhead:
    """Devices read in pages for one workflow's tick, taken once each, and the reads its
    steps share (a device type, a contract), made once per tick (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[tuple[int, str], Device | None] = {}
        self._shared: dict[tuple[int, Hashable], _SharedRead] = {}

    def load(self, api: SigfoxApi, workflow_id: int, due: Iterable[StepRecord],
             audit: Callable[[int, str], None] | None = None,
             reads_first: frozenset[str] = READS_FIRST) -> Deferred | None:
        """Read the devices of the due steps that read first (in `reads_first` states). Where
        the limit stops the reads part-way, what was read is kept and the rest is returned,
        to wait for its slot."""
        ids = [s.device_id for s in due if s.state in reads_first]
        if len(ids) < WORTH_A_PAGE:
            return None
        deferred = None
        try:
            found = read_devices(api, ids, wait_up_to=0.0, confirm_missing=False)
        except ReadsCutShort as cut:
            found = cut.found
            assert cut.retry_at is not None  # set by every cut
            deferred = Deferred(frozenset(d for d in ids if d.upper() not in found), cut.retry_at)
        except SigfoxError as error:  # Sigfox failed: each step reads (and retries) its own
            log.info("read-ahead of %d device(s) skipped (%s): each step reads its own",
                     len(ids), error)
            return None
        # A device no page shows is kept as None: only `seen` hands that out, to a step that
        # expects the device gone.
        kept = {(workflow_id, d): device for d, device in found.items()}
        with self._lock:
            self._devices.update(kept)
        if audit is not None:
            audit(len(found), "ok")
        return deferred

    def take(self, workflow_id: int, device_id: str) -> Device | None:
        """The device as the pages showed it, once; None when they did not show it (or did
        not read it): the step then reads it on its own."""
        with self._lock:
            return self._devices.pop((workflow_id, device_id.upper()), None)

    def seen(self, workflow_id: int, device_id: str) -> tuple[bool, Device | None]:
        """(True, the device as the pages showed it, or None when they did not list it), or
        (False, None) when this tick's pages did not read it. Kept until `forget`: the step
        that deleted the device, finding it gone, goes on to register it again in the same
        tick on the same answer; a step writes to the device only after reading it, and
        forgets it as soon as it did."""
        key = (workflow_id, device_id.upper())
        with self._lock:
            return key in self._devices, self._devices.get(key)

    def forget(self, workflow_id: int, device_id: str) -> None:
        """A write was sent to the device: what the pages showed of it is out of date."""
        with self._lock:
            self._devices.pop((workflow_id, device_id.upper()), None)

    def shared(self, workflow_id: int, key: Hashable, read: Callable[[], T]) -> T:
        """What `read` answers, read once per tick of the workflow for every step asking
        under `key`: the device type and contract a renewal reports are the same for most
        devices of a job, and reading them per device is two calls per device. The first
        step reads; steps asking meanwhile wait for its answer (or its Sigfox error, which
        each then handles as its own). Devices on other types ask under other keys."""
        with self._lock:
            cell = self._shared.get((workflow_id, key))
            mine = cell is None
            if cell is None:
                cell = self._shared[(workflow_id, key)] = _SharedRead()
        if mine:
            try:
                cell.value = read()
            except SigfoxError as error:
                cell.error = error
            except BaseException:
                with self._lock:  # not Sigfox's answer: the next step reads for itself
                    self._shared.pop((workflow_id, key), None)
                raise
            finally:
                cell.ready.set()
        else:
            cell.ready.wait()
            if cell.error is None and not self._holds(workflow_id, key, cell):
                return self.shared(workflow_id, key, read)  # its reader failed: read again
        if cell.error is not None:
            raise cell.error
        return cell.value  # type: ignore[no-any-return]

    def _holds(self, workflow_id: int, key: Hashable, cell: _SharedRead) -> bool:
        with self._lock:
            return self._shared.get((workflow_id, key)) is cell

    def drop(self, workflow_id: int) -> None:
        """Forget what the tick did not use: a later tick reads afresh."""
        with self._lock:
            for key in [k for k in self._devices if k[0] == workflow_id]:
                del self._devices[key]
            for shared in [k for k in self._shared if k[0] == workflow_id]:
                del self._shared[shared]
