"""Requests as Slack sends them to an app in HTTP mode, with the tests' defaults (the operator
in #fleet-ops of the stand-in's workspace). How Slack signs and shapes them is
`demo.slack_standin.inbound`, which the demo uses too.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import urlencode

from demo.slack_standin import DEFAULT_IDENTITY, Identity, inbound
from demo.slack_standin.inbound import (
    FORM,
    VERIFICATION_TOKEN,
    interaction_body,
    signature,
    signed_headers,
    view_state,
)

# The workspace and app of the Web API stand-in: requests come from where its answers point.
TEAM_ID = DEFAULT_IDENTITY.team_id
TEAM_DOMAIN = DEFAULT_IDENTITY.team_domain
API_APP_ID = DEFAULT_IDENTITY.app_id
USER_ID = "U0OPERATOR"
USER_NAME = "operator"
CHANNEL_ID = "C0FLEETOPS"
CHANNEL_NAME = "fleet-ops"
BOT_ID = DEFAULT_IDENTITY.bot_id
BOT_USER_ID = DEFAULT_IDENTITY.bot_user_id


def identity(team_id: str = TEAM_ID) -> Identity:
    """The stand-in's workspace, or another (`team_id`) for a request from elsewhere."""
    return dataclasses.replace(DEFAULT_IDENTITY, team_id=team_id)


def trigger_id() -> str:
    return inbound.trigger_id(TEAM_ID)


def slash_command_fields(
    text: str,
    *,
    command: str = "/sigfox",
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    team_id: str = TEAM_ID,
    response_url: str = "https://hooks.slack.com/commands/T0SIGFOX1/1/abc",
) -> dict[str, str]:
    """The fields of a slash command, in the order Slack sends them."""
    return inbound.slash_command_fields(
        identity(team_id), text, command=command, user_id=user_id, user_name=user_name,
        channel_id=channel_id, channel_name=channel_name, response_url=response_url)


def slash_command_body(text: str, **fields: Any) -> str:
    """A form-encoded slash command body; keyword arguments as in `slash_command_fields`."""
    return urlencode(slash_command_fields(text, **fields))


def button(action_id: str, value: str, text: str, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def block_actions_payload(
    action_id: str,
    value: str,
    *,
    block_id: str = "approval",
    message_ts: str = "1700000000.000100",
    message_blocks: list[dict[str, Any]] | None = None,
    message_text: str = "",
    thread_ts: str | None = None,
    user_id: str = USER_ID,
    user_name: str = USER_NAME,
    channel_id: str = CHANNEL_ID,
    channel_name: str = CHANNEL_NAME,
    team_id: str = TEAM_ID,
    response_url: str = "https://hooks.slack.com/actions/T0SIGFOX1/1/abc",
    button_text: str = "Approve",
) -> dict[str, Any]:
    """The `block_actions` payload Slack sends when a button of a bot's message is clicked."""
    blocks = message_blocks or [
        {
            "type": "actions",
            "block_id": block_id,
            "elements": [button(action_id, value, button_text)],
        }
    ]
    message: dict[str, Any] = {
        "type": "message",
        "subtype": "bot_message",
        "bot_id": BOT_ID,
        "text": message_text,
        "ts": message_ts,
        "blocks": blocks,
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
    action = {**button(action_id, value, button_text), "block_id": block_id}
    return inbound.block_actions_payload(
        identity(team_id), action, message=message, user_id=user_id, user_name=user_name,
        channel_id=channel_id, channel_name=channel_name, response_url=response_url)


def home_block_actions_payload(action_id: str, value: str, *, user_id: str = USER_ID,
                               view_id: str = "V0HOME0001", team_id: str = TEAM_ID,
                               block_id: str = "home") -> dict[str, Any]:
    """A click on a button of the App Home tab: a `view` container, no channel, no message
    and no response_url (Slack has no conversation to answer in)."""
    payload = block_actions_payload(action_id, value, user_id=user_id, user_name=user_id.lower(),
                                    team_id=team_id, block_id=block_id)
    for key in ("channel", "message", "response_url"):
        del payload[key]
    payload["container"] = {"type": "view", "view_id": view_id}
    payload["view"] = {"id": view_id, "type": "home", "team_id": team_id, "blocks": [],
                       "state": {"values": {}}, "hash": f"{time.time():.6f}.abcd",
                       "app_id": API_APP_ID, "bot_id": BOT_ID}
    return payload


def block_actions_body(action_id: str, value: str, **fields: Any) -> str:
    return interaction_body(block_actions_payload(action_id, value, **fields))


def app_home_opened_event(user_id: str = USER_ID, team_id: str = TEAM_ID) -> dict[str, Any]:
    """An Events API envelope for `app_home_opened` (JSON body, not form-encoded)."""
    now = int(time.time())
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": API_APP_ID,
        "event": {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D0HOME0001",
            "tab": "home",
            "event_ts": f"{now}.000100",
        },
        "type": "event_callback",
        "event_id": f"Ev{now}",
        "event_time": now,
        "authorizations": [{"team_id": team_id, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def view_submission_payload(view: dict[str, Any], answers: dict[str, str], *,
                            user_id: str = USER_ID, team_id: str = TEAM_ID) -> dict[str, Any]:
    """The `view_submission` payload Slack sends when `user_id` presses Submit on a modal."""
    return inbound.view_submission_payload(identity(team_id), view, answers, user_id=user_id,
                                           user_name=user_id.lower())


__all__ = [
    "API_APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "CHANNEL_ID",
    "CHANNEL_NAME",
    "FORM",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "USER_ID",
    "USER_NAME",
    "VERIFICATION_TOKEN",
    "app_home_opened_event",
    "block_actions_body",
    "block_actions_payload",
    "button",
    "home_block_actions_payload",
    "identity",
    "interaction_body",
    "signature",
    "signed_headers",
    "slash_command_body",
    "slash_command_fields",
    "trigger_id",
    "view_state",
    "view_submission_payload",
]
