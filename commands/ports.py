"""The small interfaces through which the core talks to the outside world.

The core (`commands/`) never imports Slack or a terminal: progress leaves it as `Progress`
values handed to a `Notifier`; time comes from a `Clock` so tests and the demo can run a
30-minute release wait in milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (tests, the demo's fast tour)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class ProgressKind(StrEnum):
    REQUESTED = "requested"
    APPROVAL_NEEDED = "approval_needed"
    DECIDED = "decided"
    STEP_DONE = "step_done"
    WAITING = "waiting"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True)
class Target:
    """Where a job reports: opaque to the core (a Slack channel and thread, a terminal)."""

    channel: str = ""
    thread: str = ""


@dataclass(frozen=True)
class Progress:
    """One thing worth telling the people following a job. Never carries a PAC."""

    kind: ProgressKind
    workflow_id: str
    operation: str
    devices: tuple[str, ...]
    text: str
    target: Target = field(default_factory=Target)
    state: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    def notify(self, progress: Progress) -> None:
        """Deliver one progress event. Must not raise for delivery problems it can retry."""
