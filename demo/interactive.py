"""`sigfox-bot demo --interactive`: you are the people in the channel.

Lines starting with `/sigfox` go to the bot as that slash command; a button's label (`Approve`,
`[ Reject ]`) clicks the most recent such button; a few `/`-commands act on the world itself
(switch person, let a device send, move the clock). Everything else gets a hint, never a crash.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TextIO

from commands.config import parse_duration
from demo.terminal_slack import Person
from demo.tour import TourStopped, pick_expired_device, pick_tokenless_device
from demo.world import PEOPLE, DemoWorld

MAX_ADVANCE_SECONDS = 30 * 86400.0


def help_text(world: DemoWorld) -> str:
    example, tokenless = _example(world, pick_expired_device), _example(world,
                                                                        pick_tokenless_device)
    people = ", ".join(p.name for p in PEOPLE)
    rows = [
        (f"/sigfox status {example}", "an expired (Off Contract) device"),
        (f"/sigfox renew {example}", "renew it (the bot restarts it: no approval)"),
        (f"/sigfox renew {tokenless}", "no token: delete and re-register (approval)"),
        ("Approve", "click the latest [ Approve ] button (any label works)"),
        (f"Details {example}", "pick an option of a [ ⋯ ] menu (Renew…, Details)"),
        ("/form <text>", "answer the form a button opened (Reject asks why)"),
        ("/as bob", f"switch person ({people})"),
        (f"/uplink {example}", "the device sends a message (after its re-registration)"),
        ("/advance 30m", "move the virtual clock (s, m, h, d)"),
        ("/scan", "run the scheduled fleet scan now (alert digest)"),
        ("/sigfox help", "the bot's own help"),
        ("/help, /quit", ""),
    ]
    width = max(len(command) for command, _ in rows) + 3
    lines = [f"  {command:<{width}}{what}".rstrip() for command, what in rows]
    return "\n".join(["You type as one of the people in #fleet-ops. Try:", *lines])


def _example(world: DemoWorld, pick: Callable[[DemoWorld], str]) -> str:
    try:
        return pick(world)
    except TourStopped:
        return "1A2B3C"


class Session:
    """One person at the keyboard; `handle` takes a line and says whether to go on."""

    def __init__(self, world: DemoWorld, say: Callable[[str], None]) -> None:
        self.world = world
        self.say = say
        self.person: Person = PEOPLE[0]

    def prompt(self) -> str:
        return f"{self.person.name} › "

    def handle(self, line: str) -> bool:
        line = line.strip()
        if not line:
            return True
        word, _, rest = line.partition(" ")
        action = self._actions().get(word.lower())
        if action is not None:
            return action(rest.strip())
        if word.lower() == "/sigfox":
            self.world.command(self.person, rest.strip())
            return True
        if line.startswith("/"):
            self.say(f"Unknown command {word}: the bot answers /sigfox; type /help for the rest.")
            return True
        if not self.world.click(self.person, line):
            self.say(f"No button labelled [ {line.strip('[] ')} ] on screen. Type /help.")
        return True

    def _actions(self) -> dict[str, Callable[[str], bool]]:
        return {
            "/as": self._switch, "/form": self._form, "/uplink": self._uplink,
            "/advance": self._advance,
            "/scan": self._scan, "/help": self._help, "/quit": self._quit, "/exit": self._quit,
        }

    def _switch(self, name: str) -> bool:
        person = self.world.person(name)
        if person is None:
            self.say(f"Nobody called {name or '(no name)'}: choose one of "
                     f"{', '.join(p.name for p in PEOPLE)}.")
        else:
            self.person = person
            self.say(f"You are now {person.name} ({person.real_name}).")
        return True

    def _form(self, answer: str) -> bool:
        if not self.world.submit_form(self.person, answer):
            self.say("No form is open: Reject (or an alert's Snooze) opens one.")
        return True

    def _uplink(self, device_id: str) -> bool:
        if not device_id:
            self.say("Which device? /uplink <id>")
        else:
            self.world.uplink(device_id)
        return True

    def _advance(self, text: str) -> bool:
        try:
            seconds = parse_duration(text or "").total_seconds()
        except ValueError as error:
            self.say(f"/advance {text}: {error}.")
            return True
        seconds = min(seconds, MAX_ADVANCE_SECONDS)
        self.world.slack.narrate(f"the virtual clock moves {text} forward")
        self.world.fast_forward(seconds)
        self.world.settle()
        return True

    def _scan(self, _: str) -> bool:
        report = self.world.alerts.scan(started_by="schedule")
        self.world.settle()
        if report.ok and not report.digests:
            self.say("Scan done: nothing new, worse or resolved since the last one.")
        return True

    def _help(self, _: str) -> bool:
        self.say(help_text(self.world))
        return True

    def _quit(self, _: str) -> bool:
        return False


Reader = Callable[[str], str | None]


def run_interactive(world: DemoWorld, keyboard: TextIO) -> int:
    """Scan first (the digest, and data for `expiring` and `alerts`), then take lines."""
    out = world.stream

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    session = Session(world, say)
    world.slack.narrate("The scheduled fleet scan runs first")
    session.handle("/scan")
    say("")
    say(help_text(world))
    read = line_reader(keyboard, out)
    while True:
        line = read(f"\n{session.prompt()}")
        if line is None:  # end of input (Ctrl-D, a closed pipe): leave quietly
            say("")
            return 0
        if not session.handle(line):
            return 0


def line_reader(keyboard: TextIO, out: TextIO) -> Reader:
    """At a terminal, `input()` with readline: arrows edit the line, up and down walk the
    history. From a pipe or a test, plain lines."""
    if keyboard is sys.stdin and _is_terminal(keyboard) and _is_terminal(out):
        # Importing readline is what gives input() its editing; without it (Windows) the
        # prompt still works, unedited.
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401

        def read_line(prompt: str) -> str | None:
            try:
                return input(prompt)
            except EOFError:
                return None

        return read_line

    def read_piped(prompt: str) -> str | None:
        print(prompt, end="", file=out, flush=True)
        return keyboard.readline() or None

    return read_piped


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
