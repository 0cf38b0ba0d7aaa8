"""The Sigfox client against the simulated backend, over real HTTP.

Time: where pacing or back-off would wait, the client's `sleep` advances the simulator's
virtual clock and its `clock` reads it, so a 10-second window or an hour passes instantly
and both sides agree on what time it is.

Every client here talks through `SpecCheckingTransport`: each request body the client sends
and each answer it gets is validated against openapi.json as it passes, in every test (the spec
is kept in tests/specs/; without it every test here fails).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.openapi import SpecCheckingTransport

from sigfox import errors
from sigfox.client import SigfoxClient
from sigfox.models import (
    BulkDeviceCreate,
    CallbackCreate,
    Device,
    DeviceCreate,
    JobKind,
    TokenState,
)
from sigfox.simulator import SimulatorServer

MakeSim = Callable[..., SimulatorServer]


def sim_client(sim: SimulatorServer, **options: Any) -> SigfoxClient:
    """A client whose waits move the simulator's virtual clock instead of real time."""
    defaults: dict[str, Any] = {
        "clock": sim.clock.now,
        "sleep": lambda seconds: sim.clock.advance(seconds),
        "transport": SpecCheckingTransport(),
    }
    defaults.update(options)
    return SigfoxClient(sim.base_url, sim.login, sim.password, **defaults)


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[SigfoxClient]:
    with sim_client(simulator) as c:
        yield c


def api_calls(sim: SimulatorServer, method: str | None = None) -> list[dict[str, Any]]:
    return [c for c in sim.call_log() if method is None or c["method"] == method]


def deletable(sim: SimulatorServer) -> str:
    """A device the backend will delete (Off Contract token)."""
    return sim.world.add_device(token="off_contract").id


# --- paging ------------------------------------------------------------------------------


def test_iterates_more_than_40000_devices_through_paging_next(make_simulator: MakeSim) -> None:
    sim = make_simulator(devices=40_250, rate_limits=False)
    # A plain transport: validating 40,000 device bodies against the spec would take ~9 s
    # and check nothing new (the list's answers are validated in every other test).
    with sim_client(sim, rate_limits=False, transport=httpx.HTTPTransport()) as c:
        devices = c.iter_devices()
        first = next(devices)
        assert len(api_calls(sim)) == 1  # lazy: one page fetched so far
        count, previous = 1, first.id
        for device in devices:
            assert device.id > previous  # every device once, in order
            previous, count = device.id, count + 1
    assert count == len(sim.world.devices) == 40_250
    calls = api_calls(sim)
    assert len(calls) == 403
    assert all("offset" not in call["query"] for call in calls)
    assert all("pageId=" in call["query"] for call in calls[1:])
    assert all(call["status"] == 200 for call in calls)


def test_find_device_reads_through_the_list_endpoint(
    simulator: SimulatorServer, client: SigfoxClient
) -> None:
    device_id = next(iter(simulator.world.devices))
    found = client.find_device(device_id.lower())
    assert isinstance(found, Device) and found.id == device_id
    assert client.find_device("ABCDEF0123") is None
    paths = {(c["method"], c["path"]) for c in api_calls(simulator)}
    assert paths == {("GET", "/v2/devices/")}


def test_filters_and_other_lists(simulator: SimulatorServer, client: SigfoxClient) -> None:
    device_type = next(iter(client.iter_device_types()))
    of_type = list(client.iter_devices(device_type_id=device_type.id, page_size=2))
    assert of_type and all(d.device_type and d.device_type.id == device_type.id for d in of_type)
    assert client.get_device_type(device_type.id).name == device_type.name
    contracts = list(client.iter_contract_infos())
    assert contracts and client.get_contract_info(contracts[0].id).id == contracts[0].id
    holders = [d for c in contracts for d in client.iter_contract_devices(c.id)]
    assert holders and all(isinstance(d, Device) for d in holders)
    assert list(client.iter_groups())


def test_every_read_answer_fits_the_spec(simulator: SimulatorServer) -> None:
    spec = SpecCheckingTransport()
    device_id = next(iter(simulator.world.devices))
    simulator.uplink(device_id, "CAFE")
    with sim_client(simulator, transport=spec) as c:
        assert c.get_device(device_id).id == device_id
        assert next(c.iter_device_messages(device_id)).data == "CAFE"
        dtype = next(c.iter_device_types()).id
        c.get_device_type(dtype)
        list(c.iter_device_type_callbacks(dtype))
        contract = next(c.iter_contract_infos()).id
        c.get_contract_info(contract)
        list(c.iter_contract_devices(contract))
        list(c.iter_groups())
        list(c.iter_devices(group_ids=[next(iter(simulator.world.groups))]))
    assert {t for _, t, s in spec.seen if s == 200} == {
        "/devices/{id}",
        "/devices/{id}/messages",
        "/device-types/",
        "/device-types/{id}",
        "/device-types/{id}/callbacks",
        "/contract-infos/",
        "/contract-infos/{id}",
        "/contract-infos/{id}/devices",
        "/groups/",
        "/devices/",
    }


# --- pacing and 429 ----------------------------------------------------------------------


def test_pacing_keeps_the_device_list_under_its_limit(simulator: SimulatorServer) -> None:
    device_id = next(iter(simulator.world.devices))
    start = simulator.clock.now()
    with sim_client(simulator) as c:
        for _ in range(120):
            assert c.find_device(device_id) is not None
    statuses = [c["status"] for c in api_calls(simulator)]
    assert statuses == [200] * 120  # never a 429
    assert simulator.clock.now() - start >= 20.0  # 120 calls need three 10 s windows


def test_messages_paced_per_device(simulator: SimulatorServer) -> None:
    device_id = next(iter(simulator.world.devices))
    for n in range(3):
        simulator.uplink(device_id, f"0{n}")
    with sim_client(simulator) as c:
        for _ in range(3):
            messages = list(c.iter_device_messages(device_id, page_size=1))
            assert len(messages) >= 3 and messages[0].data is not None
    assert all(c["status"] == 200 for c in api_calls(simulator, "GET"))


def test_429_is_retried_with_back_off(simulator: SimulatorServer) -> None:
    device_id = next(iter(simulator.world.devices))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        simulator.clock.advance(seconds)

    # Enough retries that full jitter cannot, in any realistic draw, give up before the
    # simulator's 10 s window has moved on.
    with sim_client(simulator, rate_limits=False, sleep=sleep, max_retries=12) as c:
        for _ in range(60):
            assert c.find_device(device_id) is not None
    statuses = [c["status"] for c in api_calls(simulator)]
    assert statuses.count(200) == 60 and 429 in statuses
    assert len(slept) == statuses.count(429)
    assert all(0 <= s <= 30.0 for s in slept)
    ceilings = [min(30.0, 0.5 * 2**n) for n in range(len(slept))]
    assert all(s <= c for s, c in zip(slept, ceilings, strict=True))


def test_hourly_write_refused_locally_until_the_hour_has_passed(
    simulator: SimulatorServer, client: SigfoxClient
) -> None:
    device_id = next(iter(simulator.world.devices))
    client.update_device(device_id, name="first")
    with pytest.raises(errors.SigfoxPacingRefused) as info:
        client.update_device(device_id, name="second")
    assert info.value.retry_at > simulator.clock.now() + 3500
    assert len(api_calls(simulator, "PUT")) == 1  # the refusal sent nothing
    simulator.clock.advance(3601)
    client.update_device(device_id, name="second")
    assert client.find_device(device_id).name == "second"  # type: ignore[union-attr]


def test_429_on_a_write_is_retried_but_bounded(simulator: SimulatorServer) -> None:
    device_id = next(iter(simulator.world.devices))
    with sim_client(simulator, rate_limits=False, max_retries=2) as c:
        c.update_device(device_id, name="first")
        with pytest.raises(errors.SigfoxRateLimited) as info:
            c.update_device(device_id, name="second")
    assert info.value.attempts == 3
    assert [c["status"] for c in api_calls(simulator, "PUT")] == [204, 429, 429, 429]


# --- faults: no retry of writes, typed errors ---------------------------------------------


def test_server_error_on_create_is_not_retried_and_outcome_unknown(
    simulator: SimulatorServer, client: SigfoxClient
) -> None:
    simulator.fault("/v2/devices/", method="POST", status=500)
    dtype = next(iter(simulator.world.device_types))
    with pytest.raises(errors.SigfoxServerError) as info:
        client.create_device(
            DeviceCreate(id="FACE01", name="n", device_type_id=dtype, pac="0123456789ABCDEF")
        )
    assert info.value.outcome_unknown and info.value.status == 500
    assert "0123456789ABCDEF" not in str(info.value)
    assert len(api_calls(simulator, "POST")) == 1


def test_dropped_delete_is_not_retried_and_outcome_unknown(
    simulator: SimulatorServer, client: SigfoxClient
) -> None:
    device_id = deletable(simulator)
    simulator.fault(f"/v2/devices/{device_id}", method="DELETE", drop=True)
    with pytest.raises(errors.SigfoxConnectionError) as info:
        client.delete_device(device_id)
    assert info.value.outcome_unknown
    assert [c.get("dropped") for c in api_calls(simulator, "DELETE")] == [True]


def test_timed_out_put_is_not_retried_and_caller_can_reconcile(
    simulator: SimulatorServer,
) -> None:
    device_id = next(iter(simulator.world.devices))
    simulator.fault(f"/v2/devices/{device_id}", method="PUT", delay=1.0)
    attempts: list[tuple[str, str, int | None]] = []
    with sim_client(simulator, timeout=0.3, on_call=lambda *a: attempts.append(a)) as c:
        with pytest.raises(errors.SigfoxConnectionError) as info:
            c.update_device(device_id, name="renamed")
        assert info.value.outcome_unknown
        assert "read the backend" in str(info.value)
        assert attempts == [("PUT", "/devices/{id}", None)]
        # Reconciling means reading, which works whatever became of the PUT.
        assert c.find_device(device_id) is not None


def test_reads_are_retried_on_5xx_and_dropped_connections(
    simulator: SimulatorServer, client: SigfoxClient
) -> None:
    simulator.fault("/v2/devices/", method="GET", status=503, count=2)
    simulator.fault("/v2/device-types/", method="GET", drop=True)
    assert len(list(client.iter_devices())) == 20
    assert list(client.iter_device_types())
    statuses = [(c["path"], c["status"]) for c in api_calls(simulator, "GET")]
    assert statuses[:3] == [("/v2/devices/", 503)] * 2 + [("/v2/devices/", 200)]
    assert statuses[-2:] == [("/v2/device-types/", 0), ("/v2/device-types/", 200)]


def test_bad_credentials(simulator: SimulatorServer) -> None:
    c = SigfoxClient(simulator.base_url, simulator.login, "wrong-password")
    with c, pytest.raises(errors.SigfoxUnauthorized) as info:
        c.find_device("1A2B")
    assert "SIGFOX_API_PASSWORD" in str(info.value) and "wrong-password" not in str(info.value)


def test_backend_refusals_surface_as_typed_errors(
    simulator: SimulatorServer, client: SigfoxClient
) -> None:
    world = simulator.world
    existing = next(iter(world.devices))
    dtype = next(iter(world.device_types))
    with pytest.raises(errors.SigfoxConflict):
        client.create_device(
            DeviceCreate(id=existing, name="dup", device_type_id=dtype, pac=world.pac_of(existing))
        )
    with pytest.raises(errors.SigfoxBadRequest) as bad:
        client.create_device(
            DeviceCreate(id="FACE02", name="n", device_type_id="nope", pac="0011223344556677")
        )
    assert [e.field for e in bad.value.field_errors] == ["deviceTypeId"]
    with pytest.raises(errors.SigfoxNotFound):
        client.get_device_type("000000000000000000000000")
    valid = world.add_device(token="ok").id
    with pytest.raises(errors.SigfoxForbidden):
        client.delete_device(valid)


def test_fault_statuses_map_to_exceptions(simulator: SimulatorServer, client: SigfoxClient) -> None:
    cases = [
        (400, errors.SigfoxBadRequest),
        (401, errors.SigfoxUnauthorized),
        (403, errors.SigfoxForbidden),
        (404, errors.SigfoxNotFound),
        (409, errors.SigfoxConflict),
    ]
    for status, error in cases:
        simulator.fault("/v2/groups/", method="GET", status=status)
        with pytest.raises(error) as info:
            list(client.iter_groups())
        assert type(info.value) is error and info.value.status == status
    assert [c["status"] for c in api_calls(simulator)] == [400, 401, 403, 404, 409]  # no retry


RETRIES = 2
# (fault, exception, write outcome unknown): each kind the simulator can inject, as the
# client must surface it once retries (reads, and 429 for every method) are used up.
FAULT_KINDS = [
    pytest.param({"status": 500}, errors.SigfoxServerError, True, id="status500"),
    pytest.param({"status": 503}, errors.SigfoxServerError, True, id="status503"),
    pytest.param({"status": 429}, errors.SigfoxRateLimited, False, id="status429"),
    pytest.param({"delay": 0.3}, errors.SigfoxConnectionError, True, id="delay"),
    pytest.param({"drop": True}, errors.SigfoxConnectionError, True, id="drop"),
]


@pytest.mark.parametrize(("fault", "error", "write_unknown"), FAULT_KINDS)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_each_injected_fault_surfaces_as_its_exception(
    simulator: SimulatorServer,
    method: str,
    fault: dict[str, Any],
    error: type[Exception],
    write_unknown: bool,
) -> None:
    device_id = next(iter(simulator.world.devices))
    path = "/v2/devices/" if method == "GET" else f"/v2/devices/{device_id}"
    simulator.fault(path, method=method, count=10, **fault)
    sent: list[Any] = []
    options = {"rate_limits": False, "max_retries": RETRIES, "timeout": 0.1}
    c = sim_client(simulator, on_call=lambda *call: sent.append(call), **options)
    with c, pytest.raises(error) as info:
        if method == "GET":
            c.find_device(device_id)
        else:
            c.update_device(device_id, name="renamed")
    # Reads retry everything; writes retry only a 429, which the service did not process.
    attempts = RETRIES + 1 if method == "GET" or fault.get("status") == 429 else 1
    assert len(sent) == attempts
    assert getattr(info.value, "outcome_unknown", False) is (method == "PUT" and write_unknown)
    assert info.value.method == method and info.value.path == path  # type: ignore[attr-defined]
    # The simulator saw exactly those calls (a delayed one is logged once its delay is over).
    deadline = time.monotonic() + 30  # a hang guard, not a measure: a loaded machine is slow
    while len(api_calls(simulator, method)) < attempts:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(api_calls(simulator, method)) == attempts


# --- the renewal, end to end through the client -------------------------------------------


def test_delete_then_recreate_waits_for_release(make_simulator: MakeSim) -> None:
    sim = make_simulator(devices=5, delete_hold=900)
    device_id = deletable(sim)
    pac = sim.world.pac_of(device_id)
    before = sim_client(sim).find_device(device_id)
    assert before is not None and before.can_be_deleted
    with sim_client(sim) as c:
        c.delete_device(device_id)
        assert c.find_device(device_id) is None
        body = DeviceCreate(
            id=device_id,
            name=before.name or device_id,
            device_type_id=before.device_type.id,  # type: ignore[union-attr]
            pac=pac or "",
        )
        with pytest.raises(errors.SigfoxConflict, match="released"):
            c.create_device(body)
        sim.clock.advance(901)
        assert c.create_device(body) == device_id
        recreated = c.find_device(device_id)
        assert recreated is not None and recreated.token is None
        sim.uplink(device_id, "CAFE")
        after = c.find_device(device_id)
        assert after is not None and after.token_state is TokenState.OK


# --- every request body fits the spec ------------------------------------------------------


def wait_for_job(sim: SimulatorServer, c: SigfoxClient, kind: JobKind, job_id: str) -> None:
    for _ in range(50):
        job = c.get_job(kind, job_id)
        if job.done:
            assert job.total is None or job.total >= 1
            return
        sim.clock.advance(1)
    raise AssertionError(f"{kind} job {job_id} never finished")


def test_every_request_body_validates_against_the_spec(simulator: SimulatorServer) -> None:
    world = simulator.world
    recorder = SpecCheckingTransport()
    types = list(world.device_types)
    device_id = next(iter(world.devices))
    new_pac = "A1B2C3D4E5F60718"
    with sim_client(simulator, transport=recorder, rate_limits=False) as c:
        dtype = types[0]
        assert (
            c.create_device(
                DeviceCreate(
                    id="FACE10",
                    name="new",
                    device_type_id=dtype,
                    pac=new_pac,
                    lat=48.85,
                    lng=2.29,
                    prototype=False,
                    automatic_renewal=True,
                    activable=True,
                    product_certificate="P_0003_71CF_01",
                )
            )
            == "FACE10"
        )
        c.update_device(
            "FACE10",
            name="renamed",
            lat=1.0,
            lng=2.0,
            automatic_renewal=False,
            activable=True,
            prototype=False,
        )
        c.unsubscribe_device(device_id, int(world.now_ms()) + 86_400_000)
        callback_id = c.create_callback(
            dtype,
            CallbackCreate(
                channel="URL",
                callback_type=0,
                callback_subtype=2,
                enabled=True,
                url="https://bot.example/sigfox/uplink?device={device}",
                http_method="POST",
                body_template='{"device":"{device}"}',
                content_type="application/json",
                headers={"X-Token": "t"},
            ),
        )
        c.enable_callback(dtype, callback_id, False)
        assert any(cb.id == callback_id for cb in c.iter_device_type_callbacks(dtype))
        jobs = [
            (
                JobKind.CREATE,
                c.bulk_create_devices(
                    dtype,
                    [
                        BulkDeviceCreate(id="FACE20", pac="0102030405060708", name="bulk 1"),
                        DeviceCreate(
                            id="FACE21",
                            name="bulk 2",
                            device_type_id=dtype,
                            pac="0807060504030201",
                            lat=1.0,
                            lng=1.0,
                        ),
                    ],
                    prefix="bulk",
                ),
            ),
            (JobKind.TRANSFER, c.bulk_transfer(types[1], ["FACE10"], keep_history=True)),
            (JobKind.RESTART, c.bulk_restart([device_id])),
            (JobKind.UNSUBSCRIBE, c.bulk_unsubscribe([device_id], world.now_ms() + 1000)),
        ]
        for kind, job_id in jobs:
            wait_for_job(simulator, c, kind, job_id)
        c.delete_device(deletable(simulator))
    # The transport validated each body as it went; make sure every kind of write was sent.
    writes = {(m, t) for m, t, _ in recorder.seen if m != "GET"}
    assert writes == {
        ("POST", "/devices/"),
        ("PUT", "/devices/{id}"),
        ("PUT", "/devices/{id}/unsubscribe"),
        ("POST", "/device-types/{id}/callbacks"),
        ("PUT", "/device-types/{id}/callbacks/{callbackId}/enable"),
        ("POST", "/devices/bulk"),
        ("POST", "/devices/bulk/transfer"),
        ("POST", "/devices/bulk/restart"),
        ("POST", "/devices/bulk/unsubscribe"),
        ("DELETE", "/devices/{id}"),
    }
    assert sum(bool(r.content) for r in recorder.requests) == 8  # enable, delete: no body
