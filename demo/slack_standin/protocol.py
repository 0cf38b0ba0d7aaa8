"""Slack's Web API on the wire: how a call's parameters and token arrive, how a refusal looks.

Slack answers API-level errors with HTTP 200 and `{"ok": false, "error": ...}` (more fields for
some errors, e.g. `needed`/`provided` with `missing_scope`); only rate limiting changes the status
(429, with `Retry-After`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from .blockkit import check_blocks

Params = dict[str, Any]


class SlackError(Exception):
    """An `{"ok": false}` answer."""

    def __init__(self, error: str, *messages: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


def parse_params(request: Request, raw: bytes) -> Params:
    """Query string merged with the body (JSON or form-encoded), as Slack reads them."""
    params: Params = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not raw:
        return params
    if content_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        params.update(body)
    elif content_type in ("application/x-www-form-urlencoded", ""):
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    else:
        raise SlackError("invalid_form_data", f"[ERROR] unsupported content type {content_type}")
    return params


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def json_param(p: Params, name: str, error: str) -> Any:
    """A structured parameter: JSON-encoded text in a form body, a value in a JSON body."""
    value = p.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(error, f"[ERROR] {name} must be JSON") from None
    return value


def blocks_param(p: Params) -> list[dict[str, Any]] | None:
    if p.get("blocks") in (None, ""):
        return None
    blocks = json_param(p, "blocks", "invalid_blocks_format")
    errors = check_blocks(blocks)
    if errors:
        raise SlackError("invalid_blocks", *errors)
    return blocks
