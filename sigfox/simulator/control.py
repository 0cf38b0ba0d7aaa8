"""Test controls: injected faults and the log of API calls.

Fault matching (POST /_sim/faults): `method` is compared case-insensitively ("*" or absent
matches any method); `path` matches the request path exactly (query string excluded), or, when
it ends with "*", any path starting with what precedes the "*" (e.g. "/v2/devices/*").
Each fault fires for its next `count` matching calls (default 1), oldest fault first.
An injected status answers `{"message"}` with the header `X-Sim-Fault: status`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sigfox.simulator.api_errors import ApiError, field_error


@dataclass(slots=True)
class Fault:
    method: str
    path: str
    count: int
    status: int | None = None
    delay: float | None = None
    drop: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method.upper()):
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


def parse_fault(body: Any) -> Fault:
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise field_error("path", "path is required")
    count = body.get("count", 1)
    if not isinstance(count, int) or count < 1:
        raise field_error("count", "count must be a positive integer")
    fault = Fault(
        method=str(body.get("method", "*")).upper(), path=body["path"], count=count,
        status=body.get("status"), delay=body.get("delay"), drop=bool(body.get("drop", False)),
    )
    kinds = sum((fault.status is not None, fault.delay is not None, fault.drop))
    if kinds != 1:
        raise ApiError(400, "Give exactly one of status, delay or drop")
    if fault.status is not None and not (isinstance(fault.status, int) and fault.status >= 400):
        raise field_error("status", "status must be an HTTP error code")
    if fault.delay is not None and not (isinstance(fault.delay, int | float) and fault.delay >= 0):
        raise field_error("delay", "delay must be a number of seconds")
    return fault


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this call, if any, using up one of its occurrences."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {k: v for k, v in vars_of(f).items() if v is not None} for f in self._faults
            ]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


def vars_of(fault: Fault) -> dict[str, Any]:
    return {"method": fault.method, "path": fault.path, "count": fault.count,
            "status": fault.status, "delay": fault.delay, "drop": fault.drop or None}


class CallLog:
    """Every /v2 call: method, path, query, status, virtual time (epoch seconds), and for a
    successful POST /v2/devices/ the created id under `device`. A dropped connection is logged
    with status 0 and `"dropped": true`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append(entry)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
