"""The stand-in itself: Slack's Web API served on loopback, checking each call as Slack does
before the method (`chat.py`, `views.py`, `people.py`, `files.py`) answers it."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from . import chat, files, people, views
from .directory import Directory, dm_channel
from .loopback import BackgroundServer
from .protocol import Params, SlackError, bearer, parse_params
from .record import Call, Message, Refusal, ResponseUrl, UploadedFile
from .scopes import MANIFEST_PATH, check_scope, manifest_scopes, method_scopes
from .socket_mode import SOCKET_PING_INTERVAL, SOCKET_PING_TIMEOUT, SocketModeStandIn
from .spec import MISSING_PARAM_ERROR, SPEC_PATH, missing_params, required_params
from .workspace import DEFAULT_IDENTITY, Clock, Handler, Workspace

DEFAULT_TOKEN = "xoxb-0000000001-0000000002-standinbottoken"
# An app-level token as Slack shapes them: xapp-<version>-<app id>-<number>-<secret>.
DEFAULT_APP_TOKEN = f"xapp-1-{DEFAULT_IDENTITY.app_id}-0000000003-standinapptoken"
# Methods called with the app-level token; every other one wants the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
_METHODS: dict[str, Handler] = {**chat.METHODS, **views.METHODS, **people.METHODS,
                                **files.METHODS}
RESPONSE_PATH = "/_response/"


@dataclass
class _Injected:
    times: int
    status: int = 200
    error: str = ""
    retry_after: int = 0


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
        team_id: str = DEFAULT_IDENTITY.team_id,
        team_domain: str = DEFAULT_IDENTITY.team_domain,
        team_name: str = DEFAULT_IDENTITY.team_name,
        bot_user_id: str = DEFAULT_IDENTITY.bot_user_id,
        bot_id: str = DEFAULT_IDENTITY.bot_id,
        app_token: str = DEFAULT_APP_TOKEN,
        app_id: str = DEFAULT_IDENTITY.app_id,
        clock: Clock = time.time,
        scopes: Iterable[str] | None = None,
        manifest: Path = MANIFEST_PATH,
        **server_options: Any,
    ) -> None:
        """`lenient`: any well-formed channel or user id exists (the bot is in every channel).

        With `lenient=False` only those added with `add_channel`/`add_user` exist.
        `app_token` is the app-level token (`xapp-...`) Socket Mode connects with. `clock`
        stamps messages (`ts`); `server_options` are more `uvicorn.Config` settings.
        `scopes`: the bot token's; by default those `manifest` (app.yaml) asks for. A method
        needing another is refused with `missing_scope` (scopes.py).
        """
        self.token = token
        self.app_token = app_token
        self.socket = SocketModeStandIn(app_id)
        identity = dataclasses.replace(
            DEFAULT_IDENTITY, team_id=team_id, team_domain=team_domain, team_name=team_name,
            bot_user_id=bot_user_id, bot_id=bot_id, app_id=app_id)
        self.workspace = Workspace(
            identity, Directory(team_id, lenient=lenient, usergroups=usergroups), clock=clock)
        self.record = self.workspace.record
        self.directory = self.workspace.directory
        self.required = required_params(spec_path)
        self.method_scopes = method_scopes(spec_path)
        self.scopes = frozenset(manifest_scopes(manifest) if scopes is None else scopes)
        self._injected: dict[str, list[_Injected]] = defaultdict(list)
        self._scripted: dict[str, dict[str, Any]] = {}
        # Slack pings Socket Mode connections and drops one whose pongs stop. Pinging often
        # also wakes slack_sdk's built-in client, whose close() otherwise waits for its blocking
        # read to time out (3 s) before it can take the socket's lock.
        self._server = BackgroundServer(
            self._asgi_app(), ws_ping_interval=SOCKET_PING_INTERVAL,
            ws_ping_timeout=SOCKET_PING_TIMEOUT, **server_options)
        self.add_user(bot_user_id, identity.bot_name, is_bot=True)
        for uid, fields in (users or {}).items():
            self.add_user(uid, str(fields.get("name", uid.lower())), **fields)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SlackApiStandIn:
        self._server.start()
        self.workspace.root = self._server.root
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SlackApiStandIn:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def root(self) -> str:
        return self._server.root

    @property
    def url(self) -> str:
        """The Web API root, for `WebClient(base_url=...)` and `SLACK_API_URL`."""
        return f"{self.root}/api/"

    # ------------------------------------------------------------------ who the bot is

    @property
    def team_id(self) -> str:
        return self.workspace.identity.team_id

    @property
    def team_domain(self) -> str:
        return self.workspace.identity.team_domain

    @property
    def bot_user_id(self) -> str:
        return self.workspace.identity.bot_user_id

    @property
    def bot_id(self) -> str:
        return self.workspace.identity.bot_id

    # ------------------------------------------------------------------ set-up

    def add_user(self, user_id: str, name: str, **fields: Any) -> None:
        with self.record.lock:
            self.directory.add_user(user_id, name, **fields)

    def add_channel(self, channel_id: str, name: str, *, is_member: bool = True,
                    is_private: bool = False, is_archived: bool = False) -> None:
        with self.record.lock:
            self.directory.add_channel(channel_id, name, is_member=is_member,
                                       is_private=is_private, is_archived=is_archived)

    def set_usergroup(self, usergroup_id: str, members: list[str]) -> None:
        with self.record.lock:
            self.directory.usergroups[usergroup_id] = list(members)

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with `Retry-After: retry_after`."""
        with self.record.lock:
            self._injected[method].append(
                _Injected(times, status=429, error="ratelimited", retry_after=retry_after)
            )

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer `{"ok": false, "error": error}`."""
        with self.record.lock:
            self._injected[method].append(_Injected(times, error=error))

    def answer(self, method: str, body: Mapping[str, Any]) -> None:
        """Script the answer of a method this stand-in does not implement."""
        with self.record.lock:
            self._scripted[method] = {"ok": True, **body}

    def response_url(self, channel: str, user: str = "", message_ts: str | None = None) -> str:
        """A response URL as Slack puts in a command or interaction, served by the stand-in."""
        with self.record.lock:
            rid = f"{next(self.workspace.seq):08d}"
            self.record.response_urls[rid] = ResponseUrl(channel, user, message_ts, time.time())
        return f"{self.root}{RESPONSE_PATH}{rid}"

    def acknowledge(self, channel: str, user: str, body: dict[str, Any]) -> None:
        """What an app's acknowledgement of a command carried (`ack(text=...)`): Slack shows it
        as it would a post to the command's response URL, privately unless `in_channel`."""
        with self.record.lock:
            chat.apply_response(self.workspace, ResponseUrl(channel, user, None, time.time()),
                                body)

    def reset(self) -> None:
        """Forget what happened (calls, messages, files, views, injected faults) but keep the
        directory (users, channels, user groups): lets one served stand-in serve many tests."""
        with self.record.lock:
            self.record.clear()
            self._injected.clear()
            self._scripted.clear()
        self.socket.reset()

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[Call]:
        return self.record.calls

    @property
    def ephemerals(self) -> list[Message]:
        return self.record.ephemerals

    @property
    def home_views(self) -> dict[str, dict[str, Any]]:
        return self.record.home_views

    @property
    def modals(self) -> dict[str, dict[str, Any]]:
        return self.record.modals

    @property
    def files(self) -> dict[str, UploadedFile]:
        return self.record.files

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return self.directory.users

    @property
    def channels(self) -> dict[str, dict[str, Any]]:
        return self.directory.channels

    @property
    def usergroups(self) -> dict[str, list[str]]:
        return self.directory.usergroups

    def calls_to(self, method: str) -> list[Call]:
        return self.record.calls_to(method)

    def methods_called(self) -> list[str]:
        return self.record.methods_called()

    def refusals_of(self, error: str) -> list[Refusal]:
        """The calls the stand-in refused with `error`, e.g. `missing_scope`."""
        return self.record.refusals_of(error)

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first, each in its latest version."""
        return self.record.messages(channel)

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The parent and its replies, oldest first, each in its latest version."""
        return self.record.thread(channel, thread_ts)

    def direct_messages(self, user_id: str) -> list[Message]:
        """What the bot sent to `user_id` in their direct conversation with it (the app's
        Messages tab), oldest first, each in its latest version."""
        return self.record.messages(dm_channel(user_id))

    def modals_opened(self) -> list[dict[str, Any]]:
        return self.record.modals_opened()

    def message(self, channel: str, ts: str) -> Message:
        """The latest version of one message (KeyError if never posted)."""
        return self.record.message(channel, ts)

    def versions(self, channel: str, ts: str) -> list[Message]:
        return self.record.versions(channel, ts)

    def responses(self) -> list[dict[str, Any]]:
        """Every body posted to a response URL, oldest first."""
        return self.record.responses()

    # ------------------------------------------------------------------ HTTP

    def _asgi_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route(files.UPLOAD_PATH + "{file_id}", self._upload, methods=["POST"]),
                Route(RESPONSE_PATH + "{rid}", self._respond, methods=["POST"]),
                WebSocketRoute("/socket/link/", self.socket.serve),
            ]
        )

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        raw = await request.body()
        try:
            params = parse_params(request, raw)
        except SlackError as exc:
            self.record.record_call(method, {})
            return JSONResponse(exc.body())
        token = bearer(request.headers.get("authorization")) or params.pop("token", None)
        self.record.record_call(method, params)
        with self.record.lock:
            return self._dispatch(method, params, token)

    def _dispatch(self, method: str, params: Params, token: str | None) -> Response:
        handler = _METHODS.get(method)
        known = (handler is not None or method in self.required or method in self._scripted
                 or method in _APP_TOKEN_METHODS)
        try:
            if not known:
                raise SlackError("unknown_method", req_method=method)
            self._check_auth(token, app_level=method in _APP_TOKEN_METHODS)
            if method not in _APP_TOKEN_METHODS:  # the app-level token's scopes are not modelled
                check_scope(method, self.scopes, self.method_scopes)
            injected = self._take_injected(method)
            if injected is not None:
                return injected
            self._check_required(method, params)
            if method in _APP_TOKEN_METHODS:
                return JSONResponse({"ok": True, "url": self.socket.issue_url(self.root)})
            if handler is None:
                return JSONResponse(self._scripted_or_unimplemented(method))
            return JSONResponse({"ok": True, **handler(self.workspace, params)})
        except SlackError as exc:
            self.record.refused(method, exc.body())
            return JSONResponse(exc.body())

    def _check_auth(self, token: str | None, *, app_level: bool = False) -> None:
        if not token:
            raise SlackError("not_authed")
        # Slack refuses a token of the wrong kind (a bot token opening a socket, an app-level
        # token posting a message) with not_allowed_token_type, not invalid_auth.
        other_kinds: tuple[str, ...]
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

    def _check_required(self, method: str, params: Params) -> None:
        for name in missing_params(method, params, self.required)[:1]:
            error = MISSING_PARAM_ERROR.get(name, "invalid_arguments")
            raise SlackError(error, f"[ERROR] missing required field: {name}")

    def _scripted_or_unimplemented(self, method: str) -> dict[str, Any]:
        if method in self._scripted:
            return self._scripted[method]
        # A real method the stand-in cannot fake: say so plainly rather than pretend success.
        return {"ok": False, "error": "not_implemented_by_stand_in", "req_method": method}

    # ------------------------------------------------------------------ uploads and responses

    async def _upload(self, request: Request) -> Response:
        content = await request.body()
        if not files.received(self.workspace, request.path_params["file_id"], content):
            return PlainTextResponse("Not Found", status_code=404)
        return PlainTextResponse(f"OK - {len(content)}")

    async def _respond(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        with self.record.lock:
            target = self.record.response_urls.get(request.path_params["rid"])
            if target is None or not isinstance(body, dict):
                return PlainTextResponse("invalid_payload", status_code=404)
            # Slack: at most five posts to one response URL, within 30 minutes.
            if time.time() - target.created > 1800:
                return PlainTextResponse("expired_url", status_code=404)
            if len(target.posts) >= 5:
                return PlainTextResponse("used_url", status_code=404)
            target.posts.append(body)
            chat.apply_response(self.workspace, target, body)
        return PlainTextResponse("ok")
