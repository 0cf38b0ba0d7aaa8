"""What happened in the workspace: every call, every message with its versions and threads,
ephemeral messages, views, files, response URLs. Tests read it; the demo's terminal renders it.

One lock guards it (and the directory beside it): the server writes from its own thread while a
test or the terminal reads. A watcher (`watch`) is told each change as an `Event`, in order, while
the lock is held: the demo's terminal prints them as they happen.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

Message = dict[str, Any]


class Change(Enum):
    POSTED = "posted"  # a new message in a channel or thread (a file share too)
    EDITED = "edited"  # a new version of a message (chat.update, replace_original)
    DELETED = "deleted"  # delete_original
    EPHEMERAL = "ephemeral"  # a message only one person sees
    HOME = "home"  # an App Home published
    MODAL = "modal"  # a modal opened


@dataclass(frozen=True)
class Event:
    change: Change
    item: dict[str, Any]  # the message (its new version) or the view
    channel: str = ""  # the message's conversation
    before: Message | None = None  # an edited or deleted message's previous version
    user: str = ""  # whose App Home, or who sees the ephemeral message


Watcher = Callable[[Event], None]


class Call(NamedTuple):
    method: str
    params: dict[str, Any]
    time: float


class Refusal(NamedTuple):
    """A call the stand-in's own checks refused (faults a test injects are not counted)."""

    method: str
    answer: dict[str, Any]  # {"ok": false, "error": ..., ...} as sent


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None


@dataclass
class ResponseUrl:
    channel: str
    user: str
    message_ts: str | None
    created: float
    posts: list[dict[str, Any]] = field(default_factory=list)


def is_top_level(message: Message) -> bool:
    return message.get("thread_ts") in (None, message["ts"]) and not message.get("deleted")


class Record:
    """The workspace's history, in the shapes Slack's API returns."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.refusals: list[Refusal] = []
        self.ephemerals: list[Message] = []
        self.home_views: dict[str, dict[str, Any]] = {}
        # Modals opened (views.open), by view id.
        self.modals: dict[str, dict[str, Any]] = {}
        self.used_triggers: set[str] = set()
        self.files: dict[str, UploadedFile] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        # channel -> ts -> versions of the message, oldest first (a deletion is a last version)
        self.conversations: dict[str, dict[str, list[Message]]] = defaultdict(dict)
        self.order: list[tuple[str, str]] = []  # (channel, ts) of every message, as posted
        self.last_activity = time.monotonic()  # of the last call or change
        self._watchers: list[Watcher] = []

    def watch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.append(watcher)

    def _tell(self, event: Event) -> None:
        self.last_activity = time.monotonic()
        for watcher in self._watchers:
            watcher(event)

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()
            self.refusals.clear()
            self.ephemerals.clear()
            self.home_views.clear()
            self.modals.clear()
            self.used_triggers.clear()
            self.files.clear()
            self.response_urls.clear()
            self.conversations.clear()
            self.order.clear()

    # ------------------------------------------------------------------ writing

    def record_call(self, method: str, params: dict[str, Any]) -> None:
        with self.lock:
            self.calls.append(Call(method, params, time.time()))
            self.last_activity = time.monotonic()

    def refused(self, method: str, answer: dict[str, Any]) -> None:
        with self.lock:
            self.refusals.append(Refusal(method, answer))

    def add_message(self, channel: str, message: Message) -> None:
        """A new message; a reply is counted on its parent, as Slack's parent shows it."""
        with self.lock:
            thread_ts = message.get("thread_ts")
            if thread_ts and thread_ts != message["ts"]:
                self._note_reply(channel, str(thread_ts), message["ts"])
            self.conversations[channel][message["ts"]] = [message]
            self.order.append((channel, message["ts"]))
            self._tell(Event(Change.POSTED, message, channel))

    def add_version(self, channel: str, message: Message) -> None:
        """A message's new version; `deleted: true` in it deletes the message."""
        with self.lock:
            versions = self.conversations[channel][message["ts"]]
            versions.append(message)
            change = Change.DELETED if message.get("deleted") else Change.EDITED
            self._tell(Event(change, message, channel, before=versions[-2]))

    def add_ephemeral(self, message: Message) -> None:
        """A message only `message["ephemeral_user"]` sees; Slack keeps no history of it."""
        with self.lock:
            self.ephemerals.append(message)
            self._tell(Event(Change.EPHEMERAL, message, message["channel"],
                             user=message["ephemeral_user"]))

    def publish_home(self, user_id: str, view: dict[str, Any]) -> None:
        with self.lock:
            self.home_views[user_id] = view
            self._tell(Event(Change.HOME, view, user=user_id))

    def open_modal(self, trigger_id: str, view: dict[str, Any]) -> None:
        with self.lock:
            self.used_triggers.add(trigger_id)
            self.modals[view["id"]] = view
            self._tell(Event(Change.MODAL, view))

    def _note_reply(self, channel: str, thread_ts: str, reply_ts: str) -> None:
        versions = self.conversations[channel].get(thread_ts)
        if not versions:
            return  # Slack accepts a thread_ts it cannot find; nothing to annotate
        parent = versions[-1]
        parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
        parent["thread_ts"] = thread_ts
        parent["latest_reply"] = reply_ts

    # ------------------------------------------------------------------ reading

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def refusals_of(self, error: str) -> list[Refusal]:
        """The calls refused with `error` (e.g. `missing_scope`: the manifest lacks a scope)."""
        with self.lock:
            return [r for r in self.refusals if r.answer.get("error") == error]

    def methods_called(self) -> list[str]:
        with self.lock:
            return [c.method for c in self.calls]

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first, each in its latest version."""
        with self.lock:
            return [v[-1] for v in self.conversations[channel].values() if is_top_level(v[-1])]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        """The parent and its replies, oldest first, each in its latest version."""
        with self.lock:
            return [
                v[-1]
                for ts, v in self.conversations[channel].items()
                if (ts == thread_ts or v[-1].get("thread_ts") == thread_ts)
                and not v[-1].get("deleted")
            ]

    def latest(self) -> list[tuple[str, Message]]:
        """Every message still there, as (channel, latest version), the newest first."""
        with self.lock:
            found = [(c, self.conversations[c][ts][-1]) for c, ts in reversed(self.order)]
        return [(c, m) for c, m in found if not m.get("deleted")]

    def message(self, channel: str, ts: str) -> Message:
        """The latest version of one message (KeyError if never posted)."""
        with self.lock:
            return self.conversations[channel][ts][-1]

    def versions(self, channel: str, ts: str) -> list[Message]:
        with self.lock:
            return list(self.conversations[channel][ts])

    def modals_opened(self) -> list[dict[str, Any]]:
        """Modals opened with views.open, oldest first."""
        with self.lock:
            return list(self.modals.values())

    def responses(self) -> list[dict[str, Any]]:
        """Every body posted to a response URL, oldest first."""
        with self.lock:
            return [p for r in self.response_urls.values() for p in r.posts]
