"""Paging at depth, published rate limits, injected faults, the call log and the clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from sigfox.simulator import SimulatorServer

DEVICE_ID = "A1B2C3"


@pytest.fixture
def api(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    with simulator.client() as client:
        yield client


# ---------------------------------------------------------------------- paging


def test_paging_walks_past_40000_through_next(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=40_250, rate_limits=False)
    seen: list[str] = []
    with sim.client() as api:
        url: str | None = "/devices/?limit=100"
        while url:
            page = api.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            seen.extend(d["id"] for d in body["data"])
            url = body["paging"].get("next")
        assert len(seen) == 40_250 and seen == sorted(set(seen))
        assert api.get("/devices/?offset=40001").status_code == 400
        refused = api.get("/devices/?offset=40001").json()
        assert refused["errors"][0]["field"] == "offset"
        assert api.get("/devices/?offset=40000&limit=1").status_code == 200


def test_filters_and_cursor(simulator: SimulatorServer, api: httpx.Client) -> None:
    world = simulator.world
    dtype = next(iter(world.device_types))
    wanted = sorted(d.id for d in world.devices.values() if d.device_type_id == dtype)
    got: list[str] = []
    url: str | None = f"/devices/?deviceTypeId={dtype}&limit=1"
    while url:
        body = api.get(url).json()
        got.extend(d["id"] for d in body["data"])
        url = body["paging"].get("next")
    assert got == wanted
    group = world.devices[wanted[0]].group_id
    by_group = api.get("/devices/", params={"groupIds": f"{group},nothing"}).json()["data"]
    assert {d["id"] for d in by_group} == {d.id for d in world.devices.values()
                                           if d.group_id == group}
    one = api.get("/devices/", params={"id": wanted[0].lower()}).json()
    assert [d["id"] for d in one["data"]] == [wanted[0]] and one["paging"] == {}
    assert api.get("/devices/?pageId=garbage").status_code == 400
    assert api.get("/devices/?limit=101").status_code == 400


# ---------------------------------------------------------------------- rate limits


def test_device_list_limited_to_50_per_10_seconds(
    simulator: SimulatorServer, api: httpx.Client
) -> None:
    statuses = [api.get("/devices/?limit=1").status_code for _ in range(51)]
    assert statuses[:50] == [200] * 50
    refused = api.get("/devices/?limit=1")
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    simulator.advance(10)
    assert api.get("/devices/?limit=1").status_code == 200


def test_messages_limited_per_device_per_second(
    simulator: SimulatorServer, api: httpx.Client
) -> None:
    first, second = sorted(simulator.world.devices)[:2]
    assert api.get(f"/devices/{first}/messages").status_code == 200
    assert api.get(f"/devices/{first}/messages").status_code == 429
    assert api.get(f"/devices/{second}/messages").status_code == 200
    simulator.advance(1)
    assert api.get(f"/devices/{first}/messages").status_code == 200


def test_put_and_delete_once_per_hour_per_device(
    simulator: SimulatorServer, api: httpx.Client
) -> None:
    simulator.world.add_device(DEVICE_ID)
    assert api.put(f"/devices/{DEVICE_ID}", json={"name": "a"}).status_code == 204
    assert api.put(f"/devices/{DEVICE_ID}", json={"name": "b"}).status_code == 429
    assert api.delete(f"/devices/{DEVICE_ID}").status_code == 204
    assert api.delete(f"/devices/{DEVICE_ID}").status_code == 429  # limited before 404
    simulator.advance(3600)
    assert api.delete(f"/devices/{DEVICE_ID}").status_code == 404


def test_bulk_posts_limited_to_5_per_10_minutes(
    simulator: SimulatorServer, api: httpx.Client
) -> None:
    body = {"data": []}
    statuses = [api.post("/devices/bulk/restart", json=body).status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]
    simulator.advance(600)
    assert api.post("/devices/bulk/restart", json=body).status_code == 201


def test_rate_limits_can_be_switched_off(make_simulator: Callable[..., SimulatorServer]) -> None:
    sim = make_simulator(devices=1, rate_limits=False)
    with sim.client() as api:
        assert {api.get("/devices/?limit=1").status_code for _ in range(60)} == {200}


# ---------------------------------------------------------------------- faults


def test_fault_status_for_next_n_calls(simulator: SimulatorServer, api: httpx.Client) -> None:
    simulator.fault("/v2/devices/", method="GET", status=500, count=2)
    assert api.post("/devices/", json={}).status_code == 400  # other method: untouched
    assert [api.get("/devices/").status_code for _ in range(3)] == [500, 500, 200]
    simulator.fault("/v2/device-types/*", status=429)
    assert api.get("/groups/").status_code == 200
    throttled = api.get("/device-types/")
    assert throttled.status_code == 429 and "retry-after" not in throttled.headers
    assert api.get("/device-types/").status_code == 200


def test_fault_delay(simulator: SimulatorServer, api: httpx.Client) -> None:
    simulator.fault("/v2/groups/", delay=0.3)
    started = time.monotonic()
    assert api.get("/groups/").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        simulator.fault("/v2/groups/", delay=0.5)
        api.get("/groups/", timeout=0.1)


def test_fault_drop_aborts_the_connection(simulator: SimulatorServer, api: httpx.Client) -> None:
    simulator.fault("/v2/devices/*", method="GET", drop=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("/devices/")
    assert api.get("/devices/").status_code == 200
    dropped = [c for c in simulator.call_log() if c.get("dropped")]
    assert len(dropped) == 1 and dropped[0]["status"] == 0


def test_fault_request_is_validated(simulator: SimulatorServer) -> None:
    bad = httpx.post(f"{simulator.root_url}/_sim/faults",
                     json={"path": "/v2/devices/", "status": 500, "drop": True})
    assert bad.status_code == 400


# ---------------------------------------------------------------------- call log and clock


def test_call_log(simulator: SimulatorServer, api: httpx.Client) -> None:
    dtype = next(iter(simulator.world.device_types))
    api.get("/devices/", params={"limit": 3})
    api.post("/devices/", json={"id": "ABC", "name": "n", "deviceTypeId": dtype,
                                "pac": "0011223344556677"})
    api.delete("/devices/ABC")
    calls = simulator.call_log()
    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("GET", "/v2/devices/", 200), ("POST", "/v2/devices/", 201),
        ("DELETE", "/v2/devices/ABC", 204)]
    assert calls[0]["query"] == "limit=3" and calls[1]["device"] == "ABC"
    assert all(isinstance(c["time"], float) for c in calls)
    assert httpx.delete(f"{simulator.root_url}/_sim/calls").status_code == 204
    assert simulator.call_log() == []


def test_clock_advance(simulator: SimulatorServer) -> None:
    before = simulator.clock.now()
    answer = httpx.post(f"{simulator.root_url}/_sim/clock/advance", json={"seconds": 86_400})
    assert answer.status_code == 200
    assert answer.json()["time"] >= before + 86_400
    assert answer.json()["timeMs"] == int(answer.json()["time"] * 1000)
    refused = httpx.post(f"{simulator.root_url}/_sim/clock/advance", json={"seconds": -1})
    assert refused.status_code == 400


def test_uplink_control_unknown_device(simulator: SimulatorServer) -> None:
    answer = httpx.post(f"{simulator.root_url}/_sim/devices/FFFFFFF9/uplink", json={})
    assert answer.status_code == 404
    bad = httpx.post(f"{simulator.root_url}/_sim/devices/{next(iter(simulator.world.devices))}"
                     "/uplink", json={"data": "xyz"})
    assert bad.status_code == 400
