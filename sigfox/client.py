"""A synchronous client for the Sigfox API v2 (httpx + pydantic): its endpoints, as callers use
them.

What it guarantees to callers:

- Lists are walked lazily through `paging.next`, followed verbatim, one page in memory at a
  time; `offset` is never used (the service caps it at 40,000) (see `listing`).
- Requests are paced to the published limits before they are hit (see `pacing`).
- How the client waits is chosen when it is wired (`WaitMode`): a sleeping client retries in
  place, a deferring one raises at once with `retry_at`; writes are never retried on 5xx or a
  cut connection, the error saying the outcome is unknown (see `transport`).
- Failures surface as the typed exceptions of `errors`, never carrying a password or a PAC
  (see `http_errors`).
- Bulk jobs' bodies and status endpoints are those of the Swagger document (see `bulk`).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from sigfox import bulk
from sigfox.call_ledger import CallLedger
from sigfox.errors import SigfoxConfigError
from sigfox.listing import MAX_PAGE_SIZE, Page, iter_items, iter_pages, page_limit, read_page
from sigfox.models.jobs import BulkJob, JobKind
from sigfox.models.requests import (
    BulkDeviceCreate,
    CallbackCreate,
    DeviceCreate,
    DeviceUpdate,
    normalize_device_id,
)
from sigfox.models.resources import Callback, ContractInfo, Device, DeviceType, Group, Message
from sigfox.pacing import Pacer
from sigfox.transport import OnCall, PacedTransport, WaitMode, segment, without_unset

__all__ = ["DEFAULT_API_URL", "SigfoxClient", "WaitMode"]

DEFAULT_API_URL = "https://api.sigfox.com/v2"


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
        self._calls = PacedTransport(
            base_url, login, password, timeout=timeout, rate_limits=rate_limits,
            max_retries=max_retries, backoff_base=backoff_base, backoff_cap=backoff_cap,
            sleep=sleep, on_call=on_call, transport=transport, clock=clock, waits=waits,
            ledger=ledger,
        )
        self.base_url = self._calls.base_url

    @property
    def pacer(self) -> Pacer:
        return self._calls.pacer

    @property
    def waits(self) -> WaitMode:
        return self._calls.waits

    @property
    def longest_call(self) -> float:
        """The longest one call can last, in seconds: every attempt with its pacing wait and
        its four timeouts (pool, connect, write, read), and the back-offs between attempts.
        A write whose process died during the call cannot land later than this after it
        started (plus what the server itself may take: the core's landing margin)."""
        return self._calls.longest_call

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
        sibling._calls = self._calls.with_waits(waits)
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
        self._calls.close()

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
        params = without_unset(
            id=normalize_device_id(id) if id else None,
            deviceTypeId=device_type_id,
            groupIds=",".join(group_ids) if group_ids is not None else None,
            limit=page_limit(page_size),
        )
        return iter_items(self._calls, "/devices/", "/devices/", params, Device)

    def iter_all_devices(self, *, workers: int = 8, page_size: int = 100) -> Iterator[Device]:
        """Every device of the fleet, walked over disjoint id ranges at once (see `fleet_walk`).

        The same devices as `iter_devices()`, not in id order, much sooner when each answer
        takes a while; one walk where the backend refuses id ranges.
        """
        from sigfox.fleet_walk import walk_fleet

        return walk_fleet(self, workers=workers, page_size=page_limit(page_size))

    def iter_device_pages(
        self, *, min_id: str | None = None, max_id: str | None = None, page_size: int = 100
    ) -> Iterator[list[Device]]:
        """Pages of the devices whose id lies in [min_id, max_id] (inclusive, either open),
        by id (`sort=id`), following `paging.next`."""
        params = without_unset(
            sort="id",
            minId=normalize_device_id(min_id) if min_id else None,
            maxId=normalize_device_id(max_id) if max_id else None,
            limit=page_limit(page_size),
        )
        for page in iter_pages(self._calls, "/devices/", "/devices/", params):
            yield [Device.model_validate(item) for item in page]

    def device_page(
        self, *, min_id: str | None = None, max_id: str | None = None, offset: int = 0,
        page_size: int = 100,
    ) -> Page[Device]:
        """One page of the devices by id (`sort=id`): from `offset` places after the first
        whose id is at least `min_id`, up to `max_id` (inclusive, either open). One list call;
        `iter_device_pages_after` continues it."""
        params = without_unset(
            sort="id",
            minId=normalize_device_id(min_id) if min_id else None,
            maxId=normalize_device_id(max_id) if max_id else None,
            offset=offset or None,
            limit=page_limit(page_size),
        )
        page = read_page(self._calls, "/devices/", "/devices/", params)
        return Page([Device.model_validate(item) for item in page.items], page.next_url)

    def iter_device_pages_after(self, page: Page[Device]) -> Iterator[list[Device]]:
        """The pages after `page`, following its `paging.next` verbatim."""
        if page.next_url is None:
            return
        for items in iter_pages(self._calls, "/devices/", page.next_url, None):
            yield [Device.model_validate(item) for item in items]

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
        body = self._calls.json("GET", "/devices/{id}", f"/devices/{did}", device_id=did)
        return Device.model_validate(body)

    def create_device(self, device: DeviceCreate) -> str:
        """POST /devices/; returns the id. A 409 after a delete means "not released yet"."""
        body = self._calls.json(
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
        self._calls.send("PUT", "/devices/{id}", f"/devices/{did}", json=payload, device_id=did)

    def delete_device(self, device_id: str) -> None:
        did = normalize_device_id(device_id)
        self._calls.send("DELETE", "/devices/{id}", f"/devices/{did}", device_id=did)

    def unsubscribe_device(self, device_id: str, unsubscription_time_ms: int) -> None:
        did = normalize_device_id(device_id)
        payload = {"unsubscriptionTime": int(unsubscription_time_ms)}
        path = f"/devices/{did}/unsubscribe"
        self._calls.send("PUT", "/devices/{id}/unsubscribe", path, json=payload)

    def iter_device_messages(
        self,
        device_id: str,
        *,
        since_ms: int | None = None,
        before_ms: int | None = None,
        page_size: int = 100,
    ) -> Iterator[Message]:
        did = normalize_device_id(device_id)
        params = without_unset(since=since_ms, before=before_ms, limit=page_limit(page_size))
        path = f"/devices/{did}/messages"
        return iter_items(self._calls, "/devices/{id}/messages", path, params, Message,
                          device_id=did)

    # --- device types and callbacks ----------------------------------------------------------

    def iter_device_types(self, *, page_size: int = 100) -> Iterator[DeviceType]:
        params = {"limit": page_limit(page_size)}
        return iter_items(self._calls, "/device-types/", "/device-types/", params, DeviceType)

    def get_device_type(self, device_type_id: str) -> DeviceType:
        path = f"/device-types/{segment(device_type_id)}"
        return DeviceType.model_validate(self._calls.json("GET", "/device-types/{id}", path))

    def iter_device_type_callbacks(self, device_type_id: str) -> Iterator[Callback]:
        path = f"/device-types/{segment(device_type_id)}/callbacks"
        return iter_items(self._calls, "/device-types/{id}/callbacks", path, {}, Callback)

    def create_callback(self, device_type_id: str, body: CallbackCreate | Mapping[str, Any]) -> str:
        """POST /device-types/{id}/callbacks; returns the new callback's id."""
        payload = body.to_body() if isinstance(body, CallbackCreate) else dict(body)
        path = f"/device-types/{segment(device_type_id)}/callbacks"
        answer = self._calls.json("POST", "/device-types/{id}/callbacks", path, json=payload)
        return self._calls.required(answer, "id", "POST", path)

    def enable_callback(self, device_type_id: str, callback_id: str, enabled: bool) -> None:
        template = "/device-types/{id}/callbacks/{callbackId}/enable"
        path = f"/device-types/{segment(device_type_id)}/callbacks/{segment(callback_id)}/enable"
        self._calls.send("PUT", template, path, params={"enabled": enabled})

    # --- contracts and groups ----------------------------------------------------------------

    def iter_contract_infos(self, *, page_size: int = 100) -> Iterator[ContractInfo]:
        params = {"limit": page_limit(page_size)}
        return iter_items(self._calls, "/contract-infos/", "/contract-infos/", params, ContractInfo)

    def get_contract_info(self, contract_id: str) -> ContractInfo:
        path = f"/contract-infos/{segment(contract_id)}"
        return ContractInfo.model_validate(self._calls.json("GET", "/contract-infos/{id}", path))

    def iter_contract_devices(
        self, contract_id: str, *, device_type_id: str | None = None, page_size: int = 100
    ) -> Iterator[Device]:
        """Devices holding a token on the contract."""
        path = f"/contract-infos/{segment(contract_id)}/devices"
        params = without_unset(deviceTypeId=device_type_id, limit=page_limit(page_size))
        return iter_items(self._calls, "/contract-infos/{id}/devices", path, params, Device)

    def iter_groups(self, *, page_size: int = 100) -> Iterator[Group]:
        params = {"limit": page_limit(page_size)}
        return iter_items(self._calls, "/groups/", "/groups/", params, Group)

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
        body, pacs = bulk.create_body(device_type_id, devices, prefix=prefix, prototype=prototype,
                                      product_certificate_key=product_certificate_key)
        return self._submit_job("/devices/bulk", body, secrets=pacs)

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
        body = bulk.transfer_body(device_type_id, device_ids, keep_history=keep_history,
                                  activable=activable)
        return self._submit_job("/devices/bulk/transfer", body)

    def bulk_restart(self, device_ids: Iterable[str]) -> str:
        """POST /devices/bulk/restart; poll with `get_job(JobKind.RESTART, id)`."""
        return self._submit_job("/devices/bulk/restart", bulk.restart_body(device_ids))

    def bulk_unsubscribe(self, device_ids: Iterable[str], unsubscription_time_ms: int) -> str:
        """POST /devices/bulk/unsubscribe; poll with `get_job(JobKind.UNSUBSCRIBE, id)`."""
        body = bulk.unsubscribe_body(device_ids, unsubscription_time_ms)
        return self._submit_job("/devices/bulk/unsubscribe", body)

    def get_job(self, kind: JobKind | str, job_id: str) -> BulkJob:
        """Status of a bulk job, read from the status endpoint the spec gives its kind."""
        kind = JobKind(kind)
        template, path = bulk.status_endpoint(kind, job_id)
        return bulk.job_from_status(kind, job_id, self._calls.json("GET", template, path))

    def _submit_job(
        self, endpoint: str, payload: dict[str, Any], secrets: tuple[str, ...] = ()
    ) -> str:
        answer = self._calls.json("POST", endpoint, endpoint, json=payload, secrets=secrets)
        return self._calls.required(answer, "jobId", "POST", endpoint)
