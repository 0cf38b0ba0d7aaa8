"""Walking a whole fleet at the pace the rate limit allows, whatever the answer time.

One walk through `paging.next` waits for each page before asking for the next: at 300 ms an
answer, 150,000 devices take 1,500 x 0.3 = 450 s, while the published limit (50 list calls per
10 s) allows 290 s. So the fleet is cut into disjoint id ranges (`sort=id` with `minId` and
`maxId`, which the device list offers), walked at the same time, each through its own
`paging.next`, all through the client's one pacer.

The ranges come from the fleet's own ids, so they hold equal numbers of devices however the
ids are spread: a probe asks for the one device `k x step` places into the fleet
(`sort=id&offset=...&limit=1`); its id starts range k. `offset` stops at 40,000, so deeper
probes count from an earlier probe's id (`minId`). A few size probes first pick the step, so
a small fleet is cut as finely as a large one. Requests: ceil(N/100) pages (each range is a
whole number of pages but the last), plus one probe per range, plus a handful.

The ranges partition the id space, not only the ids seen: range k is [b(k), b(k+1) - 1] by
hexadecimal value, the first has no lower bound and the last no upper bound, so a device
created while the walk runs lands in exactly one range.

Where the backend refuses the range parameters (400), or ignores them, the walk falls back to
one walk of `paging.next`. Memory stays flat: pages pass through a small bounded queue.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sigfox.errors import SigfoxBadRequest, SigfoxError
from sigfox.models import Device

if TYPE_CHECKING:
    from sigfox.client import SigfoxClient

log = logging.getLogger(__name__)

MAX_OFFSET = 40_000  # the service's cap on `offset`
# 1,000 ... 40,000 devices at 100 a page: one round trip says the fleet's size within 2.5x.
SIZE_PROBES_IN_PAGES = (10, 25, 50, 100, 200, 400)
RANGES_PER_WORKER = 2  # more ranges than walkers, so no walker idles at the end


@dataclass(frozen=True)
class IdSpan:
    """Device ids from `low` to `high` by hexadecimal value, inclusive; None is open."""

    low: str | None = None
    high: str | None = None

    def holds(self, ident: str) -> bool:
        value = int(ident, 16)
        return (self.low is None or value >= int(self.low, 16)) and (
            self.high is None or value <= int(self.high, 16))


def spans_between(boundaries: Sequence[str]) -> list[IdSpan]:
    """The ranges that start at each boundary, after one range below the first.

    Boundaries must increase strictly by value; together the ranges cover every id once.
    """
    lows: list[str | None] = [None, *boundaries]
    highs: list[str | None] = [_predecessor(b) for b in boundaries]
    highs.append(None)
    return [IdSpan(low, high) for low, high in zip(lows, highs, strict=True)]


def _predecessor(ident: str) -> str:
    return f"{int(ident, 16) - 1:X}"


def increasing(ids: Sequence[str]) -> bool:
    values = [int(i, 16) for i in ids]
    return all(a < b for a, b in itertools.pairwise(values))


def step_for(fleet_at_most: int | None, *, workers: int, page_size: int, max_offset: int) -> int:
    """Devices per range: a whole number of pages, about `RANGES_PER_WORKER` ranges per
    walker for a fleet of known size, the most that keeps 8 probes per `max_offset` else."""
    pages_cap = max(1, max_offset // (8 * page_size))
    if fleet_at_most is None:
        return pages_cap * page_size
    wanted = fleet_at_most / (RANGES_PER_WORKER * workers * page_size)
    return min(max(1, math.ceil(wanted)), pages_cap) * page_size


# ---------------------------------------------------------------------------------- planning

Probe = Callable[[int, str | None], str | None]  # (offset, minId) -> id or None


class RangePlanner:
    """Finds the range boundaries with a few concurrent probes (see the module's text)."""

    def __init__(self, probe: Probe, pool: ThreadPoolExecutor, *, workers: int,
                 page_size: int, max_offset: int = MAX_OFFSET) -> None:
        self._probe = probe
        self._pool = pool
        self._workers = workers
        self._page_size = page_size
        self._max_offset = max_offset
        self._known: dict[int, str | None] = {0: None}  # position -> id (None: past the end)
        self.probes = 0

    def boundaries(self) -> list[str]:
        """Ids at positions step, 2 x step, ... (ascending by value is checked by callers)."""
        step = self._step()
        reach = step * (self._max_offset // step)  # deepest position one probe may ask
        if reach == 0:  # pages longer than the deepest offset: no range can be found
            return []
        found: list[str] = []
        position = step
        while True:
            wave = self._wave(position, step, reach)
            self._ask(wave)
            for pos in range(position, position + step * len(wave), step):
                ident = self._known[pos]
                if ident is None:
                    return found
                found.append(ident)
            position += step * len(wave)

    def _step(self) -> int:
        positions = [p * self._page_size for p in SIZE_PROBES_IN_PAGES
                     if p * self._page_size <= self._max_offset]
        self._ask([(p, 0) for p in positions])
        ended = [p for p in positions if self._known[p] is None]
        return step_for(min(ended) if ended else None, workers=self._workers,
                        page_size=self._page_size, max_offset=self._max_offset)

    def _end(self) -> float:
        """The first position known to be past the fleet's end (infinity while none is)."""
        ended = [p for p, ident in self._known.items() if p and ident is None]
        return min(ended, default=math.inf)

    def _wave(self, position: int, step: int, reach: int) -> list[tuple[int, int]]:
        """Up to `workers` next positions, each with the position it counts from, as long as
        that base is known (a base deeper in the same wave waits for the next wave)."""
        wave: list[tuple[int, int]] = []
        while len(wave) < self._workers:
            base = (position - 1) // reach * reach
            if base not in self._known:
                break
            wave.append((position, base))
            position += step
        return wave

    def _ask(self, wave: list[tuple[int, int]]) -> None:
        todo = []
        for position, base in wave:
            if position in self._known:
                continue
            if (base and self._known[base] is None) or position >= self._end():
                self._known[position] = None  # the fleet ends before: no need to ask
                continue
            todo.append((position, base))
        answers = self._pool.map(
            lambda job: self._probe(job[0] - job[1], self._known[job[1]]), todo)
        for (position, _), ident in zip(todo, answers, strict=True):
            self._known[position] = ident
        self.probes += len(todo)


# ---------------------------------------------------------------------------------- walking

_DONE = object()


class _Walk:
    """Walkers put pages on a bounded queue; the caller's thread takes them off."""

    def __init__(self, workers: int) -> None:
        self.pages: queue.Queue[object] = queue.Queue(maxsize=2 * workers)
        self.stop = threading.Event()

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def walk_fleet(client: SigfoxClient, *, workers: int = 8, page_size: int = 100,
               max_offset: int = MAX_OFFSET) -> Iterator[Device]:
    """Every device once, over concurrent id ranges, or through one walk where the backend
    will not cut its list by id."""
    workers = max(1, workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fleet-walk") as pool:
        spans, first = _plan(client, pool, workers=workers, page_size=page_size,
                             max_offset=max_offset)
        if first is None:
            yield from client.iter_devices(page_size=page_size)
            return
        yield from _walk_spans(client, pool, spans, first, workers=workers, page_size=page_size)


def _plan(client: SigfoxClient, pool: ThreadPoolExecutor, *, workers: int, page_size: int,
          max_offset: int) -> tuple[list[IdSpan], Iterator[list[Device]] | None]:
    """The ranges, and the first range's walk with its first page checked, or None to fall
    back to one walk (one range only, or the backend refused or ignored the parameters)."""
    planner = RangePlanner(lambda offset, low: client.device_id_at(offset, min_id=low), pool,
                           workers=workers, page_size=page_size, max_offset=max_offset)
    try:
        boundaries = planner.boundaries()
    except SigfoxBadRequest as refusal:
        log.info("device list: no id ranges (%s); one walk instead", refusal)
        return [], None
    if not boundaries:
        return [], None
    if not increasing(boundaries):
        log.warning("device list: sort=id not honoured by the backend; one walk instead")
        return [], None
    spans = spans_between(boundaries)
    first = _checked_first_range(client, spans[0], page_size)
    log.info("device list: %d id ranges found with %d probes", len(spans), planner.probes)
    return spans, first


def _checked_first_range(
    client: SigfoxClient, span: IdSpan, page_size: int
) -> Iterator[list[Device]] | None:
    """The first range's pages, its first page checked to honour `maxId`; None if not."""
    pages = client.iter_device_pages(min_id=span.low, max_id=span.high, page_size=page_size)
    try:
        page = next(pages, [])
    except SigfoxBadRequest as refusal:
        log.info("device list: minId/maxId refused (%s); one walk instead", refusal)
        return None
    if not all(span.holds(d.id) for d in page):
        log.warning("device list: minId/maxId ignored by the backend; one walk instead")
        return None

    def resumed() -> Iterator[list[Device]]:
        yield page
        yield from pages

    return resumed()


def _walk_spans(client: SigfoxClient, pool: ThreadPoolExecutor, spans: list[IdSpan],
                first: Iterator[list[Device]], *, workers: int, page_size: int
                ) -> Iterator[Device]:
    walk = _Walk(workers)

    def walk_span(span: IdSpan, pages: Iterator[list[Device]] | None) -> None:
        if walk.stop.is_set():
            return
        try:
            pages = pages or client.iter_device_pages(
                min_id=span.low, max_id=span.high, page_size=page_size)
            for page in pages:
                if walk.stop.is_set():
                    return
                _check_page(span, page)
                if not walk.put(page):
                    return
            walk.put(_DONE)
        except BaseException as error:  # handed to the caller's thread, which raises it
            walk.put(error)

    for index, span in enumerate(spans):
        pool.submit(walk_span, span, first if index == 0 else None)
    try:
        yield from _drain(walk, len(spans))
    finally:
        walk.stop.set()


def _drain(walk: _Walk, ranges: int) -> Iterator[Device]:
    finished = 0
    while finished < ranges:
        item = walk.pages.get()
        if item is _DONE:
            finished += 1
        elif isinstance(item, BaseException):
            raise item
        elif isinstance(item, list):
            yield from item


def _check_page(span: IdSpan, page: list[Device]) -> None:
    stray = next((d.id for d in page if not span.holds(d.id)), None)
    if stray is not None:
        raise SigfoxError(
            f"Sigfox listed device {stray} outside the id range asked for "
            f"({span.low or 'start'}..{span.high or 'end'}); the scan stopped rather than "
            "count a device twice", method="GET", path="/devices/")
