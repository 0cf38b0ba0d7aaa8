"""Who is who: auth.test and bots.info (the bot itself), users.*, usergroups.*, conversations.*."""

from __future__ import annotations

from typing import Any

from .directory import dm_channel
from .protocol import Params, SlackError
from .workspace import Handler, Workspace


def auth_test(ws: Workspace, _: Params) -> dict[str, Any]:
    me = ws.identity
    return {
        "url": f"https://{me.team_domain}.slack.com/",
        "team": me.team_name,
        "user": me.bot_name,
        "team_id": me.team_id,
        "user_id": me.bot_user_id,
        "bot_id": me.bot_id,
        "is_enterprise_install": False,
    }


def bots_info(ws: Workspace, p: Params) -> dict[str, Any]:
    me = ws.identity
    if p.get("bot") != me.bot_id:
        raise SlackError("bot_not_found")
    return {"bot": {"id": me.bot_id, "deleted": False, "name": me.bot_name,
                    "app_id": me.app_id, "user_id": me.bot_user_id}}


def users_info(ws: Workspace, p: Params) -> dict[str, Any]:
    return {"user": ws.directory.known_user(str(p.get("user") or ""))}


def usergroup_members(ws: Workspace, p: Params) -> dict[str, Any]:
    members = ws.directory.usergroups.get(str(p["usergroup"]))
    if members is None:
        raise SlackError("no_such_subteam")
    return {"users": list(members)}


def conversations_info(ws: Workspace, p: Params) -> dict[str, Any]:
    directory = ws.directory
    return {"channel": directory.channels[directory.known_channel(str(p.get("channel") or ""))]}


def conversations_open(ws: Workspace, p: Params) -> dict[str, Any]:
    """The direct conversation with one user (a multi-person one is not faked)."""
    directory = ws.directory
    if p.get("channel"):
        return {"channel": {"id": directory.known_channel(str(p["channel"]))}}
    users = [u for u in str(p.get("users") or "").split(",") if u]
    if len(users) != 1:
        raise SlackError("users_list_not_supplied" if not users else "not_implemented_by_stand_in")
    directory.known_user(users[0])
    channel = directory.known_channel(dm_channel(users[0]))
    return {"channel": {"id": channel}, "already_open": True, "no_op": True}


METHODS: dict[str, Handler] = {
    "auth.test": auth_test,
    "bots.info": bots_info,
    "users.info": users_info,
    "usergroups.users.list": usergroup_members,
    "conversations.info": conversations_info,
    "conversations.open": conversations_open,
}
