"""A gate the test holds in front of Sigfox: the bot's reads wait at it until the test opens it,
so "while the reads are still waiting" is a state the test sets up, not a race it hopes to win."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

# A guard against a hang, not a measure: whatever a test waits for here happens within
# milliseconds unless the behaviour under test is broken.
HANG_GUARD = 60.0


class GatedTransport(httpx.HTTPTransport):
    """Real HTTP to the simulator; while the gate is closed, each request that `holds` matches
    waits before it is sent (counted in `held`), until `open()`."""

    def __init__(self, holds: Callable[[httpx.Request], bool]) -> None:
        super().__init__()
        self._holds = holds
        self._open = threading.Event()
        self._open.set()
        self._changed = threading.Condition()
        self.held = 0  # requests waiting at the closed gate now

    def close_gate(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self._open.is_set() and self._holds(request):
            with self._changed:
                self.held += 1
                self._changed.notify_all()
            self._open.wait()
            with self._changed:
                self.held -= 1
        return super().handle_request(request)

    def wait_until_held(self, count: int) -> None:
        """Return once `count` requests wait at the gate."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.held >= count, timeout=HANG_GUARD):
                raise AssertionError(f"{self.held} request(s) reached the gate, not {count}")


def device_reads(request: httpx.Request) -> bool:
    """Sigfox reads of devices (the list and one device)."""
    return request.method == "GET" and request.url.path.startswith("/v2/devices")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` if it never does (a hang guard)."""
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)
