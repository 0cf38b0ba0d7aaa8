"""Who and where: the workspace's people, conversations and user groups, as Slack describes them.

`lenient`: any well-formed channel or user id exists (the bot is a member of every channel), so
a test need not declare each one; with `lenient=False` only those added exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .protocol import SlackError

CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def dm_channel(user_id: str) -> str:
    """The id the stand-in gives the direct conversation between the bot and `user_id`."""
    return "D" + user_id[1:]


class Directory:
    """Users, channels and user groups by id; each lookup refuses as Slack does."""

    def __init__(self, team_id: str, *, lenient: bool = True,
                 usergroups: Mapping[str, list[str]] | None = None) -> None:
        self.team_id = team_id
        self.lenient = lenient
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}

    def add_user(self, user_id: str, name: str, **fields: Any) -> None:
        self.users[user_id] = self._user_object(user_id, name, fields)

    def add_channel(self, channel_id: str, name: str, *, is_member: bool = True,
                    is_private: bool = False, is_archived: bool = False) -> None:
        self.channels[channel_id] = self._channel_object(
            channel_id, name, is_member=is_member, is_private=is_private,
            is_archived=is_archived)

    def name_of(self, user_or_channel: str) -> str:
        """A person's name or a channel's, as Slack shows them; the id when unknown."""
        known = self.users.get(user_or_channel) or self.channels.get(user_or_channel)
        return str(known["name"]) if known else user_or_channel

    # ------------------------------------------------------------------ lookups that refuse

    def known_channel(self, channel: str) -> str:
        if channel.startswith(("U", "W")) and USER_ID.match(channel):
            channel = dm_channel(channel)  # posting to a user id goes to the DM with that user
        if channel not in self.channels:
            if not (self.lenient and CONVERSATION_ID.match(channel)):
                raise SlackError("channel_not_found")
            self.channels[channel] = self._channel_object(channel, channel.lower())
        return channel

    def writable_channel(self, channel: str) -> str:
        channel = self.known_channel(channel)
        info = self.channels[channel]
        if info["is_archived"]:
            raise SlackError("is_archived")
        if not info["is_member"]:
            raise SlackError("not_in_channel")
        return channel

    def known_user(self, user_id: str) -> dict[str, Any]:
        if user_id not in self.users:
            if not (self.lenient and USER_ID.match(user_id)):
                raise SlackError("user_not_found")
            self.users[user_id] = self._user_object(user_id, user_id.lower(), {})
        return self.users[user_id]

    # ------------------------------------------------------------------ Slack's objects

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

    def _channel_object(self, channel_id: str, name: str, *, is_member: bool = True,
                        is_private: bool = False, is_archived: bool = False) -> dict[str, Any]:
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
