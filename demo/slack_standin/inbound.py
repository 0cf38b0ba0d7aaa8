"""What Slack sends an app when people act: signed requests, slash commands, clicks on a
message's buttons, modal submissions. The tests and the demo build their requests here.

Signing (https://api.slack.com/authentication/verifying-requests-from-slack): the basestring is
`v0:{timestamp}:{raw body}`, its HMAC-SHA256 under the app's signing secret is sent hex-encoded
as `X-Slack-Signature: v0=<hex>`, with the same timestamp in `X-Slack-Request-Timestamp`. Bolt
refuses a request whose timestamp is more than five minutes away from its clock (real time).

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

from .record import Message
from .workspace import Identity

# The legacy verification token: still sent by Slack, ignored by Bolt when a signing secret is set.
VERIFICATION_TOKEN = "legacy-verification-token"
FORM = "application/x-www-form-urlencoded"


def signature(secret: str, timestamp: int | str, body: str | bytes) -> str:
    raw = body.encode() if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str | bytes, *, timestamp: int | None = None,
                   content_type: str = FORM) -> dict[str, str]:
    """Headers Slack would send with `body`; `timestamp` defaults to now (epoch seconds)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": signature(secret, ts, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


def trigger_id(team_id: str) -> str:
    """Shaped as Slack's (`<seconds>.<team number>.<hex>`; views.open checks the shape)."""
    digest = hashlib.sha1(str(time.time_ns()).encode()).hexdigest()
    return f"{int(time.time())}.{team_id[1:]}.{digest}"


def interaction_body(payload: dict[str, Any]) -> str:
    """Form-encode an interaction payload the way Slack does: `payload=<json>`."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def _user(identity: Identity, user_id: str, user_name: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name,
            "team_id": identity.team_id}


def slash_command_fields(identity: Identity, text: str, *, user_id: str, user_name: str,
                         channel_id: str, channel_name: str, response_url: str,
                         command: str = "/sigfox") -> dict[str, str]:
    """The fields of a slash command, in the order Slack sends them."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": identity.team_id,
        "team_domain": identity.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": identity.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id(identity.team_id),
    }


def block_actions_payload(identity: Identity, action: dict[str, Any], *, message: Message,
                          user_id: str, user_name: str, channel_id: str, channel_name: str,
                          response_url: str) -> dict[str, Any]:
    """The `block_actions` payload Slack sends when `action` (an element of `message`, with
    its `block_id`) is clicked: the message as the channel shows it, a fresh trigger."""
    thread_ts = message.get("thread_ts")
    in_thread = {"thread_ts": thread_ts} if thread_ts and thread_ts != message["ts"] else {}
    return {
        "type": "block_actions",
        "user": _user(identity, user_id, user_name),
        "api_app_id": identity.app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel_id,
                      "is_ephemeral": False, **in_thread},
        "trigger_id": trigger_id(identity.team_id),
        "team": {"id": identity.team_id, "domain": identity.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
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


def view_submission_payload(identity: Identity, view: dict[str, Any], answers: dict[str, str],
                            *, user_id: str, user_name: str) -> dict[str, Any]:
    """The `view_submission` payload Slack sends when `user_id` presses Submit on a modal
    (as opened by views.open: `view` carries its id, hash, callback_id and private_metadata)."""
    return {
        "type": "view_submission",
        "team": {"id": identity.team_id, "domain": identity.team_domain},
        "user": _user(identity, user_id, user_name),
        "api_app_id": identity.app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id(identity.team_id),
        "view": {**view, "state": view_state(view, answers), "previous_view_id": None},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
