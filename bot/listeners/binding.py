"""Clicks bound to where the bot lives and to the message that carries them (issue 11).

A valid signature proves a request comes from Slack, not that it concerns this installation:
every request must name the workspace (`team_id`) and the app (`api_app_id`) the bot is
installed in, learnt once from `auth.test` and `bots.info` with the bot's own token. A click on a
job button must also come from a message the bot recorded, when it posted it, as carrying that
job's buttons of that kind (storage/buttons.py): Approve and Reject on the approval request or
one of the reminders sent by direct message, Cancel on the job's card, Show PAC and Copy
callbacks on the job's summary, Keep and Stop waiting on the release-wait message; Approve and
Reject also on the Home tab the bot published for the person clicking. Another channel,
another `message_ts`, a DM the bot never sent with these buttons: nothing changes, the clicker
is told privately and the log says why (ids only, never a PAC).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot import blocks
from storage import buttons as carrying
from storage.buttons import ButtonMessages
from storage.records import job_label

log = logging.getLogger(__name__)


class Installation:
    """The workspace and app the bot is installed in (looked up once, then cached).

    The app id comes from `bots.info`, which needs the `users:read` scope. An app installed from
    an older manifest lacks it: then only the workspace is checked (said once in the log), which
    still holds, because the signing secret and the app-level token are the app's own.
    """

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._ids: tuple[str, str] | None = None

    def ids(self) -> tuple[str, str] | None:
        """(team_id, app_id), app_id "" when it cannot be learnt; None when Slack cannot say
        who the bot is right now (every request is then dropped: deny by default)."""
        with self._lock:
            if self._ids is None:
                try:
                    auth = self._client.auth_test()
                    self._ids = (str(auth["team_id"]), self._app_id(str(auth["bot_id"])))
                except (SlackApiError, SlackClientError, KeyError, TypeError) as error:
                    log.warning("cannot learn the bot's workspace and app (%s)",
                                type(error).__name__)
                    return None
            return self._ids

    def _app_id(self, bot_id: str) -> str:
        try:
            return str(self._client.bots_info(bot=bot_id)["bot"]["app_id"])
        except SlackApiError as error:
            log.warning("Slack refused bots.info (%s): requests are checked against the "
                        "workspace only; add the users:read scope (app.yaml) and reinstall the "
                        "app to check the app id too", error.response.get("error"))
            return ""


def team_and_app(body: dict[str, Any]) -> tuple[str, str]:
    """The workspace and app a request names, in any of Slack's payload shapes."""
    team = body.get("team_id") or body.get("team")
    if isinstance(team, dict):
        team = team.get("id")
    if not team and isinstance(body.get("user"), dict):
        team = body["user"].get("team_id")
    return str(team or ""), str(body.get("api_app_id") or "")


NOT_HERE = ("This Sigfox bot serves another Slack workspace or app, so it did nothing with "
            "this. Use the bot installed in your workspace.")
CANNOT_CHECK = ("The Sigfox bot cannot confirm its Slack workspace right now, so it did nothing "
                "with this. Try again in a minute.")


class InstallationGuard(Middleware):
    """A Bolt middleware: requests for another workspace or app change nothing; the person is
    told privately (a command in its acknowledgement, a click through its response URL, sent
    by `run_later` so the acknowledgement does not wait for it). A `Middleware` rather than a
    function: Bolt calls it as is, where a function middleware costs every request the
    building of its arguments, on the path of the acknowledgement."""

    def __init__(self, installation: Installation,
                 run_later: Callable[[Callable[[], None]], object]) -> None:
        self.installation = installation
        self.run_later = run_later

    def process(self, *, req: BoltRequest, resp: BoltResponse,
                next: Callable[[], BoltResponse]) -> BoltResponse | None:  # Bolt's names
        body = req.body
        if "ssl_check" in body or body.get("type") == "url_verification":
            return next()
        expected = self.installation.ids()
        if expected is None or not _names(team_and_app(body), expected):
            log.warning("request for workspace/app %s dropped: the bot is installed in %s",
                        team_and_app(body), expected)
            return _refused(body, NOT_HERE if expected else CANNOT_CHECK, self.run_later)
        return next()


def _refused(body: dict[str, Any], text: str,
             run_later: Callable[[Callable[[], None]], object]) -> BoltResponse:
    if "command" in body:  # Slack shows a command's acknowledgement to its author only
        return BoltResponse(status=200, body=json.dumps({"response_type": "ephemeral",
                                                         "text": text}),
                            headers={"content-type": ["application/json"]})
    url = body.get("response_url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        run_later(partial(_tell_privately, url, text))
    return BoltResponse(status=200, body="")


def _tell_privately(url: str, text: str) -> None:
    try:
        WebhookClient(url, timeout=10).send(text=text, response_type="ephemeral",
                                            replace_original=False)
    except Exception as error:  # the answer is a courtesy: never let it fail anything
        log.info("could not answer a request for another workspace (%s)", type(error).__name__)


def _names(named: tuple[str, str], expected: tuple[str, str]) -> bool:
    """True when a request names the expected workspace, and the app when it is known."""
    return named[0] == expected[0] and (not expected[1] or named[1] == expected[1])


def container_of(body: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, channel, message_ts) of the surface a click came from."""
    container = body.get("container") or {}
    if container.get("type") == "view":
        view = body.get("view") or {}
        return "home" if view.get("type") == "home" else "view", "", ""
    return ("message", str(container.get("channel_id") or ""),
            str(container.get("message_ts") or ""))


# Which of the recorded messages carry which job buttons (what bot/notifier.py posts).
CARRIED_ON: dict[str, frozenset[str]] = {
    blocks.APPROVE: frozenset({carrying.APPROVAL, carrying.REMINDER}),
    blocks.REJECT: frozenset({carrying.APPROVAL, carrying.REMINDER}),
    blocks.CANCEL: frozenset({carrying.CARD}),
    blocks.SHOW_PAC: frozenset({carrying.SUMMARY}),
    blocks.COPY_CALLBACKS: frozenset({carrying.SUMMARY}),
    blocks.KEEP_WAITING: frozenset({carrying.RELEASE}),
    blocks.STOP_WAITING: frozenset({carrying.RELEASE}),
}
ON_HOME = frozenset({blocks.APPROVE, blocks.REJECT})  # what the Home tab shows (blocks.app_home)


class MessageBinding:
    """A job button counts only where the bot put it: on a message recorded as carrying that
    job's buttons of that kind (storage/buttons.py), or, for Approve and Reject, on the Home
    tab the bot published for the person clicking."""

    def __init__(self, buttons: ButtonMessages) -> None:
        self.buttons = buttons

    def misplaced(self, body: dict[str, Any], action_id: str, workflow_id: int) -> str:
        """Why this click is not on a surface carrying the job's button (for the log), or ""
        when it is."""
        kind, channel, ts = container_of(body)
        if kind == "home":
            return self._off_home(body, action_id)
        if kind != "message":
            return f"a {kind} carries no job button"
        recorded = self.buttons.kind_of(workflow_id, channel, ts)
        if recorded is None:
            return (f"the bot recorded no message with buttons of {job_label(workflow_id)} "
                    f"at {channel or '?'}/{ts or '?'}")
        if recorded not in CARRIED_ON.get(action_id, frozenset()):
            return f"the {recorded} message at {channel}/{ts} carries no {action_id}"
        return ""

    def _off_home(self, body: dict[str, Any], action_id: str) -> str:
        if action_id not in ON_HOME:
            return f"the Home tab carries no {action_id}"
        user = body.get("user") or {}
        user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
        view_id = str((body.get("view") or {}).get("id") or "")
        if not self.buttons.is_home_of(user_id, view_id):
            return f"view {view_id or '?'} is not a Home tab the bot published for {user_id}"
        return ""
