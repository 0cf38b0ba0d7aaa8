"""A Slack workspace in a terminal: a Web API stand-in on loopback that prints what it receives.

The bot's real `slack_sdk` clients (the Bolt app's, the notifier's) are pointed at it through
their base URL, so the demo exercises exactly the calls the bot makes in production. Each call is
answered the way Slack answers it (`ok`, `ts`, `channel`, errors such as `channel_not_found`) and
shown as a person would see it in the client:

    #fleet-ops
      09:00  sigfox-bot
             Renewal of 1A2B3C
             [ Approve ]  [ Reject ]
             ↳ 09:01  sigfox-bot   (in thread "Renewal of 1A2B3C")
                      Deleted; waiting for Sigfox to release the id.
      09:02  ✎ sigfox-bot updated "Renewal of 1A2B3C"
             ...

Nothing leaves the machine: the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import secrets
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from commands import human
from commands.logs import redact
from demo.render import buttons_of, first_line, render_message

log = logging.getLogger(__name__)

TEAM_ID = "T0DEMO0001"
TEAM_NAME = "Acme IoT Ops (demo)"
BOT_USER_ID = "U0SIGFOXBOT"
BOT_ID = "B0SIGFOXBOT"
APP_ID = "A0SIGFOXBOT"  # the app the demo's requests name (demo/world.py)
BOT_NAME = "sigfox-bot"
INDENT = "  "
BODY = " " * 9
THREAD = " " * 9 + "↳ "
REPLY = " " * 11
THREAD_BODY = " " * 18

Clock = Callable[[], float]


@dataclass
class Posted:
    """A message in a channel, as Slack keeps it (the latest version)."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: int = 0
    replies: list[str] = field(default_factory=list)

    def label(self, name_of: Callable[[str], str]) -> str:
        return first_line(self.text, self.blocks, name_of)


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    real_name: str


class SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class TerminalSlack:
    """The workspace: people, channels, messages; served as a Web API on loopback."""

    def __init__(
        self,
        *,
        token: str | None = None,
        stream: TextIO | None = None,
        clock: Clock = time.time,
        channels: dict[str, str] | None = None,
        people: list[Person] | None = None,
        width: int | None = None,
        colour: bool | None = None,
    ) -> None:
        self.token = token or f"xoxb-demo-{secrets.token_hex(12)}"
        self.stream = stream or sys.stdout
        self.clock = clock
        self.channels: dict[str, str] = dict(channels or {})  # id -> name
        self.people: dict[str, Person] = {p.user_id: p for p in people or []}
        self.people[BOT_USER_ID] = Person(BOT_USER_ID, BOT_NAME, "Sigfox bot")
        self.messages: dict[tuple[str, str], Posted] = {}
        self.order: list[tuple[str, str]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.modal: dict[str, Any] | None = None  # the form on screen (views.open), if any
        self._response_urls: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.root_url = ""
        self.last_activity = time.monotonic()
        self.width = width or terminal_width(self.stream)
        self.style = Style(wants_colour(self.stream) if colour is None else colour)
        self._shown: dict[tuple[str, str], list[str]] = {}  # what each message last showed
        self._thread_shown: tuple[str, str | None] | None = None  # the thread printed last
        self._channel_shown = ""  # the channel whose name was printed last
        self._after_narration = False  # the next line follows a scene title: no gap
        self._after_typing = False  # the bot's post answers what was just typed: no gap

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_url(self) -> str:
        return f"{self.root_url}/api/"

    def start(self) -> TerminalSlack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()[:2]
        self.root_url = f"http://{host}:{port}"
        config = uvicorn.Config(self._app(), lifespan="off", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True, name="terminal-slack")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the terminal Slack stand-in did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ people and places

    def name_of(self, user_id: str) -> str:
        """A person by name, a channel by its name too (Slack resolves both for its readers)."""
        person = self.people.get(user_id)
        if person:
            return person.name
        return self.channels.get(user_id, user_id)

    def channel_name(self, channel: str) -> str:
        if channel.startswith("D") or channel in self.people:
            return f"DM with {self.name_of(channel)}"
        return f"#{self.channels.get(channel, channel)}"

    def response_url(self, channel: str, user: str, message_ts: str = "") -> str:
        """A URL standing for Slack's `response_url` (what Bolt's `respond` posts to)."""
        key = secrets.token_hex(8)
        with self._lock:
            self._response_urls[key] = {"channel": channel, "user": user, "ts": message_ts}
        return f"{self.root_url}/respond/{key}"

    # ------------------------------------------------------------------ what people do

    def say_typed(self, user_id: str, channel: str, text: str) -> None:
        """Show what a person typed (slash commands are not messages, but people see them)."""
        self._channel_shown = channel  # what the bot posts next there needs no channel line
        gap = "" if self._after_narration else "\n"
        self._print(f"{gap}{INDENT}{self._time()}  {self.style.name(self.name_of(user_id))} › "
                    f"{text}   ({self.channel_name(channel)})")
        self._after_typing = True

    def say_clicked(self, user_id: str, label: str, message: Posted) -> None:
        on = first_line(message.text, message.blocks, self.name_of, limit=30)
        self._print(f"\n{INDENT}{self._time()}  {self.style.name(self.name_of(user_id))} clicks "
                    f"[ {label} ] on \"{on}\"")

    def narrate(self, text: str) -> None:
        """A line of the tour's commentary (not part of the chat), as wide as the terminal."""
        lines = textwrap.wrap(text, self.width - 8) or [""]
        rule = "─" * max(3, self.width - 4 - len(lines[-1]))
        head = "\n".join(f"── {line}" for line in lines[:-1])
        last = f"── {lines[-1]} {rule}"
        self._print("\n" + self.style.narration(f"{head}\n{last}" if head else last))
        self._after_narration = True

    def show_ack(self, user: str, channel: str, answer: dict[str, Any]) -> None:
        """What a listener put in its `ack(...)`: private to `user` unless in_channel."""
        with self._lock:
            self.last_activity = time.monotonic()
            if answer.get("response_type") == "in_channel":
                message = self._store(channel, BOT_USER_ID, _content(answer))
                self._show_new(message)
            else:
                self._show_ephemeral(user, str(answer.get("text") or ""),
                                     answer.get("blocks") or [])

    def find_button(self, label: str, channel: str | None = None
                    ) -> tuple[Posted, dict[str, Any]] | None:
        """The most recent message showing a button labelled `label` (case-insensitive), or
        an overflow menu (`[ ⋯ ]`) offering that option: `Details` picks the latest menu with
        one, `Details 801B103` the menu whose option names that device."""
        wanted = label.strip().strip("[]").strip().casefold()
        with self._lock:
            for key in reversed(self.order):
                message = self.messages[key]
                if channel and message.channel != channel:
                    continue
                for button in buttons_of(message.blocks):
                    text = str((button.get("text") or {}).get("text", "")).casefold()
                    if text == wanted or _strip_emoji(text) == wanted:
                        return message, button
                choice = _menu_choice(message.blocks, wanted)
                if choice is not None:
                    return message, choice
        return None

    def thread_of(self, channel: str, ts: str) -> list[Posted]:
        with self._lock:
            parent = self.messages.get((channel, ts))
            if parent is None:
                return []
            return [parent, *(self.messages[(channel, r)] for r in parent.replies)]

    def channel_messages(self, channel: str) -> list[Posted]:
        with self._lock:
            return [self.messages[k] for k in self.order
                    if k[0] == channel and self.messages[k].thread_ts in (None, k[1])]

    def quiet_for(self) -> float:
        """Seconds since the last Web API call (the demo waits for the bot to settle)."""
        return time.monotonic() - self.last_activity

    # ------------------------------------------------------------------ HTTP

    def _app(self) -> Starlette:
        return Starlette(routes=[
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
            Route("/upload/{file_id}", self._upload, methods=["POST", "PUT"]),
            Route("/respond/{key}", self._respond, methods=["POST"]),
        ])

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await _params(request)
        token = _bearer(request.headers.get("authorization")) or params.pop("token", None)
        try:
            body = self._call(method, params, token)
        except SlackError as error:
            return JSONResponse({"ok": False, "error": error.error})
        return JSONResponse({"ok": True, **body})

    def _call(self, method: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._lock:
            self.calls.append(method)
            self.last_activity = time.monotonic()
        if not token:
            raise SlackError("not_authed")
        if token != self.token:
            raise SlackError("invalid_auth")
        handler = self._handlers().get(method)
        if handler is None:
            log.debug("terminal Slack: %s answered with a bare ok", method)
            return {}
        with self._lock:
            return handler(params)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "bots.info": self._bots_info,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "chat.getPermalink": self._permalink,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "users.info": self._users_info,
            "usergroups.users.list": lambda p: {"users": []},
            "conversations.info": self._conversations_info,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "files.upload": self._files_upload_v1,
            "reactions.add": lambda p: {},
        }

    # ------------------------------------------------------------------ methods

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://acme-iot-demo.slack.com/", "team": TEAM_NAME, "user": BOT_NAME,
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID,
                "is_enterprise_install": False}

    def _bots_info(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"bot": {"id": BOT_ID, "deleted": False, "name": BOT_NAME, "app_id": APP_ID,
                        "user_id": BOT_USER_ID}}

    def _post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p)
        message = self._store(channel, BOT_USER_ID, p)
        self._show_new(message)
        return {"channel": channel, "ts": message.ts, "message": _public(message)}

    def _store(self, channel: str, user: str, p: dict[str, Any]) -> Posted:
        if not p.get("text") and not p.get("blocks"):
            raise SlackError("no_text")
        thread = str(p.get("thread_ts") or "") or None
        if thread is not None and (channel, thread) not in self.messages:
            raise SlackError("thread_not_found")
        message = Posted(channel, self._next_ts(), user, str(p.get("text") or ""),
                         _blocks(p), thread)
        self.messages[(channel, message.ts)] = message
        self.order.append((channel, message.ts))
        if thread is not None:
            self.messages[(channel, thread)].replies.append(message.ts)
        return message

    def _update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p)
        message = self.messages.get((channel, str(p.get("ts") or "")))
        if message is None:
            raise SlackError("message_not_found")
        if "text" in p:
            message.text = str(p.get("text") or "")
        if "blocks" in p:
            message.blocks = _blocks(p)
        message.edits += 1
        self._show_update(message)
        return {"channel": channel, "ts": message.ts, "text": message.text}

    def _post_ephemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, user = self._channel(p), str(p.get("user") or "")
        if not user:
            raise SlackError("user_not_found")
        self.ephemerals.append({"channel": channel, "user": user, "text": p.get("text", ""),
                                "blocks": _blocks(p)})
        self._show_ephemeral(user, str(p.get("text") or ""), _blocks(p))
        return {"message_ts": self._next_ts()}

    def _delete(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._channel(p), str(p.get("ts") or "")
        message = self.messages.pop((channel, ts), None)
        if message is None:
            raise SlackError("message_not_found")
        self.order.remove((channel, ts))
        self._print(f"{INDENT}{self._time()}  🗑 {self.name_of(message.user)} deleted "
                    f"\"{message.label(self.name_of)}\"")
        return {"channel": channel, "ts": ts}

    def _permalink(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._channel(p), str(p.get("message_ts") or "")
        return {"channel": channel,
                "permalink": f"https://acme-iot-demo.slack.com/archives/{channel}/p{ts}"}

    def _views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user_id") or "")
        view = p.get("view")
        view = json.loads(view) if isinstance(view, str) else view or {}
        blocks = view.get("blocks") or []
        self._print(f"{INDENT}{self._time()}  🏠 App Home of {self.name_of(user)} refreshed "
                    f"({len(blocks)} blocks)")
        return {"view": {"id": f"V{next(self._ts):08d}", "type": "home", "blocks": blocks}}

    def _views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        """A form opens for the person who clicked; they answer with `/form <text>`."""
        view = p.get("view")
        view = json.loads(view) if isinstance(view, str) else view or {}
        opened = {**view, "id": f"V{next(self._ts):08d}", "state": {"values": {}}}
        self.modal = opened
        title = (view.get("title") or {}).get("text", "")
        asks = [(b.get("label") or {}).get("text", "") for b in view.get("blocks") or []
                if b.get("type") == "input"]
        self._print(f"{INDENT}{self._time()}  📝 A form opens: {title}: {'; '.join(asks)} "
                    "(answer with /form <your text>)")
        return {"view": opened}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user_id = str(p.get("user") or "")
        person = self.people.get(user_id)
        if person is None:
            raise SlackError("user_not_found")
        return {"user": {"id": person.user_id, "team_id": TEAM_ID, "name": person.name,
                         "real_name": person.real_name, "is_bot": person.user_id == BOT_USER_ID,
                         "tz": "UTC", "profile": {"real_name": person.real_name,
                                                  "display_name": person.name}}}

    def _conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p)
        return {"channel": {"id": channel, "name": self.channels.get(channel, channel.lower()),
                            "is_channel": channel.startswith("C"), "is_member": True}}

    def _upload_url(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ts):08d}"
        self.files[file_id] = {"name": str(p.get("filename") or "file"), "content": b"",
                               "length": int(p.get("length") or 0)}
        return {"upload_url": f"{self.root_url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        shared = []
        for entry in files:
            stored = self.files.get(str(entry.get("id")))
            if stored is None:
                raise SlackError("file_not_found")
            stored["title"] = entry.get("title") or stored["name"]
            shared.append({"id": entry.get("id"), "name": stored["name"],
                           "title": stored["title"]})
        channel = str(p.get("channel_id") or "")
        if channel:
            self._share(channel, p, [self.files[str(e.get("id"))] for e in files])
        return {"files": shared}

    def _files_upload_v1(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ts):08d}"
        content = str(p.get("content") or "").encode()
        self.files[file_id] = {"name": str(p.get("filename") or "file"), "content": content}
        channel = str(p.get("channels") or "").split(",")[0]
        if channel:
            self._share(channel, p, [self.files[file_id]])
        return {"file": {"id": file_id, "name": self.files[file_id]["name"]}}

    def _share(self, channel: str, p: dict[str, Any], files: list[dict[str, Any]]) -> None:
        comment = str(p.get("initial_comment") or "")
        names = ", ".join(f"📎 {f['name']} ({_rows(f['content'])})" for f in files)
        message = self._store(channel, BOT_USER_ID,
                              {"text": f"{comment}\n{names}".strip(),
                               "thread_ts": p.get("thread_ts")})
        self._show_new(message)

    async def _upload(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        raw = await request.body()
        with self._lock:
            if file_id not in self.files:
                return Response(status_code=404)
            self.files[file_id]["content"] = _multipart_content(raw)
        return Response("OK - " + str(len(raw)), media_type="text/plain")

    async def _respond(self, request: Request) -> Response:
        target = self._response_urls.get(request.path_params["key"])
        if target is None:
            return Response("expired_url", status_code=404)
        body = json.loads(await request.body() or b"{}")
        with self._lock:
            self.last_activity = time.monotonic()
            self._apply_response(target, body)
        return Response("ok", media_type="text/plain")

    def _apply_response(self, target: dict[str, str], body: dict[str, Any]) -> None:
        original = self.messages.get((target["channel"], target["ts"]))
        if body.get("delete_original") and original is not None:
            self._delete({"channel": original.channel, "ts": original.ts})
        elif body.get("replace_original") and original is not None:
            self._update({"channel": original.channel, "ts": original.ts, **_content(body)})
        elif body.get("response_type") == "in_channel":
            thread = body.get("thread_ts") or (original.thread_ts if original else None)
            message = self._store(target["channel"], BOT_USER_ID,
                                  {**_content(body), "thread_ts": thread})
            self._show_new(message)
        else:
            self._show_ephemeral(target["user"], str(body.get("text") or ""),
                                 body.get("blocks") or [])

    # ------------------------------------------------------------------ printing

    def _lines(self, text: str, blocks: list[dict[str, Any]] | None, indent: str) -> list[str]:
        return render_message(text, blocks, self.name_of, width=self.width - len(indent))

    def _show_new(self, message: Posted) -> None:
        who = self.style.name(self.name_of(message.user))
        if message.thread_ts is None:
            lines = self._lines(message.text, message.blocks, BODY)
            self._shown[(message.channel, message.ts)] = lines
            where = ""
            if message.channel != self._channel_shown:
                where = f"{self.style.channel(self.channel_name(message.channel))}\n"
            gap = "\n" if where or not self._after_typing else ""
            self._channel_shown = message.channel
            self._print(f"{gap}{where}{INDENT}{self._time()}  {who}\n" + _indent(lines, BODY))
            return
        lines = self._lines(message.text, message.blocks, THREAD_BODY)
        self._shown[(message.channel, message.ts)] = lines
        thread = (message.channel, message.thread_ts)
        head = ""
        if thread != self._thread_shown:  # replies in a row share one thread line
            parent = self.messages.get(thread)
            label = parent.label(self.name_of) if parent else message.thread_ts
            head = f"{THREAD}in the thread of \"{label}\":\n"  # only the bot writes there
        first, *rest = lines or [""]
        self._print(f"{head}{REPLY}{self._time()}  {first}\n" + _indent(rest, THREAD_BODY),
                    thread=thread)

    def _show_update(self, message: Posted) -> None:
        """Slack redraws the message in place; a terminal can only say what changed."""
        body = THREAD_BODY if message.thread_ts else BODY
        # A parent's "Latest: ..." repeats the thread line printed just before it: in Slack it
        # saves opening the thread, here the thread is on screen.
        shown = [b for b in message.blocks if not _is_latest(b)]
        lines = self._lines(message.text, shown, body)
        before = self._shown.get((message.channel, message.ts), [])
        self._shown[(message.channel, message.ts)] = lines
        changed = [line for line in lines if line not in before and line.strip("‾─ ")]
        if not changed:
            return
        # The job's thread goes on after an edit of its own messages: no new thread line.
        keep = self._thread_shown if self._thread_shown in (
            (message.channel, message.ts), (message.channel, message.thread_ts)) else None
        if len(before) == 1 and len(lines) == 1:  # a waiting line ticking: one line
            self._print(f"{INDENT}{self._time()}  ✎ {lines[0].strip()}", thread=keep)
            return
        label = first_line(message.text, message.blocks, self.name_of, limit=30)
        self._print(f"{INDENT}{self._time()}  ✎ \"{label}\" now says:\n"
                    + _indent(changed, body), thread=keep)

    def _show_ephemeral(self, user: str, text: str, blocks: list[dict[str, Any]]) -> None:
        lines = self._lines(text, blocks, BODY)
        self._print(f"{INDENT}{self._time()}  {self.style.name(BOT_NAME)} (only visible to "
                    f"{self.name_of(user)}):\n" + _indent(lines, BODY))

    def _print(self, text: str, *, thread: tuple[str, str | None] | None = None) -> None:
        # The same redaction as the logs: a PAC must never reach the screen by accident.
        self._thread_shown = thread
        self._after_narration = self._after_typing = False
        print(self.style.buttons(redact(text.rstrip("\n"))), file=self.stream, flush=True)

    def _time(self) -> str:
        return human.clock(self.clock())

    def _next_ts(self) -> str:
        return f"{int(self.clock())}.{next(self._ts):06d}"

    def _channel(self, p: dict[str, Any]) -> str:
        channel = str(p.get("channel") or p.get("channel_id") or "")
        if not channel:
            raise SlackError("channel_not_found")
        if channel.startswith("U"):  # posting to a user id opens their DM
            return channel
        if channel not in self.channels and not re.fullmatch(r"[CGD][A-Z0-9]{2,}", channel):
            raise SlackError("channel_not_found")
        return channel


# --------------------------------------------------------------------------- the terminal


def terminal_width(stream: TextIO, fallback: int = 80, widest: int = 110) -> int:
    """The terminal's width when `stream` is one, else $COLUMNS or 80; at most `widest`."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        given = os.environ.get("COLUMNS", "")
        columns = int(given) if given.isdigit() else fallback
    return max(40, min(columns, widest))


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal, never when piped, never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_BUTTON = re.compile(r"\[ [^\[\]\n]+? \]")


class Style:
    """ANSI colours for the few things worth telling apart; plain text when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _paint(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def narration(self, text: str) -> str:
        return self._paint("1;36", text)

    def name(self, text: str) -> str:
        return self._paint("1", text)

    def channel(self, text: str) -> str:
        return self._paint("1;35", text)

    def buttons(self, text: str) -> str:
        if not self.enabled:
            return text
        return _BUTTON.sub(lambda m: self._paint("1;33", m.group(0)), text)


# --------------------------------------------------------------------------- helpers


async def _params(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if "json" in request.headers.get("content-type", ""):
        body = json.loads(raw or b"{}")
        return body if isinstance(body, dict) else {}
    return {**dict(request.query_params), **dict(parse_qsl(raw.decode("utf-8", "replace")))}


def _menu_choice(blocks: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The overflow option `wanted` names (its text, then optionally a word of its value), as
    the action Slack sends when that option is picked; the last such menu wins."""
    found = None
    for block in blocks:
        menu = block.get("accessory")
        if not isinstance(menu, dict) or menu.get("type") != "overflow":
            continue
        for option in menu.get("options") or []:
            text = str((option.get("text") or {}).get("text", "")).casefold()
            for label in (text, text.rstrip("…")):
                exact = wanted == label
                named = wanted.startswith(label + " ") and wanted[len(label):].strip() in \
                    str(option.get("value", "")).casefold().split("|")
                if exact or named:
                    found = {"type": "overflow", "action_id": menu.get("action_id", ""),
                             "selected_option": option, "_block_id": block.get("block_id", ""),
                             "_label": str((option.get("text") or {}).get("text", ""))}
    return found


def _is_latest(block: dict[str, Any]) -> bool:
    elements = block.get("elements") or [{}]
    return block.get("type") == "context" and str(elements[0].get("text", "")).startswith(
        "Latest: ")


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _blocks(p: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = p.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks or "[]")
    return list(blocks)


def _content(body: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {"text": body.get("text") or ""}
    if "blocks" in body:
        content["blocks"] = body["blocks"]
    return content


def _public(message: Posted) -> dict[str, Any]:
    return {"type": "message", "user": message.user, "bot_id": BOT_ID, "text": message.text,
            "blocks": message.blocks, "ts": message.ts, "thread_ts": message.thread_ts}


def _indent(lines: list[str], prefix: str) -> str:
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)


def _rows(content: bytes) -> str:
    lines = content.count(b"\n")
    return f"{max(lines - 1, 0):,} rows" if lines else f"{len(content):,} bytes"


def _multipart_content(raw: bytes) -> bytes:
    """The file part of a multipart upload, or the raw body (slack_sdk sends either)."""
    if not raw.startswith(b"--"):
        return raw
    boundary = raw.split(b"\r\n", 1)[0]
    for part in raw.split(boundary):
        head, sep, data = part.partition(b"\r\n\r\n")
        if sep and b"filename=" in head:
            return data.rsplit(b"\r\n", 1)[0]
    return raw


def _strip_emoji(text: str) -> str:
    return re.sub(r":[a-z0-9_+\-]+:", "", text).strip()
