"""HTTP mode: the Starlette app Slack and Sigfox post to, and Prometheus scrapes.

Bolt's own Starlette adapter calls the *sync* `App.dispatch` straight from an `async def`, which
stalls the event loop for as long as a listener runs (with `process_before_response=True`, the
whole command). Here every dispatch goes through `run_in_threadpool`, so health checks, metrics
and other deliveries keep being served meanwhile. Before Bolt sees a request, `bot.slack_edge`
caps its size, verifies Slack's signature over the raw bytes and parses it (without Bolt's
"payload" heuristic); Bolt gets the parsed document and does not verify again.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from slack_bolt import App, BoltRequest, BoltResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.ack_gate import AckGate, gate_of
from bot.slack_edge import MAX_SLACK_BYTES, Refusal, check_size, parse, verify
from commands import metrics
from commands.metrics import render_metrics

log = logging.getLogger(__name__)

UplinkHandler = Callable[[dict[str, Any]], None]
Health = Callable[[], dict[str, Any]]

CALLBACK_SECRET_HEADER = "X-Sigfox-Callback-Secret"
MAX_UPLINK_BYTES = 16 * 1024  # a DATA callback is a few hundred bytes; refuse anything huge
# Used with fullmatch: `$` alone would let a trailing newline through ("1A2B3C\n").
_DEVICE_ID = re.compile(r"[0-9A-Fa-f]{1,8}")
_PAYLOAD = re.compile(r"(?:[0-9A-Fa-f]{2}){0,12}")  # Sigfox uplinks carry 0 to 12 bytes
MAX_SEQ_NUMBER = 4095  # Sigfox sequence numbers are 12 bits


class UplinkError(ValueError):
    """A DATA callback body that cannot be used; the message says what is wrong."""


# --------------------------------------------------------------------------- Slack


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed `limit`: by its declared length
    before reading, else while streaming, so a huge body never sits in memory."""
    check_size(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refusal(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def to_bolt_request(request: Request, body: dict[str, Any]) -> BoltRequest:
    """The verified, parsed document as JSON (so Bolt parses nothing itself), with the
    multi-valued headers and query kept whole."""
    headers: dict[str, str | Sequence[str]] = {
        k: request.headers.getlist(k) for k in request.headers if k != "content-type"
    }
    headers["content-type"] = ["application/json"]
    query: dict[str, Sequence[str]] = {
        k: request.query_params.getlist(k) for k in request.query_params
    }
    return BoltRequest(body=json.dumps(body), query=query, headers=headers)


def to_response(bolt_response: BoltResponse) -> Response:
    return Response(
        content=bolt_response.body,
        status_code=bolt_response.status,
        headers=bolt_response.first_headers_without_set_cookie(),
    )


def _slack_events(bolt_app: App, signing_secret: str) -> Callable[[Request], Any]:
    # The work behind a request waits while requests are being answered (bot.ack_gate).
    gate = gate_of(bolt_app) or AckGate()
    metrics.METRICS.watch_collections(busy=lambda: gate.answering > 0)

    async def slack_events(request: Request) -> Response:
        phases = AnswerPhases()
        gate.enter()
        try:
            response = await answer(request, phases)
        except BaseException:
            gate.leave()
            raise

        def sent() -> None:
            gate.leave()
            phases.sent()

        # Left once the answer is sent, not merely built: the write is part of the ack.
        response.background = BackgroundTask(sent)
        return response

    async def answer(request: Request, phases: AnswerPhases) -> Response:
        try:
            raw = await read_capped(request, MAX_SLACK_BYTES)
            phases.mark("read")
            text = verify(raw, request.headers, signing_secret)
            body = parse(text, request.headers.get("content-type", ""))
            phases.mark("verify")
        except Refusal as refusal:
            return _error(refusal.status, refusal.message)
        bolt_request = to_bolt_request(request, body)
        bolt_response = await run_in_threadpool(phases.dispatch, bolt_app, bolt_request)
        return to_response(bolt_response)

    return slack_events


class AnswerPhases:
    """Where one Slack answer spends its time, into `sigfox_bot_slack_answer_seconds`: the
    figures that say whether a slow ack waited for the loop, a thread, the GIL or itself."""

    def __init__(self) -> None:
        self.started = self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        metrics.METRICS.observe_answer(phase, now - self._last)
        self._last = now

    def dispatch(self, bolt_app: App, bolt_request: BoltRequest) -> BoltResponse:
        """Bolt's dispatch, in a worker thread: how long the thread took to come, how long the
        dispatch took and how much of that was this thread's own CPU."""
        self.mark("queue")
        cpu = time.thread_time()
        response = bolt_app.dispatch(bolt_request)
        metrics.METRICS.observe_answer("dispatch_cpu", time.thread_time() - cpu)
        self.mark("dispatch")
        return response

    def sent(self) -> None:
        self.mark("send")
        metrics.METRICS.observe_answer("total", time.perf_counter() - self.started)


# --------------------------------------------------------------------------- health, metrics


def _healthz(health: Health | None) -> Callable[[Request], Any]:
    async def healthz(_: Request) -> Response:
        try:
            report = await run_in_threadpool(health) if health else {"ok": True}
        except Exception as exc:  # a failing probe is an unhealthy service, not a 500 page
            log.exception("health check failed")
            report = {"ok": False, "error": type(exc).__name__}
        status = 200 if report.get("ok", True) else 503
        return JSONResponse(report, status_code=status)

    return healthz


def _readyz(ready: Health | None) -> Callable[[Request], Any]:
    async def readyz(_: Request) -> Response:
        if ready is None:
            report: dict[str, Any] = {"ok": True, "checks": [], "failing": []}
        else:
            report = await run_in_threadpool(ready)
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    return readyz


async def _metrics(_: Request) -> Response:
    content, content_type = render_metrics()
    return Response(content, headers={"Content-Type": content_type})


# --------------------------------------------------------------------------- Sigfox DATA callback


def parse_uplink(raw: bytes) -> dict[str, Any]:
    """Validate a DATA callback body; returns it with the four fields normalised.

    The callback's body is a template filled in by the Sigfox backend, so numbers may arrive as
    JSON numbers or as digit strings; both are accepted. Other fields are passed through.
    """
    try:
        # Decoded here: json.loads on bytes guesses UTF-16/32 from the first bytes.
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UplinkError("body is not UTF-8 text") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UplinkError(f"body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(body, dict):
        raise UplinkError("body must be a JSON object with device, time, data and seqNumber")
    missing = [k for k in ("device", "time", "data", "seqNumber") if k not in body]
    if missing:
        raise UplinkError(f"missing field(s): {', '.join(missing)}")
    return {
        **body,
        "device": _device(body["device"]),
        "time": _non_negative_int("time", body["time"]),
        "data": _payload(body["data"]),
        "seqNumber": _seq_number(body["seqNumber"]),
    }


def _device(value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE_ID.fullmatch(value):
        raise UplinkError("device must be a Sigfox device id: 1 to 8 hexadecimal digits")
    return value.upper()


def _payload(value: Any) -> str:
    if not isinstance(value, str) or not _PAYLOAD.fullmatch(value):
        raise UplinkError("data must be hexadecimal, an even number of digits, at most 12 bytes")
    return value.lower()


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise UplinkError(f"{name} must be a non-negative integer")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise UplinkError(f"{name} must be a non-negative integer")
    return value


def _seq_number(value: Any) -> int:
    number = _non_negative_int("seqNumber", value)
    if number > MAX_SEQ_NUMBER:
        raise UplinkError(f"seqNumber must be at most {MAX_SEQ_NUMBER}")
    return number


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def _uplink(secret: str, handler: UplinkHandler | None) -> Callable[[Request], Any]:
    expected = secret.encode()

    async def uplink(request: Request) -> Response:
        try:
            check_size(request.headers.get("content-length"), MAX_UPLINK_BYTES)
        except Refusal as refusal:
            return _error(refusal.status, refusal.message)
        given = request.headers.get(CALLBACK_SECRET_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):  # constant time: no guessing byte by byte
            return _error(401, f"missing or wrong {CALLBACK_SECRET_HEADER}")
        try:
            raw = await read_capped(request, MAX_UPLINK_BYTES)
        except Refusal as refusal:
            return _error(refusal.status, refusal.message)
        try:
            message = parse_uplink(raw)
        except UplinkError as exc:
            return _error(400, str(exc))
        if handler is not None:
            # The handler only records the uplink (workflows pick it up on their next tick),
            # so answering after it returns is still quick; a thread keeps the loop free.
            try:
                await run_in_threadpool(handler, message)
            except Exception:
                log.exception("uplink handler failed for device %s", message["device"])
                return _error(500, "the uplink could not be recorded")
        return Response(status_code=204)

    return uplink


# --------------------------------------------------------------------------- assembly


def create_web_app(
    bolt_app: App,
    *,
    signing_secret: str | None = None,
    uplink_handler: UplinkHandler | None = None,
    callback_secret: str | None = None,
    health: Health | None = None,
    ready: Health | None = None,
) -> Starlette:
    """The HTTP mode server. `/slack/events` exists only when `signing_secret` is set (HTTP
    mode; Socket Mode needs only health, metrics and the uplink), `/sigfox/uplink` only when
    `callback_secret` is.

    `/healthz` is liveness (the process and its database answer); `/readyz` readiness (every
    named check of `ready`, 503 with the failing ones' reasons when one fails)."""
    routes = [
        Route("/healthz", _healthz(health), methods=["GET"]),
        Route("/readyz", _readyz(ready), methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
    ]
    if signing_secret:
        routes.append(Route("/slack/events", _slack_events(bolt_app, signing_secret),
                            methods=["POST"]))
    if callback_secret:
        routes.append(
            Route("/sigfox/uplink", _uplink(callback_secret, uplink_handler), methods=["POST"])
        )
    return Starlette(routes=routes)


def run_http(app: Starlette, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve until interrupted. Behind a TLS-terminating proxy in production: Slack posts HTTPS."""
    # log_config=None: uvicorn installs no handler of its own, so its server and access lines
    # reach the root logger and come out in the bot's format (JSON with --log-format json),
    # on stderr, redacted, instead of uvicorn's plain lines (access lines even on stdout).
    uvicorn.run(app, host=host, port=port, log_config=None, log_level=None, proxy_headers=True)
