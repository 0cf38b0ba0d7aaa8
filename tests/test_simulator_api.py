"""The simulated backend speaks API v2 as openapi.json describes it: every implemented endpoint's
answers validate against the spec's definitions, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.openapi import (
    check,
    definition_schema,
    require_spec,
    validate_request,
    validate_response,
)

from sigfox_chatops.sigfox.simulator import SimulatorServer

NEW_PAC = "0123456789ABCDEF"


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    require_spec()
    return make_simulator(devices=30, rate_limits=False, job_delay=0.05)


@pytest.fixture
def api(sim: SimulatorServer) -> httpx.Client:
    with sim.client() as client:
        yield client


def body_of(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def checked(
    api: httpx.Client, method: str, template: str, url: str, status: int, body: Any = None
) -> Any:
    """Call, assert the status, validate request and response against the spec."""
    if body is not None:
        validate_request(method, template, body)
    response = api.request(method, url, json=body)
    assert response.status_code == status, response.text
    payload = body_of(response)
    validate_response(method, template, status, payload)
    return payload


def a_device_type(sim: SimulatorServer) -> str:
    return next(iter(sim.world.device_types))


def test_device_reads_validate(sim: SimulatorServer, api: httpx.Client) -> None:
    page = checked(api, "GET", "/devices/", "/devices/?limit=10", 200)
    assert len(page["data"]) == 10 and page["paging"]["next"].startswith(sim.base_url)
    device_id = page["data"][0]["id"]
    one = checked(api, "GET", "/devices/{id}", f"/devices/{device_id}", 200)
    assert one["pac"] == sim.world.pac_of(device_id)
    named = checked(api, "GET", "/devices/{id}",
                    f"/devices/{device_id}?fields=deviceType(name)", 200)
    assert named["deviceType"]["name"]
    sim.uplink(device_id, "CAFE")
    msgs = checked(api, "GET", "/devices/{id}/messages", f"/devices/{device_id}/messages", 200)
    assert msgs["data"][0]["data"] == "CAFE" and "next" not in msgs["paging"]


def test_device_writes_validate(sim: SimulatorServer, api: httpx.Client) -> None:
    creation = {"id": "A1B2C3", "name": "Probe", "deviceTypeId": a_device_type(sim),
                "pac": NEW_PAC, "lat": 43.6, "lng": 1.44, "prototype": False,
                "productCertificate": {"key": "P_0001_0001_01"}, "automaticRenewal": True,
                "activable": True}
    assert checked(api, "POST", "/devices/", "/devices/", 201, creation) == {"id": "A1B2C3"}
    checked(api, "PUT", "/devices/{id}", "/devices/A1B2C3", 204, {"name": "Probe 2"})
    checked(api, "PUT", "/devices/{id}/unsubscribe", "/devices/A1B2C3/unsubscribe", 204,
            {"unsubscriptionTime": sim.world.now_ms() + 86_400_000})
    device = checked(api, "GET", "/devices/{id}", "/devices/A1B2C3", 200)
    assert device["name"] == "Probe 2" and "unsubscriptionTime" in device
    assert device["productCertificate"] == {"key": "P_0001_0001_01"}
    checked(api, "DELETE", "/devices/{id}", "/devices/A1B2C3", 204)


def test_errors_validate(sim: SimulatorServer, api: httpx.Client) -> None:
    missing = checked(api, "GET", "/devices/{id}", "/devices/FFFFFFF1", 404)
    assert set(missing) == {"message"}
    bad = checked(api, "GET", "/devices/", "/devices/?limit=0", 400)
    assert bad["errors"][0]["field"] == "limit"
    bad = checked(api, "POST", "/devices/", "/devices/", 400, {"id": "ZZ", "name": "x",
                  "deviceTypeId": a_device_type(sim), "pac": NEW_PAC})
    assert bad["errors"][0]["field"] == "id"
    existing = next(iter(sim.world.devices))
    conflict = checked(api, "POST", "/devices/", "/devices/", 409, {
        "id": existing, "name": "x", "deviceTypeId": a_device_type(sim),
        "pac": sim.world.pac_of(existing)})
    assert set(conflict) == {"message"}


def test_device_types_and_callbacks_validate(sim: SimulatorServer, api: httpx.Client) -> None:
    types = checked(api, "GET", "/device-types/", "/device-types/", 200)
    assert len(types["data"]) == len(sim.world.device_types)
    dtype = types["data"][0]["id"]
    one = checked(api, "GET", "/device-types/{id}", f"/device-types/{dtype}", 200)
    assert one["contract"]["id"] == sim.world.device_types[dtype].contract_id
    callback = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                "url": "http://127.0.0.1:9/cb?d={device}", "httpMethod": "POST",
                "headers": {"X-Key": "k"}, "bodyTemplate": '{"d":"{data}"}',
                "contentType": "application/json"}
    validate_request("POST", "/device-types/{id}/callbacks", callback)
    created = checked(api, "POST", "/device-types/{id}/callbacks",
                      f"/device-types/{dtype}/callbacks", 201, callback)
    listed = checked(api, "GET", "/device-types/{id}/callbacks",
                     f"/device-types/{dtype}/callbacks", 200)
    assert listed["data"][0]["id"] == created["id"]
    checked(api, "PUT", "/device-types/{id}/callbacks/{callbackId}/enable",
            f"/device-types/{dtype}/callbacks/{created['id']}/enable?enabled=false", 204)
    listed = api.get(f"/device-types/{dtype}/callbacks").json()
    assert listed["data"][0]["enabled"] is False
    # The single URL callback also fits the spec's URL-specific definition.
    check(definition_schema("urlCallback"), listed["data"][0], "urlCallback")


def test_contracts_and_groups_validate(sim: SimulatorServer, api: httpx.Client) -> None:
    contracts = checked(api, "GET", "/contract-infos/", "/contract-infos/?fields=order(name)", 200)
    orders = {c["order"]["id"] for c in contracts["data"]}
    assert len(orders) == 3 and all(c["order"]["name"] for c in contracts["data"])
    contract = contracts["data"][0]
    for key in ("maxTokens", "tokensInUse", "tokenDuration", "startTime",
                "communicationEndTime", "automaticRenewal"):
        assert key in contract
    checked(api, "GET", "/contract-infos/{id}", f"/contract-infos/{contract['id']}", 200)
    devices = checked(api, "GET", "/contract-infos/{id}/devices",
                      f"/contract-infos/{contract['id']}/devices", 200)
    assert all(d["contract"]["id"] == contract["id"] for d in devices["data"])
    groups = checked(api, "GET", "/groups/", "/groups/", 200)
    checked(api, "GET", "/groups/{id}", f"/groups/{groups['data'][0]['id']}", 200)


def test_bulk_jobs_validate(sim: SimulatorServer, api: httpx.Client) -> None:
    dtype = a_device_type(sim)
    creation = {"deviceTypeId": dtype, "prefix": "bulk-",
                "data": [{"id": "B00001", "pac": NEW_PAC}, {"id": "B00002", "pac": "XYZ"}]}
    job = checked(api, "POST", "/devices/bulk", "/devices/bulk", 200, creation)
    status = checked(api, "GET", "/devices/bulk/{jobId}", f"/devices/bulk/{job['jobId']}", 200)
    assert status["jobDone"] is False
    sim.advance(1)
    status = checked(api, "GET", "/devices/bulk/{jobId}", f"/devices/bulk/{job['jobId']}", 200)
    assert status["jobDone"] is True and status["total"] == 2
    assert status["status"]["success"] == 1
    assert [e["entity"] for e in status["status"]["errors"]] == ["B00002"]
    transfer = {"deviceTypeId": dtype, "data": [{"id": "B00001", "keepHistory": True}]}
    job = checked(api, "POST", "/devices/bulk/transfer", "/devices/bulk/transfer", 200, transfer)
    sim.advance(1)
    checked(api, "GET", "/devices/bulk/{jobId}", f"/devices/bulk/{job['jobId']}", 200)
    job = checked(api, "POST", "/devices/bulk/restart", "/devices/bulk/restart", 201,
                  {"data": ["B00001"]})
    sim.advance(1)
    restart = checked(api, "GET", "/devices/bulk/restart/{jobId}",
                      f"/devices/bulk/restart/{job['jobId']}", 200)
    assert restart["jobDone"] and restart["status"]["nbSuccess"] == 1
    job = checked(api, "POST", "/devices/bulk/unsubscribe", "/devices/bulk/unsubscribe", 201,
                  {"data": [{"id": "B00001", "unsubscriptionTime": sim.world.now_ms()}]})
    sim.advance(1)
    checked(api, "GET", "/devices/bulk/unsubscribe/{jobId}",
            f"/devices/bulk/unsubscribe/{job['jobId']}", 200)
    checked(api, "GET", "/devices/bulk/unsubscribe/{jobId}", "/devices/bulk/unsubscribe/ab12",
            404)


def test_no_nulls_and_no_token_key(sim: SimulatorServer, api: httpx.Client) -> None:
    fresh = sim.world.add_device("D00D", token="none")
    body = api.get(f"/devices/{fresh.id}").json()
    assert "token" not in body and "lastCom" not in body and "sequenceNumber" not in body
    page = api.get("/devices/").json()
    assert "null" not in httpx.Response(200, json=page).text


def test_basic_auth_required(sim: SimulatorServer) -> None:
    assert httpx.get(f"{sim.base_url}/devices/").status_code == 401
    wrong = httpx.get(f"{sim.base_url}/devices/", auth=(sim.login, "nope"))
    assert wrong.status_code == 401
    validate_response("GET", "/devices/", 401, None)
    # The control endpoints are a loopback tool: no auth.
    assert httpx.get(f"{sim.root_url}/_sim/calls").status_code == 200


def test_validator_catches_wrong_shapes() -> None:
    require_spec()
    with pytest.raises(AssertionError, match="state"):
        validate_response("GET", "/devices/{id}", 200,
                          {"id": "1", "name": "n", "pac": "P", "state": "OK", "comState": 1,
                           "creationTime": 1, "automaticRenewal": True})
    with pytest.raises(AssertionError, match="not documented"):
        validate_response("DELETE", "/devices/{id}", 409, {"message": "x"})
    with pytest.raises(AssertionError, match="pac"):
        validate_request("POST", "/devices/", {"id": "1", "name": "n", "deviceTypeId": "x"})
    # Unknown fields are tolerated, as the spec does not forbid them.
    validate_response("GET", "/v2/devices/{id}", 200,
                      {"id": "1", "name": "n", "pac": "P", "state": 0, "comState": 1,
                       "creationTime": 1, "automaticRenewal": True, "extra": 1})
    with pytest.raises(AssertionError, match="token"):
        validate_response("GET", "/devices/{id}", 200,
                          {"id": "1", "name": "n", "pac": "P", "state": 0, "comState": 1,
                           "creationTime": 1, "automaticRenewal": True,
                           "token": {"end": 2**64}})
