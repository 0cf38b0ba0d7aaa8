"""Pure mechanics of the Sigfox client, without a backend: back-off, retry policy, error
mapping, secrets hygiene, URLs and paging (pacing: test_pacing.py; models: test_models.py).
Behaviour against the API itself is exercised against the simulated backend in
test_client_simulator.py."""

from __future__ import annotations

import random

import httpx
import pytest
from support.fake_sigfox import (
    BASE,
    DEVICE,
    PAC,
    PASSWORD,
    FakeTime,
    answer,
    make_client,
    sequence,
)

from sigfox import errors
from sigfox.backoff import full_jitter_delay
from sigfox.client import SigfoxClient
from sigfox.models import (
    Device,
    DeviceCreate,
    JobKind,
)

# --- back-off and retries ----------------------------------------------------------------


def test_full_jitter_delay_is_bounded() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        for _ in range(50):
            delay = full_jitter_delay(attempt, base=0.5, cap=30.0, rng=rng)
            assert 0.0 <= delay <= min(30.0, 0.5 * 2**attempt)
    assert full_jitter_delay(0, base=0.5, cap=30.0, rng=rng, retry_after=5) == 5
    assert full_jitter_delay(0, base=0.5, cap=30.0, rng=rng, retry_after=99) == 30.0


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_429_is_retried_for_every_method(method: str) -> None:
    ok = httpx.Response(200, json={"id": "1A2B", "jobId": "j"})
    handler, seen = sequence(httpx.Response(429), httpx.Response(429), ok)
    fake = FakeTime()
    with make_client(handler, fake, rate_limits=False) as client:
        if method == "GET":
            client.get_device_type("dt")
        elif method == "POST":
            client.bulk_restart(["1A2B"])
        elif method == "PUT":
            client.update_device("1A2B", name="x")
        else:
            client.delete_device("1A2B")
    assert len(seen) == 3
    assert len(fake.sleeps) == 2


def test_429_exhausted_raises_rate_limited_after_bounded_attempts() -> None:
    calls: list[tuple[str, str, int | None]] = []
    handler, seen = sequence(httpx.Response(429))
    fake = FakeTime()
    client = make_client(handler, fake, max_retries=4, backoff_cap=2.0, calls=calls)
    with pytest.raises(errors.SigfoxRateLimited) as info:
        client.get_device_type("dt")
    assert len(seen) == 5 and info.value.attempts == 5 and info.value.status == 429
    assert len(fake.sleeps) == 4 and all(0 <= s <= 2.0 for s in fake.sleeps)
    assert calls == [("GET", "/device-types/{id}", 429)] * 5


def test_get_retried_on_5xx_and_dropped_connection() -> None:
    handler, seen = sequence(
        httpx.Response(503),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"id": "dt", "name": "type"}),
    )
    with make_client(handler) as client:
        assert client.get_device_type("dt").name == "type"
    assert len(seen) == 4


def test_get_gives_up_after_max_retries_on_5xx() -> None:
    handler, seen = sequence(httpx.Response(500))
    with (make_client(handler, max_retries=2) as client,
          pytest.raises(errors.SigfoxServerError) as info):
        client.get_contract_info("c1")
    assert len(seen) == 3
    assert info.value.outcome_unknown is False


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500), httpx.Response(502), httpx.ReadTimeout("t"), httpx.ReadError("x")],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_write_never_retried_on_5xx_or_connection_failure(
    method: str, failure: httpx.Response | Exception
) -> None:
    handler, seen = sequence(failure)
    with make_client(handler) as client, pytest.raises(errors.SigfoxError) as info:
        if method == "POST":
            client.create_device(DeviceCreate(id="1A2B", name="n", device_type_id="t", pac=PAC))
        elif method == "PUT":
            client.update_device("1A2B", name="x")
        else:
            client.delete_device("1A2B")
    assert len(seen) == 1
    assert info.value.outcome_unknown is True
    assert "may or may not have been applied" in str(info.value)
    expected = (errors.SigfoxServerError if isinstance(failure, httpx.Response)
                else errors.SigfoxConnectionError)
    assert type(info.value) is expected


def test_connection_error_names_the_path_as_sent() -> None:
    handler, _ = sequence(httpx.ReadTimeout("t"))
    with make_client(handler) as client, pytest.raises(errors.SigfoxConnectionError) as info:
        client.delete_device("1a2b")
    assert info.value.path == "/v2/devices/1A2B" and info.value.method == "DELETE"


def test_empty_update_is_refused_before_using_the_hourly_allowance() -> None:
    handler, seen = sequence(httpx.Response(204))
    with make_client(handler) as client, pytest.raises(ValueError, match="at least one"):
        client.update_device("1A2B")
    assert seen == []


def test_write_connect_failure_is_known_not_applied() -> None:
    handler, seen = sequence(httpx.ConnectError("refused"))
    with make_client(handler) as client, pytest.raises(errors.SigfoxConnectionError) as info:
        client.delete_device("1A2B")
    assert len(seen) == 1 and info.value.outcome_unknown is False


def test_get_connection_failure_exhausted() -> None:
    handler, seen = sequence(httpx.ConnectTimeout("t"))
    with make_client(handler, max_retries=3) as client, pytest.raises(errors.SigfoxConnectionError):
        client.get_device_type("dt")
    assert len(seen) == 4


# --- error mapping -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "hint"),
    [
        (401, errors.SigfoxUnauthorized, "SIGFOX_API_LOGIN"),
        (403, errors.SigfoxForbidden, "profile"),
        (404, errors.SigfoxNotFound, "Check the identifier"),
        (409, errors.SigfoxConflict, "Conflict"),
        (412, errors.SigfoxError, "Unexpected"),
    ],
)
def test_status_maps_to_typed_error(status: int, error: type[errors.SigfoxError], hint: str
                                    ) -> None:
    client = make_client(answer(status, {"message": "backend says no"}))
    with pytest.raises(error) as info:
        client.get_device_type("dt")
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.method == "GET" and info.value.path == "/v2/device-types/dt"
    assert hint in str(info.value)


def test_bad_request_carries_field_errors() -> None:
    body = {
        "message": "bad request",
        "errors": [{"type": "body", "field": "name", "message": "too long"}],
    }
    client = make_client(answer(400, body))
    with pytest.raises(errors.SigfoxBadRequest) as info:
        client.update_device("1A2B", name="x")
    err = info.value
    assert [(e.type, e.field, e.message) for e in err.field_errors] == [
        ("body", "name", "too long")
    ]
    assert "body.name: too long" in str(err)


def test_pac_and_password_never_in_error_messages() -> None:
    body = {
        "message": f"PAC {PAC} does not match (auth {PASSWORD})",
        "errors": [{"type": "body", "field": "pac", "message": f"invalid {PAC.lower()}"}],
    }
    client = make_client(answer(400, body))
    with pytest.raises(errors.SigfoxBadRequest) as info:
        client.create_device(DeviceCreate(id="1A2B", name="n", device_type_id="t", pac=PAC))
    text = str(info.value) + repr(info.value.field_errors)
    assert PAC not in text.upper() and PASSWORD not in text


def test_request_models_and_client_repr_hide_secrets() -> None:
    create = DeviceCreate(id="1a2b", name="n", device_type_id="t", pac=PAC)
    device = Device.model_validate(DEVICE)
    client = make_client(answer(200, {}))
    for text in (repr(create), str(create), repr(device), repr(client)):
        assert PAC not in text and PASSWORD not in text


def test_on_call_reports_template_and_survives_a_failing_hook() -> None:
    seen: list[tuple[str, str, int | None]] = []

    def hook(method: str, endpoint: str, status: int | None) -> None:
        seen.append((method, endpoint, status))
        raise RuntimeError("metrics down")

    client = make_client(answer(204), on_call=hook)
    client.delete_device("1a2b")
    assert seen == [("DELETE", "/devices/{id}", 204)]


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGFOX_API_PASSWORD", raising=False)
    monkeypatch.setenv("SIGFOX_API_LOGIN", "me")
    with pytest.raises(errors.SigfoxConfigError, match="SIGFOX_API_PASSWORD"):
        SigfoxClient.from_env()
    monkeypatch.setenv("SIGFOX_API_PASSWORD", "pw")
    monkeypatch.delenv("SIGFOX_API_URL", raising=False)
    with SigfoxClient.from_env() as client:
        assert client.base_url == "https://api.sigfox.com/v2"


# --- URLs and paging mechanics -----------------------------------------------------------


def test_device_ids_upper_case_in_urls_and_validated() -> None:
    handler, seen = sequence(httpx.Response(200, json=DEVICE))
    with make_client(handler) as client:
        client.get_device("1a2b")
        with pytest.raises(ValueError, match="hexadecimal"):
            client.delete_device("../groups/1")
    assert seen[0].url.path == "/v2/devices/1A2B"
    assert seen[0].headers["Authorization"].startswith("Basic ")


def test_paging_next_followed_verbatim_and_lazily() -> None:
    next_url = f"{BASE}/devices/?limit=2&pageId=opaque%2Btoken&extra=1"
    pages = {
        "first": {"data": [DEVICE, {**DEVICE, "id": "1A2C"}], "paging": {"next": next_url}},
        "second": {"data": [{**DEVICE, "id": "1A2D"}], "paging": {}},
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        key = "second" if "pageId" in request.url.params else "first"
        return httpx.Response(200, json=pages[key])

    client = make_client(handler)
    devices = client.iter_devices(page_size=2)
    assert seen == []  # nothing sent until iterated
    assert [d.id for d in devices] == ["1A2B", "1A2C", "1A2D"]
    assert seen[1] == next_url
    assert "offset" not in "".join(seen)


def test_paging_next_to_another_host_is_refused() -> None:
    page = {"data": [DEVICE], "paging": {"next": "https://evil.example/v2/devices/?pageId=x"}}
    client = make_client(answer(200, page))
    with pytest.raises(errors.SigfoxError, match="another host"):
        list(client.iter_devices())


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        (JobKind.CREATE, "/v2/devices/bulk/j1"),
        (JobKind.TRANSFER, "/v2/devices/bulk/j1"),
        (JobKind.RESTART, "/v2/devices/bulk/restart/j1"),
        (JobKind.UNSUBSCRIBE, "/v2/devices/bulk/unsubscribe/j1"),
    ],
)
def test_job_status_endpoint_per_kind(kind: JobKind, path: str) -> None:
    registration = {
        "jobDone": True,
        "total": 3,
        "status": {
            "success": 2,
            "errors": [{"entity": "1A2B", "message": "Unknown device", "type": 0}],
        },
    }
    action = {
        "jobDone": False,
        "status": {
            "total": 3,
            "nbSuccess": 1,
            "nbErrors": 1,
            "errors": [{"entity": "1A2B", "type": 1}],
        },
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        body = (
            action
            if "restart" in request.url.path or "unsub" in request.url.path
            else (registration)
        )
        return httpx.Response(200, json=body)

    job = make_client(handler).get_job(kind, "j1")
    assert seen == [path]
    assert job.total == 3 and job.errors[0].entity == "1A2B"
    if kind in (JobKind.CREATE, JobKind.TRANSFER):
        assert job.done and job.succeeded == 2 and job.failed == 1
    else:
        assert not job.done and job.succeeded == 1 and job.failed == 1


def test_429s_are_named_as_sigfoxs_rate_limit_with_the_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, _ = sequence(httpx.Response(429))
    client = make_client(handler, FakeTime(), max_retries=2)
    with (caplog.at_level("INFO", logger="sigfox.transport"),
          pytest.raises(errors.SigfoxRateLimited) as info):
        client.get_device_type("dt")
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert all("Sigfox's rate limit answered (HTTP 429)" in line for line in retries)
    assert all("GET /device-types/{id}" in line for line in retries)
    assert "Sigfox's rate limit (HTTP 429) answered GET /v2/device-types/dt 3 time(s)" in str(
        info.value)


def test_a_404_on_a_url_without_v2_hints_at_sigfox_api_url() -> None:
    handler, _ = sequence(httpx.Response(404))
    client = SigfoxClient("https://api.example.test", "api-login", PASSWORD,
                          transport=httpx.MockTransport(handler), sleep=lambda _s: None)
    with pytest.raises(errors.SigfoxNotFound) as info:
        client.get_device_type("dt")
    assert "SIGFOX_API_URL must end in /v2" in str(info.value)
    with make_client(sequence(httpx.Response(404))[0]) as right, \
            pytest.raises(errors.SigfoxNotFound) as plain:
        right.get_device_type("dt")
    assert "/v2" not in str(plain.value).split("[")[0]
