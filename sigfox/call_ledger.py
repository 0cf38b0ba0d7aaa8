"""Where the calls counted against a durable rate limit are kept (see pacing.py): a
`CallLedger` is the bot's database in production (`storage.call_ledger`), so an hour-long window
survives a restart; `MemoryLedger` serves a client without a database (CLI, tests)."""

from __future__ import annotations

import itertools
import threading
from typing import Protocol


class CallLedger(Protocol):
    """Where the calls counted against a durable limit are kept. Implementations are safe to
    share between threads; each `reserve` is atomic (check and record in one step)."""

    def reserve(self, key: str, calls: int, window: float, now: float) -> tuple[int | None, float]:
        """Record one call at `now` if fewer than `calls` were recorded in the last `window`
        seconds: `(entry id, now)`; else `(None, the earliest time one fits)`."""
        ...

    def settle(self, entry: int, done: float) -> None:
        """The call completed at `done`: count it from then (see `SlidingWindow.settle`)."""
        ...

    def release(self, entry: int) -> None:
        """The call never reached the server: it does not count."""
        ...

    def forget(self, key: str, since: float) -> int:
        """Calls recorded at or after `since` were verified not to have taken effect."""
        ...


class MemoryLedger:
    """A `CallLedger` in memory, for a client without a database (CLI, tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._by_key: dict[str, dict[int, float]] = {}
        self._key_of: dict[int, str] = {}

    def reserve(self, key: str, calls: int, window: float, now: float) -> tuple[int | None, float]:
        with self._lock:
            entries = self._by_key.setdefault(key, {})
            for entry in [e for e, at in entries.items() if at <= now - window]:
                del entries[entry], self._key_of[entry]
            recent = sorted(entries.values())
            if len(recent) >= calls:
                return None, max(now, recent[-calls] + window)
            entry = next(self._ids)
            entries[entry] = now
            self._key_of[entry] = key
            return entry, now

    def settle(self, entry: int, done: float) -> None:
        with self._lock:
            key = self._key_of.get(entry)
            if key is not None:
                entries = self._by_key[key]
                entries[entry] = max(entries[entry], done)

    def release(self, entry: int) -> None:
        with self._lock:
            key = self._key_of.pop(entry, None)
            if key is not None:
                del self._by_key[key][entry]

    def forget(self, key: str, since: float) -> int:
        with self._lock:
            entries = self._by_key.get(key, {})
            gone = [e for e, at in entries.items() if at >= since]
            for entry in gone:
                del entries[entry], self._key_of[entry]
            return len(gone)
