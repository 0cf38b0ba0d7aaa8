"""chat.* methods, and what a response URL (or an acknowledgement's body) does to the channel."""

from __future__ import annotations

from typing import Any

from .protocol import Params, SlackError, blocks_param
from .record import ResponseUrl
from .workspace import Handler, Workspace


def post_message(ws: Workspace, p: Params) -> dict[str, Any]:
    channel = ws.directory.writable_channel(p["channel"])
    message = ws.new_message(p)
    if p.get("thread_ts"):
        message["thread_ts"] = str(p["thread_ts"])
    ws.record.add_message(channel, message)
    return {"channel": channel, "ts": message["ts"], "message": message}


def update(ws: Workspace, p: Params) -> dict[str, Any]:
    channel = ws.directory.writable_channel(p["channel"])
    versions = ws.record.conversations[channel].get(str(p["ts"]))
    if not versions:
        raise SlackError("message_not_found")
    current = versions[-1]
    if current.get("bot_id") != ws.identity.bot_id:
        raise SlackError("cant_update_message")
    updated = dict(current)
    if "text" in p:
        updated["text"] = str(p["text"] or "")
    blocks = blocks_param(p)
    if blocks is not None:  # Slack keeps the previous blocks unless new ones are sent
        updated["blocks"] = blocks
    updated["edited"] = {"user": ws.identity.bot_user_id, "ts": ws.next_ts()}
    ws.record.add_version(channel, updated)
    return {"channel": channel, "ts": updated["ts"], "text": updated["text"], "message": updated}


def post_ephemeral(ws: Workspace, p: Params) -> dict[str, Any]:
    channel = ws.directory.writable_channel(p["channel"])
    message = ws.new_message(p)
    message.update(channel=channel, ephemeral_user=str(p["user"]))
    if p.get("thread_ts"):
        message["thread_ts"] = str(p["thread_ts"])
    ws.record.add_ephemeral(message)
    return {"message_ts": message["ts"]}


def get_permalink(ws: Workspace, p: Params) -> dict[str, Any]:
    channel = ws.directory.known_channel(p["channel"])
    ts = str(p["message_ts"])
    versions = ws.record.conversations[channel].get(ts)
    if not versions:
        raise SlackError("message_not_found")
    link = (f"https://{ws.identity.team_domain}.slack.com/archives/{channel}"
            f"/p{ts.replace('.', '')}")
    thread_ts = versions[-1].get("thread_ts")
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return {"channel": channel, "permalink": link}


def apply_response(ws: Workspace, target: ResponseUrl, body: dict[str, Any]) -> None:
    """A body posted to a response URL (or an acknowledgement's, which Slack treats alike):
    replace or delete the message it came from, post in the channel, or answer privately."""
    original = ws.record.conversations[target.channel].get(target.message_ts or "")
    if original and body.get("delete_original"):
        ws.record.add_version(target.channel, {**original[-1], "deleted": True})
    elif original and body.get("replace_original"):
        updated = {**original[-1], "text": str(body.get("text") or "")}
        if "blocks" in body:
            updated["blocks"] = body["blocks"]
        ws.record.add_version(target.channel, updated)
    elif body.get("response_type") == "in_channel":
        message = ws.new_message({k: v for k, v in body.items() if k != "thread_ts"})
        if body.get("thread_ts"):
            message["thread_ts"] = str(body["thread_ts"])
        ws.record.add_message(target.channel, message)
    else:
        message = ws.new_message(body)
        message.update(channel=target.channel, ephemeral_user=target.user)
        ws.record.add_ephemeral(message)


METHODS: dict[str, Handler] = {
    "chat.postMessage": post_message,
    "chat.update": update,
    "chat.postEphemeral": post_ephemeral,
    "chat.getPermalink": get_permalink,
}
