"""Typed exceptions raised by the Sigfox API client.

Callers branch on the class (Sigfox says its message texts may change without notice), and
people read the message, so each message says what to do next. Messages never contain
credentials or a PAC: the client scrubs known secrets from server texts before building them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class FieldError:
    """One entry of a 400 body's `errors` list: where (`type`: body/query/path), which field."""

    type: str | None
    field: str | None
    message: str | None

    def __str__(self) -> str:
        where = ".".join(part for part in (self.type, self.field) if part)
        return f"{where}: {self.message}" if where else str(self.message)


class SigfoxError(Exception):
    """Base class. `outcome_unknown` is True when a write may or may not have been applied.

    `retry_at` (seconds since the Unix epoch) is set when the client knows when the call may be
    made again: a rate-limit slot, a back-off after a 429, a 5xx or a timeout. A client that
    defers (see `sigfox.transport.WaitMode`) raises instead of sleeping, and the caller records
    that date as its next run; `waiting_for` names what it waits for, for people.
    """

    default_hint = ""
    waits_for = "Sigfox"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        outcome_unknown: bool = False,
        retry_at: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.outcome_unknown = outcome_unknown
        self.retry_at = retry_at
        super().__init__(self._render())

    @property
    def waiting_for(self) -> str:
        """What a caller deferred by this error waits for, as people read it."""
        return self.waits_for

    @property
    def retry_at_datetime(self) -> datetime | None:
        return None if self.retry_at is None else datetime.fromtimestamp(self.retry_at, tz=UTC)

    def _render(self) -> str:
        parts = [self.message]
        if self.default_hint:
            parts.append(self.default_hint)
        where = " ".join(p for p in (self.method, self.path) if p)
        status = f"HTTP {self.status}" if self.status is not None else ""
        context = ", ".join(p for p in (where, status) if p)
        text = " ".join(parts)
        return f"{text} [{context}]" if context else text


class SigfoxConfigError(SigfoxError):
    """The client cannot be built from its configuration (a missing environment variable)."""


class SigfoxUnauthorized(SigfoxError):
    default_hint = "Check SIGFOX_API_LOGIN and SIGFOX_API_PASSWORD (API user credentials)."


class SigfoxForbidden(SigfoxError):
    default_hint = (
        "Either the API user lacks the profile (role) this needs, "
        "or the resource's current state does not allow it."
    )


class SigfoxNotFound(SigfoxError):
    default_hint = "Check the identifier; the API user may also not see this resource."


class SigfoxConflict(SigfoxError):
    """409: for POST /devices/ after a delete it means the backend has not released the id yet."""

    default_hint = "The resource conflicts with the backend's current state."


class SigfoxBadRequest(SigfoxError):
    def __init__(
        self,
        message: str,
        *,
        field_errors: list[FieldError] | None = None,
        status: int | None = 400,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.field_errors = list(field_errors or [])
        if self.field_errors:
            message = f"{message}: " + "; ".join(str(e) for e in self.field_errors)
        super().__init__(message, status=status, method=method, path=path)


class SigfoxRateLimited(SigfoxError):
    """429 (after every retry, or at once for a deferring client); the request was not processed."""

    default_hint = "Sigfox rate limit still hit after retries; try again later."
    waits_for = "Sigfox's rate limit"

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        method: str | None = None,
        path: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        self.attempts = attempts
        super().__init__(message, status=429, method=method, path=path, retry_at=retry_at)


class SigfoxServerError(SigfoxError):
    """5xx. For a write, `outcome_unknown` is True: read the backend before trying again."""

    waits_for = "Sigfox to recover from a server error"


class SigfoxConnectionError(SigfoxError):
    """Timeout or dropped connection. For a write, `outcome_unknown` says whether it was sent."""

    waits_for = "Sigfox to answer again"


class SigfoxPacingRefused(SigfoxError):
    """Refused locally: sending now would exceed a published Sigfox limit.

    Raised instead of sleeping when the wait is long (per-device hourly writes, bulk jobs), and
    for any wait at all by a deferring client. `retry_at` is when the call becomes possible, in
    seconds since the Unix epoch; `limit` names the limit, `per_device` says whose it is.
    """

    retry_at: float

    def __init__(
        self,
        message: str,
        *,
        retry_at: float,
        method: str,
        path: str,
        limit: str = "",
        per_device: bool = False,
    ) -> None:
        self.limit = limit
        self.per_device = per_device
        when = datetime.fromtimestamp(retry_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        super().__init__(f"{message}; possible again at {when}", method=method, path=path,
                         retry_at=retry_at)

    @property
    def waiting_for(self) -> str:
        return "Sigfox's per-device limit" if self.per_device else f"Sigfox's {self.limit} limit"


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Replace every secret (password, PAC) that a server echoed back in an error text."""
    for secret in secrets:
        # Short strings would blank out ordinary words; PACs and passwords are long.
        if secret and len(secret) >= 4:
            text = re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    return text
