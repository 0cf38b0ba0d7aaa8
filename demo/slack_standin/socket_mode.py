"""Slack's Socket Mode end for one app, served by the stand-in (`standin.socket`)."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

SOCKET_PING_INTERVAL = 0.2  # seconds between the stand-in's pings on a Socket Mode connection
SOCKET_PING_TIMEOUT = 5.0  # a connection whose pong is this late is dropped

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
