"""Threads a test leaves running, found where they are made rather than where they land.

A progress lane still posting, a scheduler still ticking, a Socket Mode client still
reconnecting: each keeps logging (and calling a stand-in that is gone) during later tests,
which then fail far from the cause. `tests/conftest.py` checks every test, and every module,
with `left_running`.

An idle worker of a thread pool that is still open belongs to whoever opened the pool: a
module's fixture (a server shared by the module's tests) starts its pool's workers in
whichever test first uses it. Such workers are checked when the module ends, not after each
test.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterable
from concurrent.futures import thread as futures_thread
from typing import Any

# How long threads told to stop (a scheduler shut down without waiting, a server closing) may
# take to end: generous for a loaded machine, and only ever spent on a thread that leaked,
# since each is joined only until it ends.
STOPPING_GRACE = 30.0


def left_running(before: Iterable[threading.Thread], *, pools_open: bool) -> list[str]:
    """The threads started since `before` that are still running once given time to stop,
    each with where it is; `pools_open`: idle workers of pools still open are let go."""
    known = set(before)
    started = [t for t in threading.enumerate() if t not in known]
    if pools_open:
        started = [t for t in started if not _worker_of_open_pool(t)]
    deadline = time.monotonic() + STOPPING_GRACE
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [_where(t) for t in started if t.is_alive()]


def _worker_of_open_pool(thread: threading.Thread) -> bool:
    target: Any = getattr(thread, "_target", None)
    if target is futures_thread._worker:  # concurrent.futures: args[0] is a weakref to the pool
        pool_ref = thread._args[0]  # type: ignore[attr-defined]
        pool = pool_ref() if isinstance(pool_ref, weakref.ref) else None
        return pool is not None and not pool._shutdown
    # anyio's worker threads (Starlette's sync endpoints) end with their server's main task.
    return type(thread).__name__ == "WorkerThread" and type(thread).__module__.startswith(
        "anyio.")


def _where(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or 0)
    stack = traceback.format_stack(frame)[-4:] if frame else []
    return f"- {thread.name} (daemon={thread.daemon}), now at:\n" + "".join(stack)
