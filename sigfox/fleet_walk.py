"""Walking a whole fleet at the pace the rate limit allows, whatever the answer time.

One walk through `paging.next` waits for each page before asking for the next: at 300 ms an
answer, 150,000 devices take 1,500 x 0.3 = 450 s, while the published limit (50 list calls per
10 s) allows 290 s. So the fleet is cut into disjoint id ranges (`sort=id` with `minId` and
`maxId`, which the device list offers), walked at the same time, each through its own
`paging.next`, all through the client's one pacer.

Every call is a page the walk lists; none is spent only to find where to cut:

- The fleet is cut by position into *blocks* of 50 pages (one window of the list limit), each
  block into 5 *sub-ranges* of 10 pages. A block's *wave* asks at once, from the block's
  first id (`sort=id&minId=...&offset=o&limit=100`), the first page of each sub-range
  (o = 0, 1,000, ... 4,000) and the block's last page (o = 4,900).
- The ids of those first pages bound the sub-ranges. The last page, when it links to a next
  page, says where the next block starts (the id after its last device), so the next wave
  goes; a block whose last page is empty or ends the list is the last one.
- Each sub-range continues from the end of its first page to the start of the next one
  (`minId`/`maxId`, following `paging.next`), and ends with the block's last page where it
  holds it. The last sub-range of the last block follows its first page's `paging.next`.

Requests: each page of the fleet once, plus the probes of the last block that land past the
fleet's end (at most 5; none when the last block is full). They land only in a block of q < 50
pages, and only at pages q to 49, spaced 10 apart with the last page: at most 50 - q of them.
So the last block's calls stay within 50 and the walk never needs one window of the limit more
than its pages alone: ceil(calls / 50) = ceil(pages / 50).

Exactness: the sub-ranges partition the id space, not only the ids seen (a block runs from the
id after the previous block's last device to its own last device; the first has no lower
bound, the last no upper one), so a device created while the walk runs is listed at most once;
every page is checked to lie in its range.

Where the backend refuses the range parameters (400) or ignores them, the first call that uses
them says so before anything is handed out, and the walk falls back to one walk of
`paging.next` from the first page. Memory stays flat: sub-ranges wait in a short queue and
pages pass through a small bounded one.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sigfox.errors import SigfoxBadRequest, SigfoxError
from sigfox.listing import Page
from sigfox.models import Device
from sigfox.pacing import DEVICE_LIST

if TYPE_CHECKING:
    from sigfox.client import SigfoxClient

log = logging.getLogger(__name__)

MAX_OFFSET = 40_000  # the service's cap on `offset`
BLOCK_PAGES = DEVICE_LIST.calls  # a block is one window of the list limit
SUBRANGES_PER_BLOCK = 5  # walked side by side; 10 pages each in a whole block

R = TypeVar("R")


@dataclass(frozen=True)
class IdSpan:
    """Device ids from `low` to `high` by hexadecimal value, inclusive; None is open."""

    low: str | None = None
    high: str | None = None

    def holds(self, ident: str) -> bool:
        value = int(ident, 16)
        return (self.low is None or value >= int(self.low, 16)) and (
            self.high is None or value <= int(self.high, 16))


def successor(ident: str) -> str:
    return f"{int(ident, 16) + 1:X}"


def predecessor(ident: str) -> str:
    return f"{int(ident, 16) - 1:X}"


def increasing(ids: Sequence[str]) -> bool:
    values = [int(i, 16) for i in ids]
    return all(a < b for a, b in itertools.pairwise(values))


@dataclass(frozen=True)
class BlockShape:
    """Pages per block and per sub-range, the block's last page within reach of `offset`."""

    pages: int
    sub_pages: int

    @classmethod
    def fitting(cls, page_size: int, max_offset: int = MAX_OFFSET) -> BlockShape:
        pages = max(1, min(BLOCK_PAGES, max_offset // page_size + 1))
        return cls(pages, math.ceil(pages / SUBRANGES_PER_BLOCK))

    @property
    def starts(self) -> list[int]:
        """The page (within the block) each sub-range starts with."""
        return list(range(0, self.pages, self.sub_pages))

    @property
    def last(self) -> int:
        return self.pages - 1

    @property
    def probes(self) -> list[int]:
        return sorted({*self.starts, self.last})


@dataclass(frozen=True)
class SubRange:
    """Ids `span`, whose first page is in hand, and its last one too where it is the block's
    last page (`tail`)."""

    span: IdSpan
    first: Page[Device]
    tail: Page[Device] | None = None


# ---------------------------------------------------------------------------------- planning

Wave = dict[int, Page[Device]]  # page within the block -> that page


def probe_block(client: SigfoxClient, pool: ThreadPoolExecutor, shape: BlockShape,
                low: str | None, page_size: int) -> Wave:
    """The block's wave: the first page of each sub-range and the block's last page."""
    def page_at(index: int) -> Page[Device]:
        return client.device_page(min_id=low, offset=index * page_size, page_size=page_size)

    return dict(zip(shape.probes, pool.map(page_at, shape.probes), strict=True))


def disorder(low: str | None, wave: Wave) -> str | None:
    """What is wrong with a wave when the backend did not sort by id or start at `minId`."""
    seen: list[str] = []
    for index in sorted(wave):
        ids = [device.id for device in wave[index].items]
        if low is not None and ids and int(ids[0], 16) < int(low, 16):
            return f"device {ids[0]} listed below minId {low}"
        if not increasing(seen[-1:] + ids):
            return "devices not listed in id order"
        seen += ids[-1:]
    return None


def subranges(shape: BlockShape, low: str | None, wave: Wave
              ) -> tuple[list[SubRange], str | None]:
    """The block's sub-ranges, and the first id of the next block (None: this is the last).

    Probes past an empty one are ignored: the list ended there when it was asked, and the
    open last sub-range covers whatever lies beyond.
    """
    held = list(itertools.takewhile(lambda i: wave[i].items, shape.probes))
    starts = [i for i in shape.starts if i in held]
    if not starts:
        return [], None
    last = wave[shape.last] if shape.last in held else None
    whole = last is not None and last.next_url is not None
    ends: list[str | None] = [predecessor(wave[i].items[0].id) for i in starts[1:]]
    ends.append(last.items[-1].id if whole and last is not None else None)
    lows = [low, *(wave[i].items[0].id for i in starts[1:])]
    found = []
    for index, (start, sub_low, sub_high) in enumerate(zip(starts, lows, ends, strict=True)):
        tail = last if index == len(starts) - 1 and start != shape.last else None
        found.append(SubRange(IdSpan(sub_low, sub_high), wave[start], tail))
    next_low = successor(last.items[-1].id) if whole and last is not None else None
    return found, next_low


# ---------------------------------------------------------------------------------- walking

_DONE = object()


class RangesUnusable(SigfoxError):
    """The backend refused or ignored `minId`/`maxId` on the walk's first call using them."""


class _Walk:
    """Walkers put pages on a bounded queue; the caller's thread takes them off."""

    def __init__(self, workers: int) -> None:
        self.pages: queue.Queue[object] = queue.Queue(maxsize=2 * workers)
        self.jobs: queue.Queue[SubRange | None] = queue.Queue(maxsize=workers)
        self.stop = threading.Event()
        self.confirmed = threading.Event()  # a call with minId/maxId was answered as asked

    def put(self, item: object) -> bool:
        return self._put(self.pages, item)

    def put_job(self, job: SubRange | None) -> bool:
        return self._put(self.jobs, job)

    def _put(self, into: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                into.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next_job(self) -> SubRange | None:
        while not self.stop.is_set():
            try:
                return self.jobs.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def ranged(self, call: Callable[[], R], problem: Callable[[R], str | None]) -> R:
        """`call` (which uses minId/maxId); until one such call has been answered as asked, a
        refusal or an answer ignoring them is `RangesUnusable`, which turns the walk into one
        walk of `paging.next`."""
        try:
            result = call()
        except SigfoxBadRequest as refusal:
            if self.confirmed.is_set():
                raise
            raise RangesUnusable(f"minId/maxId refused ({refusal})") from refusal
        wrong = problem(result)
        if wrong is not None:
            message = (f"Sigfox ignored the id range asked for ({wrong}); the scan stopped "
                       "rather than count a device twice")
            error = SigfoxError(message, method="GET", path="/devices/")
            raise error if self.confirmed.is_set() else RangesUnusable(message)
        self.confirmed.set()
        return result


def walk_fleet(client: SigfoxClient, *, workers: int = 8, page_size: int = 100,
               max_offset: int = MAX_OFFSET) -> Generator[Device, None, None]:
    """Every device once, over concurrent id ranges, or through one walk where the backend
    will not cut its list by id."""
    workers = max(1, workers)
    shape = BlockShape.fitting(page_size, max_offset)
    with ThreadPoolExecutor(len(shape.probes), thread_name_prefix="fleet-walk") as pool:
        wave = probe_block(client, pool, shape, None, page_size)
    first = wave[0]
    wrong = disorder(None, wave)
    if wrong is not None:
        log.warning("device list: sort=id not honoured (%s); one walk instead", wrong)
        yield from _one_walk(client, first)
        return
    subs, next_low = subranges(shape, None, wave)
    if next_low is None and len(subs) <= 1 and (not subs or subs[0].tail is None):
        yield from _one_walk(client, first)  # one sub-range: its first page and what follows
        return
    try:
        for page in _walk_blocks(client, shape, subs, next_low, workers=workers,
                                 page_size=page_size):
            yield from page
    except RangesUnusable as unusable:
        log.info("device list: no id ranges (%s); one walk instead", unusable)
        yield from _one_walk(client, first)


def _one_walk(client: SigfoxClient, first: Page[Device]) -> Iterator[Device]:
    yield from first.items
    for page in client.iter_device_pages_after(first):
        yield from page


def _walk_blocks(client: SigfoxClient, shape: BlockShape, subs: list[SubRange],
                 next_low: str | None, *, workers: int, page_size: int
                 ) -> Iterator[list[Device]]:
    walk = _Walk(workers)

    def plan() -> None:
        try:
            _plan_blocks(client, walk, shape, subs, next_low, page_size)
            for _ in range(workers):
                walk.put_job(None)
        except BaseException as error:  # handed to the caller's thread, which raises it
            walk.put(error)

    def walker() -> None:
        try:
            while (job := walk.next_job()) is not None:
                for page in _pages_of(client, walk, job, page_size):
                    _check_page(job.span, page)
                    if not walk.put(page):
                        return
            walk.put(_DONE)
        except BaseException as error:
            walk.put(error)

    with ThreadPoolExecutor(workers + 1, thread_name_prefix="fleet-walk") as pool:
        pool.submit(plan)
        for _ in range(workers):
            pool.submit(walker)
        try:
            yield from _drain(walk, workers)
        finally:
            walk.stop.set()


def _plan_blocks(client: SigfoxClient, walk: _Walk, shape: BlockShape, subs: list[SubRange],
                 low: str | None, page_size: int) -> None:
    """Hand out each block's sub-ranges, asking the next block's wave meanwhile; the short job
    queue keeps the planning a few sub-ranges ahead of the walkers."""
    with ThreadPoolExecutor(len(shape.probes), thread_name_prefix="fleet-walk") as pool:
        while True:
            for sub in subs:
                if not walk.put_job(sub):
                    return
            if low is None or walk.stop.is_set():
                return
            wave = walk.ranged(partial(probe_block, client, pool, shape, low, page_size),
                               partial(disorder, low))
            subs, low = subranges(shape, low, wave)


def _pages_of(client: SigfoxClient, walk: _Walk, sub: SubRange, page_size: int
              ) -> Iterator[list[Device]]:
    yield sub.first.items
    if not sub.first.items or sub.first.next_url is None:
        return  # the list ended with this page
    after = successor(sub.first.items[-1].id)
    if sub.tail is not None:
        yield from _ranged_pages(client, walk, IdSpan(after, predecessor(sub.tail.items[0].id)),
                                 page_size)
        yield sub.tail.items
    elif sub.span.high is not None:
        yield from _ranged_pages(client, walk, IdSpan(after, sub.span.high), page_size)
    else:
        yield from client.iter_device_pages_after(sub.first)


def _ranged_pages(client: SigfoxClient, walk: _Walk, span: IdSpan, page_size: int
                  ) -> Iterator[list[Device]]:
    if span.low is not None and span.high is not None and int(span.low, 16) > int(span.high, 16):
        return  # nothing lies between the pages in hand
    pages = client.iter_device_pages(min_id=span.low, max_id=span.high, page_size=page_size)
    yield walk.ranged(lambda: next(pages, []), lambda page: _stray(span, page))
    yield from pages


def _drain(walk: _Walk, walkers: int) -> Iterator[list[Device]]:
    """Pages as the walkers hand them, held back until a call with minId/maxId has been
    answered as asked (else the walk may still turn into one walk)."""
    finished = 0
    held: list[list[Device]] | None = []  # None once pages have been handed out
    while finished < walkers:
        item = walk.pages.get()
        if item is _DONE:
            finished += 1
        elif isinstance(item, RangesUnusable) and held is None:
            raise SigfoxError(item.message, method="GET", path="/devices/") from item
        elif isinstance(item, BaseException):
            raise item
        elif isinstance(item, list):
            if held is None:
                yield item
                continue
            held.append(item)
            if walk.confirmed.is_set():
                pages, held = held, None
                yield from pages
    yield from held or []


def _stray(span: IdSpan, page: list[Device]) -> str | None:
    ids = [device.id for device in page]
    outside = next((i for i in ids if not span.holds(i)), None)
    if outside is not None:
        return f"device {outside} outside {span.low or 'start'}..{span.high or 'end'}"
    return None if increasing(ids) else "devices not listed in id order"


def _check_page(span: IdSpan, page: list[Device]) -> None:
    stray = next((d.id for d in page if not span.holds(d.id)), None)
    if stray is not None:
        raise SigfoxError(
            f"Sigfox listed device {stray} outside the id range asked for "
            f"({span.low or 'start'}..{span.high or 'end'}); the scan stopped rather than "
            "count a device twice", method="GET", path="/devices/")
