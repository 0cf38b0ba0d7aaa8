"""Many named devices read in pages: each once, in ceil(N/100) calls when they sit together,
never more calls than devices, missing ones confirmed, within the published limits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from sigfox.client import SigfoxClient
from sigfox.device_reads import ReadsCutShort, read_devices
from sigfox.errors import SigfoxPacingRefused
from sigfox.models import Device
from sigfox.simulator import SimulatorServer
from sigfox.simulator.latency import LatencyModel


@pytest.fixture
def fleet(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    sim = make_simulator(devices=0, rate_limits=True)
    dtype = sim.world.add_device_type("Reads", sim.world.add_contract(
        "Reads", order_id="order-reads", order_name="Reads", max_tokens=1000).id)
    for n in range(450):  # ids 0x1000 ... 0x11C1: one run of consecutive ids
        sim.world.add_device(f"{0x1000 + n:X}", device_type_id=dtype.id, token="off_contract")
    return sim


@pytest.fixture
def client(fleet: SimulatorServer) -> Iterator[SigfoxClient]:
    with SigfoxClient(fleet.base_url, *fleet.auth, rate_limits=True).deferring() as api:
        yield api


def list_calls(sim: SimulatorServer) -> list[dict]:
    return [c for c in sim.calls.all() if c["method"] == "GET" and c["path"] == "/v2/devices/"]


def test_devices_side_by_side_are_read_a_page_at_a_time(fleet: SimulatorServer,
                                                        client: SigfoxClient) -> None:
    wanted = [f"{0x1000 + n:X}" for n in range(5, 425)]  # 420 devices
    fleet.calls.clear()
    found = read_devices(client, reversed(wanted))
    assert sorted(found) == sorted(wanted)
    assert all(found[d] is not None and found[d].id == d for d in wanted)
    calls = list_calls(fleet)
    assert len(calls) == 5  # ceil(420 / 100), not 420
    assert not [c for c in fleet.calls.all() if c["status"] == 429]


def test_scattered_and_missing_ids_cost_at_most_one_call_each_and_are_exact(
    fleet: SimulatorServer, client: SigfoxClient
) -> None:
    scattered = [f"{0x1000 + n:X}" for n in range(0, 450, 37)]  # 13 devices, 36 apart
    missing = ["FFFF01", "1", "10FF0"]  # above, below and inside the fleet's ids
    fleet.calls.clear()
    found = read_devices(client, [*scattered, *missing])
    assert {d for d, device in found.items() if device is not None} == set(scattered)
    assert all(found[d] is None for d in missing)
    # One call per group page at most per wanted id, plus one confirming read per missing id.
    assert len(list_calls(fleet)) <= len(scattered) + 2 * len(missing)


def test_ids_far_apart_are_read_side_by_side_within_the_workers(
    make_simulator: Callable[..., SimulatorServer]
) -> None:
    sim = make_simulator(devices=0, rate_limits=True,
                         latency=LatencyModel(0.05, spread=0.0, slow_share=0.0))
    dtype = sim.world.add_device_type("Far", sim.world.add_contract(
        "Far", order_id="order-far", order_name="Far", max_tokens=1000).id)
    for n in range(1200):
        sim.world.add_device(f"{0x2000 + n:X}", device_type_id=dtype.id)
    wanted = [f"{0x2000 + n:X}" for n in range(0, 1200, 150)]  # 8 ids, a page apart or more
    with SigfoxClient(sim.base_url, *sim.auth, rate_limits=True).deferring() as api:
        found = read_devices(api, wanted, workers=4)
    assert all(found[d] is not None for d in wanted)
    assert len(list_calls(sim)) == len(wanted)  # one call each, never more
    assert 2 <= sim.control("GET", "/latency")["peakWaiting"] <= 4


def test_progress_is_told_as_pages_arrive_and_reaches_the_total(client: SigfoxClient) -> None:
    told: list[tuple[int, int]] = []
    wanted = [f"{0x1000 + n:X}" for n in range(300)]
    read_devices(client, wanted, on_read=lambda done, total: told.append((done, total)))
    assert len(told) == 3  # one per page, not one per device
    assert max(done for done, _ in told) == 300
    assert {total for _, total in told} == {300}


def test_a_backend_refusing_id_ranges_is_read_one_device_at_a_time(
    fleet: SimulatorServer, client: SigfoxClient
) -> None:
    wanted = [f"{0x1000 + n:X}" for n in range(20)]
    fleet.fault("/v2/devices/", method="GET", status=400)  # the range request, refused once
    fleet.calls.clear()
    found = read_devices(client, wanted)
    assert all(found[d] is not None for d in wanted)
    assert len(list_calls(fleet)) == 1 + len(wanted)


class _RefusedOnce:
    """A client whose pacer refuses the first page (a deferring client's "not before")."""

    def __init__(self, inner: SigfoxClient, clock: list[float]) -> None:
        self.inner = inner
        self.clock = clock
        self.refused = False

    def iter_device_pages(self, **kwargs: object) -> Iterator[list[Device]]:
        if not self.refused:
            self.refused = True
            raise SigfoxPacingRefused("list slot", retry_at=self.clock[0] + 4.0, method="GET",
                                      path="/devices/", limit="GET /devices")
        return self.inner.iter_device_pages(**kwargs)  # type: ignore[arg-type]

    def find_device(self, device_id: str) -> Device | None:
        return self.inner.find_device(device_id)


def test_a_refused_slot_is_waited_for_then_read(client: SigfoxClient) -> None:
    clock = [1000.0]
    slept: list[float] = []
    api = _RefusedOnce(client, clock)
    found = read_devices(api, ["1000", "1001"], clock=lambda: clock[0], sleep=slept.append)
    assert slept == [4.0]
    assert all(found[d] is not None for d in ("1000", "1001"))


def test_a_tick_never_waits_for_a_list_slot_its_steps_wait_for_it_together(
    client: SigfoxClient
) -> None:
    from commands.read_ahead import ReadAhead
    from storage.records import StepRecord

    class _NoSlot(_RefusedOnce):
        def iter_device_pages(self, **kwargs: object) -> Iterator[list[Device]]:
            raise SigfoxPacingRefused("list slot", retry_at=self.clock[0] + 4.0, method="GET",
                                      path="/devices/", limit="GET /devices")

    ahead = ReadAhead()
    now = time.time()
    api = _NoSlot(client, [now])
    due = [StepRecord(workflow_id=1, device_id=d, state="awaiting_job", attempts=0, next_run=0,
                      last_error="", data={}, version=1, updated_at=0) for d in ("1000", "1001")]
    deferred = ahead.load(api, 1, due)  # type: ignore[arg-type]
    # The steps wait for the slot together, rather than each spending a slot of its own.
    assert deferred is not None and deferred.device_ids == {"1000", "1001"}
    assert deferred.retry_at == now + 4.0
    assert ahead.take(1, "1000") is None
    assert ahead.load(client, 1, due) is None
    assert ahead.take(1, "1000") is not None and ahead.take(1, "1000") is None  # once


def test_reads_stopped_by_the_limit_keep_what_they_read(client: SigfoxClient) -> None:
    clock = [time.time()]

    class _SecondPageRefused(_RefusedOnce):
        def iter_device_pages(self, **kwargs: object) -> Iterator[list[Device]]:
            if kwargs.get("min_id") != "1000":
                raise SigfoxPacingRefused("list slot", retry_at=self.clock[0] + 4.0,
                                          method="GET", path="/devices/", limit="GET /devices")
            return self.inner.iter_device_pages(**kwargs)  # type: ignore[arg-type]

    wanted = [f"{0x1000 + n:X}" for n in range(150)]  # two groups: the second is refused
    with pytest.raises(ReadsCutShort) as cut:
        read_devices(_SecondPageRefused(client, clock), wanted, wait_up_to=0.0,
                     clock=lambda: clock[0])
    assert sorted(cut.value.found) == wanted[:100]
    assert cut.value.retry_at == clock[0] + 4.0
