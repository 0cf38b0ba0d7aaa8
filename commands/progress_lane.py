"""Progress delivered on its own thread, so whoever tells it never waits for the chat.

A chat takes posts at its own pace (Slack: about one per second per channel, and the Slack
notifier waits its turn). Told from the workflow tick, that wait would hold every other job: a
wait is a date, never a sleep, for the tick too. The lane takes each `Progress` at once and
delivers them on one thread, in the order they were told (a job's thread reads in order). The
progress is already recorded in the database (`workflow_events`) before it is told, so a line
still queued at a crash is missing only from the chat.
"""

from __future__ import annotations

import logging
import queue
import threading

from commands.ports import Notifier, Progress

log = logging.getLogger(__name__)


class ProgressLane:
    """A `Notifier` that queues for another `Notifier`, delivered by one worker thread."""

    def __init__(self, inner: Notifier, *, name: str = "progress-lane") -> None:
        self.inner = inner
        self._queue: queue.Queue[Progress | None] = queue.Queue()
        # Started at the first progress: building the bot starts no thread.
        self._worker = threading.Thread(target=self._deliver, name=name, daemon=True)
        self._start = threading.Lock()

    def notify(self, progress: Progress) -> None:
        with self._start:
            if not self._worker.is_alive() and self._worker.ident is None:
                self._worker.start()
        self._queue.put(progress)

    def flush(self) -> None:
        """Return once everything told so far has been delivered (or failed to be)."""
        self._queue.join()

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued, then stop the worker; give up waiting after `timeout`
        seconds (a chat that is down must not hold a shutdown: the lines are in the database)."""
        if self._worker.ident is None:
            return
        self._queue.put(None)
        self._worker.join(timeout)

    def _deliver(self) -> None:
        while True:
            progress = self._queue.get()
            try:
                if progress is None:
                    return
                self.inner.notify(progress)
            except Exception:  # one undeliverable line must not stop the others
                log.exception("could not deliver progress of %s", progress.job if progress else "")
            finally:
                self._queue.task_done()
