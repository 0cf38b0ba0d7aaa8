"""A stand-in for Slack's Web API, served on loopback, that answers and refuses like Slack.

Point a real `slack_sdk.WebClient(base_url=standin.url)` (or `SLACK_API_URL`) at it. It:

- checks the bot token (`Authorization: Bearer`, or a `token` form field as Slack still accepts):
  `not_authed` without one, `invalid_auth` for a wrong one;
- refuses a call lacking a parameter that Slack's OpenAPI file marks required, reading the file
  from tests/specs (see `SPEC_PATH`) and forgiving its known flaws: the `token` parameter is ignored
  and the HTTP verb it lists is not enforced (slack_sdk POSTs everything);
- enforces the Block Kit limits that are cheap to check (`invalid_blocks`);
- records every call and keeps messages per channel and thread, with each message's versions;
- can be told to answer 429 with `Retry-After`, to fail with an error, or to answer a method it
  does not implement;
- serves the upload URLs handed out by `files.getUploadURLExternal` and response URLs
  (`response_url(...)`) for Bolt's `respond`;
- is Slack's Socket Mode end too (`standin.socket`, `SocketModeStandIn`): `apps.connections.open`,
  called with the app-level token, hands out a WebSocket URL served here, on which the test
  pushes envelopes and collects the app's acknowledgements.

Slack answers API-level errors with HTTP 200 and `{"ok": false, "error": ...}`; only rate
limiting changes the status (429).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import mimetypes
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from .slack_signing import API_APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID
from .specs import SLACK_WEB_API, require

SPEC_PATH = SLACK_WEB_API
DEFAULT_TOKEN = "xoxb-0000000001-0000000002-standinbottoken"
# An app-level token as Slack shapes them: xapp-<version>-<app id>-<number>-<secret>.
DEFAULT_APP_TOKEN = f"xapp-1-{API_APP_ID}-0000000003-standinapptoken"
SOCKET_PING_INTERVAL = 0.2  # seconds between the stand-in's pings on a Socket Mode connection
SOCKET_PING_TIMEOUT = 5.0  # a connection whose pong is this late is dropped
# Methods called with the app-level token; every other one wants the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})

# Methods newer than the spec file (October 2020); their required parameters per Slack's docs.
_REQUIRED_BEYOND_SPEC: dict[str, frozenset[str]] = {
    "files.getUploadURLExternal": frozenset({"filename", "length"}),
    "files.completeUploadExternal": frozenset({"files"}),
}
# What Slack answers when one of these is missing; any other missing field: invalid_arguments.
_MISSING_PARAM_ERROR = {"channel": "channel_not_found"}
_CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


class Call(NamedTuple):
    method: str
    params: dict[str, Any]
    time: float


class SlackError(Exception):
    """An `{"ok": false}` answer."""

    def __init__(self, error: str, *messages: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


# --------------------------------------------------------------------------- the spec, as data


@functools.lru_cache(maxsize=4)
def required_params(spec_path: Path = SPEC_PATH) -> dict[str, frozenset[str]]:
    """Method -> parameters the spec marks required (all verbs merged, `token` left out).

    A missing spec file fails: the stand-in never runs without the check.
    """
    spec = json.loads(require(spec_path).read_text(encoding="utf-8"))
    table: dict[str, frozenset[str]] = {}
    for path, operations in spec["paths"].items():
        names = {
            p["name"]
            for op in operations.values()
            for p in op.get("parameters", [])
            if p.get("required") and p["name"] != "token"
        }
        table[path.lstrip("/")] = frozenset(names)
    return table


# --------------------------------------------------------------------------- Block Kit limits

_TEXT_LIMITS = {"section": 3000, "header": 150}


def check_blocks(blocks: Any, *, max_blocks: int = 50, pointer: str = "/blocks") -> list[str]:
    """Slack-style `[ERROR] ... [json-pointer:...]` messages for the limits checked here."""
    if not isinstance(blocks, list):
        return [f"[ERROR] expected array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"[ERROR] no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    for i, block in enumerate(blocks):
        errors += _check_block(block, f"{pointer}/{i}")
    return errors


def _too_long(value: Any, limit: int, where: str) -> list[str]:
    if isinstance(value, str) and len(value) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{where}]"]
    return []


def _check_block(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"[ERROR] missing required field: type [json-pointer:{where}]"]
    errors = _too_long(block.get("block_id"), 255, f"{where}/block_id")
    limit = _TEXT_LIMITS.get(block["type"])
    if limit and isinstance(block.get("text"), dict):
        errors += _too_long(block["text"].get("text"), limit, f"{where}/text/text")
    for j, f in enumerate(block.get("fields") or []):
        if isinstance(f, dict):
            errors += _too_long(f.get("text"), 2000, f"{where}/fields/{j}/text")
    if isinstance(block.get("accessory"), dict):
        errors += _check_element(block["accessory"], f"{where}/accessory")
    for j, element in enumerate(block.get("elements") or []):
        if isinstance(element, dict):
            errors += _check_element(element, f"{where}/elements/{j}")
    return errors


def _check_element(element: dict[str, Any], where: str) -> list[str]:
    errors = _too_long(element.get("action_id"), 255, f"{where}/action_id")
    if element.get("type") == "button":
        errors += _too_long(element.get("value"), 2000, f"{where}/value")
        errors += _too_long(element.get("url"), 3000, f"{where}/url")
        text = element.get("text")
        if isinstance(text, dict):
            errors += _too_long(text.get("text"), 75, f"{where}/text/text")
    return errors


# Modal limits (api.slack.com/reference/surfaces/views): title, submit and close are plain text
# of at most 24 characters; at most 100 blocks; private_metadata 3,000 characters.
_VIEW_TEXT_LIMIT = 24
_TRIGGER_ID = re.compile(r"^\d+\.\w+\.\w+$")


def check_modal(view: Any) -> list[str]:
    """Slack-style messages for a view passed to views.open that Slack would refuse."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["[ERROR] must be 'modal' [json-pointer:/view/type]"]
    errors: list[str] = []
    for key in ("title", "submit", "close"):
        text = view.get(key)
        if key == "title" and not isinstance(text, dict):
            errors.append("[ERROR] missing required field: title [json-pointer:/view/title]")
        elif isinstance(text, dict):
            if text.get("type") != "plain_text":
                errors.append(f"[ERROR] must be plain_text [json-pointer:/view/{key}/type]")
            errors += _too_long(text.get("text"), _VIEW_TEXT_LIMIT, f"/view/{key}/text")
    blocks = view.get("blocks")
    errors += check_blocks(blocks, max_blocks=100, pointer="/view/blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and not isinstance(view.get("submit"), dict):
        errors.append("[ERROR] a view with input blocks needs submit [json-pointer:/view/submit]")
    errors += _too_long(view.get("private_metadata"), 3000, "/view/private_metadata")
    errors += _too_long(view.get("callback_id"), 255, "/view/callback_id")
    for i, block in enumerate(blocks if isinstance(blocks, list) else []):
        is_input = isinstance(block, dict) and block.get("type") == "input"
        if is_input and (not isinstance(block.get("element"), dict) or not block.get("label")):
            errors.append(f"[ERROR] an input needs label and element "
                          f"[json-pointer:/view/blocks/{i}]")
    return errors


def dm_channel(user_id: str) -> str:
    """The id the stand-in gives the direct conversation between the bot and `user_id`."""
    return "D" + user_id[1:]


# --------------------------------------------------------------------------- serving on loopback


class BackgroundServer:
    """An ASGI app served by uvicorn on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", **options: Any) -> None:
        """`options`: more `uvicorn.Config` settings (e.g. the WebSocket ping interval)."""
        self.app = app
        self.host = host
        self.options = options
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        # Binding the socket here (port 0) gives the port before the server starts: no race.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False,
                                **self.options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="asgi-test"
        )
        self._thread.start()
        self._wait_started(sock)

    def _wait_started(self, sock: socket.socket) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- state


@dataclass
class _Injected:
    times: int
    status: int = 200
    error: str = ""
    retry_after: int = 0


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass
class ResponseUrl:
    channel: str
    user: str
    message_ts: str | None
    created: float
    posts: list[dict[str, Any]] = field(default_factory=list)


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


# --------------------------------------------------------------------------- Socket Mode

# What Slack puts in `accepts_response_payload`: an acknowledgement can answer a slash command
# (and a view submission or an options request), never a button click or an event.
_ACCEPTS_RESPONSE_PAYLOAD = {"slash_commands": True, "interactive": False, "events_api": False}
_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


@dataclass
class _Link:
    """One WebSocket connection of the app, with the event loop that serves it."""

    number: int
    websocket: WebSocket
    loop: asyncio.AbstractEventLoop
    open: bool = True


class SocketModeStandIn:
    """Slack's Socket Mode end for one app, served by the stand-in (`standin.socket`).

    The protocol (https://api.slack.com/apis/socket-mode): the app calls `apps.connections.open`
    with its app-level token and gets a single-use `url`; on connecting it receives
    `{"type": "hello", ...}`; Slack then sends envelopes `{"envelope_id", "type", "payload",
    "accepts_response_payload"}` (`retry_attempt`, `retry_reason` too for `events_api`), and the
    app answers each with `{"envelope_id": ..., "payload": {...}?}`, the acknowledgement that
    HTTP mode sends as the response. The server (uvicorn) answers the app's pings and pings
    it every `SOCKET_PING_INTERVAL`, dropping the connection if no pong comes back.

    The test side is synchronous: `push()` sends an envelope and returns its id, `wait_ack()`
    waits for the app's answer, `disconnect()` asks the app to reconnect as Slack does before
    it retires a connection.
    """

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.pushed: list[dict[str, Any]] = []
        self.acks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # Text frames from the app that acknowledge nothing pushed: empty unless something's off.
        self.unexpected: list[str] = []
        self._tickets: set[str] = set()
        self._links: list[_Link] = []
        self._changed = threading.Condition()
        self._seq = itertools.count(1)

    # ------------------------------------------------------------------ test side

    @property
    def connected(self) -> bool:
        """True while at least one connection is open and has been sent its hello."""
        with self._changed:
            return any(link.open for link in self._links)

    @property
    def open_connections(self) -> int:
        with self._changed:
            return sum(link.open for link in self._links)

    @property
    def connections(self) -> int:
        """Connections opened so far (a reconnection adds one)."""
        with self._changed:
            return len(self._links)

    def wait_connected(self, timeout: float = 5.0, *, connections: int = 1) -> None:
        """Until `connections` connections have been opened in all and one is open now."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: len(self._links) >= connections and any(x.open for x in self._links),
                timeout,
            )
        if not done:
            raise TimeoutError(f"the app did not connect over Socket Mode within {timeout}s")

    def push(
        self,
        type: str,
        payload: Mapping[str, Any],
        *,
        envelope_id: str | None = None,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 5.0,
    ) -> str:
        """Send an envelope on the newest open connection; returns its `envelope_id`.

        `type` is `slash_commands` (payload: the command's fields as a dict of strings),
        `interactive` (payload: e.g. a `block_actions` payload) or `events_api` (payload: the
        `event_callback` envelope). The retry fields are sent with `events_api` only, as Slack
        does: only event deliveries are retried.
        """
        if accepts_response_payload is None:
            accepts_response_payload = _ACCEPTS_RESPONSE_PAYLOAD.get(type, False) or (
                type == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS
            )
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id or self._envelope_id(),
            "payload": dict(payload),
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        with self._changed:
            live = [link for link in self._links if link.open]
            if not live:
                raise RuntimeError("no open Socket Mode connection to push on")
            link = live[-1]
            self.pushed.append(envelope)
        self._send(link, envelope, timeout)
        return str(envelope["envelope_id"])

    def wait_ack(self, envelope_id: str, timeout: float = 3.0) -> dict[str, Any]:
        """The app's acknowledgement of an envelope; TimeoutError when none came in time.

        Slack gives the app 3 seconds: the default timeout is that limit.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self.acks.get(envelope_id), timeout):
                raise TimeoutError(f"envelope {envelope_id} not acknowledged within {timeout}s")
            return self.acks[envelope_id][0]

    def disconnect(self, reason: str = "refresh_requested", timeout: float = 5.0) -> None:
        """Tell the app its connections are going away, as Slack does before refreshing one:
        the app is expected to open a new one (`apps.connections.open` again)."""
        with self._changed:
            live = [link for link in self._links if link.open]
        for link in live:
            self._send(link, {"type": "disconnect", "reason": reason,
                              "debug_info": {"host": _APPLINK_HOST}}, timeout)

    def reset(self) -> None:
        with self._changed:
            self.pushed.clear()
            self.acks.clear()
            self.unexpected.clear()

    # ------------------------------------------------------------------ Slack's side

    def issue_url(self, root: str) -> str:
        """A single-use WebSocket URL, as `apps.connections.open` answers."""
        ticket = f"{next(self._seq):04d}-{time.time_ns() % 10**9:09d}"
        with self._changed:
            self._tickets.add(ticket)
        ws_root = "ws" + root.removeprefix("http")
        return f"{ws_root}/socket/link/?ticket={ticket}&app_id={self.app_id}"

    async def serve(self, websocket: WebSocket) -> None:
        with self._changed:
            ticket = websocket.query_params.get("ticket", "")
            known = ticket in self._tickets
            self._tickets.discard(ticket)
        if not known:
            await websocket.close(code=1008)  # before accepting: the handshake gets HTTP 403
            return
        await websocket.accept()
        link = _Link(0, websocket, asyncio.get_running_loop())
        with self._changed:
            link.number = len(self._links) + 1
            num_connections = 1 + sum(x.open for x in self._links)
        await websocket.send_text(json.dumps({
            "type": "hello",
            "num_connections": num_connections,
            "debug_info": {"host": _APPLINK_HOST, "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }))
        with self._changed:  # pushable only now: the hello always comes first
            self._links.append(link)
            self._changed.notify_all()
        try:
            while True:
                self._received(await websocket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            with self._changed:
                link.open = False
                self._changed.notify_all()

    def _received(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        with self._changed:
            envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
            if envelope_id and any(e["envelope_id"] == envelope_id for e in self.pushed):
                self.acks[str(envelope_id)].append(message)
                self._changed.notify_all()
            else:
                self.unexpected.append(text)

    def _send(self, link: _Link, message: dict[str, Any], timeout: float) -> None:
        # The socket belongs to the server's event loop; the test runs in its own thread.
        future = asyncio.run_coroutine_threadsafe(
            link.websocket.send_text(json.dumps(message)), link.loop
        )
        future.result(timeout)

    def _envelope_id(self) -> str:
        return str(uuid.uuid4())  # Slack's envelope ids are UUIDs


_APPLINK_HOST = "applink-standin-1"


class SlackApiStandIn:
    """A recording, Slack-faithful stand-in for the Web API. Use as a context manager."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        usergroups: Mapping[str, list[str]] | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        lenient: bool = True,
        spec_path: Path = SPEC_PATH,
        team_id: str = TEAM_ID,
        team_domain: str = TEAM_DOMAIN,
        bot_user_id: str = BOT_USER_ID,
        bot_id: str = BOT_ID,
        app_token: str = DEFAULT_APP_TOKEN,
        app_id: str = API_APP_ID,
    ) -> None:
        """`lenient`: any well-formed channel or user id exists (the bot is in every channel).

        With `lenient=False` only those added with `add_channel`/`add_user` exist.
        `app_token` is the app-level token (`xapp-...`) Socket Mode connects with.
        """
        self.token = token
        self.app_token = app_token
        self.socket = SocketModeStandIn(app_id)
        self.lenient = lenient
        self.team_id, self.team_domain = team_id, team_domain
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.required = required_params(spec_path)
        self.calls: list[Call] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.home_views: dict[str, dict[str, Any]] = {}
        # Modals opened (views.open), by view id, each with the user whose trigger opened it.
        self.modals: dict[str, dict[str, Any]] = {}
        self._used_triggers: set[str] = set()
        self.files: dict[str, UploadedFile] = {}
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self._messages: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
        self._response_urls: dict[str, ResponseUrl] = {}
        self._injected: dict[str, list[_Injected]] = defaultdict(list)
        self._scripted: dict[str, dict[str, Any]] = {}
        self._seq = itertools.count(1)
        self._lock = threading.RLock()
        self._handler_table = self._handlers()
        # Slack pings Socket Mode connections and drops one whose pongs stop. Pinging often
        # also wakes slack_sdk's built-in client, whose close() otherwise waits for its blocking
        # read to time out (3 s) before it can take the socket's lock.
        self._server = BackgroundServer(self._asgi_app(), ws_ping_interval=SOCKET_PING_INTERVAL,
                                        ws_ping_timeout=SOCKET_PING_TIMEOUT)
        self.add_user(bot_user_id, "sigfox-bot", is_bot=True)
        for uid, fields in (users or {}).items():
            self.add_user(uid, str(fields.get("name", uid.lower())), **fields)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SlackApiStandIn:
        self._server.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop()

    @property
    def root(self) -> str:
        return self._server.root

    @property
    def url(self) -> str:
        """The Web API root, for `WebClient(base_url=...)` and `SLACK_API_URL`."""
        return f"{self.root}/api/"

    # ------------------------------------------------------------------ set-up

    def add_user(self, user_id: str, name: str, **fields: Any) -> None:
        with self._lock:
            self.users[user_id] = self._user_object(user_id, name, fields)

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        is_member: bool = True,
        is_private: bool = False,
        is_archived: bool = False,
    ) -> None:
        with self._lock:
            self.channels[channel_id] = self._channel_object(
                channel_id,
                name,
                is_member=is_member,
                is_private=is_private,
                is_archived=is_archived,
            )

    def set_usergroup(self, usergroup_id: str, members: list[str]) -> None:
        with self._lock:
            self.usergroups[usergroup_id] = list(members)

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with `Retry-After: retry_after`."""
        with self._lock:
            self._injected[method].append(
                _Injected(times, status=429, error="ratelimited", retry_after=retry_after)
            )

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error}`."""
        with self._lock:
            self._injected[method].append(_Injected(times, error=error))

    def answer(self, method: str, body: Mapping[str, Any]) -> None:
        """Script the answer of a method this stand-in does not implement."""
        with self._lock:
            self._scripted[method] = {"ok": True, **body}

    def response_url(self, channel: str, user: str = "", message_ts: str | None = None) -> str:
        """A response URL as Slack puts in a command or interaction, served by the stand-in."""
        with self._lock:
            rid = f"{next(self._seq):08d}"
            self._response_urls[rid] = ResponseUrl(channel, user, message_ts, time.time())
        return f"{self.root}/_response/{rid}"

    def reset(self) -> None:
        """Forget what happened (calls, messages, files, views, injected faults) but keep the
        directory (users, channels, user groups): lets one served stand-in serve many tests."""
        with self._lock:
            self.calls.clear()
            self.ephemerals.clear()
            self.home_views.clear()
            self.modals.clear()
            self._used_triggers.clear()
            self.files.clear()
            self._messages.clear()
            self._response_urls.clear()
            self._injected.clear()
            self._scripted.clear()
        self.socket.reset()

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def methods_called(self) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level messages of a channel, oldest first, each in its latest version."""
        with self._lock:
            return [v[-1] for v in self._messages[channel].values() if _is_top_level(v[-1])]

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The parent and its replies, oldest first, each in its latest version."""
        with self._lock:
            return [
                v[-1]
                for ts, v in self._messages[channel].items()
                if (ts == thread_ts or v[-1].get("thread_ts") == thread_ts)
                and not v[-1].get("deleted")
            ]

    def direct_messages(self, user_id: str) -> list[dict[str, Any]]:
        """What the bot sent to `user_id` in their direct conversation with it (the app's
        Messages tab), oldest first, each in its latest version."""
        return self.messages(dm_channel(user_id))

    def modals_opened(self) -> list[dict[str, Any]]:
        """Modals opened with views.open, oldest first."""
        with self._lock:
            return list(self.modals.values())

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The latest version of one message (KeyError if never posted)."""
        with self._lock:
            return self._messages[channel][ts][-1]

    def versions(self, channel: str, ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages[channel][ts])

    def responses(self) -> list[dict[str, Any]]:
        """Every body posted to a response URL, oldest first."""
        with self._lock:
            return [p for r in self._response_urls.values() for p in r.posts]

    # ------------------------------------------------------------------ HTTP

    def _asgi_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/_upload/{file_id}", self._upload, methods=["POST"]),
                Route("/_response/{rid}", self._respond, methods=["POST"]),
                WebSocketRoute("/socket/link/", self.socket.serve),
            ]
        )

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        try:
            params = _parse_params(request, raw)
        except SlackError as exc:
            self._record(method, {})
            return JSONResponse(exc.body())
        token = _bearer(request.headers.get("authorization")) or params.pop("token", None)
        self._record(method, params)
        with self._lock:
            return self._dispatch(method, params, token)

    def _record(self, method: str, params: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(Call(method, params, time.time()))

    def _dispatch(self, method: str, params: dict[str, Any], token: str | None) -> Response:
        handler = self._handler_table.get(method)
        known = handler is not None or method in self.required or method in self._scripted
        try:
            if not known:
                raise SlackError("unknown_method", req_method=method)
            self._check_auth(token, app_level=method in _APP_TOKEN_METHODS)
            injected = self._take_injected(method)
            if injected is not None:
                return injected
            self._check_required(method, params)
            if handler is None:
                return JSONResponse(self._scripted_or_unimplemented(method))
            return JSONResponse({"ok": True, **handler(params)})
        except SlackError as exc:
            return JSONResponse(exc.body())

    def _check_auth(self, token: str | None, *, app_level: bool = False) -> None:
        if not token:
            raise SlackError("not_authed")
        # Slack refuses a token of the wrong kind (a bot token opening a socket, an app-level
        # token posting a message) with not_allowed_token_type, not invalid_auth.
        if app_level:
            expected, other, other_kinds = self.app_token, self.token, ("xoxb-", "xoxp-")
        else:
            expected, other, other_kinds = self.token, self.app_token, ("xapp-",)
        if token == expected:
            return
        if token == other or token.startswith(other_kinds):
            raise SlackError("not_allowed_token_type")
        raise SlackError("invalid_auth")

    def _take_injected(self, method: str) -> Response | None:
        queue = self._injected.get(method)
        if not queue:
            return None
        item = queue[0]
        item.times -= 1
        if item.times <= 0:
            queue.pop(0)
        body = {"ok": False, "error": item.error}
        if item.status == 429:
            return JSONResponse(
                body, status_code=429, headers={"Retry-After": str(item.retry_after)}
            )
        return JSONResponse(body)

    def _check_required(self, method: str, params: dict[str, Any]) -> None:
        required = self.required.get(method) or _REQUIRED_BEYOND_SPEC.get(method, ())
        for name in sorted(required):
            if params.get(name) in (None, ""):
                error = _MISSING_PARAM_ERROR.get(name, "invalid_arguments")
                raise SlackError(error, f"[ERROR] missing required field: {name}")

    def _scripted_or_unimplemented(self, method: str) -> dict[str, Any]:
        if method in self._scripted:
            return self._scripted[method]
        # A real method the stand-in cannot fake: say so plainly rather than pretend success.
        return {"ok": False, "error": "not_implemented_by_stand_in", "req_method": method}

    def _handlers(self) -> dict[str, _Handler]:
        return {
            "auth.test": self._auth_test,
            "bots.info": self._bots_info,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_members,
            "conversations.info": self._conversations_info,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }

    # ------------------------------------------------------------------ methods

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Sigfox Ops",
            "user": "sigfox-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _bots_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("bot") != self.bot_id:
            raise SlackError("bot_not_found")
        return {"bot": {"id": self.bot_id, "deleted": False, "name": "sigfox-bot",
                        "app_id": API_APP_ID, "user_id": self.bot_user_id}}

    def _connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.socket.issue_url(self.root)}

    def _post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable_channel(p["channel"])
        message = self._new_message(p)
        thread_ts = p.get("thread_ts") or None
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            self._note_reply(channel, str(thread_ts), message["ts"])
        self._messages[channel][message["ts"]] = [message]
        return {"channel": channel, "ts": message["ts"], "message": message}

    def _new_message(self, p: dict[str, Any]) -> dict[str, Any]:
        blocks = _blocks_param(p)
        if not p.get("text") and blocks is None and not p.get("attachments"):
            raise SlackError("no_text")
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": API_APP_ID,
            "team": self.team_id,
            "text": str(p.get("text") or ""),
            "ts": self._next_ts(),
        }
        if blocks is not None:
            message["blocks"] = blocks
        if p.get("metadata"):
            message["metadata"] = _json_param(p, "metadata", "invalid_metadata_format")
        return message

    def _note_reply(self, channel: str, thread_ts: str, reply_ts: str) -> None:
        versions = self._messages[channel].get(thread_ts)
        if not versions:
            return  # Slack accepts a thread_ts it cannot find; nothing to annotate
        parent = versions[-1]
        parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
        parent["thread_ts"] = thread_ts
        parent["latest_reply"] = reply_ts

    def _update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable_channel(p["channel"])
        versions = self._messages[channel].get(str(p["ts"]))
        if not versions:
            raise SlackError("message_not_found")
        current = versions[-1]
        if current.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        updated = dict(current)
        if "text" in p:
            updated["text"] = str(p["text"] or "")
        blocks = _blocks_param(p)
        if blocks is not None:  # Slack keeps the previous blocks unless new ones are sent
            updated["blocks"] = blocks
        updated["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        versions.append(updated)
        return {
            "channel": channel,
            "ts": updated["ts"],
            "text": updated["text"],
            "message": updated,
        }

    def _post_ephemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._writable_channel(p["channel"])
        message = self._new_message(p)
        message.update(channel=channel, ephemeral_user=str(p["user"]))
        if p.get("thread_ts"):
            message["thread_ts"] = str(p["thread_ts"])
        self.ephemerals.append(message)
        return {"message_ts": message["ts"]}

    def _permalink(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._known_channel(p["channel"])
        ts = str(p["message_ts"])
        versions = self._messages[channel].get(ts)
        if not versions:
            raise SlackError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = versions[-1].get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        user_id = str(p["user_id"])
        self._known_user(user_id)
        view = _json_param(p, "view", "invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackError(
                "invalid_arguments", "[ERROR] must be 'home' [json-pointer:/view/type]"
            )
        errors = check_blocks(view.get("blocks"), max_blocks=100, pointer="/view/blocks")
        if errors:
            raise SlackError("invalid_arguments", *errors)
        previous = self.home_views.get(user_id)
        if p.get("hash") and previous and p["hash"] != previous["hash"]:
            raise SlackError("hash_conflict")
        published = {
            **view,
            "id": previous["id"] if previous else f"V{next(self._seq):08d}",
            "team_id": self.team_id,
            "app_id": API_APP_ID,
            "bot_id": self.bot_id,
            "hash": f"{time.time():.6f}.{next(self._seq):08x}",
            "state": {"values": {}},
        }
        self.home_views[user_id] = published
        return {"view": published}

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        """A modal from a trigger_id: each trigger opens one view (`trigger_exchanged` for a
        second), and the view must be a modal Slack would render."""
        trigger = str(p["trigger_id"])
        if not _TRIGGER_ID.match(trigger):
            raise SlackError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("trigger_exchanged")
        view = _json_param(p, "view", "invalid_arguments")
        errors = check_modal(view)
        if errors:
            raise SlackError("invalid_arguments", *errors)
        self._used_triggers.add(trigger)
        opened = {
            **view,
            "id": f"V{next(self._seq):08d}",
            "team_id": self.team_id,
            "app_id": API_APP_ID,
            "bot_id": self.bot_id,
            "hash": f"{time.time():.6f}.{next(self._seq):08x}",
            "state": {"values": {}},
            "root_view_id": None,
            "trigger_id": trigger,
        }
        opened["root_view_id"] = opened["id"]
        self.modals[opened["id"]] = opened
        return {"view": opened}

    def _conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        """The direct conversation with one user (a multi-person one is not faked)."""
        if p.get("channel"):
            return {"channel": {"id": self._known_channel(str(p["channel"]))}}
        users = [u for u in str(p.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise SlackError("users_list_not_supplied" if not users else
                             "not_implemented_by_stand_in")
        self._known_user(users[0])
        channel = self._known_channel(dm_channel(users[0]))
        return {"channel": {"id": channel}, "already_open": True, "no_op": True}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"user": self._known_user(str(p.get("user") or ""))}

    def _usergroup_members(self, p: dict[str, Any]) -> dict[str, Any]:
        members = self.usergroups.get(str(p["usergroup"]))
        if members is None:
            raise SlackError("no_such_subteam")
        return {"users": list(members)}

    def _conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self.channels[self._known_channel(str(p.get("channel") or ""))]}

    def _get_upload_url(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(p["length"])
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments", "[ERROR] length must be an integer") from None
        file_id = f"F{next(self._seq):08d}"
        self.files[file_id] = UploadedFile(file_id, str(p["filename"]), length)
        return {"upload_url": f"{self.root}/_upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, p: dict[str, Any]) -> dict[str, Any]:
        entries = _json_param(p, "files", "invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments", "[ERROR] files must be a non-empty array")
        channel = self._writable_channel(str(p["channel_id"])) if p.get("channel_id") else None
        shared = [self._finish_file(e, channel, p) for e in entries]
        if channel:
            self._share_files(channel, shared, p)
        return {"files": shared}

    def _finish_file(self, entry: Any, channel: str | None, p: dict[str, Any]) -> dict[str, Any]:
        f = self.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
        if f is None or f.content is None:
            raise SlackError("file_not_found")
        f.title = str(entry.get("title") or f.filename)
        f.channel, f.thread_ts = channel, p.get("thread_ts") or None
        f.initial_comment = p.get("initial_comment") or None
        mimetype = mimetypes.guess_type(f.filename)[0] or "application/octet-stream"
        return {
            "id": f.id,
            "created": int(time.time()),
            "name": f.filename,
            "title": f.title,
            "mimetype": mimetype,
            "filetype": Path(f.filename).suffix.lstrip(".") or "binary",
            "user": self.bot_user_id,
            "size": len(f.content),
            "is_public": False,
            "url_private": f"https://files.slack.com/files-pri/{self.team_id}-{f.id}/{f.filename}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{f.id}",
            "channels": [channel] if channel else [],
        }

    def _share_files(self, channel: str, files: list[dict[str, Any]], p: dict[str, Any]) -> None:
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "upload": True,
            "text": str(p.get("initial_comment") or ""),
            "files": files,
            "ts": self._next_ts(),
        }
        if p.get("thread_ts"):
            message["thread_ts"] = str(p["thread_ts"])
            self._note_reply(channel, str(p["thread_ts"]), message["ts"])
        self._messages[channel][message["ts"]] = [message]

    # ------------------------------------------------------------------ uploads and responses

    async def _upload(self, request: Request) -> Response:
        content = await request.body()
        with self._lock:
            f = self.files.get(request.path_params["file_id"])
            if f is None:
                return PlainTextResponse("Not Found", status_code=404)
            f.content = content
        return PlainTextResponse(f"OK - {len(content)}")

    async def _respond(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        with self._lock:
            target = self._response_urls.get(request.path_params["rid"])
            if target is None or not isinstance(body, dict):
                return PlainTextResponse("invalid_payload", status_code=404)
            # Slack: at most five posts to one response URL, within 30 minutes.
            if time.time() - target.created > 1800:
                return PlainTextResponse("expired_url", status_code=404)
            if len(target.posts) >= 5:
                return PlainTextResponse("used_url", status_code=404)
            target.posts.append(body)
            self._apply_response(target, body)
        return PlainTextResponse("ok")

    def _apply_response(self, target: ResponseUrl, body: dict[str, Any]) -> None:
        original = self._messages[target.channel].get(target.message_ts or "")
        if original and body.get("delete_original"):
            original.append({**original[-1], "deleted": True})
        elif original and body.get("replace_original"):
            updated = {**original[-1], "text": str(body.get("text") or "")}
            if "blocks" in body:
                updated["blocks"] = body["blocks"]
            original.append(updated)
        elif body.get("response_type") == "in_channel":
            message = self._new_message({k: v for k, v in body.items() if k != "thread_ts"})
            if body.get("thread_ts"):
                message["thread_ts"] = str(body["thread_ts"])
            self._messages[target.channel][message["ts"]] = [message]
        else:
            message = self._new_message(body)
            message.update(channel=target.channel, ephemeral_user=target.user)
            self.ephemerals.append(message)

    # ------------------------------------------------------------------ directory

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _known_channel(self, channel: str) -> str:
        if channel.startswith(("U", "W")) and _USER_ID.match(channel):
            channel = dm_channel(channel)  # posting to a user id goes to the DM with that user
        if channel not in self.channels:
            if not (self.lenient and _CONVERSATION_ID.match(channel)):
                raise SlackError("channel_not_found")
            self.channels[channel] = self._channel_object(channel, channel.lower())
        return channel

    def _writable_channel(self, channel: str) -> str:
        channel = self._known_channel(channel)
        info = self.channels[channel]
        if info["is_archived"]:
            raise SlackError("is_archived")
        if not info["is_member"]:
            raise SlackError("not_in_channel")
        return channel

    def _known_user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            if not (self.lenient and _USER_ID.match(user_id)):
                raise SlackError("user_not_found")
            self.users[user_id] = self._user_object(user_id, user_id.lower(), {})
        return self.users[user_id]

    def _user_object(self, user_id: str, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        real_name = str(fields.get("real_name", name))
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "Europe/Paris",
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": {"display_name": name, "real_name": real_name},
            **{k: v for k, v in fields.items() if k != "name"},
        }

    def _channel_object(
        self,
        channel_id: str,
        name: str,
        *,
        is_member: bool = True,
        is_private: bool = False,
        is_archived: bool = False,
    ) -> dict[str, Any]:
        is_im = channel_id.startswith("D")
        return {
            "id": channel_id,
            "name": name,
            "is_channel": not (is_private or is_im),
            "is_group": False,
            "is_im": is_im,
            "is_private": is_private or is_im,
            "is_archived": is_archived,
            "is_member": is_member,
            "created": 1_600_000_000,
            "creator": "U0CREATOR1",
            "is_general": False,
        }


# --------------------------------------------------------------------------- parsing helpers


def _parse_params(request: Request, raw: bytes) -> dict[str, Any]:
    """Query string merged with the body (JSON or form-encoded), as Slack reads them."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not raw:
        return params
    if content_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        params.update(body)
    elif content_type in ("application/x-www-form-urlencoded", ""):
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    else:
        raise SlackError("invalid_form_data", f"[ERROR] unsupported content type {content_type}")
    return params


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _json_param(p: dict[str, Any], name: str, error: str) -> Any:
    """A structured parameter: JSON-encoded text in a form body, a value in a JSON body."""
    value = p.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(error, f"[ERROR] {name} must be JSON") from None
    return value


def _blocks_param(p: dict[str, Any]) -> list[dict[str, Any]] | None:
    if p.get("blocks") in (None, ""):
        return None
    blocks = _json_param(p, "blocks", "invalid_blocks_format")
    errors = check_blocks(blocks)
    if errors:
        raise SlackError("invalid_blocks", *errors)
    return blocks


def _is_top_level(message: dict[str, Any]) -> bool:
    return message.get("thread_ts") in (None, message["ts"]) and not message.get("deleted")
