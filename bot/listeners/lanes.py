"""Decisions never wait behind reads (issue 11, finding 4).

The listeners' handed-off work shares one pool. A `/sigfox status` (or a request, which reads the
device first) can wait seconds for Sigfox's list limit; a flood of them used to hold every
worker while an Approve click waited its turn. Commands that read Sigfox now go to a bounded
`ReadLane` with its own workers: the Bolt worker that received the command hands it over and
is free at once for the next click. A command that has to wait is told its place ("queued, 37
ahead, about 70 s"); one that finds the lane full is told to try again, and nothing is run.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial

from bot.ack_gate import current_gate

READ_WORKERS = 4
READ_CAPACITY = 200
FIRST_GUESS_SECONDS = 2.0  # a read's duration before any was measured


class ReadLane:
    def __init__(self, executor: Executor | None = None, *, workers: int = READ_WORKERS,
                 capacity: int = READ_CAPACITY) -> None:
        self.workers = workers
        self.capacity = capacity
        self._executor = executor or ThreadPoolExecutor(max_workers=workers,
                                                        thread_name_prefix="sigfox-read")
        self._lock = threading.Lock()
        self._waiting = 0  # queued or running
        self._durations: deque[float] = deque(maxlen=20)

    def submit(self, work: Callable[[], None]) -> int | None:
        """Queue `work`; how many reads are ahead of it, or None when the lane is full."""
        with self._lock:
            if self._waiting >= self.capacity:
                return None
            ahead = self._waiting
            self._waiting += 1
        # Handed over by gated work (a listener's): still gated here, yielding to acks.
        gate = current_gate()
        self._executor.submit(self._run, work if gate is None else partial(gate.run_background,
                                                                           work))
        return ahead

    def _run(self, work: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            work()
        finally:
            with self._lock:
                self._waiting -= 1
                self._durations.append(time.monotonic() - started)

    def close(self) -> None:
        """Stop the workers once the reads running now end; those still queued are dropped
        (a read changes nothing, and its asker is gone with the bot)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def wait_estimate(self, ahead: int) -> float:
        """About how long `ahead` reads take on this lane's workers, from recent reads."""
        with self._lock:
            each = (sum(self._durations) / len(self._durations)) if self._durations \
                else FIRST_GUESS_SECONDS
        return ahead / self.workers * each

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting


def queued_text(ahead: int, seconds: float) -> str:
    return f"Queued behind other Sigfox reads: {ahead} ahead, about {max(1, round(seconds))} s."


BUSY_TEXT = ("The bot is answering many Sigfox reads right now and its queue is full; nothing "
             "was done. Try again in a minute.")
