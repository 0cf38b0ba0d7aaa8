"""The simulator's virtual clock.

Virtual time runs with real time plus an offset that only grows: the demo's holds and token ends
pass naturally while it runs, and tests jump months ahead with `advance` without sleeping.
It satisfies `commands.ports.Clock` (a `now()` in epoch seconds). `add_months` is the calendar
arithmetic of token ends and contract dates.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class SimClock:
    def __init__(self, start: float | None = None) -> None:
        real = time.time()
        self._offset = 0.0 if start is None else start - real
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Virtual seconds since the Unix epoch."""
        return time.time() + self._offset

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def advance(self, seconds: float) -> float:
        """Move virtual time forward (never backward) and return the new time."""
        if seconds < 0:
            raise ValueError("the virtual clock never goes backward")
        with self._lock:
            self._offset += seconds
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return self.now()

    def on_advance(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every advance (pending jobs finish on a clock jump)."""
        with self._lock:
            self._listeners.append(listener)


def add_months(ms: int, months: int) -> int:
    """`ms` plus calendar months (day clamped to the month's length), as token ends are."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    total = when.month - 1 + months
    year, month = when.year + total // 12, total % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(when.replace(year=year, month=month, day=day).timestamp() * 1000)
