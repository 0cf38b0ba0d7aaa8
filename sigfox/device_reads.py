"""Reading many named devices in pages of 100, not one call each.

A request over a thousand devices, or a job verifying a thousand devices after a bulk call,
needs each of them as Sigfox shows it now. One filtered list call per device (`id=`) costs a
thousand answer times and a thousand calls of the list limit (50 per 10 s): 200 s at best.
The device list sorts by id and takes an id range (`sort=id`, `minId`, `maxId`), so one call
returns up to 100 devices in a range: the wanted ids, sorted by hexadecimal value, are cut into
groups of 100, and each group is read by *seeking*: ask for the page from the group's next
unresolved id to its last id; every wanted id up to the page's last device is then known
(listed, or not in the account); seek again from the next unresolved one. Each call settles at
least one wanted id, so a scattered group never costs more than one call per device, and a
group of consecutive devices costs one call. The groups are read side by side, every call
through the client's one pacer (the published limits); a deferring client's "not before"
(`retry_at`) is waited for here when it is short, as the requester is waiting anyway.

Exactness: a device the pages do not show is read once more on its own (`find_device`), so "not
in this account" is said only on the answer that says so; where the backend refuses the range
parameters (400) or ignores them (a device outside the range, or out of order), the group falls
back to one read per device.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
) -> dict[str, Device | None]:
    """Each wanted device (by upper-case id) as Sigfox lists it now, None where it does not."""
    wanted = sorted({normalize_device_id(d) for d in device_ids}, key=_value)
    if len(wanted) <= 1:  # one device: the id filter is one call, as a page would be
        return {d: _waiting(clock, sleep, api.find_device, d) for d in wanted}
    progress = _Progress(len(wanted), on_read)
    groups = [wanted[i:i + PAGE] for i in range(0, len(wanted), PAGE)]
    reader = _GroupReader(api, progress, clock, sleep)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(groups))),
                            thread_name_prefix="device-reads") as pool:
        parts = list(pool.map(reader.read, groups))
    found: dict[str, Device | None] = {}
    for part in parts:
        found.update(part)
    unseen = [d for d in wanted if found.get(d) is None]
    for device_id in unseen:  # said missing by a page: confirmed on its own answer
        found[device_id] = _waiting(clock, sleep, api.find_device, device_id)
    return found


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


class _GroupReader:
    def __init__(self, api: PagedDevices, progress: _Progress, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self.api = api
        self.progress = progress
        self.clock = clock
        self.sleep = sleep

    def read(self, group: Sequence[str]) -> dict[str, Device | None]:
        found: dict[str, Device | None] = {}
        try:
            self._seek(group, found)
        except (SigfoxBadRequest, _RangesIgnored) as refused:
            log.info("device reads: the id range was not honoured (%s); reading %d device(s) "
                     "one by one", type(refused).__name__, len(group) - len(found))
            for device_id in group:
                if device_id not in found:
                    found[device_id] = _waiting(self.clock, self.sleep, self.api.find_device,
                                                device_id)
                    self.progress.add(1)
        return found

    def _seek(self, group: Sequence[str], found: dict[str, Device | None]) -> None:
        high = group[-1]
        at = 0
        while at < len(group):
            low = group[at]
            page = _waiting(self.clock, self.sleep, self._first_page, low, high)
            listed = {device.id.upper(): device for device in page}
            # A full page says nothing beyond its last device; a short one ends the range.
            reach = _value(page[-1].id) if len(page) == PAGE else _value(high)
            start = at
            while at < len(group) and _value(group[at]) <= reach:
                found[group[at]] = listed.get(group[at])
                at += 1
            self.progress.add(at - start)

    def _first_page(self, low: str, high: str) -> list[Device]:
        pages = self.api.iter_device_pages(min_id=low, max_id=high, page_size=PAGE)
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


def _waiting(clock: Callable[[], float], sleep: Callable[[float], None],
                call: Callable[..., T], *args: str) -> T:
    """The call, after waiting out a short "not before" (a list slot, a 429's back-off)."""
    for _ in range(MAX_WAITS):
        try:
            return call(*args)
        except SigfoxError as error:
            if error.retry_at is None or error.outcome_unknown:
                raise
            wait = error.retry_at - clock()
            if wait > MAX_WAIT_SECONDS:
                raise
            sleep(max(wait, 0.0))
    return call(*args)


def _value(device_id: str) -> int:
    return int(device_id, 16)
