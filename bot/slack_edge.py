"""What a request to `/slack/events` must be before Bolt sees it.

Checked in this order, each failure answered with a status and one sentence, never a traceback:
the body is at most `MAX_SLACK_BYTES` (413, before it is even read whole); the timestamp header
is a number (400) and recent (401); the body is UTF-8 (400); the signature is Slack's over the
exact bytes received (401); the body parses into the document Slack sends (400); that document
has the fields the listeners rely on (400).

Why not let Bolt parse: slack-bolt 1.30's `parse_body` takes any form body in which the *text*
"payload" appears for an interactivity payload and, finding no `payload` field, returns `{}`:
`/sigfox help payload`, a channel named #iot-payloads or a user called Payload got a 404. Here a
form body is an interactivity payload only when it has a field named `payload`, and Bolt is
handed the parsed document as JSON, so its heuristic never runs. Bolt's own signature check is
then off (it would sign over the re-encoded body); this module is the check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

MAX_SLACK_BYTES = 1024 * 1024  # Slack's largest payloads (a modal's state) stay far below
MAX_CLOCK_SKEW = 300  # seconds, as Slack documents and Bolt applies
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class Refusal(Exception):
    """A request that is not Slack's, or not a well-formed one."""

    status: int
    message: str


def check_size(declared: str | None, limit: int = MAX_SLACK_BYTES) -> None:
    """Refuse on the declared length alone, before reading anything."""
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise Refusal(413, f"body larger than {limit} bytes")


def verify(raw: bytes, headers: Mapping[str, str], secret: str,
           now: Callable[[], float] = time.time) -> str:
    """The body as text, once it is proven to come from Slack now."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        raise Refusal(401, "missing X-Slack-Request-Timestamp or X-Slack-Signature")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise Refusal(400, "X-Slack-Request-Timestamp must be a number of seconds")
    if abs(now() - int(timestamp)) > MAX_CLOCK_SKEW:
        raise Refusal(401, "X-Slack-Request-Timestamp is more than five minutes away")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "body is not UTF-8") from None
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise Refusal(401, "invalid X-Slack-Signature")
    return text


def parse(text: str, content_type: str) -> dict[str, Any]:
    """The document Slack sent: an Events API envelope (JSON), a slash command (form fields)
    or an interactivity payload (the JSON in the form field `payload`)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == JSON:
        body = _json_object(text, "body")
        _check_envelope(body)
        return body
    if kind != FORM:
        raise Refusal(400, f"unsupported Content-Type {kind or '(none)'}: Slack sends {FORM} "
                           f"or {JSON}")
    fields = parse_qs(text, keep_blank_values=True)
    if "payload" in fields:
        payload = _json_object(_single(fields, "payload"), "payload")
        _check_interaction(payload)
        return payload
    if "ssl_check" in fields:
        return {"ssl_check": _single(fields, "ssl_check")}
    command = {name: _single(fields, name) for name in fields}
    _check_command(command)
    return command


def _single(fields: dict[str, list[str]], name: str) -> str:
    values = fields[name]
    if len(values) != 1:
        raise Refusal(400, f"field {name} appears {len(values)} times")
    return values[0]


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise Refusal(400, f"{where} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refusal(400, f"{where} must be a JSON object")
    return value


def _check_command(command: dict[str, str]) -> None:
    missing = [f for f in ("command", "user_id", "channel_id") if not command.get(f)]
    if missing:
        raise Refusal(400, f"slash command without {', '.join(missing)}")
    if not command["command"].startswith("/"):
        raise Refusal(400, "command must start with /")


def _string(document: dict[str, Any], *path: str) -> str:
    value: Any = document
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        raise Refusal(400, f"{'.'.join(path)} must be a non-empty string")
    return value


def _check_interaction(payload: dict[str, Any]) -> None:
    kind = _string(payload, "type")
    _string(payload, "user", "id")
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            raise Refusal(400, "actions must be a non-empty list")
        for action in actions:
            if not isinstance(action, dict):
                raise Refusal(400, "each action must be an object")
            _string(action, "action_id")
            if not isinstance(action.get("value", ""), str):
                raise Refusal(400, "an action's value must be a string")
    for name in ("container", "channel", "message", "view", "team"):
        if name in payload and not isinstance(payload[name], dict):
            raise Refusal(400, f"{name} must be an object")


def _check_envelope(body: dict[str, Any]) -> None:
    kind = _string(body, "type")
    if kind == "url_verification":
        _string(body, "challenge")
    elif kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict):
            raise Refusal(400, "event must be an object")
        _string(event, "type")
        if "user" in event and not isinstance(event["user"], str):
            raise Refusal(400, "event.user must be a string")
