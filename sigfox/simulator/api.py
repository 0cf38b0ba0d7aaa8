"""The /v2 routes of the simulated Sigfox API: request parsing, one World call, rendering.

Choices where the spec leaves room (see also the package docstring):
- lists are sorted by id (by its hexadecimal value) ascending, or descending for the device list
  with `sort=-id`; any other `sort` is accepted and ignored. An opaque `pageId` cursor (the last
  id shown) stays valid at any depth; `offset` > 40,000 answers 400 as the later revision does,
  and `paging.next` carries the cursor, never an offset;
- the device list honours `minId` / `maxId` (inclusive) with `sort=id` or `-id`, as the spec
  says, and answers 400 with a field error for them otherwise; a simulator started with
  `id_ranges=False` (`--no-id-ranges`) refuses them always, as a backend without them would;
- creation and transfer jobs are both read at GET /devices/bulk/{jobId} (the spec's
  registrationJobStatus counts devices "created, edited or transferred"); restart and
  unsubscribe jobs at their own /{jobId} paths (actionJob);
- a refused DELETE (device with a Valid or Invalid token) answers 403 {"message"}: the spec lists
  400, 403 and 404 for DELETE, and 403 says "not allowed in this state" without a field error.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sigfox.simulator import json_bodies
from sigfox.simulator.api_errors import ApiError, field_error
from sigfox.simulator.backend import World
from sigfox.simulator.index import ALL_IDS, IdRange, decode_cursor, encode_cursor
from sigfox.simulator.request_bodies import HEX_ID

MAX_OFFSET = 40_000
MAX_LIMIT = 100


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}") from exc


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise field_error(name, f"{name} must be an integer", "query") from None
    if not low <= value <= high:
        raise field_error(name, f"{name} must be between {low} and {high}", "query")
    return value


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise field_error(name, f"{name} must be true or false", "query")
    return raw.lower() == "true"


class Paging:
    """limit / offset / pageId of a list request."""

    def __init__(self, request: Request) -> None:
        self.limit = query_int(request, "limit", MAX_LIMIT, 1, MAX_LIMIT)
        self.offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
        token = request.query_params.get("pageId")
        self.after = None if token is None else decode_cursor(token)
        if token is not None and self.after is None:
            raise field_error("pageId", "unknown pageId", "query")
        if token is not None:
            self.offset = 0  # a cursor already says where the page starts

    def next_url(self, request: Request, last_id: str) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items()
                  if k not in ("offset", "pageId")]
        params.append(("pageId", encode_cursor(last_id)))
        return str(request.url.replace(query=urlencode(params)))


def listing(data: list[dict[str, Any]], next_url: str | None) -> JSONResponse:
    paging = {"next": next_url} if next_url else {}
    return JSONResponse({"data": data, "paging": paging})


def page_by_id(items: list[Any], paging: Paging) -> tuple[list[Any], bool]:
    """Keyset page over a small list of entities with an `id`."""
    ordered = sorted(items, key=lambda item: item.id)
    if paging.after is not None:
        ordered = [item for item in ordered if item.id > paging.after]
    ordered = ordered[paging.offset :]
    return ordered[: paging.limit], len(ordered) > paging.limit


def id_span(request: Request, allowed: bool) -> IdRange:
    """The `sort` direction and `minId` / `maxId` bounds of a device list request."""
    query = request.query_params
    sort = query.get("sort")
    descending = sort == "-id"
    bounds: dict[str, int] = {}
    for name in ("minId", "maxId"):
        raw = query.get(name)
        if raw is None:
            continue
        if not allowed:
            raise field_error(name, f"{name} is not supported: list without it", "query")
        if sort not in ("id", "-id"):
            raise field_error(name, f"{name} is only available with sort=id or sort=-id",
                              "query")
        if not HEX_ID.match(raw):
            raise field_error(name, f"{name} must be a device id (1 to 8 hexadecimal digits)",
                              "query")
        bounds[name] = int(raw, 16)
    if not bounds and not descending:
        return ALL_IDS
    return IdRange(bounds.get("minId"), bounds.get("maxId"), descending)


class Api:
    def __init__(self, world: World, *, id_ranges: bool = True) -> None:
        self.world = world
        self.id_ranges = id_ranges

    def routes(self) -> list[Route]:
        r = Route
        return [
            r("/v2/devices/", self.list_devices, methods=["GET"]),
            r("/v2/devices/", self.create_device, methods=["POST"]),
            r("/v2/devices/bulk", self.bulk_create, methods=["POST"]),
            r("/v2/devices/bulk/transfer", self.bulk_transfer, methods=["POST"]),
            r("/v2/devices/bulk/restart", self.bulk_restart, methods=["POST"]),
            r("/v2/devices/bulk/unsubscribe", self.bulk_unsubscribe, methods=["POST"]),
            r("/v2/devices/bulk/restart/{job}", self.restart_job, methods=["GET"]),
            r("/v2/devices/bulk/unsubscribe/{job}", self.unsubscribe_job, methods=["GET"]),
            r("/v2/devices/bulk/{job}", self.registration_job, methods=["GET"]),
            r("/v2/devices/{id}", self.get_device, methods=["GET"]),
            r("/v2/devices/{id}", self.update_device, methods=["PUT"]),
            r("/v2/devices/{id}", self.delete_device, methods=["DELETE"]),
            r("/v2/devices/{id}/unsubscribe", self.unsubscribe, methods=["PUT"]),
            r("/v2/devices/{id}/messages", self.messages, methods=["GET"]),
            r("/v2/device-types/", self.list_device_types, methods=["GET"]),
            r("/v2/device-types/{id}", self.get_device_type, methods=["GET"]),
            r("/v2/device-types/{id}/callbacks", self.list_callbacks, methods=["GET"]),
            r("/v2/device-types/{id}/callbacks", self.create_callback, methods=["POST"]),
            r("/v2/device-types/{id}/callbacks/{cb}/enable", self.enable_callback,
              methods=["PUT"]),
            r("/v2/contract-infos/", self.list_contracts, methods=["GET"]),
            r("/v2/contract-infos/{id}", self.get_contract, methods=["GET"]),
            r("/v2/contract-infos/{id}/devices", self.contract_devices, methods=["GET"]),
            r("/v2/groups/", self.list_groups, methods=["GET"]),
            r("/v2/groups/{id}", self.get_group, methods=["GET"]),
        ]

    # ------------------------------------------------------------------ devices

    async def list_devices(self, request: Request) -> Response:
        paging = Paging(request)
        query = request.query_params
        group_ids = query.get("groupIds")
        return self._device_page(request, paging, {
            "device_id": query.get("id") or None,
            "device_type_id": query.get("deviceTypeId") or None,
            "group_ids": [g for g in group_ids.split(",") if g] if group_ids else None,
            "span": id_span(request, self.id_ranges),
        })

    def _device_page(
        self, request: Request, paging: Paging, filters: dict[str, Any]
    ) -> Response:
        fields = request.query_params.get("fields", "")
        with self.world.lock:
            devices, more = self.world.query_devices(
                **filters, after=paging.after, offset=paging.offset, limit=paging.limit
            )
            data = [json_bodies.device(self.world, d, fields) for d in devices]
        next_url = paging.next_url(request, devices[-1].id) if more and devices else None
        return listing(data, next_url)

    async def create_device(self, request: Request) -> Response:
        device = self.world.create_device(await json_body(request))
        request.scope["sim.device"] = device.id
        location = str(request.url.replace(path=f"/v2/devices/{device.id}", query=""))
        return JSONResponse({"id": device.id}, status_code=201, headers={"Location": location})

    async def get_device(self, request: Request) -> Response:
        with self.world.lock:
            device = self.world.device(request.path_params["id"])
            body = json_bodies.device(self.world, device, request.query_params.get("fields", ""))
        return JSONResponse(body)

    async def update_device(self, request: Request) -> Response:
        self.world.update_device(request.path_params["id"], await json_body(request))
        return Response(status_code=204)

    async def delete_device(self, request: Request) -> Response:
        self.world.delete_device(request.path_params["id"])
        return Response(status_code=204)

    async def unsubscribe(self, request: Request) -> Response:
        self.world.unsubscribe(request.path_params["id"], await json_body(request))
        return Response(status_code=204)

    async def messages(self, request: Request) -> Response:
        limit = query_int(request, "limit", MAX_LIMIT, 1, MAX_LIMIT)
        offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
        since = query_int(request, "since", -1, 0, 2**63 - 1)
        before = query_int(request, "before", -1, 0, 2**63 - 1)
        device = self.world.device(request.path_params["id"])
        page, more = self.world.messages(
            device.id, since=None if since < 0 else since, before=None if before < 0 else before,
            offset=offset, limit=limit,
        )
        next_url = None
        if more:
            params = dict(request.query_params)
            params["offset"] = str(offset + limit)
            next_url = str(request.url.replace(query=urlencode(params)))
        return listing([json_bodies.message(device, m) for m in page], next_url)

    # ------------------------------------------------------------------ bulk jobs

    async def bulk_create(self, request: Request) -> Response:
        job = self.world.job_queue.start("create", await json_body(request))
        return JSONResponse({"total": job.total, "jobId": job.id})

    async def bulk_transfer(self, request: Request) -> Response:
        job = self.world.job_queue.start("transfer", await json_body(request))
        return JSONResponse({"total": job.total, "jobId": job.id})

    async def bulk_restart(self, request: Request) -> Response:
        job = self.world.job_queue.start("restart", await json_body(request))
        return JSONResponse({"jobId": job.id}, status_code=201)

    async def bulk_unsubscribe(self, request: Request) -> Response:
        job = self.world.job_queue.start("unsubscribe", await json_body(request))
        return JSONResponse({"jobId": job.id}, status_code=201)

    async def registration_job(self, request: Request) -> Response:
        job = self.world.job_queue.status(request.path_params["job"], "registration")
        with self.world.lock:
            return JSONResponse(json_bodies.registration_job(job))

    async def restart_job(self, request: Request) -> Response:
        job = self.world.job_queue.status(request.path_params["job"], "restart")
        with self.world.lock:
            return JSONResponse(json_bodies.action_job(job))

    async def unsubscribe_job(self, request: Request) -> Response:
        job = self.world.job_queue.status(request.path_params["job"], "unsubscribe")
        with self.world.lock:
            return JSONResponse(json_bodies.action_job(job))

    # ------------------------------------------------------------------ device types

    async def list_device_types(self, request: Request) -> Response:
        paging = Paging(request)
        fields = request.query_params.get("fields", "")
        contract_id = request.query_params.get("contractId")
        with self.world.lock:
            types = [t for t in self.world.device_types.values()
                     if contract_id is None or contract_id in t.contract_ids]
            page, more = page_by_id(types, paging)
            data = [json_bodies.device_type(self.world, t, fields) for t in page]
        return listing(data, paging.next_url(request, page[-1].id) if more else None)

    async def get_device_type(self, request: Request) -> Response:
        with self.world.lock:
            dtype = self.world.device_type(request.path_params["id"])
            fields = request.query_params.get("fields", "")
            return JSONResponse(json_bodies.device_type(self.world, dtype, fields))

    async def list_callbacks(self, request: Request) -> Response:
        with self.world.lock:
            dtype = self.world.device_type(request.path_params["id"])
            return JSONResponse({"data": [json_bodies.callback(cb) for cb in dtype.callbacks]})

    async def create_callback(self, request: Request) -> Response:
        dtype_id = request.path_params["id"]
        callback = self.world.add_callback(dtype_id, await json_body(request))
        location = str(request.url.replace(
            path=f"/v2/device-types/{dtype_id}/callbacks/{callback.id}", query=""))
        return JSONResponse({"id": callback.id}, status_code=201, headers={"Location": location})

    async def enable_callback(self, request: Request) -> Response:
        enabled = query_bool(request, "enabled")
        if enabled is None:
            raise field_error("enabled", "enabled is required", "query")
        self.world.enable_callback(request.path_params["id"], request.path_params["cb"], enabled)
        return Response(status_code=204)

    # ------------------------------------------------------------------ contracts, groups

    async def list_contracts(self, request: Request) -> Response:
        paging = Paging(request)
        fields = request.query_params.get("fields", "")
        with self.world.lock:
            page, more = page_by_id(list(self.world.contracts.values()), paging)
            data = [json_bodies.contract(self.world, c, fields) for c in page]
        return listing(data, paging.next_url(request, page[-1].id) if more else None)

    async def get_contract(self, request: Request) -> Response:
        with self.world.lock:
            contract = self.world.contract(request.path_params["id"])
            fields = request.query_params.get("fields", "")
            return JSONResponse(json_bodies.contract(self.world, contract, fields))

    async def contract_devices(self, request: Request) -> Response:
        contract = self.world.contract(request.path_params["id"])
        paging = Paging(request)
        return self._device_page(request, paging, {
            "contract_id": contract.id,
            "device_type_id": request.query_params.get("deviceTypeId") or None,
        })

    async def list_groups(self, request: Request) -> Response:
        paging = Paging(request)
        with self.world.lock:
            page, more = page_by_id(list(self.world.groups.values()), paging)
            data = [json_bodies.group(self.world, g) for g in page]
        return listing(data, paging.next_url(request, page[-1].id) if more else None)

    async def get_group(self, request: Request) -> Response:
        with self.world.lock:
            group = self.world.group(request.path_params["id"])
            return JSONResponse(json_bodies.group(self.world, group))
