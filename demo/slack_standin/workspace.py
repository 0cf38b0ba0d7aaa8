"""The workspace a stand-in serves: who the bot is, the directory, the record, the clock.

The Web API methods (`chat.py`, `views.py`, `people.py`, `files.py`) are functions of a
`Workspace` and the call's parameters, each answering the body Slack answers (without `ok`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .directory import Directory
from .protocol import Params, SlackError, blocks_param, json_param
from .record import Message, Record

Clock = Callable[[], float]


@dataclass(frozen=True)
class Identity:
    """The team and the bot: what `auth.test` and `bots.info` answer, what messages carry."""

    team_id: str
    team_domain: str
    team_name: str
    bot_user_id: str
    bot_id: str
    bot_name: str
    app_id: str


class Workspace:
    def __init__(self, identity: Identity, directory: Directory, *, clock: Clock = time.time
                 ) -> None:
        self.identity = identity
        self.directory = directory
        self.record = Record()
        self.clock = clock  # message timestamps: the demo's virtual clock, else real time
        self.root = ""  # the server's URL, once it listens (upload URLs point there)
        self.seq = itertools.count(1)

    def next_ts(self) -> str:
        return f"{int(self.clock())}.{next(self.seq):06d}"

    def new_message(self, p: Params) -> Message:
        """A message from the bot, as chat.postMessage (or a response URL) would store it."""
        blocks = blocks_param(p)
        if not p.get("text") and blocks is None and not p.get("attachments"):
            raise SlackError("no_text")
        me = self.identity
        message: Message = {
            "type": "message",
            "user": me.bot_user_id,
            "bot_id": me.bot_id,
            "app_id": me.app_id,
            "team": me.team_id,
            "text": str(p.get("text") or ""),
            "ts": self.next_ts(),
        }
        if blocks is not None:
            message["blocks"] = blocks
        if p.get("metadata"):
            message["metadata"] = json_param(p, "metadata", "invalid_metadata_format")
        return message


Handler = Callable[[Workspace, Params], dict[str, Any]]


# The workspace the tests' stand-in is by default (tests/support/slack_signing.py signs requests
# from the same team and app).
DEFAULT_IDENTITY = Identity(
    team_id="T0SIGFOX1", team_domain="sigfox-ops", team_name="Sigfox Ops",
    bot_user_id="U0SIGBOT01", bot_id="B0SIGBOT01", bot_name="sigfox-bot", app_id="A0SIGFOX1",
)
