"""Sigfox's device and token rules as the simulated backend plays them
(tests/specs/sigfox-api-v2/SOURCE.md, docs/sigfox-semantics.md), driven over HTTP with the
virtual clock."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sigfox.simulator import SimulatorServer
from sigfox.simulator.clock import add_months
from sigfox.simulator.entities import Contract, DeviceType

DAY = 86_400
FACTORY_PAC = "00112233445566AA"


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    # Jobs finish on a clock advance; a long real-time delay keeps "pending" observable.
    return make_simulator(devices=0, rate_limits=False, job_delay=5)


@pytest.fixture
def api(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with sim.client() as client:
        yield client


def setup_type(
    sim: SimulatorServer, order: str = "O1", max_tokens: int = 0, months: int = 12,
    **contract_opts: Any,
) -> tuple[Contract, DeviceType]:
    contract = sim.world.add_contract(f"contract {order} {len(sim.world.contracts)}",
                                      order_id=order, order_name=f"Order {order}",
                                      max_tokens=max_tokens, token_duration=months,
                                      **contract_opts)
    return contract, sim.world.add_device_type(f"type {contract.name}", contract.id)


def create(api: httpx.Client, ident: str, dtype: DeviceType, pac: str = FACTORY_PAC,
           **extra: Any) -> httpx.Response:
    body = {"id": ident, "name": f"dev {ident}", "deviceTypeId": dtype.id, "pac": pac, **extra}
    return api.post("/devices/", json=body)


def device(api: httpx.Client, ident: str) -> dict[str, Any]:
    response = api.get(f"/devices/{ident}")
    assert response.status_code == 200, response.text
    return response.json()


def contract_json(api: httpx.Client, contract: Contract) -> dict[str, Any]:
    return api.get(f"/contract-infos/{contract.id}").json()


# ---------------------------------------------------------------------- tokens


def test_first_uplink_takes_a_token(sim: SimulatorServer, api: httpx.Client) -> None:
    contract, dtype = setup_type(sim, months=12)
    assert create(api, "1A2B", dtype).status_code == 201
    assert "token" not in device(api, "1A2B")
    assert contract_json(api, contract)["tokensInUse"] == 0
    sent_at = sim.world.now_ms()
    sim.uplink("1A2B", "0102")
    token = device(api, "1A2B")["token"]
    assert token["state"] == 0 and token["detailMessage"] == "Valid"
    assert abs(token["end"] - add_months(sent_at, 12)) < 5_000
    assert contract_json(api, contract)["tokensInUse"] == 1


def test_full_or_ended_contract_gives_off_contract(sim: SimulatorServer, api: httpx.Client) -> None:
    _, full = setup_type(sim, max_tokens=1)
    sim.world.add_device("F1", device_type_id=full.id, token="ok")
    sim.world.add_device("F2", device_type_id=full.id)
    _, ended = setup_type(sim, end_ms=sim.world.now_ms() - 1000)
    sim.world.add_device("E1", device_type_id=ended.id)
    for ident in ("F2", "E1"):
        sim.uplink(ident)
        body = device(api, ident)
        assert body["token"]["state"] == 1 and body["state"] == 2


def test_token_end_invalid_then_renewed(sim: SimulatorServer, api: httpx.Client) -> None:
    contract, dtype = setup_type(sim, months=1)
    sim.world.add_device("AB01", device_type_id=dtype.id)
    sim.uplink("AB01")
    first_end = device(api, "AB01")["token"]["end"]
    sim.advance(40 * DAY)
    assert device(api, "AB01")["token"]["state"] == 3  # Invalid until the next message
    sim.uplink("AB01")
    token = device(api, "AB01")["token"]
    assert token["state"] == 0 and token["end"] > first_end + 30 * DAY * 1000
    counts = contract_json(api, contract)
    assert counts["tokensInUse"] == 1 and counts["tokensUsed"] == 1


@pytest.mark.parametrize("where", ["device", "device_type", "contract", "no_tokens_left"])
def test_token_end_without_renewal_goes_off_contract(
    sim: SimulatorServer, api: httpx.Client, where: str
) -> None:
    contract, dtype = setup_type(sim, months=1, max_tokens=1)
    sim.world.add_device("AB02", device_type_id=dtype.id,
                         automatic_renewal=where != "device")
    sim.uplink("AB02")
    if where == "device_type":
        dtype.automatic_renewal = False
    elif where == "contract":
        contract.automatic_renewal = False
    elif where == "no_tokens_left":
        sim.world.add_device("AB03", device_type_id=dtype.id, token="ok")
        contract.max_tokens = 1
    sim.advance(40 * DAY)
    sim.uplink("AB02")
    body = device(api, "AB02")
    assert body["token"]["state"] == 1 and body["state"] == 2


def test_unsubscribed_device_is_not_renewed(sim: SimulatorServer, api: httpx.Client) -> None:
    _, dtype = setup_type(sim, months=1)
    sim.world.add_device("AB04", device_type_id=dtype.id)
    sim.uplink("AB04")
    when = sim.world.now_ms() + 10 * DAY * 1000
    assert api.put("/devices/AB04/unsubscribe",
                   json={"unsubscriptionTime": when}).status_code == 204
    assert device(api, "AB04")["unsubscriptionTime"] == when
    sim.advance(40 * DAY)
    sim.uplink("AB04")
    assert device(api, "AB04")["token"]["state"] == 1


# ---------------------------------------------------------------------- delete, hold, PAC


@pytest.mark.parametrize("token", ["ok", "invalid"])
def test_delete_refused_with_a_token(sim: SimulatorServer, api: httpx.Client, token: str) -> None:
    sim.world.add_device("DE1", token=token)
    response = api.delete("/devices/DE1")
    assert response.status_code == 403
    assert set(response.json()) == {"message"} and "Off Contract" in response.json()["message"]
    assert device(api, "DE1")["id"] == "DE1"


def test_delete_hold_then_recreate(sim: SimulatorServer, api: httpx.Client) -> None:
    _, dtype = setup_type(sim)
    sim.world.add_device("C0FFEE", device_type_id=dtype.id, token="off_contract")
    pac_before = device(api, "C0FFEE")["pac"]
    assert api.delete("/devices/C0FFEE").status_code == 204
    assert api.get("/devices/C0FFEE").status_code == 404
    assert api.get("/devices/", params={"id": "C0FFEE"}).json()["data"] == []
    held = create(api, "C0FFEE", dtype, pac=pac_before)
    assert held.status_code == 409 and set(held.json()) == {"message"}
    sim.advance(1799)
    assert create(api, "C0FFEE", dtype, pac=pac_before).status_code == 409
    sim.advance(2)
    assert create(api, "C0FFEE", dtype, pac=pac_before).status_code == 201
    fresh = device(api, "C0FFEE")
    assert "token" not in fresh
    assert fresh["pac"] != pac_before and sim.world.pac_of("C0FFEE") == fresh["pac"]


def test_hold_length_is_configurable(make_simulator: Callable[..., SimulatorServer]) -> None:
    sim = make_simulator(devices=0, delete_hold=5, rate_limits=False)
    _, dtype = setup_type(sim)
    sim.world.add_device("AA55", device_type_id=dtype.id)
    with sim.client() as api:
        pac = sim.world.pac_of("AA55")
        assert api.delete("/devices/AA55").status_code == 204
        assert create(api, "AA55", dtype, pac=pac).status_code == 409
        sim.advance(6)
        assert create(api, "AA55", dtype, pac=pac).status_code == 201


def test_registration_changes_the_pac_and_needs_the_current_one(
    sim: SimulatorServer, api: httpx.Client
) -> None:
    _, dtype = setup_type(sim)
    assert create(api, "BEEF01", dtype, pac=FACTORY_PAC).status_code == 201
    current = device(api, "BEEF01")["pac"]
    assert current != FACTORY_PAC and len(current) == 16 and current == current.upper()
    sim.world.device("BEEF01").token = None
    assert api.delete("/devices/BEEF01").status_code == 204
    sim.advance(1801)
    wrong = create(api, "BEEF01", dtype, pac=FACTORY_PAC)
    assert wrong.status_code == 400
    body = wrong.json()
    assert body["message"] and body["errors"][0]["field"] == "pac"
    assert set(body["errors"][0]) == {"type", "field", "message"}
    assert create(api, "BEEF01", dtype, pac=current).status_code == 201


# ------------------------------------- transfers (docs/sigfox-semantics.md, "Transfers")


def transfer(sim: SimulatorServer, api: httpx.Client, ident: str, target: DeviceType) -> dict:
    job = api.post("/devices/bulk/transfer",
                   json={"deviceTypeId": target.id, "data": [{"id": ident}]}).json()
    assert api.get(f"/devices/bulk/{job['jobId']}").json()["jobDone"] is False
    sim.advance(1)
    status = api.get(f"/devices/bulk/{job['jobId']}").json()
    assert status["jobDone"] is True and status["status"]["success"] == 1, status
    return device(api, ident)


def test_transfer_without_token_has_no_impact(sim: SimulatorServer, api: httpx.Client) -> None:
    _, source = setup_type(sim, "A")
    _, target = setup_type(sim, "B")
    sim.world.add_device("T0", device_type_id=source.id)
    moved = transfer(sim, api, "T0", target)
    assert "token" not in moved and moved["deviceType"]["id"] == target.id


def test_transfer_same_contract_is_seamless(sim: SimulatorServer, api: httpx.Client) -> None:
    contract, source = setup_type(sim, "A")
    target = sim.world.add_device_type("sibling", contract.id)
    sim.world.add_device("T1", device_type_id=source.id, token="ok")
    before = device(api, "T1")["token"]
    moved = transfer(sim, api, "T1", target)
    assert moved["token"] == before and moved["contract"]["id"] == contract.id
    assert contract_json(api, contract)["tokensInUse"] == 1


def test_transfer_same_order_moves_the_token(sim: SimulatorServer, api: httpx.Client) -> None:
    old, source = setup_type(sim, "A")
    new, target = setup_type(sim, "A")
    sim.world.add_device("T2", device_type_id=source.id, token="ok")
    before = device(api, "T2")["token"]
    moved = transfer(sim, api, "T2", target)
    assert moved["token"] == before and moved["contract"]["id"] == new.id
    assert contract_json(api, old)["tokensInUse"] == 0
    assert contract_json(api, new)["tokensInUse"] == 1


def test_transfer_other_order_loses_the_token(sim: SimulatorServer, api: httpx.Client) -> None:
    old, source = setup_type(sim, "A")
    new, target = setup_type(sim, "B")
    sim.world.add_device("T3", device_type_id=source.id, token="ok")
    moved = transfer(sim, api, "T3", target)
    assert "token" not in moved
    assert contract_json(api, old)["tokensInUse"] == 0
    assert contract_json(api, new)["tokensInUse"] == 0
    sim.uplink("T3")  # the next message takes (and invoices) a new token on the new contract
    assert device(api, "T3")["token"]["state"] == 0
    assert contract_json(api, new)["tokensInUse"] == 1


def test_bulk_restart_revives_off_contract(sim: SimulatorServer, api: httpx.Client) -> None:
    _, dtype = setup_type(sim, max_tokens=5)
    sim.world.add_device("R1", device_type_id=dtype.id, token="off_contract")
    job = api.post("/devices/bulk/restart", json={"data": ["R1", "FFFF99"]})
    assert job.status_code == 201
    sim.advance(1)
    status = api.get(f"/devices/bulk/restart/{job.json()['jobId']}").json()
    assert status["jobDone"] and status["status"]["nbSuccess"] == 1
    assert status["status"]["nbErrors"] == 1 and status["status"]["errors"][0]["entity"] == "FFFF99"
    revived = device(api, "R1")
    assert revived["token"]["state"] == 0 and revived["state"] == 0


def test_bulk_unsubscribe_and_job_delay_in_real_time(
    make_simulator: Callable[..., SimulatorServer],
) -> None:
    sim = make_simulator(devices=0, rate_limits=False, job_delay=0.2)
    api = sim.client()
    sim.world.add_device("U1", token="ok")
    when = sim.world.now_ms() + 1000
    job = api.post("/devices/bulk/unsubscribe",
                   json={"data": [{"id": "U1", "unsubscriptionTime": when}]}).json()
    assert api.get(f"/devices/bulk/unsubscribe/{job['jobId']}").json()["jobDone"] is False
    deadline = time.monotonic() + 30  # a hang guard, not a measure: a loaded machine is slow
    while not api.get(f"/devices/bulk/unsubscribe/{job['jobId']}").json()["jobDone"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert device(api, "U1")["unsubscriptionTime"] == when
    api.close()


def test_bulk_create_applies_pac_rules(sim: SimulatorServer, api: httpx.Client) -> None:
    _, dtype = setup_type(sim)
    sim.world.add_device("BC02", device_type_id=dtype.id)
    job = api.post("/devices/bulk", json={"deviceTypeId": dtype.id, "prefix": "n-", "data": [
        {"id": "BC01", "pac": FACTORY_PAC}, {"id": "BC02", "pac": FACTORY_PAC}]}).json()
    assert job["total"] == 2
    sim.advance(1)
    status = api.get(f"/devices/bulk/{job['jobId']}").json()
    assert status["status"]["success"] == 1
    assert [e["entity"] for e in status["status"]["errors"]] == ["BC02"]
    assert device(api, "BC01")["name"] == "n-BC01"


@pytest.mark.parametrize("hold_status", [409, 400])
def test_bulk_create_names_each_devices_reason_like_the_single_create(
    sim: SimulatorServer, api: httpx.Client, hold_status: int
) -> None:
    # A held id (just deleted) and a wrong PAC fail in the job, each with what POST /devices/
    # would have said of it (jobError.message), not a generic "Bad request".
    _, dtype = setup_type(sim)
    sim.world.hold_status = hold_status
    held = sim.world.add_device("BD01", device_type_id=dtype.id, token="off_contract")
    sim.world.add_device("BD02", device_type_id=dtype.id, token="off_contract")
    pac = sim.world.pac_of(held.id)
    assert api.delete("/devices/BD01").status_code == 204
    assert api.delete("/devices/BD02").status_code == 204
    job = api.post("/devices/bulk", json={"deviceTypeId": dtype.id, "data": [
        {"id": "BD01", "pac": pac}, {"id": "BD02", "pac": "0000000000000000"}]}).json()
    sim.advance(1)
    errors = api.get(f"/devices/bulk/{job['jobId']}").json()["status"]["errors"]
    reasons = {e["entity"]: e["message"] for e in errors}
    assert "being deleted" in reasons["BD01"]
    assert reasons["BD02"] == "The PAC is not valid for device BD02"
    assert {e["type"] for e in errors} == {0}


# ---------------------------------------------------------------------- callbacks


class Receiver:
    """A tiny HTTP server that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": dict(self.headers),
                                       "body": self.rfile.read(length).decode()})
                self.send_response(200)
                self.end_headers()
                outer.arrived.set()

            do_GET = do_POST = do_PUT = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_uplink_calls_enabled_data_callbacks(
    sim: SimulatorServer, api: httpx.Client, receiver: Receiver
) -> None:
    _, dtype = setup_type(sim)
    sim.world.add_device("CB01", device_type_id=dtype.id)
    callback = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                "url": receiver.url + "/hook?id={device}&seq={seqNumber}", "httpMethod": "POST",
                "headers": {"X-Secret": "s3cret"}, "contentType": "application/json",
                "bodyTemplate": '{"device":"{device}","data":"{data}","time":{time}}'}
    disabled = {**callback, "url": receiver.url + "/disabled", "enabled": False}
    service = {**callback, "url": receiver.url + "/service", "callbackType": 1,
               "callbackSubtype": 0}
    for body in (callback, disabled, service):
        assert api.post(f"/device-types/{dtype.id}/callbacks", json=body).status_code == 201
    answer = sim.uplink("CB01", "DEADBEEF")
    assert answer["callbacks"] == 1
    assert receiver.arrived.wait(5)
    time.sleep(0.05)
    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got["method"] == "POST" and got["path"] == "/hook?id=CB01&seq=0"
    assert got["headers"]["X-Secret"] == "s3cret"
    assert got["headers"]["Content-Type"] == "application/json"
    body = json.loads(got["body"])
    assert body["device"] == "CB01" and body["data"] == "DEADBEEF"
    assert body["time"] == answer["message"]["time"] // 1000


def test_off_contract_messages_are_not_forwarded(
    sim: SimulatorServer, api: httpx.Client, receiver: Receiver
) -> None:
    _, dtype = setup_type(sim)
    sim.world.add_device("CB02", device_type_id=dtype.id, token="off_contract")
    api.post(f"/device-types/{dtype.id}/callbacks", json={
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
        "url": receiver.url + "/x", "httpMethod": "GET"})
    answer = sim.uplink("CB02")
    assert answer["delivered"] is False and answer["callbacks"] == 0
    assert device(api, "CB02")["sequenceNumber"] == 0


def test_contract_devices_lists_token_holders_only(sim: SimulatorServer, api: httpx.Client) -> None:
    contract, dtype = setup_type(sim, "A")
    _, elsewhere = setup_type(sim, "B")
    for ident, token in (("CD1", "none"), ("CD2", "ok"), ("CD3", "invalid"),
                         ("CD4", "off_contract")):
        sim.world.add_device(ident, device_type_id=dtype.id, token=token)
    sim.world.add_device("CD5", device_type_id=elsewhere.id, token="ok")

    def listed() -> list[str]:
        body = api.get(f"/contract-infos/{contract.id}/devices").json()
        return [d["id"] for d in body["data"]]

    # CD1 points at the contract through its device type but has taken no token.
    assert listed() == ["CD2", "CD3", "CD4"]
    sim.uplink("CD1")  # the first message takes a token on the contract
    assert listed() == ["CD1", "CD2", "CD3", "CD4"]
    transfer(sim, api, "CD2", elsewhere)  # other order: the token is lost
    assert listed() == ["CD1", "CD3", "CD4"]
