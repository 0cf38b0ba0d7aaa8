"""A Slack workspace in a terminal: prints what the Web API stand-in records, as a person sees it.

The bot's real `slack_sdk` clients (the Bolt app's, the notifier's) are pointed at the one Slack
stand-in (`demo.slack_standin`, the tests' too) through their base URL, so the demo exercises
exactly the calls the bot makes in production, checked as Slack checks them. This module
implements no Slack method: it watches the stand-in's record and shows each change as a person
would see it in the client:

    #fleet-ops
      09:00  sigfox-bot
             Renewal of 1A2B3C
             [ Approve ]  [ Reject ]
             ↳ 09:01  sigfox-bot   (in thread "Renewal of 1A2B3C")
                      Deleted; waiting for Sigfox to release the id.
      09:02  ✎ sigfox-bot updated "Renewal of 1A2B3C"
             ...

Nothing leaves the machine: the stand-in listens on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

from commands import human
from commands.logs import redact
from demo.render import buttons_of, first_line, render_message
from demo.slack_standin import Identity, Message, SlackApiStandIn
from demo.slack_standin.record import Change, Event

TEAM_ID = "T0DEMO0001"
TEAM_DOMAIN = "acme-iot-demo"
TEAM_NAME = "Acme IoT Ops (demo)"
BOT_USER_ID = "U0SIGFOXBOT"
BOT_ID = "B0SIGFOXBOT"
APP_ID = "A0SIGFOXBOT"  # the app the demo's requests name (demo/world.py)
INDENT = "  "
BODY = " " * 9
THREAD = " " * 9 + "↳ "
REPLY = " " * 11
THREAD_BODY = " " * 18

Clock = Callable[[], float]


class Posted(NamedTuple):
    """A message as the stand-in keeps it (its latest version), with its conversation."""

    channel: str
    message: Message

    @property
    def ts(self) -> str:
        return str(self.message["ts"])

    @property
    def thread_ts(self) -> str | None:
        """The parent's ts for a reply; None for a message in the channel."""
        thread_ts = self.message.get("thread_ts")
        return None if thread_ts in (None, self.ts) else str(thread_ts)

    @property
    def text(self) -> str:
        return str(self.message.get("text") or "")

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.message.get("blocks") or [])


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    real_name: str


class TerminalSlack:
    """The workspace: people, channels, messages, served by the stand-in, printed here."""

    def __init__(
        self,
        *,
        token: str | None = None,
        stream: TextIO | None = None,
        clock: Clock = time.time,
        channels: dict[str, str] | None = None,
        people: list[Person] | None = None,
        width: int | None = None,
        colour: bool | None = None,
    ) -> None:
        self.standin = SlackApiStandIn(
            token=token or f"xoxb-demo-{secrets.token_hex(12)}", clock=clock, team_id=TEAM_ID,
            team_domain=TEAM_DOMAIN, team_name=TEAM_NAME, bot_user_id=BOT_USER_ID,
            bot_id=BOT_ID, app_id=APP_ID, timeout_graceful_shutdown=1)
        for channel_id, name in (channels or {}).items():
            self.standin.add_channel(channel_id, name)
        for person in people or []:
            self.standin.add_user(person.user_id, person.name, real_name=person.real_name)
        self.record = self.standin.record
        self.stream = stream or sys.stdout
        self.clock = clock
        self.modal: dict[str, Any] | None = None  # the form on screen (views.open), if any
        self.width = width or terminal_width(self.stream)
        self.style = Style(wants_colour(self.stream) if colour is None else colour)
        self._shown: dict[tuple[str, str], list[str]] = {}  # what each message last showed
        self._thread_shown: tuple[str, str | None] | None = None  # the thread printed last
        self._channel_shown = ""  # the channel whose name was printed last
        self._after_narration = False  # the next line follows a scene title: no gap
        self._after_typing = False  # the bot's post answers what was just typed: no gap
        self.record.watch(self._show)

    # ------------------------------------------------------------------ lifecycle

    @property
    def token(self) -> str:
        return self.standin.token

    @property
    def identity(self) -> Identity:
        """The workspace and the app, as requests from its people name them."""
        return self.standin.workspace.identity

    @property
    def api_url(self) -> str:
        return self.standin.url

    def start(self) -> TerminalSlack:
        self.standin.start()
        return self

    def stop(self) -> None:
        self.standin.stop()

    # ------------------------------------------------------------------ people and places

    def name_of(self, user_id: str) -> str:
        """A person by name, a channel by its name too (Slack resolves both for its readers)."""
        return self.standin.directory.name_of(user_id)

    def channel_name(self, channel: str) -> str:
        if channel.startswith("D"):  # the stand-in's direct conversation with U<rest>
            return f"DM with {self.name_of('U' + channel[1:])}"
        return f"#{self.name_of(channel)}"

    def response_url(self, channel: str, user: str, message_ts: str | None = None) -> str:
        """A URL standing for Slack's `response_url` (what Bolt's `respond` posts to)."""
        return self.standin.response_url(channel, user, message_ts)

    # ------------------------------------------------------------------ what people do

    def say_typed(self, user_id: str, channel: str, text: str) -> None:
        """Show what a person typed (slash commands are not messages, but people see them)."""
        self._channel_shown = channel  # what the bot posts next there needs no channel line
        gap = "" if self._after_narration else "\n"
        self._print(f"{gap}{INDENT}{self._time()}  {self.style.name(self.name_of(user_id))} › "
                    f"{text}   ({self.channel_name(channel)})")
        self._after_typing = True

    def say_clicked(self, user_id: str, label: str, posted: Posted) -> None:
        on = first_line(posted.text, posted.blocks, self.name_of, limit=30)
        self._print(f"\n{INDENT}{self._time()}  {self.style.name(self.name_of(user_id))} clicks "
                    f"[ {label} ] on \"{on}\"")

    def narrate(self, text: str) -> None:
        """A line of the tour's commentary (not part of the chat), as wide as the terminal."""
        lines = textwrap.wrap(text, self.width - 8) or [""]
        rule = "─" * max(3, self.width - 4 - len(lines[-1]))
        head = "\n".join(f"── {line}" for line in lines[:-1])
        last = f"── {lines[-1]} {rule}"
        self._print("\n" + self.style.narration(f"{head}\n{last}" if head else last))
        self._after_narration = True

    def find_button(self, label: str, channel: str | None = None
                    ) -> tuple[Posted, dict[str, Any]] | None:
        """The most recent message showing a button labelled `label` (case-insensitive), or
        an overflow menu (`[ ⋯ ]`) offering that option: `Details` picks the latest menu with
        one, `Details 801B103` the menu whose option names that device."""
        wanted = label.strip().strip("[]").strip().casefold()
        for where, message in self.record.latest():
            if channel and where != channel:
                continue
            posted = Posted(where, message)
            for button in buttons_of(posted.blocks):
                text = str((button.get("text") or {}).get("text", "")).casefold()
                if text == wanted or _strip_emoji(text) == wanted:
                    return posted, button
            choice = _menu_choice(posted.blocks, wanted)
            if choice is not None:
                return posted, choice
        return None

    def quiet_for(self) -> float:
        """Seconds since the last Web API call or change (the demo waits for the bot)."""
        return time.monotonic() - self.record.last_activity

    # ------------------------------------------------------------------ printing what changed

    def _show(self, event: Event) -> None:
        """Told by the record, in order, as each change happens (its lock held)."""
        if event.change is Change.POSTED:
            self._show_new(Posted(event.channel, event.item))
        elif event.change is Change.EDITED:
            self._show_update(Posted(event.channel, event.item))
        elif event.change is Change.DELETED:
            label = first_line(*_content(event.before or event.item), self.name_of)
            self._print(f"{INDENT}{self._time()}  🗑 {self.name_of(BOT_USER_ID)} deleted "
                        f"\"{label}\"")
        elif event.change is Change.EPHEMERAL:
            self._show_ephemeral(event.user, *_content(event.item))
        elif event.change is Change.HOME:
            blocks = event.item.get("blocks") or []
            self._print(f"{INDENT}{self._time()}  🏠 App Home of {self.name_of(event.user)} "
                        f"refreshed ({len(blocks)} blocks)")
        elif event.change is Change.MODAL:
            self._show_form(event.item)

    def _lines(self, text: str, blocks: list[dict[str, Any]] | None, indent: str) -> list[str]:
        return render_message(text, blocks, self.name_of, width=self.width - len(indent))

    def _show_new(self, posted: Posted) -> None:
        text = self._with_files(posted.message)
        who = self.style.name(self.name_of(str(posted.message.get("user") or BOT_USER_ID)))
        key = (posted.channel, posted.ts)
        if posted.thread_ts is None:
            lines = self._lines(text, posted.blocks, BODY)
            self._shown[key] = lines
            where = ""
            if posted.channel != self._channel_shown:
                where = f"{self.style.channel(self.channel_name(posted.channel))}\n"
            gap = "\n" if where or not self._after_typing else ""
            self._channel_shown = posted.channel
            self._print(f"{gap}{where}{INDENT}{self._time()}  {who}\n" + _indent(lines, BODY))
            return
        lines = self._lines(text, posted.blocks, THREAD_BODY)
        self._shown[key] = lines
        thread = (posted.channel, posted.thread_ts)
        head = ""
        if thread != self._thread_shown:  # replies in a row share one thread line
            parent = self.record.conversations[posted.channel].get(posted.thread_ts)
            label = (first_line(*_content(parent[-1]), self.name_of) if parent
                     else posted.thread_ts)
            head = f"{THREAD}in the thread of \"{label}\":\n"  # only the bot writes there
        first, *rest = lines or [""]
        self._print(f"{head}{REPLY}{self._time()}  {first}\n" + _indent(rest, THREAD_BODY),
                    thread=thread)

    def _with_files(self, message: Message) -> str:
        """A file share's comment, then each file with its size (a CSV's in rows)."""
        shared = message.get("files") or []
        if not shared:
            return str(message.get("text") or "")
        names = ", ".join(f"📎 {f['name']} ({self._size_of(f)})" for f in shared)
        return f"{message.get('text') or ''}\n{names}".strip()

    def _size_of(self, shared: dict[str, Any]) -> str:
        uploaded = self.record.files.get(shared["id"])
        return _rows(uploaded.content if uploaded and uploaded.content else b"")

    def _show_update(self, posted: Posted) -> None:
        """Slack redraws the message in place; a terminal can only say what changed."""
        body = THREAD_BODY if posted.thread_ts else BODY
        # A parent's "Latest: ..." repeats the thread line printed just before it: in Slack it
        # saves opening the thread, here the thread is on screen.
        shown = [b for b in posted.blocks if not _is_latest(b)]
        lines = self._lines(posted.text, shown, body)
        before = self._shown.get((posted.channel, posted.ts), [])
        self._shown[(posted.channel, posted.ts)] = lines
        changed = [line for line in lines if line not in before and line.strip("‾─ ")]
        if not changed:
            return
        # The job's thread goes on after an edit of its own messages: no new thread line.
        keep = self._thread_shown if self._thread_shown in (
            (posted.channel, posted.ts), (posted.channel, posted.thread_ts)) else None
        if len(before) == 1 and len(lines) == 1:  # a waiting line ticking: one line
            self._print(f"{INDENT}{self._time()}  ✎ {lines[0].strip()}", thread=keep)
            return
        label = first_line(posted.text, posted.blocks, self.name_of, limit=30)
        head = f"{INDENT}{self._time()}  ✎ \"{label}\" now says:"
        one_line = f"{head} {changed[0].strip()}"
        if len(changed) == 1 and len(one_line) <= self.width:  # a status word: one line
            self._print(one_line, thread=keep)
            return
        self._print(f"{head}\n" + _indent(changed, body), thread=keep)

    def _show_ephemeral(self, user: str, text: str, blocks: list[dict[str, Any]]) -> None:
        lines = self._lines(text, blocks, BODY)
        self._print(f"{INDENT}{self._time()}  {self.style.name(self.name_of(BOT_USER_ID))} "
                    f"(only visible to {self.name_of(user)}):\n" + _indent(lines, BODY))

    def _show_form(self, view: dict[str, Any]) -> None:
        """A form opens for the person who clicked; they answer with `/form <text>`."""
        self.modal = view
        title = (view.get("title") or {}).get("text", "")
        asks = [(b.get("label") or {}).get("text", "") for b in view.get("blocks") or []
                if b.get("type") == "input"]
        self._print(f"{INDENT}{self._time()}  📝 A form opens: {title}: {'; '.join(asks)} "
                    "(answer with /form <your text>)")

    def _print(self, text: str, *, thread: tuple[str, str | None] | None = None) -> None:
        # The same redaction as the logs: a PAC must never reach the screen by accident.
        with self.record.lock:  # the server thread prints changes, the demo's thread its own
            self._thread_shown = thread
            self._after_narration = self._after_typing = False
            print(self.style.buttons(redact(text.rstrip("\n"))), file=self.stream, flush=True)

    def _time(self) -> str:
        return human.clock(self.clock())


# --------------------------------------------------------------------------- the terminal


def terminal_width(stream: TextIO, fallback: int = 80, widest: int = 110) -> int:
    """The terminal's width when `stream` is one, else $COLUMNS or 80; at most `widest`."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        given = os.environ.get("COLUMNS", "")
        columns = int(given) if given.isdigit() else fallback
    return max(40, min(columns, widest))


def wants_colour(stream: TextIO) -> bool:
    """Colour on a terminal, never when piped, never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_BUTTON = re.compile(r"\[ [^\[\]\n]+? \]")


class Style:
    """ANSI colours for the few things worth telling apart; plain text when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _paint(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def narration(self, text: str) -> str:
        return self._paint("1;36", text)

    def name(self, text: str) -> str:
        return self._paint("1", text)

    def channel(self, text: str) -> str:
        return self._paint("1;35", text)

    def buttons(self, text: str) -> str:
        if not self.enabled:
            return text
        return _BUTTON.sub(lambda m: self._paint("1;33", m.group(0)), text)


# --------------------------------------------------------------------------- helpers



def _menu_choice(blocks: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The overflow option `wanted` names (its text, then optionally a word of its value), as
    the action Slack sends when that option is picked; the last such menu wins."""
    found = None
    for block in blocks:
        menu = block.get("accessory")
        if not isinstance(menu, dict) or menu.get("type") != "overflow":
            continue
        for option in menu.get("options") or []:
            text = str((option.get("text") or {}).get("text", "")).casefold()
            for label in (text, text.rstrip("…")):
                exact = wanted == label
                named = wanted.startswith(label + " ") and wanted[len(label):].strip() in \
                    str(option.get("value", "")).casefold().split("|")
                if exact or named:
                    found = {"type": "overflow", "action_id": menu.get("action_id", ""),
                             "selected_option": option, "_block_id": block.get("block_id", ""),
                             "_label": str((option.get("text") or {}).get("text", ""))}
    return found


def _is_latest(block: dict[str, Any]) -> bool:
    elements = block.get("elements") or [{}]
    return block.get("type") == "context" and str(elements[0].get("text", "")).startswith(
        "Latest: ")






def _indent(lines: list[str], prefix: str) -> str:
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)


def _rows(content: bytes) -> str:
    lines = content.count(b"\n")
    return f"{max(lines - 1, 0):,} rows" if lines else f"{len(content):,} bytes"



def _strip_emoji(text: str) -> str:
    return re.sub(r":[a-z0-9_+\-]+:", "", text).strip()


def _content(message: Message) -> tuple[str, list[dict[str, Any]]]:
    return str(message.get("text") or ""), list(message.get("blocks") or [])
