"""The simulated backend speaks API v2 as openapi.json describes it: every implemented endpoint's
answers validate against the spec's definitions, over real HTTP on loopback.

Every answer in this module goes through `SpecCheckingTransport`, which validates it (status
documented for the operation, body fitting its schema) before the test sees it, and
`test_every_route_answers_as_the_spec_says` proves that covers every route the simulator serves,
with its success and its error answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.openapi import (
    SpecCheckingTransport,
    check,
    definition_schema,
    require_spec,
    spec_template,
    validate_request,
    validate_response,
)

from sigfox.simulator import SimulatorServer

NEW_PAC = "0123456789ABCDEF"
DAY_MS = 86_400_000


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    require_spec()
    return make_simulator(devices=30, rate_limits=False, job_delay=0.05)


@pytest.fixture
def spec() -> SpecCheckingTransport:
    # Requests here include malformed ones on purpose; `checked` validates the good ones.
    return SpecCheckingTransport(check_requests=False)


@pytest.fixture
def api(sim: SimulatorServer, spec: SpecCheckingTransport) -> Iterator[httpx.Client]:
    with sim.client(transport=spec) as client:
        yield client


def body_of(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def checked(
    api: httpx.Client, method: str, template: str, url: str, status: int, body: Any = None
) -> Any:
    """Call and assert the status (the transport validates the answer). A body sent for a
    success must itself fit the spec: the simulator accepts what Sigfox documents."""
    if body is not None and status < 300:
        validate_request(method, template, body)
    response = api.request(method, url, json=body)
    assert response.status_code == status, response.text
    payload = body_of(response)
    validate_response(method, template, status, payload)
    return payload


def implemented_routes(sim: SimulatorServer) -> set[tuple[str, str]]:
    """(method, spec template) of every /v2 route the simulator serves, read from its app."""
    routes: set[tuple[str, str]] = set()
    for route in sim.app.routes.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/v2/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "X1", path)
        for method in set(getattr(route, "methods", ())) - {"HEAD"}:
            routes.add((method, spec_template(method, concrete)))
    return routes


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


def scenario(sim: SimulatorServer) -> list[tuple[str, str, Any, int]]:
    """(method, URL, body, expected status): each route's success and its error answers."""
    world = sim.world
    dtype, other = list(world.device_types)[:2]
    contract, group = world.device_types[dtype].contract_id, next(iter(world.groups))
    live = world.add_device("E0001", device_type_id=dtype, token="ok").id
    gone = world.add_device("E0002", device_type_id=dtype, token="off_contract").id
    sim.uplink(live, "0102")
    later = world.now_ms() + DAY_MS
    creation = {"id": "E0003", "name": "new", "deviceTypeId": dtype, "pac": NEW_PAC}
    callback = {"channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                "url": "http://127.0.0.1:9/cb", "httpMethod": "GET"}
    nobody = "FFFFFFF1"
    return [
        ("GET", "/devices/?limit=5", None, 200),
        ("GET", "/devices/?limit=0", None, 400),
        ("POST", "/devices/", creation, 201),
        ("POST", "/devices/", creation, 409),
        ("POST", "/devices/", {**creation, "id": "E0004", "pac": "NOTAPAC"}, 400),
        ("GET", f"/devices/{live}", None, 200),
        ("GET", f"/devices/{nobody}", None, 404),
        ("PUT", f"/devices/{live}", {"name": "renamed"}, 204),
        ("PUT", f"/devices/{live}", {"name": 7}, 400),
        ("PUT", f"/devices/{nobody}", {"name": "x"}, 404),
        ("PUT", f"/devices/{live}/unsubscribe", {"unsubscriptionTime": later}, 204),
        ("PUT", f"/devices/{live}/unsubscribe", {}, 400),
        ("PUT", f"/devices/{nobody}/unsubscribe", {"unsubscriptionTime": later}, 404),
        ("GET", f"/devices/{live}/messages", None, 200),
        ("GET", f"/devices/{live}/messages?limit=101", None, 400),
        ("GET", f"/devices/{nobody}/messages", None, 404),
        ("DELETE", f"/devices/{live}", None, 403),
        ("DELETE", f"/devices/{gone}", None, 204),
        ("DELETE", f"/devices/{gone}", None, 404),
        ("GET", "/device-types/", None, 200),
        ("GET", "/device-types/?limit=0", None, 400),
        ("GET", f"/device-types/{dtype}", None, 200),
        ("GET", "/device-types/nope", None, 404),
        ("POST", f"/device-types/{dtype}/callbacks", callback, 201),
        ("POST", f"/device-types/{dtype}/callbacks", {"channel": "URL"}, 400),
        ("POST", "/device-types/nope/callbacks", callback, 404),
        ("GET", f"/device-types/{dtype}/callbacks", None, 200),
        ("GET", "/device-types/nope/callbacks", None, 404),
        ("PUT", f"/device-types/{dtype}/callbacks/nope/enable?enabled=true", None, 404),
        ("PUT", f"/device-types/{dtype}/callbacks/nope/enable", None, 400),
        ("GET", "/contract-infos/", None, 200),
        ("GET", "/contract-infos/?limit=0", None, 400),
        ("GET", f"/contract-infos/{contract}", None, 200),
        ("GET", "/contract-infos/nope", None, 404),
        ("GET", f"/contract-infos/{contract}/devices", None, 200),
        ("GET", f"/contract-infos/{contract}/devices?limit=0", None, 400),
        ("GET", "/contract-infos/nope/devices", None, 404),
        ("GET", "/groups/", None, 200),
        ("GET", "/groups/?limit=0", None, 400),
        ("GET", f"/groups/{group}", None, 200),
        ("GET", "/groups/nope", None, 404),
        ("POST", "/devices/bulk", {"deviceTypeId": dtype, "data": [{"id": "E0005"}]}, 200),
        ("POST", "/devices/bulk", {"deviceTypeId": "nope", "data": []}, 400),
        ("POST", "/devices/bulk/transfer", {"deviceTypeId": other, "data": [{"id": live}]}, 200),
        ("POST", "/devices/bulk/transfer", {"deviceTypeId": other}, 400),
        ("POST", "/devices/bulk/restart", {"data": [live]}, 201),
        ("POST", "/devices/bulk/restart", {"data": [{"id": live}]}, 400),
        ("POST", "/devices/bulk/unsubscribe", {"data": [{"id": live}]}, 201),
        ("POST", "/devices/bulk/unsubscribe", {"data": "all"}, 400),
        ("GET", "/devices/bulk/nope", None, 404),
        ("GET", "/devices/bulk/restart/nope", None, 404),
        ("GET", "/devices/bulk/unsubscribe/nope", None, 404),
    ]


def test_every_route_answers_as_the_spec_says(
    sim: SimulatorServer, api: httpx.Client, spec: SpecCheckingTransport
) -> None:
    for method, url, body, status in scenario(sim):
        response = api.request(method, url, json=body)
        assert response.status_code == status, (method, url, response.text)
    # Routes whose success needs an id answered above.
    dtype = next(iter(sim.world.device_types))
    cb = api.get(f"/device-types/{dtype}/callbacks").json()["data"][0]["id"]
    assert api.put(f"/device-types/{dtype}/callbacks/{cb}/enable?enabled=false").status_code == 204
    submissions = (("/devices/bulk", {"deviceTypeId": dtype, "data": []}),
                   ("/devices/bulk/restart", {"data": []}),
                   ("/devices/bulk/unsubscribe", {"data": []}))
    for path, body in submissions:
        job = api.post(path, json=body).json()["jobId"]
        assert api.get(f"{path}/{job}").status_code == 200
    routes = implemented_routes(sim)
    successes = {(m, t) for m, t, s in spec.seen if s < 300}
    failures = {(m, t) for m, t, s in spec.seen if s >= 400}
    assert successes == routes
    # ... and every route showed a refusal too (400, 403, 404 or 409), validated likewise.
    assert failures == routes


def test_every_route_demands_basic_auth(sim: SimulatorServer) -> None:
    transport = SpecCheckingTransport(check_requests=False)
    with httpx.Client(base_url=sim.base_url, transport=transport) as anonymous:
        for method, template in sorted(implemented_routes(sim)):
            url = re.sub(r"\{[^}]+\}", "X1", template)
            assert anonymous.request(method, url).status_code == 401, (method, url)
    assert len(transport.seen) == len(implemented_routes(sim)) == 24
