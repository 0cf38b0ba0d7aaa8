"""Acknowledgements first: the work behind a Slack request waits while requests are answered.

Slack wants each request answered within 3 seconds, and the answer (the ack) is all it waits
for; the work (Sigfox reads, SQLite, Slack posts) runs after, in Bolt's lazy listeners. Measured
(docs/benchmarks.md, "Slash command acknowledgement"): when 50 commands arrive together, the
lazy work of the first ones starts at once in worker threads and holds the GIL in 5 ms slices
while the event loop still has the other 49 acks to read, verify, dispatch and write; every
ack then waits behind the work. Python threads have no priorities, so the work is made to
wait instead: the HTTP edge counts the Slack requests it is answering, and a lazy listener
starts only when none has been for `quiet` seconds (the requests of a burst reach the handler
a few milliseconds apart), or after `max_hold`, so a steady stream of requests cannot starve
the work either.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")

MAX_HOLD = 2.0  # seconds a lazy listener waits at most for the acks in flight
QUIET = 0.02  # seconds without a request being answered before the work starts


class AckGate:
    """Counts requests being answered; `wait_clear` returns once there are none."""

    def __init__(self, max_hold: float = MAX_HOLD, quiet: float = QUIET) -> None:
        self.max_hold = max_hold
        self.quiet = quiet
        self._answering = 0
        self._last_answer = 0.0
        self._changed = threading.Condition()

    @property
    def answering(self) -> int:
        return self._answering

    def enter(self) -> None:
        with self._changed:
            self._answering += 1

    def leave(self) -> None:
        with self._changed:
            self._answering -= 1
            self._last_answer = time.monotonic()
            if self._answering == 0:
                self._changed.notify_all()

    def wait_clear(self) -> bool:
        """Wait (at most `max_hold`) until no request has been answered for `quiet` seconds;
        True when that came, False when the hold ran out."""
        deadline = time.monotonic() + self.max_hold
        with self._changed:
            while True:
                now = time.monotonic()
                quiet_left = self._last_answer + self.quiet - now
                if self._answering == 0 and quiet_left <= 0:
                    return True
                if now >= deadline:
                    return False
                wait = deadline - now if self._answering else min(quiet_left, deadline - now)
                self._changed.wait(wait)


class AcksFirstExecutor(Executor):
    """Runs each submitted function on `inner` once the gate is clear."""

    def __init__(self, inner: Executor, gate: AckGate) -> None:
        self.inner = inner
        self.gate = gate

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        def after_acks() -> T:
            self.gate.wait_clear()
            return fn(*args, **kwargs)

        return self.inner.submit(after_acks)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


_GATES: weakref.WeakKeyDictionary[Any, AckGate] = weakref.WeakKeyDictionary()


def attach(app: Any, gate: AckGate) -> None:
    """Remember the gate of a Bolt app, for the HTTP edge that serves it (`gate_of`)."""
    _GATES[app] = gate


def gate_of(app: Any) -> AckGate | None:
    return _GATES.get(app)
