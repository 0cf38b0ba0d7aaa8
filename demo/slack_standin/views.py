"""views.publish (App Home) and views.open (modals), with the checks Slack makes on each."""

from __future__ import annotations

import re
import time
from typing import Any

from .blockkit import check_blocks, check_modal
from .protocol import Params, SlackError, json_param
from .workspace import Handler, Workspace

TRIGGER_ID = re.compile(r"^\d+\.\w+\.\w+$")


def _served(ws: Workspace, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
    """`view` as Slack answers it: with its id, owner, a fresh hash and an empty state."""
    me = ws.identity
    return {
        **view,
        "id": view_id or f"V{next(ws.seq):08d}",
        "team_id": me.team_id,
        "app_id": me.app_id,
        "bot_id": me.bot_id,
        "hash": f"{time.time():.6f}.{next(ws.seq):08x}",
        "state": {"values": {}},
    }


def publish(ws: Workspace, p: Params) -> dict[str, Any]:
    user_id = str(p["user_id"])
    ws.directory.known_user(user_id)
    view = json_param(p, "view", "invalid_arguments")
    if not isinstance(view, dict) or view.get("type") != "home":
        raise SlackError("invalid_arguments", "[ERROR] must be 'home' [json-pointer:/view/type]")
    errors = check_blocks(view.get("blocks"), max_blocks=100, pointer="/view/blocks")
    if errors:
        raise SlackError("invalid_arguments", *errors)
    previous = ws.record.home_views.get(user_id)
    if p.get("hash") and previous and p["hash"] != previous["hash"]:
        raise SlackError("hash_conflict")
    published = _served(ws, view, previous["id"] if previous else None)
    ws.record.publish_home(user_id, published)
    return {"view": published}


def open_modal(ws: Workspace, p: Params) -> dict[str, Any]:
    """A modal from a trigger_id: each trigger opens one view (`trigger_exchanged` for a
    second), and the view must be a modal Slack would render."""
    trigger = str(p["trigger_id"])
    if not TRIGGER_ID.match(trigger):
        raise SlackError("invalid_trigger_id")
    if trigger in ws.record.used_triggers:
        raise SlackError("trigger_exchanged")
    view = json_param(p, "view", "invalid_arguments")
    errors = check_modal(view)
    if errors:
        raise SlackError("invalid_arguments", *errors)
    opened = {**_served(ws, view), "root_view_id": None, "trigger_id": trigger}
    opened["root_view_id"] = opened["id"]
    ws.record.open_modal(trigger, opened)
    return {"view": opened}


METHODS: dict[str, Handler] = {
    "views.publish": publish,
    "views.open": open_modal,
}
