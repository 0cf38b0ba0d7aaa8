"""The simulated backend's HTTP server: /v2 behind Basic auth, rate limits and injected faults,
plus the unauthenticated /_sim control endpoints (a loopback test tool).

In tests: `with SimulatorServer(devices=50) as sim:` then talk to `sim.base_url` with
`(sim.login, sim.password)`, and set up state through `sim.world` and `sim.clock`.
From the shell: `sigfox-bot simulator --port 8040` (calls `run_simulator`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import logging
import os
import random
import secrets
import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from sigfox.simulator import json_bodies
from sigfox.simulator.api import Api, json_body
from sigfox.simulator.api_errors import ApiError, field_error
from sigfox.simulator.backend import World
from sigfox.simulator.callbacks import Dispatcher
from sigfox.simulator.clock import SimClock
from sigfox.simulator.control import CallLog, Faults, parse_fault
from sigfox.simulator.fleet_generator import build_fleet
from sigfox.simulator.latency import LatencyModel
from sigfox.simulator.ratelimit import RateLimiter

log = logging.getLogger(__name__)


_COLLECTIONS = frozenset({"/v2/devices", "/v2/device-types", "/v2/contract-infos", "/v2/groups"})


class DroppedConnection(Exception):
    """Raised after the response has started: uvicorn then aborts the connection, which is
    what a client sees when the network drops mid-response."""


class _HideDroppedConnections(logging.Filter):
    """Injected drops are expected: keep uvicorn from logging them as application crashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


_DROP_FILTER = _HideDroppedConnections()


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"message": exc.detail}, status_code=exc.status_code)


class SimulatorApp:
    """The ASGI application. Wraps the routes with the cross-cutting behaviour of the real
    service (auth, limits) and of the test harness (faults, call log)."""

    def __init__(
        self, world: World, login: str, password: str, *, rate_limits: bool = True,
        latency: LatencyModel | None = None, id_ranges: bool = True,
    ) -> None:
        self.world = world
        self.login = login
        self.password = password
        self.limiter = RateLimiter(world.clock.now, enabled=rate_limits)
        self.latency = latency
        self.waiting = _InFlight()
        self.faults = Faults()
        self.calls = CallLog()
        self.dispatcher = Dispatcher()
        logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)  # idempotent for one filter
        self.routes = Starlette(
            routes=[*Api(world, id_ranges=id_ranges).routes(), *self._control_routes()],
            exception_handlers={ApiError: api_error, HTTPException: http_error},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.routes(scope, receive, send)
            return
        if scope["path"] in _COLLECTIONS:
            # Sigfox answers `/v2/devices` as `/v2/devices/`; a redirect would cost a client
            # that leaves the slash out a second round trip (and a second answer time).
            scope = {**scope, "path": scope["path"] + "/"}
        entry: dict[str, Any] = {
            "method": scope["method"], "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "time": self.world.clock.now(), "status": 0,
        }
        try:
            await self._api_call(scope, receive, send, entry)
        finally:
            if scope.get("sim.device"):
                entry["device"] = scope["sim.device"]
            self.calls.record(entry)

    async def _api_call(
        self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any]
    ) -> None:
        fault = self.faults.take(scope["method"], scope["path"])
        if fault is not None and fault.drop:
            entry["dropped"] = True
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", b"1000")]})
            raise DroppedConnection(f"fault: dropped {scope['method']} {scope['path']}")
        if fault is not None and fault.delay is not None:
            # A slow backend has received the whole request and is slow to process it: the
            # call still takes effect if its caller hangs up or dies meanwhile.
            receive = await _received_whole(receive)
            await asyncio.sleep(fault.delay)
        response = self._gate(scope, fault)
        # After the gate: the rate limiter dates a call when it arrives, as a gateway would,
        # and the answer then takes its time.
        await self._answer_time()
        if response is not None:
            entry["status"] = response.status_code
            await response(scope, receive, send)
            return

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self.routes(scope, receive, send_and_note)

    def _gate(self, scope: Scope, fault: Any) -> Response | None:
        """An early answer: an injected status, 401 without valid credentials, or 429."""
        if fault is not None and fault.status is not None:
            # The header tells a test's spec checks that this status was asked for, not
            # chosen by the simulator (an injected 503 is outside openapi.json on purpose).
            return JSONResponse({"message": f"Simulated fault {fault.status}"},
                                status_code=fault.status, headers={"X-Sim-Fault": "status"})
        if not self._authorized(scope):
            return JSONResponse({"message": "Unauthorized"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="Sigfox API"'})
        if not self.limiter.allow(scope["method"], scope["path"]):
            return JSONResponse({"message": "Too many requests"}, status_code=429)
        return None

    async def _answer_time(self) -> None:
        if self.latency is None:
            return
        with self.waiting:
            await asyncio.sleep(self.latency.sample())

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(login, self.login) and secrets.compare_digest(
            password, self.password
        )

    # ------------------------------------------------------------------ /_sim controls

    def _control_routes(self) -> list[Route]:
        r = Route
        return [
            r("/_sim/devices/{id}/uplink", self.uplink, methods=["POST"]),
            r("/_sim/clock", self.get_clock, methods=["GET"]),
            r("/_sim/clock/advance", self.advance_clock, methods=["POST"]),
            r("/_sim/faults", self.add_fault, methods=["POST"]),
            r("/_sim/faults", self.list_faults, methods=["GET"]),
            r("/_sim/faults", self.clear_faults, methods=["DELETE"]),
            r("/_sim/calls", self.list_calls, methods=["GET"]),
            r("/_sim/calls", self.clear_calls, methods=["DELETE"]),
            r("/_sim/callbacks", self.list_deliveries, methods=["GET"]),
            r("/_sim/latency", self.get_latency, methods=["GET"]),
        ]

    async def uplink(self, request: Request) -> Response:
        body = await json_body(request) or {}
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        device, message, delivered = self.world.uplink(request.path_params["id"], body.get("data"))
        callbacks = self.world.data_callbacks(device) if delivered else []
        self.dispatcher.send_all(callbacks, {
            "device": device.id, "time": str(message.time_ms // 1000), "data": message.data,
            "seqNumber": str(message.seq_number), "deviceTypeId": device.device_type_id,
        })
        with self.world.lock:
            return JSONResponse({
                "device": json_bodies.device(self.world, device),
                "message": json_bodies.message(device, message),
                "delivered": delivered, "callbacks": len(callbacks),
            })

    def _clock_body(self) -> dict[str, Any]:
        now = self.world.clock.now()
        return {"time": now, "timeMs": int(now * 1000)}

    async def get_clock(self, request: Request) -> Response:
        return JSONResponse(self._clock_body())

    async def advance_clock(self, request: Request) -> Response:
        body = await json_body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise field_error("seconds", "seconds must be a non-negative number")
        self.world.clock.advance(float(seconds))
        return JSONResponse(self._clock_body())

    async def add_fault(self, request: Request) -> Response:
        self.faults.add(parse_fault(await json_body(request)))
        return JSONResponse({"faults": self.faults.pending()}, status_code=201)

    async def list_faults(self, request: Request) -> Response:
        return JSONResponse({"faults": self.faults.pending()})

    async def clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(status_code=204)

    async def list_calls(self, request: Request) -> Response:
        return JSONResponse(self.calls.all())

    async def clear_calls(self, request: Request) -> Response:
        self.calls.clear()
        return Response(status_code=204)

    async def list_deliveries(self, request: Request) -> Response:
        return JSONResponse(list(self.dispatcher.deliveries))

    async def get_latency(self, request: Request) -> Response:
        """The latency model and how many answers wait at once (now and at the most)."""
        model = self.latency
        return JSONResponse({
            "medianMs": 0 if model is None else model.median * 1000,
            "description": "off" if model is None else model.describe(),
            "waiting": self.waiting.now, "peakWaiting": self.waiting.peak,
        })


class _InFlight:
    """Counts answers waiting out their latency; the peak shows they overlap."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        self.now -= 1


# ---------------------------------------------------------------------- running it


def make_world(
    devices: int = 1000, seed: int = 1, delete_hold: float = 1800.0, job_delay: float = 0.2,
    clock: SimClock | None = None, hide_pacs: bool = False,
) -> World:
    world = World(clock, delete_hold=delete_hold, job_delay=job_delay, seed=seed,
                  hide_pacs=hide_pacs)
    build_fleet(world, devices, seed)
    return world


def credentials(login: str | None, password: str | None) -> tuple[str, str, bool]:
    """Login and password from the arguments, else the environment, else generated
    (the flag says whether any was generated, so it can be shown to the operator)."""
    env_login = login or os.environ.get("SIGFOX_API_LOGIN")
    env_password = password or os.environ.get("SIGFOX_API_PASSWORD")
    generated = not (env_login and env_password)
    return (
        env_login or f"sim-{secrets.token_hex(6)}",
        env_password or secrets.token_urlsafe(18),
        generated,
    )


class _QuickServer(uvicorn.Server):
    """uvicorn's server ticking every 10 ms instead of 100 ms, so a stop request is seen
    sooner: test suites start and stop dozens of simulators."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            await asyncio.sleep(0.01)


class SimulatorServer:
    """A simulator served by uvicorn in a background thread on 127.0.0.1 and a free port."""

    def __init__(
        self, *, devices: int = 20, seed: int = 1, delete_hold: float = 1800.0,
        rate_limits: bool = True, job_delay: float = 0.2, login: str | None = None,
        password: str | None = None, host: str = "127.0.0.1", port: int = 0,
        latency: LatencyModel | None = None, id_ranges: bool = True, hide_pacs: bool = False,
    ) -> None:
        self.world = make_world(devices, seed, delete_hold, job_delay, hide_pacs=hide_pacs)
        self.clock = self.world.clock
        self.login, self.password, _ = credentials(login or "sim-user", password or "sim-pass")
        self.app = SimulatorApp(self.world, self.login, self.password, rate_limits=rate_limits,
                                latency=latency, id_ranges=id_ranges)
        self._host, self._port = host, port
        self._server: _QuickServer | None = None
        self._thread: threading.Thread | None = None
        self._control_client: httpx.Client | None = None
        self.root_url = ""

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    @property
    def auth(self) -> tuple[str, str]:
        return self.login, self.password

    @property
    def calls(self) -> CallLog:
        return self.app.calls

    @property
    def faults(self) -> Faults:
        return self.app.faults

    @property
    def limiter(self) -> RateLimiter:
        return self.app.limiter

    # ------------------------------------------------------------------ conveniences

    def client(self, **options: Any) -> httpx.Client:
        """An httpx client on `base_url` with the simulator's credentials."""
        return httpx.Client(base_url=self.base_url, auth=self.auth, **options)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call a /_sim control endpoint over HTTP; the JSON answer, or None for 204."""
        if self._control_client is None:
            # One client for all control calls: building one per call costs ~30 ms.
            self._control_client = httpx.Client(timeout=10)
        response = self._control_client.request(method, f"{self.root_url}/_sim{path}", json=body)
        response.raise_for_status()
        return None if response.status_code == 204 else response.json()

    def uplink(self, device_id: str, data: str | None = None) -> dict[str, Any]:
        """The device sends a message (token rules, then DATA callbacks)."""
        return self.control("POST", f"/devices/{device_id}/uplink", {"data": data or ""})

    def advance(self, seconds: float) -> float:
        """Move the virtual clock; returns the new time in epoch seconds."""
        return float(self.control("POST", "/clock/advance", {"seconds": seconds})["time"])

    def fault(
        self, path: str, *, method: str = "*", status: int | None = None,
        delay: float | None = None, drop: bool = False, count: int = 1,
    ) -> None:
        """Make the next `count` matching /v2 calls fail (see control.py for matching)."""
        body: dict[str, Any] = {"method": method, "path": path, "count": count}
        if status is not None:
            body["status"] = status
        if delay is not None:
            body["delay"] = delay
        if drop:
            body["drop"] = True
        self.control("POST", "/faults", body)

    def call_log(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "/calls"))

    def start(self) -> SimulatorServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it on Linux: without it, Nagle + delayed ACK add ~40 ms to
        # every response (uvicorn writes headers and body separately).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self._host, self._port))
        host, port = sock.getsockname()[:2]
        self.root_url = f"http://{host}:{port}"
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning",
                                timeout_graceful_shutdown=1, access_log=False)
        self._server = _QuickServer(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
            name="sigfox-simulator",
        )
        self._thread.start()
        self._wait_started()
        return self

    def _wait_started(self) -> None:
        deadline = time.monotonic() + 10
        assert self._server is not None and self._thread is not None
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            # force_exit: do not wait for clients' idle keep-alive connections (fast teardown).
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(timeout=5)
        if self._control_client is not None:
            self._control_client.close()
        self.world.stop()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_simulator(
    host: str = "127.0.0.1", port: int = 8040, devices: int = 1000, seed: int = 1,
    delete_hold: float = 1800.0, rate_limits: bool = True, latency: float = 0.0,
    id_ranges: bool = True, hide_pacs: bool = False,
) -> None:
    """Serve the simulator in the foreground (the `sigfox-bot simulator` command)."""
    started = time.monotonic()
    world = make_world(devices, seed, delete_hold, hide_pacs=hide_pacs)
    # The fleet lives as long as this process: move it out of the cyclic collector's reach.
    # Otherwise every full collection walks all of it (measured: ~190 ms at 150,000 devices,
    # during which the event loop answers nothing). Not done for in-process SimulatorServer:
    # a frozen world would outlive its stop() (the world and its clock reference each other).
    gc.freeze()
    login, password, generated = credentials(None, None)
    model = LatencyModel(latency, rng=random.Random(seed)) if latency > 0 else None
    app = SimulatorApp(world, login, password, rate_limits=rate_limits, latency=model,
                       id_ranges=id_ranges)
    print(f"Simulated Sigfox API v2: http://{host}:{port}/v2 "
          f"({devices} devices, seed {seed}, built in {time.monotonic() - started:.1f}s)")
    if generated:
        print(f"SIGFOX_API_LOGIN={login}")
        print(f"SIGFOX_API_PASSWORD={password}")
    print(f"Controls (no auth): http://{host}:{port}/_sim/  "
          f"rate limits {'on' if rate_limits else 'off'}, delete hold {delete_hold:g}s, "
          f"latency {'off' if model is None else model.describe()}, "
          f"id ranges {'on' if id_ranges else 'refused'}"
          + (", PACs hidden from the API user" if hide_pacs else ""))
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off")
    finally:
        world.stop()


async def _received_whole(receive: Receive) -> Receive:
    """Read the request body now; the returned `receive` replays it, then reports the
    client's disconnect only when asked again (as uvicorn does)."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replayed() -> Message:
        if replay:
            return replay.pop()
        return await receive()

    return replayed
