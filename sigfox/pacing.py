"""Client-side pacing to Sigfox's published rate limits, so the client rarely sees a 429.

Published limits (tests/specs/sigfox-api-v2/SOURCE.md; openapi.json does not state them):

- `GET /devices/` (the list): 50 requests per 10 s, per API user;
- `GET /devices/{id}/messages`: 1 per second per device;
- `GET`, `PUT` and `DELETE /devices/{id}`: 1 per hour per device (GET in an older revision;
  paced too, since the cost of a wasted hour is higher than the cost of a refusal);
- bulk jobs (`POST|PUT /devices/bulk`, `POST /devices/bulk/transfer`): 5 per 10 minutes. The
  restart and unsubscribe jobs share that budget here: the published text is not precise and
  a stricter local budget costs nothing.

Each limit is a sliding window. A call counts from when its answer came back (the service
dated it somewhere between sending and answering), except on the device list: there it counts
from when it was sent plus `DATING_MARGIN`, or from its answer if that came sooner. Counting
list calls from their answers would add one answer time to every 10 s window (+3 % to a
150,000-device scan at 300 ms a call); counting from the sending alone leaves no room for the
time the call takes to be dated by the service (its trip, the wait for a busy server's loop, a
client thread waiting for the GIL), and one dated later than the call 50 behind it by more than
the margin meets a 429. The margin starts from a measured delay and doubles after each list
call answered 429: see `DATING_MARGIN`. A list call that still meets a 429 is re-sent after the
back-off below.

A caller either sleeps or defers. A sleeping caller (a one-shot
CLI command) waits for a short slot (up to `max_wait`); a long one (an hour for a device write,
minutes for a bulk job) is refused at once with `SigfoxPacingRefused` saying when the call
becomes possible: a chat bot must not hold a thread for an hour. A deferring caller (workflow
steps, scheduled jobs) never waits: any wait is refused with its `retry_at`, which the caller
records as its next run, so one device's wait never holds the others.

The long windows (per-device hourly calls, bulk jobs) are counted in a `CallLedger`
(call_ledger.py): the bot's database in production (`storage.call_ledger`), so the count survives a
restart. What counts is what the server may have executed: a call refused locally, one that
failed before connecting, or one answered 429 gives its slot back; one answered otherwise, or
cut off after it was sent, keeps it. A caller that later verifies, by reading the backend, that
a call did not take effect (a DELETE answered 500 and the device still listed) says so with
`Pacer.forget`.

After a 429, a 5xx or a failed connection, the same call is held for a back-off (exponential,
full jitter, per endpoint and device; backoff.py): every caller of that call, sleeping or
deferring, waits for it, and the first success clears it.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sigfox.backoff import BackOff
from sigfox.call_ledger import CallLedger, MemoryLedger
from sigfox.errors import SigfoxPacingRefused

# How long after being sent a list call may be dated by the service, where calls count from when
# they were sent. Measured on loopback against the simulator on a loaded 2-core machine (load
# average 7.7, 8 threads): the simulator dated calls 4 ms after sending at the median, 59 ms at
# p99, 117 ms at worst; 0.1 s let 17 of 1,551 calls of a 150,000-device scan meet a 429 at load
# average 11; on a quiet machine (load 0.5) p99 46 ms, 140 ms at worst. The margin is paid once
# per 10 s window, so it starts small (0.15 s, 1.5 %) and widens after each list call answered
# 429 (`Pacer.refused`), up to `DATING_MARGIN_MAX`: a busy server or client pays for its lateness
# only once it has shown it (a 150,000-device scan measured 0.25 s fixed: 1.053 x its floor).
DATING_MARGIN = 0.15
DATING_MARGIN_MAX = 1.0
# How long after a deferring caller last asked for a slot the sleeping ones keep leaving it
# slots (`Limit.kept_for_deferred`): a workflow's steps ask every tick while they run.
DEFERRED_ABOUT = 120.0


@dataclass(frozen=True)
class Limit:
    name: str
    calls: int
    window: float
    per_device: bool
    counted_from_send: bool = False
    # Slots a sleeping caller leaves to deferring ones, while deferring callers are about
    # (`DEFERRED_ABOUT`). A fleet scan sleeps towards each slot and keeps the window full while
    # it runs; without this, a workflow step (which never waits) would find no slot for the
    # whole scan. With nobody deferring, the scan has the whole window: it stays on the floor.
    kept_for_deferred: int = 0
    # Counted in the `CallLedger` (the database in production): a restart must not forget an
    # hour-long window, while a 1-second or 10-second one has lapsed by the time we are back.
    durable: bool = False


DEVICE_LIST = Limit("device list", 50, 10.0, per_device=False, counted_from_send=True,
                    kept_for_deferred=5)
DEVICE_MESSAGES = Limit("device messages", 1, 1.0, per_device=True)
DEVICE_HOURLY = Limit("one call per hour per device", 1, 3600.0, per_device=True, durable=True)
BULK_JOBS = Limit("bulk jobs", 5, 600.0, per_device=False, durable=True)

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

    def next_slot(self, now: float, calls: int | None = None) -> float:
        """The earliest time a new grant fits in the window (== now when it fits already),
        for a caller allowed `calls` of it (all of it by default)."""
        calls = self.calls if calls is None else calls
        self._prune(now)
        if len(self._grants) < calls:
            return now
        # The grant `calls` places back is the one that must leave the window first.
        return max(now, self._grants[-calls] + self.window)

    def earliest_fit(self, now: float, calls: int) -> float:
        """The earliest time from `now` at which one more grant keeps every window around it
        within `calls`, counting the reservations ahead of `now` too (callers sleeping towards
        their slots). Used for a caller that does not wait: it goes now, in the gaps a
        sleeping walk leaves, or is told when."""
        self._prune(now)
        candidates = [now, *sorted(g + self.window for g in self._grants if g + self.window > now)]
        for at in candidates:
            if self._fits_at(at, calls):
                return at
        return candidates[-1]

    def _fits_at(self, at: float, calls: int) -> bool:
        # The busiest window holding `at` starts at `at` or at a grant shortly before it.
        starts = [g for g in self._grants if at - self.window < g <= at] + [at]
        for start in starts:
            inside = bisect.bisect_left(self._grants, start + self.window) - bisect.bisect_left(
                self._grants, start)
            if inside + 1 > calls:
                return False
        return True

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

    def remove(self, granted: float) -> None:
        """Forget a grant: its call did not count on the server."""
        index = bisect.bisect_left(self._grants, granted)
        if index < len(self._grants) and self._grants[index] == granted:
            del self._grants[index]

    def idle(self, now: float) -> bool:
        self._prune(now)
        return not self._grants


@dataclass
class Permit:
    """A granted slot; hand it back to `Pacer.settle` once the request has completed, or to
    `Pacer.release` when it never reached the server."""

    wait: float = 0.0
    window: SlidingWindow | None = None
    at: float = 0.0
    sent: float = 0.0  # when the caller was let go (after any wait)
    counted_from_send: bool = False
    entry: int | None = None


@dataclass
class _Hold:
    failures: int = 0
    until: float = 0.0


class Pacer:
    """Thread-safe pacing of Sigfox calls by endpoint template and device.

    `clock` gives seconds since the epoch (it also dates `SigfoxPacingRefused.retry_at`);
    `sleep` waits, and is called only for a caller that sleeps (`defer=False`). Both are
    injectable so tests run without real time passing. `ledger` keeps the durable windows.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 60.0,
        ledger: CallLedger | None = None,
        back_off: BackOff | None = None,
    ) -> None:
        self.enabled = enabled
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self.ledger: CallLedger = ledger or MemoryLedger()
        self.back_off = back_off or BackOff()
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str, str], SlidingWindow] = {}
        self._holds: dict[tuple[str, str, str], _Hold] = {}
        self._acquisitions = 0
        self._deferred_asked: dict[str, float] = {}  # limit name -> when one last asked
        self.dating_margin = DATING_MARGIN  # widened by `refused` (see DATING_MARGIN)

    @property
    def max_wait(self) -> float:
        """The longest a sleeping caller is made to wait for a slot."""
        return self._max_wait

    def acquire(
        self, method: str, endpoint: str, device_id: str | None = None, *, defer: bool = False
    ) -> Permit:
        """A slot for one request: slept for (up to `max_wait`), or refused with `retry_at`
        (at once when `defer`). The permit says how long it slept."""
        slept = self._await_hold(method, endpoint, device_id, defer)
        limit = limit_for(method, endpoint)
        if not self.enabled or limit is None:
            return Permit(wait=slept)
        if limit.durable:
            return self._acquire_durable(limit, method, endpoint, device_id, defer, slept)
        with self._lock:
            now = self._clock()
            window = self._window(limit, method, endpoint, device_id)
            if defer:
                self._deferred_asked[limit.name] = now
                slot = window.earliest_fit(now, limit.calls)
            else:
                slot = window.next_slot(now, limit.calls - self._kept(limit, now))
            wait = slot - now
            if wait > (0.0 if defer else self._max_wait):
                raise self._refusal(limit, method, endpoint, device_id, slot)
            # Reserve the slot before sleeping so concurrent callers queue behind it.
            window.grant(slot)
            self._sweep(now)
        if wait > 0:
            self._sleep(wait)
        return Permit(wait=slept + wait, window=window, at=slot, sent=self._clock(),
                      counted_from_send=limit.counted_from_send)

    def _kept(self, limit: Limit, now: float) -> int:
        """Slots a sleeping caller leaves free: only while deferring callers are about."""
        asked = self._deferred_asked.get(limit.name)
        about = asked is not None and now - asked <= DEFERRED_ABOUT
        return limit.kept_for_deferred if about else 0

    def _acquire_durable(
        self, limit: Limit, method: str, endpoint: str, device_id: str | None, defer: bool,
        slept: float,
    ) -> Permit:
        key = ledger_key(limit, method, endpoint, device_id)
        while True:
            now = self._clock()
            entry, slot = self.ledger.reserve(key, limit.calls, limit.window, now)
            if entry is not None:
                return Permit(wait=slept, entry=entry, at=now)
            wait = slot - now
            if defer or wait > self._max_wait:
                raise self._refusal(limit, method, endpoint, device_id, slot)
            self._sleep(wait)
            slept += wait

    def settle(self, permit: Permit) -> None:
        """Record that the permit's request has completed (see `SlidingWindow.settle`)."""
        if permit.entry is not None:
            self.ledger.settle(permit.entry, self._clock())
        if permit.window is None:
            return
        with self._lock:
            done = self._clock()
            if permit.counted_from_send:
                done = min(done, permit.sent + self.dating_margin)
            permit.window.settle(permit.at, done)

    def release(self, permit: Permit) -> None:
        """The permit's request never reached the server (or was refused with 429 unprocessed):
        its slot is given back, so the call sent again takes it. On the list endpoint a
        re-sent call that kept a second slot would be one call over a whole number of windows
        (1,501 for 150,000 devices) and cost one window more (10 s). The back-off after a 429
        (`hold`) keeps the call from being sent again at once."""
        if permit.entry is not None:
            self.ledger.release(permit.entry)
        if permit.window is not None:
            with self._lock:
                permit.window.remove(permit.at)

    def refused(self, permit: Permit) -> None:
        """The server answered 429 without processing the call: its slot is given back
        (`release`), and where calls count from their sending, the server dated one later than
        the margin allowed: the margin doubles (up to `DATING_MARGIN_MAX`)."""
        self.release(permit)
        if permit.counted_from_send:
            with self._lock:
                self.dating_margin = min(self.dating_margin * 2, DATING_MARGIN_MAX)

    def forget(self, method: str, endpoint: str, device_id: str | None, since: float) -> int:
        """The caller verified on the backend that the calls sent since `since` did not take
        effect: they no longer count against the durable limit."""
        limit = limit_for(method, endpoint)
        if limit is None or not limit.durable:
            return 0
        return self.ledger.forget(ledger_key(limit, method, endpoint, device_id), since)

    # -- holds after failures ---------------------------------------------------------------

    def hold(
        self, method: str, endpoint: str, device_id: str | None, retry_after: float | None = None
    ) -> float:
        """One more failure in a row of this call: hold it for a back-off; returns until when."""
        key = (method, endpoint, device_id or "")
        with self._lock:
            held = self._holds.setdefault(key, _Hold())
            held.failures += 1
            held.until = self._clock() + self.back_off.delay(held.failures, retry_after)
            return held.until

    def succeeded(self, method: str, endpoint: str, device_id: str | None) -> None:
        with self._lock:
            self._holds.pop((method, endpoint, device_id or ""), None)

    def _await_hold(self, method: str, endpoint: str, device_id: str | None, defer: bool) -> float:
        with self._lock:
            held = self._holds.get((method, endpoint, device_id or ""))
            until = held.until if held else 0.0
            now = self._clock()
        if until <= now:
            return 0.0
        if defer or until - now > self._max_wait:
            raise self._held(method, endpoint, device_id, until)
        self._sleep(until - now)
        return until - now

    def _window(
        self, limit: Limit, method: str, endpoint: str, device_id: str | None
    ) -> SlidingWindow:
        key = _window_key(limit, method, endpoint, device_id)
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
        for key in [k for k, h in self._holds.items() if h.until < now - 3600]:
            del self._holds[key]

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
        return SigfoxPacingRefused(message, retry_at=slot, method=method, path=path,
                                   limit=limit.name, per_device=limit.per_device)

    @staticmethod
    def _held(method: str, endpoint: str, device_id: str | None, until: float
              ) -> SigfoxPacingRefused:
        subject = f" on device {device_id}" if device_id else ""
        message = (f"Not sending {method} {endpoint}{subject}: Sigfox answered the last attempt "
                   "with a rate limit or an error, and the back-off is not over")
        path = endpoint.replace("{id}", device_id) if device_id else endpoint
        return SigfoxPacingRefused(message, retry_at=until, method=method, path=path,
                                   limit="back-off", per_device=bool(device_id))


def _window_key(limit: Limit, method: str, endpoint: str, device_id: str | None
                ) -> tuple[str, str, str]:
    # Per-device limits are per method too: a PUT does not use up the DELETE allowance.
    if limit.per_device:
        return (limit.name, f"{method} {endpoint}", device_id or "")
    return (limit.name, "", "")


def ledger_key(limit: Limit, method: str, endpoint: str, device_id: str | None) -> str:
    """The ledger's key for one call: `bulk jobs`, `DELETE /devices/{id} 1A2B3C`."""
    if limit.per_device:
        return f"{method} {endpoint} {device_id or ''}"
    return limit.name


def _human(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "hour" if hours == 1 else f"{hours} hours"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} minutes"
    return "second" if seconds == 1 else f"{seconds:g} seconds"
