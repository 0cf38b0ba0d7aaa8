"""Client-side pacing to Sigfox's published rate limits, so the client rarely sees a 429.

Published limits (Sigfox support articles; the Swagger document does not state them):

- `GET /devices/` (the list): 50 requests per 10 s, per API user;
- `GET /devices/{id}/messages`: 1 per second per device;
- `GET`, `PUT` and `DELETE /devices/{id}`: 1 per hour per device (GET in an older revision;
  paced too, since the cost of a wasted hour is higher than the cost of a refusal);
- bulk jobs (`POST|PUT /devices/bulk`, `POST /devices/bulk/transfer`): 5 per 10 minutes. The
  restart and unsubscribe jobs share that budget here: the published text is not precise and
  a stricter local budget costs nothing.

Each limit is a sliding window. A call counts from when its answer came back (the service
dated it somewhere between sending and answering), except on the device list: there it counts
from when it was sent, plus `SEND_ALLOWANCE` for the trip to the service. The service dates a
call when it arrives, and its answer time comes after; counting list calls from their answers
would add one answer time to every 10 s window (+3 % to a 150,000-device scan at 300 ms a
call), and a list call that still meets a 429 is simply re-sent.

A short wait (up to `max_wait`) is slept; a long one (an hour for a device write, minutes for
a bulk job) is refused at once with `SigfoxPacingRefused` saying when the call becomes
possible: a chat bot must not hold a thread for an hour.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sigfox.errors import SigfoxPacingRefused

# How long after being sent a call is assumed to have reached the service (a network trip and
# a thread's wake-up, with room to spare), where calls count from when they were sent.
SEND_ALLOWANCE = 0.1


@dataclass(frozen=True)
class Limit:
    name: str
    calls: int
    window: float
    per_device: bool
    counted_from_send: bool = False


DEVICE_LIST = Limit("device list", 50, 10.0, per_device=False, counted_from_send=True)
DEVICE_MESSAGES = Limit("device messages", 1, 1.0, per_device=True)
DEVICE_HOURLY = Limit("one call per hour per device", 1, 3600.0, per_device=True)
BULK_JOBS = Limit("bulk jobs", 5, 600.0, per_device=False)

_BULK_POSTS = {
    ("POST", "/devices/bulk"),
    ("PUT", "/devices/bulk"),
    ("POST", "/devices/bulk/transfer"),
    ("POST", "/devices/bulk/restart"),
    ("POST", "/devices/bulk/unsubscribe"),
}


def limit_for(method: str, endpoint: str) -> Limit | None:
    """The published limit governing one endpoint template, if any."""
    if method == "GET" and endpoint == "/devices/":
        return DEVICE_LIST
    if method == "GET" and endpoint == "/devices/{id}/messages":
        return DEVICE_MESSAGES
    if endpoint == "/devices/{id}" and method in ("GET", "PUT", "DELETE"):
        return DEVICE_HOURLY
    if (method, endpoint) in _BULK_POSTS:
        return BULK_JOBS
    return None


class SlidingWindow:
    """At most `calls` grants in any `window` seconds. Not thread-safe on its own.

    Grants are kept sorted; future reservations (a caller sleeping towards its slot) count.
    """

    def __init__(self, calls: int, window: float) -> None:
        self.calls = calls
        self.window = window
        self._grants: list[float] = []

    def _prune(self, now: float) -> None:
        cut = bisect.bisect_right(self._grants, now - self.window)
        del self._grants[:cut]

    def next_slot(self, now: float) -> float:
        """The earliest time a new grant fits in the window (== now when it fits already)."""
        self._prune(now)
        if len(self._grants) < self.calls:
            return now
        # The grant `calls` places back is the one that must leave the window first.
        return max(now, self._grants[-self.calls] + self.window)

    def grant(self, at: float) -> None:
        bisect.insort(self._grants, at)

    def settle(self, granted: float, done: float) -> None:
        """Move a grant to when its request completed.

        The service dates a call when it receives it, which is after the client's grant by
        the network latency; counting from completion (which is later still) means latency
        can never squeeze two calls into one server-side window.
        """
        index = bisect.bisect_left(self._grants, granted)
        if index < len(self._grants) and self._grants[index] == granted:
            del self._grants[index]
        bisect.insort(self._grants, max(granted, done))

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self._grants


@dataclass
class Permit:
    """A granted slot; hand it back to `Pacer.settle` once the request has completed."""

    wait: float = 0.0
    window: SlidingWindow | None = None
    at: float = 0.0
    sent: float = 0.0  # when the caller was let go (after any wait)
    counted_from_send: bool = False


class Pacer:
    """Thread-safe pacing of Sigfox calls by endpoint template and device.

    `clock` gives seconds since the epoch (it also dates `SigfoxPacingRefused.retry_at`);
    `sleep` waits. Both are injectable so tests run without real time passing.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
    ) -> None:
        self.enabled = enabled
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, str], SlidingWindow] = {}
        self._acquisitions = 0

    def acquire(
        self, method: str, endpoint: str, device_id: str | None = None, *, retry: bool = False
    ) -> Permit:
        """Wait for (or refuse) a slot for one request; the permit says how long it slept.

        `retry` marks a re-send after a 429: the call's slot was already taken by its first
        attempt, so long (refusing) limits are not charged again; short ones still pace.
        """
        limit = limit_for(method, endpoint)
        if not self.enabled or limit is None:
            return Permit()
        if retry and limit.window > self._max_wait:
            return Permit()
        with self._lock:
            now = self._clock()
            window = self._window(limit, method, endpoint, device_id)
            slot = window.next_slot(now)
            wait = slot - now
            if wait > self._max_wait:
                raise self._refusal(limit, method, endpoint, device_id, slot)
            # Reserve the slot before sleeping so concurrent callers queue behind it.
            window.grant(slot)
            self._sweep(now)
        if wait > 0:
            self._sleep(wait)
        return Permit(wait=wait, window=window, at=slot, sent=self._clock(),
                      counted_from_send=limit.counted_from_send)

    def settle(self, permit: Permit) -> None:
        """Record that the permit's request has completed (see `SlidingWindow.settle`)."""
        if permit.window is None:
            return
        with self._lock:
            done = self._clock()
            if permit.counted_from_send:
                done = min(done, permit.sent + SEND_ALLOWANCE)
            permit.window.settle(permit.at, done)

    def _window(
        self, limit: Limit, method: str, endpoint: str, device_id: str | None
    ) -> SlidingWindow:
        # Per-device limits are per method too: a PUT does not use up the DELETE allowance.
        if limit.per_device:
            key = (limit.name, f"{method} {endpoint}", device_id or "")
        else:
            key = (limit.name, "", "")
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow(limit.calls, limit.window)
        return window

    def _sweep(self, now: float) -> None:
        # Per-device windows accumulate over a fleet scan; drop idle ones now and then so
        # memory stays bounded by the devices touched in the last hour.
        self._acquisitions += 1
        if self._acquisitions % 1000:
            return
        for key in [k for k, w in self._windows.items() if w.idle(now)]:
            del self._windows[key]

    @staticmethod
    def _refusal(
        limit: Limit, method: str, endpoint: str, device_id: str | None, slot: float
    ) -> SigfoxPacingRefused:
        subject = f" on device {device_id}" if device_id else ""
        message = (
            f"Not sending {method} {endpoint}{subject}: Sigfox allows {limit.calls} call(s) "
            f"per {_human(limit.window)} ({limit.name}) and the allowance is used up"
        )
        path = endpoint.replace("{id}", device_id) if device_id else endpoint
        return SigfoxPacingRefused(message, retry_at=slot, method=method, path=path)


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return "second" if seconds == 1 else f"{seconds:g} seconds"
