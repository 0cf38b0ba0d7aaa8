"""Requests as Slack sends them to an app in HTTP mode: signed bodies, slash commands, clicks.

Signing (https://api.slack.com/authentication/verifying-requests-from-slack): the basestring is
`v0:{timestamp}:{raw body}`, its HMAC-SHA256 under the app's signing secret is sent hex-encoded
as `X-Slack-Signature: v0=<hex>`, with the same timestamp in `X-Slack-Request-Timestamp`. Bolt
refuses a request whose timestamp is more than five minutes away from its clock.

Slash commands arrive form-encoded; interactions arrive form-encoded too, as a single field
`payload` holding the JSON document.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from demo.slack_standin import DEFAULT_IDENTITY

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
# The legacy verification token: still sent by Slack, ignored by Bolt when a signing secret is set.
VERIFICATION_TOKEN = "legacy-verification-token"
FORM = "application/x-www-form-urlencoded"


def signature(secret: str, timestamp: int | str, body: str | bytes) -> str:
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    secret: str,
    body: str | bytes,
    *,
    timestamp: int | None = None,
    content_type: str = FORM,
) -> dict[str, str]:
    """Headers Slack would send with `body`; `timestamp` defaults to now (epoch seconds)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(secret, ts, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


def trigger_id() -> str:
    return (
        f"{int(time.time())}.{TEAM_ID[1:]}.{hashlib.sha1(str(time.time_ns()).encode()).hexdigest()}"
    )


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
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": API_APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id(),
    }


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
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
            **({"thread_ts": thread_ts} if thread_ts else {}),
        },
        "trigger_id": trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": button_text, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


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


def interaction_body(payload: dict[str, Any]) -> str:
    """Form-encode an interaction payload the way Slack does: `payload=<json>`."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


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


def view_state(view: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """`view.state` as Slack sends it with a submission: for each input block named in
    `answers` (by block_id), its element's value (a text, or a select's option value)."""
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input" or block.get("block_id") not in answers:
            continue
        element = block["element"]
        answer = answers[block["block_id"]]
        if element["type"] == "static_select":
            [option] = [o for o in element["options"] if o["value"] == answer]
            state = {"type": "static_select", "selected_option": option}
        else:
            state = {"type": element["type"], "value": answer}
        values[block["block_id"]] = {element["action_id"]: state}
    return {"values": values}


def view_submission_payload(view: dict[str, Any], answers: dict[str, str], *,
                            user_id: str = USER_ID, team_id: str = TEAM_ID) -> dict[str, Any]:
    """The `view_submission` payload Slack sends when `user_id` presses Submit on a modal
    (as opened by views.open: `view` carries its id, hash, callback_id and private_metadata)."""
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                 "team_id": team_id},
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id(),
        "view": {**view, "state": view_state(view, answers), "previous_view_id": None},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
