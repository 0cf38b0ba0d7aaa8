"""The fleet walked over concurrent id ranges: coverage, every call a page, fallback, and the
pacer against the simulator's own rate limiter."""

from __future__ import annotations

import bisect
import heapq
import math
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigfox.client import SigfoxClient
from sigfox.fleet_walk import BlockShape, IdSpan, Wave, subranges, walk_fleet
from sigfox.listing import Page
from sigfox.models import Device
from sigfox.pacing import DATING_MARGIN, DATING_MARGIN_MAX, DEVICE_LIST, Pacer
from sigfox.simulator import SimulatorServer
from sigfox.simulator.ratelimit import RateLimiter

hex_ids = st.integers(min_value=0, max_value=0xFFFFFFFF).map(lambda v: f"{v:X}")
id_sets = st.sets(st.integers(min_value=1, max_value=0xFFFFFFFF), min_size=0, max_size=300)


def holders(spans: list[IdSpan], ident: str) -> int:
    return sum(span.holds(ident) for span in spans)


class ListedFleet:
    """What `GET /devices/?sort=id&minId=m&offset=o&limit=n` answers over a fleet of `ids`
    (the API's rule, written out for the planning's property test)."""

    def __init__(self, ids: list[int], page_size: int) -> None:
        self.ordered = sorted(ids)
        self.page_size = page_size
        self.asked = 0
        self.empty = 0

    def wave(self, shape: BlockShape, low: str | None) -> Wave:
        start = 0 if low is None else bisect.bisect_left(self.ordered, int(low, 16))
        wave = {}
        for index in shape.probes:
            first = start + index * self.page_size
            chunk = self.ordered[first:first + self.page_size]
            more = first + self.page_size < len(self.ordered)
            wave[index] = Page([Device(id=f"{v:X}") for v in chunk], "next" if more else None)
            self.asked += 1
            self.empty += not chunk
        return wave


@settings(max_examples=60, deadline=None)
@given(id_sets, st.sampled_from([1, 2, 3, 10]), st.sampled_from([7, 40, 40_000]), hex_ids)
def test_planned_ranges_cover_the_id_space_once_and_probes_are_pages(
    values: set[int], page_size: int, max_offset: int, stranger: str
) -> None:
    ids = list(values)
    fleet = ListedFleet(ids, page_size)
    shape = BlockShape.fitting(page_size, max_offset)
    spans: list[IdSpan] = []
    low: str | None = None
    blocks = 0
    while True:
        subs, low = subranges(shape, low, fleet.wave(shape, low))
        spans += [sub.span for sub in subs]
        blocks += 1
        if low is None:
            break
    if not ids:
        assert spans == []
        return
    # Every id of the fleet, and any other id, lies in exactly one range.
    for value in ids:
        assert holders(spans, f"{value:X}") == 1
    assert holders(spans, stranger) == 1
    assert spans[0].low is None and spans[-1].high is None
    # Only the last block's probes come back empty, and never more than its sub-ranges.
    assert fleet.empty <= len(shape.starts)
    pages = math.ceil(len(ids) / page_size)
    assert blocks == math.ceil(pages / shape.pages)
    if shape.pages == DEVICE_LIST.calls:  # blocks are windows: the probes never add one
        assert math.ceil((pages + fleet.empty) / shape.pages) == math.ceil(pages / shape.pages)


# ------------------------------------------------------------------ over the simulator


def walked(client: SigfoxClient, **options: object) -> list[str]:
    return [device.id for device in walk_fleet(client, **options)]  # type: ignore[arg-type]


def list_calls(sim: SimulatorServer) -> list[dict[str, object]]:
    return [c for c in sim.call_log() if c["path"] == "/v2/devices/"]


@pytest.mark.parametrize("devices", [1, 499, 500, 501, 1000, 1234])
def test_walk_lists_every_device_once_in_its_pages_plus_a_few_probes(
    make_simulator: Callable[..., SimulatorServer], devices: int
) -> None:
    sim = make_simulator(devices=devices, rate_limits=False)
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=4, page_size=10)
    assert sorted(ids) == sorted(sim.world.devices)
    assert len(ids) == len(set(ids))
    calls = list_calls(sim)
    assert all(c["status"] == 200 for c in calls)
    pages = math.ceil(devices / 10)
    assert pages <= len(calls) <= pages + 5
    # A block is one window of the limit: the probes never cost a window more than the pages.
    assert math.ceil(len(calls) / DEVICE_LIST.calls) == math.ceil(pages / DEVICE_LIST.calls)
    if devices % 500 == 0:
        assert len(calls) == pages  # every block whole: no probe lands past the end


def test_walk_follows_the_fleets_own_ids_and_deep_blocks(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=500, rate_limits=False)
    # Ids of every length and a dense cluster: ranges follow the fleet's ids, not the id space.
    for value in [*range(0xA0, 0xC0), 0xF, 0xFF, 0x100, 0xFFFFFFF0]:
        sim.world.add_device(f"{value:X}")
    sim.calls.clear()
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=4, page_size=10, max_offset=60)  # blocks of 7 pages
    assert sorted(ids) == sorted(sim.world.devices)
    assert len(ids) == len(set(ids))
    calls = list_calls(sim)
    assert len(calls) <= math.ceil(len(ids) / 10) + 4
    assert all("offset" not in str(c["query"]) or "sort=id" in str(c["query"]) for c in calls)


def test_walk_falls_back_to_one_walk_when_the_backend_refuses_ranges(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=300, rate_limits=False, id_ranges=False)
    sim.calls.clear()
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=4, page_size=10)
    assert sorted(ids) == sorted(sim.world.devices)
    assert len(ids) == len(set(ids))
    calls = list_calls(sim)
    refused = [c for c in calls if c["status"] == 400]
    assert 1 <= len(refused) <= 3  # the first ranged call of each sub-range walked at once
    assert all("minId" in str(c["query"]) for c in refused)
    # The one walk: the first page, then its paging.next to the end (30 pages), after the
    # first block's wave (6) and at most a page per walker begun before the refusal came.
    plain = [c for c in calls if "minId" not in str(c["query"])]
    assert 30 + 6 <= len(plain) <= 30 + 6 + 4


def test_walk_falls_back_when_the_next_blocks_wave_is_refused(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=200, rate_limits=False, id_ranges=False)
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=3, page_size=5, max_offset=20)  # 1-page sub-ranges
    assert sorted(ids) == sorted(sim.world.devices)
    assert len(ids) == len(set(ids))


def test_walk_of_a_small_fleet_is_one_walk(make_simulator: Callable[..., SimulatorServer]) -> None:
    sim = make_simulator(devices=7, rate_limits=False)
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    assert sorted(walked(client, workers=4)) == sorted(sim.world.devices)


def test_walk_stops_its_walkers_when_the_caller_stops_reading(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=400, rate_limits=False)
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    devices = walk_fleet(client, workers=4, page_size=5)
    first = [next(devices) for _ in range(12)]
    devices.close()  # returns only once every walker has stopped
    assert len(first) == 12
    assert not [t for t in threading.enumerate() if t.name.startswith("fleet-walk")]
    # The walk stopped early: far fewer pages asked than the 80 of the whole fleet.
    assert len(list_calls(sim)) < 80


def test_walk_with_the_published_limits_lists_every_device_once(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    """The simulator enforces 50 list calls per 10 s on its clock, which the client's pacer
    moves forward when it sleeps (three windows pass in a moment). Concurrent sleepers move it
    by whole slots, so a call may be dated later than it was sent by more than the margin and
    meet a 429 (the dating itself is tested against the simulator's limiter below): it is sent
    again after the back-off, and the fleet is still listed once in its pages + a few probes."""
    sim = make_simulator(devices=1234, rate_limits=True)

    def sleep(seconds: float) -> None:
        sim.world.clock.advance(seconds)

    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=True, clock=sim.world.clock.now,
                          sleep=sleep)
    sim.calls.clear()
    ids = walked(client, workers=4, page_size=10)
    assert sorted(ids) == sorted(sim.world.devices)
    assert len(ids) == len(set(ids))
    calls = list_calls(sim)
    answered = [c for c in calls if c["status"] == 200]
    assert [c for c in calls if c["status"] not in (200, 429)] == []
    assert math.ceil(1234 / 10) <= len(answered) <= math.ceil(1234 / 10) + 5


# ------------------------------------------------------------------------------- the pacer


class VirtualTime:
    """A shared clock that threads move forward by sleeping (never backwards)."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class EventTime:
    """Virtual time for threads: it moves only when every thread sleeps, straight to the
    earliest wake-up, so concurrent sleeps overlap as they would in real time."""

    def __init__(self, threads: int) -> None:
        self._now = 1_000.0
        self._running = threads
        self._wakes: list[float] = []
        self._cond = threading.Condition()

    def now(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            wake = self._now + seconds
            heapq.heappush(self._wakes, wake)
            self._running -= 1
            self._advance_if_idle()
            while self._now < wake:
                self._cond.wait()

    def done(self) -> None:
        with self._cond:
            self._running -= 1
            self._advance_if_idle()

    def _advance_if_idle(self) -> None:
        if self._running or not self._wakes:
            return
        self._now = max(self._now, self._wakes[0])
        while self._wakes and self._wakes[0] <= self._now:
            heapq.heappop(self._wakes)
            self._running += 1  # woken here, so no one advances past it before it runs
        self._cond.notify_all()


def test_list_calls_dated_late_by_the_server_never_meet_the_simulators_limit() -> None:
    """16 walkers through one pacer; the server (the simulator's own rate limiter) dates each
    call up to 0.9 x DATING_MARGIN after it was sent, and answers in ~1.5 s. It refuses none,
    and the calls still go at 50 per (10 s + the margin), not per (10 s + an answer time)."""
    walkers, each = 16, 40
    time = EventTime(walkers)
    pacer = Pacer(clock=time.now, sleep=time.sleep)
    server = RateLimiter(time.now)
    refused = 0
    sent: list[float] = []
    lock = threading.Lock()

    def walker(seed: int) -> None:
        nonlocal refused
        rng = random.Random(seed)
        try:
            for _ in range(each):
                permit = pacer.acquire("GET", "/devices/")
                with lock:
                    sent.append(permit.sent)
                dated = rng.uniform(0.0, 0.9 * DATING_MARGIN)
                answered = max(dated, 1.5 * math.exp(rng.gauss(0.0, 0.35)))
                time.sleep(dated)
                if not server.allow("GET", "/v2/devices/"):
                    with lock:
                        refused += 1
                time.sleep(answered - dated)
                pacer.settle(permit)
        finally:
            time.done()

    with ThreadPoolExecutor(walkers) as pool:
        list(pool.map(walker, range(walkers)))
    assert refused == 0
    assert len(sent) == walkers * each
    # Each call went 10 s + the margin after the call 50 before it, not 10 s + an answer time.
    sent.sort()
    gaps = sorted(b - a for a, b in zip(sent, sent[DEVICE_LIST.calls:], strict=False))
    assert gaps[len(gaps) // 2] == pytest.approx(10.0 + DATING_MARGIN, abs=0.01)


def test_concurrent_list_calls_never_exceed_50_in_any_10_seconds() -> None:
    fake = VirtualTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    counted: list[float] = []
    lock = threading.Lock()
    rng = random.Random(7)

    def walker() -> None:
        for _ in range(60):
            permit = pacer.acquire("GET", "/devices/")
            fake.sleep(rng.uniform(0.0, 0.6))  # the answer takes its time
            pacer.settle(permit)
            with lock:
                counted.append(permit.sent)

    threads = [threading.Thread(target=walker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counted.sort()
    assert len(counted) == 480
    for i, start in enumerate(counted):
        assert bisect.bisect_left(counted, start + 10.0) - i <= 50


def test_list_calls_count_from_sending_plus_the_margin_not_from_their_answers() -> None:
    fake = VirtualTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    # With no deferring caller about, a sleeping walk may fill the whole window at once.
    permits = [pacer.acquire("GET", "/devices/") for _ in range(DEVICE_LIST.calls)]
    fake.now += 1.0  # the answers take a second, longer than the margin
    for permit in permits:
        pacer.settle(permit)
    before = fake.now
    pacer.acquire("GET", "/devices/")
    # The next goes 10 s after the first was sent, plus the margin, not after its answer.
    assert fake.now == pytest.approx(start + 10.0 + DATING_MARGIN)
    assert fake.now > before


def test_a_list_call_answered_429_gives_its_slot_to_the_call_sent_again() -> None:
    """The server did not count it: the re-sent call takes its slot, so 1,500 pages still fit
    in 30 windows after a 429 (a kept slot would make the re-send the 1,501st call)."""
    fake = VirtualTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    permits = [pacer.acquire("GET", "/devices/") for _ in range(DEVICE_LIST.calls)]
    fake.now += 0.3
    for permit in permits[:-1]:
        pacer.settle(permit)
    pacer.refused(permits[-1])  # answered 429
    again = pacer.acquire("GET", "/devices/")
    assert again.wait == 0.0 and fake.now == pytest.approx(start + 0.3)
    pacer.settle(again)
    pacer.acquire("GET", "/devices/")  # the next one waits for the window as usual
    assert fake.now == pytest.approx(start + 10.0 + DATING_MARGIN)


def test_each_list_429_doubles_the_dating_margin_up_to_its_ceiling() -> None:
    """A 429 on the list shows the server dated a call later than the margin allowed: later
    windows leave it twice the room, never more than DATING_MARGIN_MAX; other limits' 429s
    (e.g. a device's messages) say nothing about the list's dating and change nothing."""
    fake = VirtualTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    assert pacer.dating_margin == DATING_MARGIN
    pacer.refused(pacer.acquire("GET", "/devices/{id}/messages", "1A2B"))
    assert pacer.dating_margin == DATING_MARGIN
    pacer.refused(pacer.acquire("GET", "/devices/"))
    assert pacer.dating_margin == pytest.approx(2 * DATING_MARGIN)
    for _ in range(10):
        pacer.refused(pacer.acquire("GET", "/devices/"))
    assert pacer.dating_margin == DATING_MARGIN_MAX
    # The widened margin is what the window counts from now on.
    start = fake.now
    permits = [pacer.acquire("GET", "/devices/") for _ in range(DEVICE_LIST.calls)]
    fake.now += 2.0
    for permit in permits:
        pacer.settle(permit)
    pacer.acquire("GET", "/devices/")
    assert fake.now == pytest.approx(start + 10.0 + DATING_MARGIN_MAX)
