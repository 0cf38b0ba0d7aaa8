"""A synchronous client for the Sigfox API v2 (httpx + pydantic).

What it guarantees to callers:

- Lists are walked lazily through `paging.next`, followed verbatim, one page in memory at a
  time; `offset` is never used (the service caps it at 40,000).
- Requests are paced to the published limits before they are hit (see `pacing`).
- How the client waits is chosen when it is wired (`WaitMode`). A sleeping client (one-shot CLI
  commands, where waiting is what the user wants) sleeps for a short rate-limit slot, and
  retries a 429, for every method, with bounded exponential back-off and full jitter (the
  service did not process the request); reads are also retried on 5xx, timeouts and dropped
  connections. A deferring client (workflow steps, scheduled jobs) never sleeps: it raises at
  once, the error carrying `retry_at`, the date the call may be made again, which the caller
  records as its next run while it moves on to other work.
- Writes (POST, PUT, DELETE) are never retried on 5xx or a cut connection: the error says the
  outcome is unknown (`outcome_unknown`) and the caller reconciles by reading the backend.
- Failures surface as the typed exceptions of `errors`, never carrying a password or a PAC.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from types import TracebackType
from typing import Any, Self, TypedDict, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import httpx
from pydantic import BaseModel

from sigfox.errors import (
    FieldError,
    SigfoxBadRequest,
    SigfoxConfigError,
    SigfoxConflict,
    SigfoxConnectionError,
    SigfoxError,
    SigfoxForbidden,
    SigfoxNotFound,
    SigfoxRateLimited,
    SigfoxServerError,
    SigfoxUnauthorized,
    scrub,
)
from sigfox.models import (
    ActionJobStatus,
    BulkDeviceCreate,
    BulkJob,
    Callback,
    CallbackCreate,
    ContractInfo,
    Device,
    DeviceCreate,
    DeviceType,
    DeviceUpdate,
    Group,
    JobKind,
    Message,
    RegistrationJobStatus,
    normalize_device_id,
)
from sigfox.pacing import BackOff, CallLedger, Pacer, Permit, full_jitter_delay

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.sigfox.com/v2"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})
MAX_PAGE_SIZE = 100

OnCall = Callable[[str, str, int | None], None]
M = TypeVar("M", bound=BaseModel)

# Status endpoint of each job kind, from the Swagger document: create, edit and transfer
# share GET /devices/bulk/{jobId} (registrationJobStatus); restart and unsubscribe have their
# own (actionJob).
_JOB_STATUS = {
    JobKind.CREATE: ("/devices/bulk/{jobId}", RegistrationJobStatus),
    JobKind.EDIT: ("/devices/bulk/{jobId}", RegistrationJobStatus),
    JobKind.TRANSFER: ("/devices/bulk/{jobId}", RegistrationJobStatus),
    JobKind.RESTART: ("/devices/bulk/restart/{jobId}", ActionJobStatus),
    JobKind.UNSUBSCRIBE: ("/devices/bulk/unsubscribe/{jobId}", ActionJobStatus),
}


class WaitMode(StrEnum):
    """How a client waits for a rate-limit slot or a back-off, chosen at wiring time."""

    SLEEP = "sleep"  # one-shot CLI commands: wait in place, it is what the user asked for
    DEFER = "defer"  # workflows and scheduled jobs: never sleep, raise with `retry_at`


def _segment(value: str) -> str:
    """An identifier made safe as one URL path segment."""
    return quote(str(value), safe="")


def _query(**params: Any) -> dict[str, Any]:
    """Query parameters without the unset ones (the service treats absent and empty apart)."""
    return {k: v for k, v in params.items() if v is not None}


def _page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


class SigfoxClient:
    """Sigfox API v2 over HTTP Basic auth. Thread-safe; use as a context manager or close()."""

    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        timeout: float = 15.0,
        rate_limits: bool = True,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_call: OnCall | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        waits: WaitMode = WaitMode.SLEEP,
        ledger: CallLedger | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.waits = WaitMode(waits)
        self._sleep = sleep
        self._on_call = on_call
        self._secrets: tuple[str, ...] = (password,)
        self._rng = random.Random()
        self.pacer = Pacer(enabled=rate_limits, clock=clock, sleep=sleep, ledger=ledger,
                           back_off=BackOff(backoff_base, backoff_cap, self._rng))
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=httpx.BasicAuth(login, password),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "sigfox-chatops"},
        )

    @property
    def longest_call(self) -> float:
        """The longest one call can last, in seconds: every attempt with its pacing wait and
        its four timeouts (pool, connect, write, read), and the back-offs between attempts.
        A write whose process died during the call cannot land later than this after it
        started (plus what the server itself may take: the core's landing margin)."""
        attempt = 4 * self.timeout
        if self.waits is WaitMode.DEFER:
            return attempt  # one attempt, never a sleep: any wait is refused with retry_at
        pacing = self.pacer.max_wait if self.pacer.enabled else 0.0
        return ((self.max_retries + 1) * (pacing + attempt)
                + self.max_retries * self.backoff_cap)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """Build from SIGFOX_API_URL (optional), SIGFOX_API_LOGIN and SIGFOX_API_PASSWORD."""
        env = os.environ if env is None else env
        missing = [n for n in ("SIGFOX_API_LOGIN", "SIGFOX_API_PASSWORD") if not env.get(n)]
        if missing:
            raise SigfoxConfigError(
                f"Environment variable {' and '.join(missing)} is not set: set it to the "
                "Sigfox API user's credentials (Sigfox portal, Group > API access)"
            )
        url = env.get("SIGFOX_API_URL") or DEFAULT_API_URL
        return cls(url, env["SIGFOX_API_LOGIN"], env["SIGFOX_API_PASSWORD"], **kwargs)

    def __repr__(self) -> str:
        return f"SigfoxClient({self.base_url!r}, waits={self.waits.value!r})"

    def with_waits(self, waits: WaitMode) -> Self:
        """The same client (connections, pacing, ledger, hooks) waiting the other way: wire a
        deferring one into the workflows and a sleeping one into one-shot commands. Closing
        either closes the connections of both."""
        sibling = copy.copy(self)
        sibling.waits = WaitMode(waits)
        return sibling

    def deferring(self) -> Self:
        return self.with_waits(WaitMode.DEFER)

    def forget_unapplied(self, method: str, endpoint: str, device_id: str, since: float) -> int:
        """The caller read the backend and saw that the `method endpoint` calls on the device
        sent since `since` did not take effect (a DELETE answered 500, the device still
        listed): they stop counting against the per-device limit, so a retry is not held an
        hour for a call the server never executed."""
        return self.pacer.forget(method, endpoint, normalize_device_id(device_id), since)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- devices ---------------------------------------------------------------------------

    def iter_devices(
        self,
        *,
        id: str | None = None,  # the API's own filter name
        device_type_id: str | None = None,
        group_ids: Iterable[str] | None = None,
        page_size: int = 100,
    ) -> Iterator[Device]:
        params = _query(
            id=normalize_device_id(id) if id else None,
            deviceTypeId=device_type_id,
            groupIds=",".join(group_ids) if group_ids is not None else None,
            limit=_page_size(page_size),
        )
        return self._iter_list("/devices/", "/devices/", params, Device)

    def iter_all_devices(self, *, workers: int = 8, page_size: int = 100) -> Iterator[Device]:
        """Every device of the fleet, walked over disjoint id ranges at once (see `fleet_walk`).

        The same devices as `iter_devices()`, not in id order, much sooner when each answer
        takes a while; one walk where the backend refuses id ranges.
        """
        from sigfox.fleet_walk import walk_fleet

        return walk_fleet(self, workers=workers, page_size=_page_size(page_size))

    def iter_device_pages(
        self, *, min_id: str | None = None, max_id: str | None = None, page_size: int = 100
    ) -> Iterator[list[Device]]:
        """Pages of the devices whose id lies in [min_id, max_id] (inclusive, either open),
        by id (`sort=id`), following `paging.next`."""
        params = _query(
            sort="id",
            minId=normalize_device_id(min_id) if min_id else None,
            maxId=normalize_device_id(max_id) if max_id else None,
            limit=_page_size(page_size),
        )
        for page in self._iter_pages("/devices/", "/devices/", params):
            yield [Device.model_validate(item) for item in page]

    def device_id_at(self, offset: int, *, min_id: str | None = None) -> str | None:
        """The id of the device `offset` places after the first (from `min_id` on), by id;
        None when the fleet is shorter. One list call of one device."""
        params = _query(sort="id", minId=normalize_device_id(min_id) if min_id else None,
                        offset=offset, limit=1)
        page = self._json("GET", "/devices/", "/devices/", params=params)
        data = page.get("data") or []
        return str(data[0]["id"]).upper() if data and isinstance(data[0], dict) else None

    def find_device(self, device_id: str) -> Device | None:
        """The device, read through the list endpoint (GET /devices/{id} is 1/hour/device)."""
        wanted = normalize_device_id(device_id)
        for device in self.iter_devices(id=wanted, page_size=MAX_PAGE_SIZE):
            if device.id.upper() == wanted:
                return device
        return None

    def get_device(self, device_id: str) -> Device:
        """GET /devices/{id}: limited to 1 call/hour/device; prefer `find_device`."""
        did = normalize_device_id(device_id)
        body = self._json("GET", "/devices/{id}", f"/devices/{did}", device_id=did)
        return Device.model_validate(body)

    def create_device(self, device: DeviceCreate) -> str:
        """POST /devices/; returns the id. A 409 after a delete means "not released yet"."""
        body = self._json(
            "POST", "/devices/", "/devices/", json=device.to_body(), secrets=(device.pac,)
        )
        return str(body.get("id") or device.id).upper()

    def update_device(self, device_id: str, **fields: Any) -> None:
        """PUT /devices/{id} with fields of `DeviceUpdate` (snake_case names)."""
        did = normalize_device_id(device_id)
        payload = DeviceUpdate(**fields).to_body()
        if not payload:
            # An empty PUT would still use up the device's one write per hour.
            raise ValueError("update_device needs at least one field to change")
        self._send("PUT", "/devices/{id}", f"/devices/{did}", json=payload, device_id=did)

    def delete_device(self, device_id: str) -> None:
        did = normalize_device_id(device_id)
        self._send("DELETE", "/devices/{id}", f"/devices/{did}", device_id=did)

    def unsubscribe_device(self, device_id: str, unsubscription_time_ms: int) -> None:
        did = normalize_device_id(device_id)
        payload = {"unsubscriptionTime": int(unsubscription_time_ms)}
        self._send("PUT", "/devices/{id}/unsubscribe", f"/devices/{did}/unsubscribe", json=payload)

    def iter_device_messages(
        self,
        device_id: str,
        *,
        since_ms: int | None = None,
        before_ms: int | None = None,
        page_size: int = 100,
    ) -> Iterator[Message]:
        did = normalize_device_id(device_id)
        params = _query(since=since_ms, before=before_ms, limit=_page_size(page_size))
        return self._iter_list(
            "/devices/{id}/messages", f"/devices/{did}/messages", params, Message, device_id=did
        )

    # --- device types and callbacks ----------------------------------------------------------

    def iter_device_types(self, *, page_size: int = 100) -> Iterator[DeviceType]:
        params = {"limit": _page_size(page_size)}
        return self._iter_list("/device-types/", "/device-types/", params, DeviceType)

    def get_device_type(self, device_type_id: str) -> DeviceType:
        path = f"/device-types/{_segment(device_type_id)}"
        return DeviceType.model_validate(self._json("GET", "/device-types/{id}", path))

    def iter_device_type_callbacks(self, device_type_id: str) -> Iterator[Callback]:
        path = f"/device-types/{_segment(device_type_id)}/callbacks"
        return self._iter_list("/device-types/{id}/callbacks", path, {}, Callback)

    def create_callback(self, device_type_id: str, body: CallbackCreate | Mapping[str, Any]) -> str:
        """POST /device-types/{id}/callbacks; returns the new callback's id."""
        payload = body.to_body() if isinstance(body, CallbackCreate) else dict(body)
        path = f"/device-types/{_segment(device_type_id)}/callbacks"
        answer = self._json("POST", "/device-types/{id}/callbacks", path, json=payload)
        return self._required(answer, "id", "POST", path)

    def enable_callback(self, device_type_id: str, callback_id: str, enabled: bool) -> None:
        template = "/device-types/{id}/callbacks/{callbackId}/enable"
        path = f"/device-types/{_segment(device_type_id)}/callbacks/{_segment(callback_id)}/enable"
        self._send("PUT", template, path, params={"enabled": enabled})

    # --- contracts and groups ----------------------------------------------------------------

    def iter_contract_infos(self, *, page_size: int = 100) -> Iterator[ContractInfo]:
        params = {"limit": _page_size(page_size)}
        return self._iter_list("/contract-infos/", "/contract-infos/", params, ContractInfo)

    def get_contract_info(self, contract_id: str) -> ContractInfo:
        path = f"/contract-infos/{_segment(contract_id)}"
        return ContractInfo.model_validate(self._json("GET", "/contract-infos/{id}", path))

    def iter_contract_devices(
        self, contract_id: str, *, device_type_id: str | None = None, page_size: int = 100
    ) -> Iterator[Device]:
        """Devices holding a token on the contract."""
        path = f"/contract-infos/{_segment(contract_id)}/devices"
        params = _query(deviceTypeId=device_type_id, limit=_page_size(page_size))
        return self._iter_list("/contract-infos/{id}/devices", path, params, Device)

    def iter_groups(self, *, page_size: int = 100) -> Iterator[Group]:
        params = {"limit": _page_size(page_size)}
        return self._iter_list("/groups/", "/groups/", params, Group)

    # --- bulk jobs ---------------------------------------------------------------------------

    def bulk_create_devices(
        self,
        device_type_id: str,
        devices: Iterable[BulkDeviceCreate | DeviceCreate],
        *,
        prefix: str | None = None,
        prototype: bool | None = None,
        product_certificate_key: str | None = None,
    ) -> str:
        """POST /devices/bulk; returns the job id (poll `get_job(JobKind.CREATE, id)`)."""
        items = [
            d if isinstance(d, BulkDeviceCreate) else BulkDeviceCreate.from_device_create(d)
            for d in devices
        ]
        certificate = {"key": product_certificate_key} if product_certificate_key else None
        payload = _query(
            deviceTypeId=device_type_id,
            prefix=prefix,
            prototype=prototype,
            productCertificate=certificate,
            data=[item.to_body() for item in items],
        )
        pacs = tuple(item.pac for item in items if item.pac)
        return self._submit_job("/devices/bulk", payload, secrets=pacs)

    def bulk_transfer(
        self,
        device_type_id: str,
        device_ids: Iterable[str],
        *,
        keep_history: bool = True,
        activable: bool = True,
    ) -> str:
        """POST /devices/bulk/transfer; poll with `get_job(JobKind.TRANSFER, id)`.

        Moving to a device type whose contract belongs to another order loses the token.
        """
        data = [
            {"id": normalize_device_id(d), "keepHistory": keep_history, "activable": activable}
            for d in device_ids
        ]
        payload = {"deviceTypeId": device_type_id, "data": data}
        return self._submit_job("/devices/bulk/transfer", payload)

    def bulk_restart(self, device_ids: Iterable[str]) -> str:
        """POST /devices/bulk/restart; poll with `get_job(JobKind.RESTART, id)`."""
        payload = {"data": [normalize_device_id(d) for d in device_ids]}
        return self._submit_job("/devices/bulk/restart", payload)

    def bulk_unsubscribe(self, device_ids: Iterable[str], unsubscription_time_ms: int) -> str:
        """POST /devices/bulk/unsubscribe; poll with `get_job(JobKind.UNSUBSCRIBE, id)`."""
        when = int(unsubscription_time_ms)
        data = [{"id": normalize_device_id(d), "unsubscriptionTime": when} for d in device_ids]
        return self._submit_job("/devices/bulk/unsubscribe", {"data": data})

    def get_job(self, kind: JobKind | str, job_id: str) -> BulkJob:
        """Status of a bulk job, read from the status endpoint the spec gives its kind."""
        kind = JobKind(kind)
        template, model = _JOB_STATUS[kind]
        path = template.replace("{jobId}", _segment(job_id))
        raw = self._json("GET", template, path)
        if model is RegistrationJobStatus:
            status = RegistrationJobStatus.model_validate(raw)
            return BulkJob.from_registration(kind, job_id, status)
        return BulkJob.from_action(kind, job_id, ActionJobStatus.model_validate(raw))

    def _submit_job(
        self, endpoint: str, payload: dict[str, Any], secrets: tuple[str, ...] = ()
    ) -> str:
        answer = self._json("POST", endpoint, endpoint, json=payload, secrets=secrets)
        return self._required(answer, "jobId", "POST", endpoint)

    # --- mechanics: lists ------------------------------------------------------------------

    def _iter_list(
        self,
        endpoint: str,
        path: str,
        params: dict[str, Any],
        model: type[M],
        *,
        device_id: str | None = None,
    ) -> Iterator[M]:
        """Yield items page by page, following `paging.next` verbatim until it is absent."""
        for page in self._iter_pages(endpoint, path, params, device_id=device_id):
            for item in page:
                yield model.model_validate(item)

    def _iter_pages(
        self, endpoint: str, path: str, params: dict[str, Any], *, device_id: str | None = None
    ) -> Iterator[list[Any]]:
        """The raw `data` of each page, following `paging.next` verbatim until it is absent."""
        url: str | None = path
        query: dict[str, Any] | None = params
        while url is not None:
            page = self._json("GET", endpoint, url, params=query, device_id=device_id)
            yield list(page.get("data") or [])
            url, query = self._next_url(page, url), None

    def _next_url(self, page: dict[str, Any], current: str) -> str | None:
        paging = page.get("paging")
        nxt = paging.get("next") if isinstance(paging, dict) else None
        if not nxt:
            return None
        absolute = urljoin(self.base_url + "/", nxt)
        # Basic credentials go with every request: never follow a link to another origin.
        if urlsplit(absolute)[:2] != urlsplit(self.base_url)[:2]:
            raise SigfoxError(
                "Refusing to follow paging.next to another host than SIGFOX_API_URL",
                method="GET",
                path=urlsplit(absolute).path,
            )
        if absolute == current:
            raise SigfoxError("paging.next points at the page just read", path=urlsplit(nxt).path)
        return absolute

    # --- mechanics: one call ---------------------------------------------------------------

    def _json(self, method: str, endpoint: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, endpoint, url, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SigfoxError(
                "Sigfox answered a body that is not a JSON object",
                status=response.status_code,
                method=method,
                path=response.request.url.path,
            )
        return body

    @staticmethod
    def _required(answer: dict[str, Any], key: str, method: str, path: str) -> str:
        value = answer.get(key)
        if not value:
            raise SigfoxError(f"Sigfox's answer lacks '{key}'", method=method, path=path)
        return str(value)

    def _send(
        self,
        method: str,
        endpoint: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        device_id: str | None = None,
        secrets: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One logical call: pacing, the request, retries (or `retry_at`), typed errors."""
        secrets = self._secrets + secrets
        defer = self.waits is WaitMode.DEFER
        attempt = 0
        while True:
            permit = self.pacer.acquire(method, endpoint, device_id, defer=defer)
            retry_after: float | None = None
            try:
                response = self._http.request(method, url, params=params, json=json)
            except httpx.TransportError as exc:
                error = self._transport_failed(permit, exc, method, endpoint, url, attempt)
                if defer or method in WRITE_METHODS or attempt >= self.max_retries:
                    if defer:
                        error.retry_at = self.pacer.hold(method, endpoint, device_id)
                    raise error from exc
                why = f"no answer ({type(exc).__name__})"
            else:
                status = response.status_code
                self._answered(permit, method, endpoint, device_id, status)
                if defer and (status == 429 or status >= 500):
                    refusal = error_from_response(response, method, attempts=1, secrets=secrets)
                    refusal.retry_at = self.pacer.hold(method, endpoint, device_id,
                                                       _retry_after(response))
                    raise refusal
                if not self._retryable(method, status, attempt):
                    return self._checked(response, method, attempt, secrets)
                retry_after = _retry_after(response)
                why = _retry_reason(response.status_code)
            self._back_off(method, endpoint, attempt, retry_after, why)
            attempt += 1

    def _transport_failed(
        self, permit: Permit, exc: httpx.TransportError, method: str, endpoint: str, url: str,
        attempt: int,
    ) -> SigfoxConnectionError:
        # Refused before connecting: the server never saw it, so it does not count.
        if _never_sent(exc):
            self.pacer.release(permit)
        else:
            self.pacer.settle(permit)
        self._notify(method, endpoint, None)
        return self._transport_error(exc, method, url, attempt)

    def _answered(
        self, permit: Permit, method: str, endpoint: str, device_id: str | None, status: int
    ) -> None:
        # A 429 was not processed: its slot is given back, the back-off holds the call instead.
        if status == 429:
            self.pacer.release(permit)
        else:
            self.pacer.settle(permit)
        if status != 429 and status < 500:
            self.pacer.succeeded(method, endpoint, device_id)
        self._notify(method, endpoint, status)

    def _retryable(self, method: str, status: int, attempt: int) -> bool:
        if attempt >= self.max_retries:
            return False
        if status == 429:
            return True
        return status >= 500 and method not in WRITE_METHODS

    def _back_off(
        self, method: str, endpoint: str, attempt: int, retry_after: float | None, why: str = ""
    ) -> None:
        delay = full_jitter_delay(
            attempt,
            base=self.backoff_base,
            cap=self.backoff_cap,
            rng=self._rng,
            retry_after=retry_after,
        )
        log.info("sigfox %s %s: %s; retry %d in %.1f s", method, endpoint, why or "failed",
                 attempt + 1, delay)
        self._sleep(delay)

    def _notify(self, method: str, endpoint: str, status: int | None) -> None:
        log.debug("sigfox %s %s -> %s", method, endpoint, status)
        if self._on_call is None:
            return
        try:
            self._on_call(method, endpoint, status)
        except Exception:
            # A metrics or audit hook must not turn a successful DELETE into a failure.
            log.exception("on_call hook failed for %s %s", method, endpoint)

    def _transport_error(
        self, exc: httpx.TransportError, method: str, url: str, attempt: int
    ) -> SigfoxConnectionError:
        path = self._full_path(url)
        # A connect failure never delivered the request; anything later may have.
        unknown = method in WRITE_METHODS and not _never_sent(exc)
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        message = f"Connection to Sigfox {kind} ({type(exc).__name__})"
        if unknown:
            message += "; the change may or may not have been applied: read the backend"
        elif method not in WRITE_METHODS:
            message += f" after {attempt + 1} attempt(s)"
        return SigfoxConnectionError(message, method=method, path=path, outcome_unknown=unknown)

    def _full_path(self, url: str) -> str:
        """The request's path as sent (with the base path), as in HTTP error exceptions."""
        if urlsplit(url).scheme:
            return urlsplit(url).path
        return urlsplit(self.base_url).path + "/" + url.lstrip("/")

    def _checked(
        self, response: httpx.Response, method: str, attempt: int, secrets: tuple[str, ...]
    ) -> httpx.Response:
        if response.status_code < 400:
            return response
        raise error_from_response(response, method, attempts=attempt + 1, secrets=secrets)


def _retry_reason(status: int) -> str:
    if status == 429:
        return "Sigfox's rate limit answered (HTTP 429)"
    return f"Sigfox server error (HTTP {status})"


def _never_sent(exc: httpx.TransportError) -> bool:
    # No connection was made (refused, timed out connecting, or none free in the pool).
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _error_body(response: httpx.Response) -> tuple[str, list[FieldError]]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return response.reason_phrase or f"HTTP {response.status_code}", []
    errors = [
        FieldError(type=e.get("type"), field=e.get("field"), message=e.get("message"))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return str(body.get("message") or response.reason_phrase), errors


class _Where(TypedDict):
    """The request an error answered, as `SigfoxError` takes it."""

    method: str
    path: str


def error_from_response(
    response: httpx.Response, method: str, *, attempts: int = 1, secrets: tuple[str, ...] = ()
) -> SigfoxError:
    """The typed exception for an HTTP error answer (server texts scrubbed of secrets)."""
    status = response.status_code
    path = response.request.url.path
    text, field_errors = _error_body(response)
    text = scrub(text, secrets)
    where: _Where = {"method": method, "path": path}
    if status == 400:
        cleaned = [
            FieldError(e.type, e.field, scrub(e.message or "", secrets) or None)
            for e in field_errors
        ]
        return SigfoxBadRequest(
            f"Sigfox rejected the request ({text})", field_errors=cleaned, **where
        )
    if status == 401:
        return SigfoxUnauthorized("Sigfox refused the API credentials.", status=401, **where)
    if status == 403:
        return SigfoxForbidden(f"Sigfox forbids this ({text}).", status=403, **where)
    if status == 404:
        return SigfoxNotFound(f"Not found ({text}).{_version_hint(path)}", status=404, **where)
    if status == 409:
        hint = ""
        if method == "POST" and path.endswith("/devices/"):
            hint = " After a delete, this means Sigfox has not released the id yet: retry later."
        return SigfoxConflict(f"Conflict ({text}).{hint}", status=409, **where)
    if status == 429:
        return SigfoxRateLimited(
            f"Sigfox's rate limit (HTTP 429) answered {method} {path} {attempts} time(s) in a "
            "row.", attempts=attempts, **where
        )
    if status >= 500:
        return _server_error(status, text, method, path, attempts)
    return SigfoxError(f"Unexpected answer ({text}).", status=status, **where)


def _version_hint(path: str) -> str:
    """Every API v2 path starts with /v2/: a 404 elsewhere is most likely a SIGFOX_API_URL
    written without it, which no amount of checking the device id would fix."""
    if "/v2/" in f"{path}/":
        return ""
    return (" The request went to a path without /v2: SIGFOX_API_URL must end in /v2, like "
            "https://api.sigfox.com/v2.")


def _server_error(
    status: int, text: str, method: str, path: str, attempts: int
) -> SigfoxServerError:
    if method in WRITE_METHODS:
        message = (
            f"Sigfox failed with a server error ({text}); the change may or may not have been "
            "applied: read the backend before trying again."
        )
        return SigfoxServerError(
            message, status=status, method=method, path=path, outcome_unknown=True
        )
    message = f"Sigfox failed with a server error ({text}) after {attempts} attempt(s)."
    return SigfoxServerError(message, status=status, method=method, path=path)
