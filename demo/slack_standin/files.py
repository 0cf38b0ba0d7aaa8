"""File uploads as slack_sdk's `files_upload_v2` makes them: files.getUploadURLExternal hands out
an upload URL (served by the stand-in), the client sends the bytes there, and
files.completeUploadExternal names the files and shares them, in a channel or a thread."""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from typing import Any

from .protocol import Params, SlackError, json_param
from .record import UploadedFile
from .workspace import Handler, Workspace

UPLOAD_PATH = "/_upload/"


def get_upload_url(ws: Workspace, p: Params) -> dict[str, Any]:
    try:
        length = int(p["length"])
    except (TypeError, ValueError):
        raise SlackError("invalid_arguments", "[ERROR] length must be an integer") from None
    file_id = f"F{next(ws.seq):08d}"
    ws.record.files[file_id] = UploadedFile(file_id, str(p["filename"]), length)
    return {"upload_url": f"{ws.root}{UPLOAD_PATH}{file_id}", "file_id": file_id}


def complete_upload(ws: Workspace, p: Params) -> dict[str, Any]:
    entries = json_param(p, "files", "invalid_arguments")
    if not isinstance(entries, list) or not entries:
        raise SlackError("invalid_arguments", "[ERROR] files must be a non-empty array")
    channel = ws.directory.writable_channel(str(p["channel_id"])) if p.get("channel_id") else None
    shared = [_finish_file(ws, e, channel, p) for e in entries]
    if channel:
        _share_files(ws, channel, shared, p)
    return {"files": shared}


def received(ws: Workspace, file_id: str, content: bytes) -> bool:
    """The bytes sent to a file's upload URL; False for an URL never handed out."""
    with ws.record.lock:
        f = ws.record.files.get(file_id)
        if f is None:
            return False
        f.content = content
    return True


def _finish_file(ws: Workspace, entry: Any, channel: str | None, p: Params) -> dict[str, Any]:
    f = ws.record.files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
    if f is None or f.content is None:
        raise SlackError("file_not_found")
    f.title = str(entry.get("title") or f.filename)
    f.channel, f.thread_ts = channel, p.get("thread_ts") or None
    f.initial_comment = p.get("initial_comment") or None
    mimetype = mimetypes.guess_type(f.filename)[0] or "application/octet-stream"
    me = ws.identity
    return {
        "id": f.id,
        "created": int(time.time()),
        "name": f.filename,
        "title": f.title,
        "mimetype": mimetype,
        "filetype": Path(f.filename).suffix.lstrip(".") or "binary",
        "user": me.bot_user_id,
        "size": len(f.content),
        "is_public": False,
        "url_private": f"https://files.slack.com/files-pri/{me.team_id}-{f.id}/{f.filename}",
        "permalink": f"https://{me.team_domain}.slack.com/files/{me.bot_user_id}/{f.id}",
        "channels": [channel] if channel else [],
    }


def _share_files(ws: Workspace, channel: str, files: list[dict[str, Any]], p: Params) -> None:
    me = ws.identity
    message = {
        "type": "message",
        "user": me.bot_user_id,
        "bot_id": me.bot_id,
        "upload": True,
        "text": str(p.get("initial_comment") or ""),
        "files": files,
        "ts": ws.next_ts(),
    }
    if p.get("thread_ts"):
        message["thread_ts"] = str(p["thread_ts"])
    ws.record.add_message(channel, message)


METHODS: dict[str, Handler] = {
    "files.getUploadURLExternal": get_upload_url,
    "files.completeUploadExternal": complete_upload,
}
