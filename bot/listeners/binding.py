"""Clicks bound to where the bot lives and to the message that carries them (issue 11).

A valid signature proves a request comes from Slack, not that it concerns this installation:
every request must name the workspace (`team_id`) and the app (`api_app_id`) the bot is
installed in, learnt once from `auth.test` and `bots.info` with the bot's own token. A click on a
job button must also come from that job's own message (the channel and `message_ts` recorded
when the approval was posted; for Cancel, the job's channel), a direct message the bot sent
(reminders), or the App Home view. Anything else changes nothing and is logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from slack_bolt import BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

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


def installation_guard(installation: Installation) -> Any:
    """A Bolt middleware: requests for another workspace or app are answered and dropped."""

    def guard(body: dict[str, Any], next: Any) -> Any:  # Bolt passes `next` by that name
        if "ssl_check" in body or body.get("type") == "url_verification":
            return next()
        expected = installation.ids()
        if expected is None or not _names(team_and_app(body), expected):
            log.warning("request for workspace/app %s dropped: the bot is installed in %s",
                        team_and_app(body), expected)
            return BoltResponse(status=200, body="")
        return next()

    return guard


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


def off_its_message(body: dict[str, Any], message_ref: dict[str, Any]) -> bool:
    """True when a click on an approval's button did not come from that approval's message,
    a direct message (the bot's reminders) or the App Home view."""
    kind, channel, ts = container_of(body)
    if kind == "home" or channel.startswith("D"):
        return False
    return (channel, ts) != (message_ref.get("channel"), message_ref.get("ts"))


def off_its_channel(body: dict[str, Any], channel: str) -> bool:
    """The same for a job's other buttons: they live in the job's channel (or a DM, Home)."""
    kind, clicked_in, _ = container_of(body)
    if kind == "home" or clicked_in.startswith("D"):
        return False
    return clicked_in != channel
