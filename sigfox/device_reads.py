"""Reading many named devices in pages of 100, not one call each.

A request over a thousand devices, or a job verifying a thousand devices after a bulk call,
needs each of them as Sigfox shows it now. One filtered list call per device (`id=`) costs a
thousand answer times and a thousand calls of the list limit (50 per 10 s): 200 s at best.
The device list sorts by id and takes an id range (`sort=id`, `minId`, `maxId`), so one call
returns up to 100 devices in a range: the wanted ids, sorted by hexadecimal value, are cut into
groups of 100, and each group is read by *seeking*: ask for the page from the group's next
unresolved id to its last id; every wanted id up to the page's last device is then known
(listed, or not in the account); what is left is sought again, cut in two so that a sparse
group spreads over the workers. Each call settles at least one wanted id, so scattered ids
never cost more than one call per device, and a group of consecutive devices costs one call.
The groups are read side by side, every call through the client's one pacer (the published
limits); a deferring client's "not before" (`retry_at`) is waited for here when it is short,
as the requester is waiting anyway.

Exactness: a device the pages do not show is read once more on its own (`find_device`), so "not
in this account" is said only on the answer that says so; where the backend refuses the range
parameters (400) or ignores them (a device outside the range, or out of order), the reads fall
back to one call per device, still side by side.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sigfox.errors import SigfoxBadRequest, SigfoxError
from sigfox.models import Device, normalize_device_id

log = logging.getLogger(__name__)

PAGE = 100  # the device list's largest page
WORKERS = 8  # groups read at once; the pacer, not this, keeps the calls within the limits
MAX_WAIT_SECONDS = 15.0  # a list slot is at most a 10 s window away; longer waits are raised
MAX_WAITS = 20  # a group that keeps being refused a slot gives up (the caller says so)

T = TypeVar("T")
ReadCount = Callable[[int, int], None]  # (devices read so far, devices wanted)


class PagedDevices(Protocol):
    """What the reads need of the client (`sigfox.client.SigfoxClient`)."""

    def iter_device_pages(self, *, min_id: str | None = None, max_id: str | None = None,
                          page_size: int = 100) -> Iterator[list[Device]]: ...

    def find_device(self, device_id: str) -> Device | None: ...


class _RangesIgnored(Exception):
    """The backend answered a range request with devices outside the range or out of order."""


def read_devices(
    api: PagedDevices,
    device_ids: Iterable[str],
    *,
    workers: int = WORKERS,
    on_read: ReadCount | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    wait_up_to: float = MAX_WAIT_SECONDS,
    confirm_missing: bool = True,
) -> dict[str, Device | None]:
    """Each wanted device (by upper-case id) as Sigfox lists it now, None where it does not.

    A "not before" longer than `wait_up_to` seconds stops the reads: `ReadsCutShort` carries
    what was read and when to go on. `confirm_missing=False` leaves a device no page shows as
    None without reading it on its own (for a caller that reads it anyway)."""
    waits = _Waits(clock, sleep, wait_up_to)
    wanted = sorted({normalize_device_id(d) for d in device_ids}, key=_value)
    if len(wanted) <= 1:  # one device: the id filter is one call, as a page would be
        return {d: waits.call(api.find_device, d) for d in wanted}
    reader = _Reader(api, _Progress(len(wanted), on_read), waits)
    stopped: SigfoxError | None = None
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="device-reads"
                            ) as pool:
        running = {pool.submit(reader.read, wanted[i:i + PAGE])
                   for i in range(0, len(wanted), PAGE)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    rest = future.result()
                except SigfoxError as error:
                    if error.retry_at is None or error.outcome_unknown:
                        raise
                    stopped = stopped or error  # let the running calls end; start no more
                    continue
                if stopped is None:
                    running |= {pool.submit(reader.read, part) for part in rest}
    if stopped is not None:
        raise ReadsCutShort(dict(reader.found), stopped)
    if confirm_missing:
        for device_id in [d for d in wanted if reader.found.get(d) is None]:
            # Said missing by a page: confirmed on its own answer.
            reader.found[device_id] = waits.call(api.find_device, device_id)
    return reader.found


class ReadsCutShort(SigfoxError):
    """The reads stopped at a "not before" longer than the caller would wait: `found` holds
    what was read (None: not listed), `retry_at` when the rest can be read."""

    def __init__(self, found: dict[str, Device | None], cause: SigfoxError) -> None:
        self.found = found
        super().__init__(f"{len(found)} device(s) read, then {cause.message}",
                         status=cause.status, method=cause.method, path=cause.path,
                         retry_at=cause.retry_at)
        self.waits_for = cause.waiting_for


@dataclass(frozen=True)
class _Waits:
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    up_to: float

    def call(self, call: Callable[..., T], *args: str) -> T:
        """The call, after waiting out a short "not before" (a list slot, a 429's back-off)."""
        for _ in range(MAX_WAITS):
            try:
                return call(*args)
            except SigfoxError as error:
                if error.retry_at is None or error.outcome_unknown:
                    raise
                wait = error.retry_at - self.clock()
                if wait > self.up_to:
                    raise
                self.sleep(max(wait, 0.0))
        return call(*args)


class _Progress:
    """Devices settled so far, told to `on_read` (thread-safe; the caller coalesces)."""

    def __init__(self, total: int, on_read: ReadCount | None) -> None:
        self.total = total
        self.done = 0
        self._on_read = on_read
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        if not count:
            return
        with self._lock:
            self.done += count
            done = self.done
        if self._on_read is not None:
            self._on_read(done, self.total)


class _Reader:
    """One call per task: a page from the task's first id to its last. What the page does not
    settle goes on as two tasks, so the ids of a sparse group (a page settling few of them)
    are soon read side by side, while a dense group stays one call."""

    def __init__(self, api: PagedDevices, progress: _Progress, waits: _Waits) -> None:
        self.api = api
        self.progress = progress
        self.waits = waits
        self.found: dict[str, Device | None] = {}
        self.ranges_refused = False
        self._lock = threading.Lock()

    def read(self, ids: Sequence[str]) -> list[Sequence[str]]:
        """Settle at least `ids[0]`; returns what is left of `ids`, as up to two tasks."""
        if not self.ranges_refused:
            try:
                settled = self._page(ids)
            except (SigfoxBadRequest, _RangesIgnored) as refused:
                log.info("device reads: the id range was not honoured (%s); reading devices "
                         "one by one", type(refused).__name__)
                self.ranges_refused = True
                settled = self._one(ids[0])
        else:
            settled = self._one(ids[0])
        self.progress.add(settled)
        rest = ids[settled:]
        if len(rest) < 2:
            return [rest] if rest else []
        half = len(rest) // 2
        return [rest[:half], rest[half:]]

    def _one(self, device_id: str) -> int:
        device = self.waits.call(self.api.find_device, device_id)
        with self._lock:
            self.found[device_id] = device
        return 1

    def _page(self, ids: Sequence[str]) -> int:
        low, high = ids[0], ids[-1]
        page = self.waits.call(self._first_page, low, high)
        listed = {device.id.upper(): device for device in page}
        # A full page says nothing beyond its last device; a short one ends the range.
        reach = _value(page[-1].id) if len(page) == PAGE else _value(high)
        settled = 0
        while settled < len(ids) and _value(ids[settled]) <= reach:
            settled += 1
        with self._lock:
            for device_id in ids[:settled]:
                self.found[device_id] = listed.get(device_id)
        return settled

    def _first_page(self, low: str, high: str) -> list[Device]:
        # `iter`: a wrapper (a recorder, a crash injector) may hand back the pages as a list.
        pages = iter(self.api.iter_device_pages(min_id=low, max_id=high, page_size=PAGE))
        try:
            page = next(pages, [])
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
        values = [_value(device.id) for device in page]
        in_range = all(_value(low) <= v <= _value(high) for v in values)
        ordered = all(a < b for a, b in itertools.pairwise(values))
        if not (in_range and ordered):
            raise _RangesIgnored(f"[{low}, {high}]")
        return page


def _value(device_id: str) -> int:
    return int(device_id, 16)
