"""What one workflow tick did, and how long it took: for /metrics, and for the one log line a
tick that overran its interval writes (which step was slowest).

Durations are real elapsed time (`time.perf_counter`), not the core's clock: the core's clock
may be virtual (tests, the demo), while a tick's cost is always paid in real seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Stopwatch = Callable[[], float]


@dataclass(frozen=True)
class StepTiming:
    job: str
    device_id: str
    state: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.job} {self.device_id} ({self.state}) {self.seconds:.2f} s"


class TickStats:
    """Steps run by one tick and the slowest of them. Thread-safe: steps may run concurrently."""

    def __init__(self, stopwatch: Stopwatch = time.perf_counter, budget: float | None = None
                 ) -> None:
        self._stopwatch = stopwatch
        self._lock = threading.Lock()
        self.started = stopwatch()
        self.deadline = None if budget is None else self.started + budget
        self.steps = 0
        self.slowest: StepTiming | None = None
        self.left_due = 0  # workflows still due when the budget ran out (next tick takes them)

    def out_of_time(self) -> bool:
        """The tick's budget is spent: start nothing more, the next tick goes on."""
        return self.deadline is not None and self._stopwatch() >= self.deadline

    def timed(self, job: str, device_id: str, state: str, run: Callable[[], None]) -> None:
        begun = self._stopwatch()
        try:
            run()
        finally:
            timing = StepTiming(job, device_id, state, self._stopwatch() - begun)
            with self._lock:
                self.steps += 1
                if self.slowest is None or timing.seconds > self.slowest.seconds:
                    self.slowest = timing
