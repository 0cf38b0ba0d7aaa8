"""A notifier that prints progress to a terminal (the CLI), or keeps it (tests)."""

from __future__ import annotations

import re
import sys
import threading
from typing import TextIO

from commands.ports import Progress, ProgressKind

_MARKS = {
    ProgressKind.REQUESTED: "→",
    ProgressKind.APPROVAL_NEEDED: "?",
    ProgressKind.DECIDED: "✓",
    ProgressKind.VOTE: "✓",
    ProgressKind.REMINDER: "…",
    ProgressKind.ESCALATED: "↑",
    ProgressKind.STEP_DONE: "·",
    ProgressKind.WAITING: "…",
    ProgressKind.FINISHED: "■",
    ProgressKind.FAILED: "✗",
}


# The core names people as `<@U0123ABCD>` (what chat renders as a mention): plain `@U0123ABCD`
# reads better in a terminal.
_MENTION = re.compile(r"<@([A-Z0-9]+)>")


def progress_line(progress: Progress) -> str:
    text = _MENTION.sub(r"@\1", progress.text)
    return f"{progress.workflow_id} {_MARKS[progress.kind]} {text}"


class TerminalNotifier:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def notify(self, progress: Progress) -> None:
        with self._lock:
            print(progress_line(progress), file=self.stream, flush=True)


class RecordingNotifier:
    """Keeps every event, for tests and for callers that render later."""

    def __init__(self) -> None:
        self.events: list[Progress] = []
        self._lock = threading.Lock()

    def notify(self, progress: Progress) -> None:
        with self._lock:
            self.events.append(progress)

    def texts(self) -> list[str]:
        return [p.text for p in self.events]

    def kinds(self) -> list[ProgressKind]:
        return [p.kind for p in self.events]
