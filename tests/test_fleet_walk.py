"""The fleet walked over concurrent id ranges: planning, coverage, fallback, and the pacer."""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigfox.client import SigfoxClient
from sigfox.fleet_walk import IdSpan, RangePlanner, increasing, spans_between, walk_fleet
from sigfox.pacing import DEVICE_LIST, SEND_ALLOWANCE, Pacer
from sigfox.simulator import SimulatorServer

hex_ids = st.integers(min_value=0, max_value=0xFFFFFFFF).map(lambda v: f"{v:X}")
id_sets = st.sets(st.integers(min_value=1, max_value=0xFFFFFFFF), min_size=0, max_size=400)


def holders(spans: list[IdSpan], ident: str) -> int:
    return sum(span.holds(ident) for span in spans)


@given(st.lists(st.integers(min_value=1, max_value=0xFFFFFFFF), unique=True), hex_ids)
def test_ranges_between_boundaries_hold_every_id_exactly_once(
    values: list[int], probe: str
) -> None:
    spans = spans_between([f"{v:X}" for v in sorted(values)])
    assert len(spans) == len(values) + 1
    assert holders(spans, probe) == 1
    for value in values:  # each boundary starts its own range, its predecessor ends the last
        assert holders(spans, f"{value:X}") == 1
        assert holders(spans, f"{value - 1:X}") == 1


def api_probe(ids: list[int]) -> Callable[[int, str | None], str | None]:
    """What `GET /devices/?sort=id&offset=o&minId=m&limit=1` answers over a fleet of `ids`."""
    ordered = sorted(ids)

    def probe(offset: int, min_id: str | None) -> str | None:
        start = 0 if min_id is None else bisect.bisect_left(ordered, int(min_id, 16))
        position = start + offset
        return f"{ordered[position]:X}" if position < len(ordered) else None

    return probe


@settings(max_examples=60, deadline=None)
@given(id_sets, st.integers(min_value=1, max_value=5), st.sampled_from([1, 3, 10]),
       st.sampled_from([7, 40, 200]))
def test_planned_ranges_cover_the_fleet_once_in_whole_pages(
    values: set[int], workers: int, page_size: int, max_offset: int
) -> None:
    ids = list(values)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        planner = RangePlanner(api_probe(ids), pool, workers=workers, page_size=page_size,
                               max_offset=max_offset)
        boundaries = planner.boundaries()
    assert increasing(boundaries)
    spans = spans_between(boundaries)
    counts = [sum(span.holds(f"{v:X}") for v in ids) for span in spans]
    assert sum(counts) == len(ids)
    for value in ids:
        assert holders(spans, f"{value:X}") == 1
    # Every range but the last is the same whole number of pages: no partial page is wasted.
    assert len(set(counts[:-1])) <= 1
    assert all(count % page_size == 0 for count in counts[:-1])
    # Probes stay few: one per range, plus the size probes and one wave's overshoot.
    assert planner.probes <= len(spans) + 6 + workers


def walked(client: SigfoxClient, **options: object) -> list[str]:
    return [device.id for device in walk_fleet(client, **options)]  # type: ignore[arg-type]


def list_calls(sim: SimulatorServer) -> list[dict[str, object]]:
    return [c for c in sim.call_log() if c["path"] == "/v2/devices/"]


@pytest.mark.parametrize("max_offset", [40_000, 60])
def test_walk_over_the_simulator_lists_every_device_once(
    make_simulator: Callable[..., SimulatorServer], max_offset: int
) -> None:
    sim = make_simulator(devices=500, rate_limits=False)
    # Ids of every length and a dense cluster: ranges follow the fleet's ids, not the id space.
    for value in [*range(0xA0, 0xC0), 0xF, 0xFF, 0x100, 0xFFFFFFF0]:
        sim.world.add_device(f"{value:X}")
    sim.calls.clear()
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=4, page_size=10, max_offset=max_offset)
    assert sorted(ids) == sorted(sim.world.devices)
    assert len(ids) == len(set(ids))
    calls = list_calls(sim)
    pages = [c for c in calls if "limit=10" in str(c["query"])]
    probes = [c for c in calls if "limit=1&" in f"{c['query']}&"]
    assert all(c["status"] == 200 for c in calls)
    # One page per 10 devices, but the last page of the last range; each probe starts a range.
    assert len(pages) == math.ceil(len(ids) / 10)
    ranges = [c for c in pages if "pageId" not in str(c["query"])]
    assert len(probes) <= len(ranges) + 6 + 4  # one per range, the size probes, one wave
    ranged = [c for c in pages if "maxId" in str(c["query"]) or "minId" in str(c["query"])]
    assert len(ranged) == len(pages)


def test_walk_falls_back_to_one_walk_when_the_backend_refuses_ranges(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=300, rate_limits=False, id_ranges=False)
    sim.calls.clear()
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=4, page_size=10)
    assert sorted(ids) == sorted(sim.world.devices)
    calls = list_calls(sim)
    refused = [c for c in calls if c["status"] == 400]
    assert len(refused) == 1 and "maxId" in str(refused[0]["query"])
    plain = [c for c in calls if "sort" not in str(c["query"])]
    assert len(plain) == 30  # the one walk: 300 devices, 10 a page


def test_walk_falls_back_when_deep_probes_are_refused(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=200, rate_limits=False, id_ranges=False)
    client = SigfoxClient(sim.base_url, *sim.auth, rate_limits=False)
    ids = walked(client, workers=3, page_size=5, max_offset=20)  # probes need minId
    assert sorted(ids) == sorted(sim.world.devices)


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


def test_list_calls_count_from_sending_so_answer_time_does_not_stretch_windows() -> None:
    fake = VirtualTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    # With no deferring caller about, a sleeping walk may fill the whole window.
    for _ in range(DEVICE_LIST.calls):
        permit = pacer.acquire("GET", "/devices/")
        fake.now += 0.15  # each answer takes 150 ms
        pacer.settle(permit)
    before = fake.now
    pacer.acquire("GET", "/devices/")
    # The next goes 10 s after the first was sent (plus the allowance), not after its answer.
    assert fake.now == pytest.approx(start + 10.0 + SEND_ALLOWANCE)
    assert fake.now > before
