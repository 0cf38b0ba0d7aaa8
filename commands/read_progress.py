"""How far a request's reads are, told to the requester at a bounded rate.

A request over thousands of devices reads them from Sigfox before it can answer (pages of 100,
paced to the list limit: seconds at least, minutes where the limit is shared with a scan). The
reader reports every page (`sigfox.device_reads`); the requester is told at most once every
`every` seconds, not before `every` seconds have passed (a request answered at once says nothing
but its answer), and at most `most` times in all: a slash command's response URL takes five
posts, and the answer needs one. So what the chat sees is bounded whatever the number of
devices.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MOST_UPDATES = 3


class ReadProgress:
    """A `ReadCount` (`on_read(read, wanted)`) that tells `show(text)` sparingly. Thread-safe:
    pages arrive on several threads."""

    def __init__(self, show: Callable[[str], None], *, every: float,
                 most: int = MOST_UPDATES, clock: Callable[[], float] = time.monotonic) -> None:
        self._show = show
        self._every = every
        self._most = most
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()  # the request's start: the first line waits `every` too
        self.told = 0

    def __call__(self, read: int, wanted: int) -> None:
        with self._lock:  # shown under the lock: lines leave in order, never two at once
            now = self._clock()
            if self.told >= self._most or now - self._last < self._every or read >= wanted:
                return
            self.told += 1
            self._last = now
            self._show(f"Reading the devices from Sigfox: {read:,} of {wanted:,} so far…")
