"""The published rate limits of API v2, answered with 429 and no Retry-After (the limits:
tests/specs/sigfox-api-v2/SOURCE.md).

| calls                                   | limit                  | key        |
|-----------------------------------------|------------------------|------------|
| GET /v2/devices/ (the list)             | 50 per 10 s            | global     |
| GET /v2/devices/{id}/messages           | 1 per s                | per device |
| PUT /v2/devices/{id}                    | 1 per 60 min           | per device |
| DELETE /v2/devices/{id}                 | 1 per 60 min           | per device |
| POST /v2/devices/bulk, .../bulk/transfer,| 5 per 10 min          | per path   |
| .../bulk/restart, .../bulk/unsubscribe  |                        |            |

All windows are measured on the virtual clock, which runs with real time: the 10 s and 1 s
windows behave as in real life, and a test (or the demo) releases the hour-long per-device
window with `POST /_sim/clock/advance` instead of waiting. PUT and DELETE count separately.
A refused call does not use up the quota.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable

DEVICE_PATH = re.compile(r"^/v2/devices/(?!bulk$|bulk/)([^/]+)$")
MESSAGES_PATH = re.compile(r"^/v2/devices/([^/]+)/messages$")
BULK_POSTS = frozenset({
    "/v2/devices/bulk", "/v2/devices/bulk/transfer", "/v2/devices/bulk/restart",
    "/v2/devices/bulk/unsubscribe",
})


def limit_for(method: str, path: str) -> tuple[str, int, float] | None:
    """(bucket key, calls allowed, window seconds) for a call, or None when unlimited."""
    if method == "GET" and path in ("/v2/devices/", "/v2/devices"):
        return "list", 50, 10.0
    if method == "GET" and (match := MESSAGES_PATH.match(path)):
        return f"messages:{match.group(1).upper()}", 1, 1.0
    if method in ("PUT", "DELETE") and (match := DEVICE_PATH.match(path)):
        return f"{method}:{match.group(1).upper()}", 1, 3600.0
    if method == "POST" and path.rstrip("/") in BULK_POSTS:
        return f"bulk:{path.rstrip('/')}", 5, 600.0
    return None


class RateLimiter:
    def __init__(self, now: Callable[[], float], enabled: bool = True) -> None:
        self._now = now
        self.enabled = enabled
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def allow(self, method: str, path: str) -> bool:
        """Record the call and say whether it is within its limit."""
        rule = limit_for(method, path)
        if not self.enabled or rule is None:
            return True
        key, calls, window = rule
        now = self._now()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= calls:
                return False
            hits.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
