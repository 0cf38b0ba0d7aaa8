"""Acknowledgements first: the work behind a Slack request yields while requests are answered.

Slack wants each request answered within 3 seconds, and the answer (the ack) is all it waits
for; the work (Sigfox reads, SQLite, Slack posts) runs after, in worker threads. Python
threads share one GIL and have no priorities: when 50 commands arrive together, the work of the
first ones, in worker threads, takes the GIL in 5 ms slices while the event loop and the
dispatching threads still have the other acks to read, verify, dispatch and write, and every
ack waits behind it (measured: docs/benchmarks.md, "Slash command acknowledgement").

First, nothing but the ack is done on the request path: every listener hands its work over
with `hand_off` (one executor submit; `bot.listeners.handoff` for the clicks, forms and events)
rather than through a Bolt lazy listener, whose start deep-copies the whole request in the
answering thread. Then the work is made to wait, twice:

- before it starts: the HTTP edge counts the Slack requests it is answering (`enter`/`leave`),
  and gated work (`run_background`, what `AcksFirstExecutor` runs) starts only once none has
  been for `quiet` seconds (the requests of a burst reach the handler milliseconds apart);
- once started, at its safe points: `checkpoint()` is called before each Sigfox request
  (`CheckpointTransport`), after each Slack answer (`SlackCheckpoint`, i.e. before the next
  call) and before each SQLite write transaction (`SafeDatabase.before_transaction`). In a
  thread running gated work it parks while acks are due; anywhere else it does nothing.

The garbage collector is background work too: a collection holds the GIL for as long as it walks
the heap, stalling every ack in flight (measured: one full collection of 67 ms made a burst's
tail). `hold_collections` keeps the automatic collector off while requests are being answered;
it runs as soon as none is, and a stream of requests lasting `max_hold` lets it run anyway.

Never parked: a thread holding what an ack may need (the database lock: an ack that checks a
decision reads the database), see `never_park_while`. Never lost: parking only delays; the work
runs once, whole. Never starved: each piece of gated work waits at most `max_hold` seconds in
all (start and parks together, counted from its hand-off: `AcksFirstExecutor.submit`), so a
steady stream of requests delays it, never stops it. The budget is short because some work
must still reach Slack within the 3 s a trigger_id lives (a click or a command that opens a
form): only a flood of requests lasting the whole budget takes it all.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

import httpx
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from commands import metrics
from commands.logs import failure_summary

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_HOLD = 2.0  # seconds a piece of gated work waits at most for the acks in flight, in all
# Seconds without a request being answered before the work goes on. The gate sees a request
# only once the event loop has read its headers, and in a burst on a loaded machine the loop
# may take tens of ms between two: with 20 ms, work started in those gaps, mid-burst (measured:
# bot p99 1.6x the bare app's against 1.0x with 100 ms, runs interleaved). 100 ms is little
# next to the work itself (a Sigfox answer takes 300 ms).
QUIET = 0.1


class AckGate:
    """Counts requests being answered; gated work waits until there are none."""

    def __init__(self, max_hold: float = MAX_HOLD, quiet: float = QUIET) -> None:
        self.max_hold = max_hold
        self.quiet = quiet
        self.hold_collections = False  # see keep_collections_off_acks
        self._collections_held_since: float | None = None  # when this gate turned gc off
        self.parks = 0  # safe points at which gated work waited
        self.parked_now = 0  # pieces of gated work waiting at a safe point right now
        self._answering = 0
        self._last_answer = 0.0
        self._changed = threading.Condition()
        self._holds: list[Callable[[], bool]] = []

    @property
    def answering(self) -> int:
        return self._answering

    def enter(self) -> None:
        with self._changed:
            self._answering += 1
            if self.hold_collections:
                self._hold_collections(time.monotonic())

    def leave(self) -> None:
        with self._changed:
            self._answering -= 1
            self._last_answer = time.monotonic()
            if self._answering == 0:
                self._release_collections()
                self._changed.notify_all()

    def _hold_collections(self, now: float) -> None:
        """Called with the lock held as a request arrives: the collector waits for the acks,
        unless it has waited `max_hold` already (a stream of requests must not starve it)."""
        held_since = self._collections_held_since
        if held_since is None:
            if self._answering == 1 and gc.isenabled():  # off only if it was on: ours to undo
                gc.disable()
                self._collections_held_since = now
        elif now - held_since >= self.max_hold:
            self._release_collections()

    def _release_collections(self) -> None:
        if self._collections_held_since is not None:
            self._collections_held_since = None
            gc.enable()

    def never_park_while(self, holds: Callable[[], bool]) -> None:
        """`holds()` is True when the calling thread holds something an ack may need: gated
        work in that state goes on through its safe points instead of parking."""
        self._holds.append(holds)

    def wait_clear(self, deadline: float | None = None) -> bool:
        """Wait (until `deadline`, by default `max_hold` from now) until no request has been
        answered for `quiet` seconds; True when that came, False when time ran out."""
        if deadline is None:
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

    def run_background(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn` as gated work in this thread: once the acks in flight are answered, and
        parking at its safe points while new ones are."""
        return self.run_gated(time.monotonic() + self.max_hold, fn, *args, **kwargs)

    def run_gated(self, deadline: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any
                  ) -> T:
        """`run_background`, holding the work (start and parks) only until `deadline`."""
        self.wait_clear(deadline)
        outer = getattr(_running, "work", None)
        _running.work = (self, deadline)
        try:
            return fn(*args, **kwargs)
        finally:
            _running.work = outer

    def park(self, deadline: float) -> None:
        """A safe point of gated work that may wait until `deadline`."""
        if self._answering == 0 or any(holds() for holds in self._holds):
            return  # nothing due (read without the lock: a stale 0 only skips one wait)
        started = time.monotonic()
        if started >= deadline:
            return  # this work has waited all it may
        with self._changed:
            self.parked_now += 1
        try:
            self.wait_clear(deadline)
        finally:
            with self._changed:
                self.parked_now -= 1
                self.parks += 1
        metrics.METRICS.observe_parked(time.monotonic() - started)


_running = threading.local()  # .work: (gate, deadline) of the gated work this thread runs


def checkpoint() -> None:
    """A safe point: gated work parks here while acks are due; any other thread goes on."""
    work = getattr(_running, "work", None)
    if work is not None:
        gate, deadline = work
        gate.park(deadline)


def current_gate() -> AckGate | None:
    """The gate of the gated work this thread runs, if any."""
    work = getattr(_running, "work", None)
    return work[0] if work is not None else None


class AcksFirstExecutor(Executor):
    """Runs each submitted function on `inner` as gated work of `gate`."""

    def __init__(self, inner: Executor, gate: AckGate) -> None:
        self.inner = inner
        self.gate = gate

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        # The hold is counted from here, the request's hand-off, not from when a worker is
        # free: time queued behind other work is time of the 3 s a trigger_id lives.
        deadline = time.monotonic() + self.gate.max_hold
        return self.inner.submit(self.gate.run_gated, deadline, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def hand_off(app: Any, work: Callable[..., None], /, *args: Any, **kwargs: Any) -> None:
    """Run `work(*args, **kwargs)` as gated work on `app`'s listener executor, as a lazy
    listener runs, from an ack listener: the request path pays one executor submit. Bolt's lazy
    listeners cost the answering thread a deep copy of the whole request (about 2 ms of CPU,
    measured: docs/benchmarks.md), there while every other ack of a burst waits for the GIL.
    A failure is logged (its type and where, not its message), never lost in a future nobody
    reads."""
    app.listener_runner.listener_executor.submit(_logging_failure, work, *args, **kwargs)


def _logging_failure(work: Callable[..., None], /, *args: Any, **kwargs: Any) -> None:
    try:
        work(*args, **kwargs)
    except Exception as error:
        # The arguments (and so the error's message) may hold what the request carried:
        # log the failure's type and where only.
        log.error("background work %s failed: %s", getattr(work, "__name__", "?"),
                  failure_summary(error))


class CheckpointTransport(httpx.BaseTransport):
    """An httpx transport whose every request is a safe point (the Sigfox client's)."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        checkpoint()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class SlackCheckpoint(RetryHandler):
    """Makes every Slack Web API answer a safe point (before the listener's next call).

    A retry handler because Bolt gives each listener a fresh `WebClient` built from the app's
    client, keeping only its retry handlers (see `bot.slack_client`); slack_sdk consults them
    after every answer. This one never asks for a retry: place it after the real ones."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=0)

    def can_retry(self, *, state: RetryState, request: HttpRequest,
                  response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        checkpoint()
        return False


def install_safe_points(gate: AckGate, database: Any, client: Any) -> None:
    """Make the bot's SQLite write transactions and Slack answers safe points of `gate`'s
    work (`database`: storage's SafeDatabase; `client`: the app's WebClient, whose retry
    handlers every listener's client copies). The Sigfox client gets `CheckpointTransport`
    where it is built (`bot.service`)."""
    database.before_transaction = checkpoint
    gate.never_park_while(database.held_here)
    if not any(isinstance(h, SlackCheckpoint) for h in client.retry_handlers):
        client.retry_handlers.append(SlackCheckpoint())


def keep_collections_off_acks(gate: AckGate) -> None:
    """For a serving process, once start-up is done: what start-up built (modules, the app and
    its listeners, most of the heap) leaves the collector's sight for good, as it lives as long
    as the process (a full collection walked it all, 78,000 objects, while acks waited), and
    the collector no longer runs while `gate`'s requests are being answered."""
    gc.collect()
    gc.freeze()
    gate.hold_collections = True


def socket_mode_handler(app: Any, app_token: str) -> Any:
    """Bolt's Socket Mode handler for `app`, answering each request as one the gate counts
    (from its dispatch until its ack is sent over the socket), as the HTTP edge does: the
    work and the collector wait for acks over either transport."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    class GatedSocketModeHandler(SocketModeHandler):
        def handle(self, client: Any, req: Any) -> None:
            gate = gate_of(self.app)
            if gate is None:
                return super().handle(client, req)
            gate.enter()
            try:
                super().handle(client, req)
            finally:
                gate.leave()

    return GatedSocketModeHandler(app, app_token)


_GATES: weakref.WeakKeyDictionary[Any, AckGate] = weakref.WeakKeyDictionary()


def attach(app: Any, gate: AckGate) -> None:
    """Remember the gate of a Bolt app, for the HTTP edge that serves it (`gate_of`)."""
    _GATES[app] = gate


def gate_of(app: Any) -> AckGate | None:
    return _GATES.get(app)
