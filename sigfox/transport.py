"""One logical call to the Sigfox API: pacing, the HTTP request, retries or `retry_at`, and
the typed error, for the endpoints of `client` to build on.

- Requests are paced to the published limits before they are hit (see `pacing`).
- How a call waits is chosen when the client is wired (`WaitMode`). A sleeping one (one-shot
  CLI commands, where waiting is what the user wants) sleeps for a short rate-limit slot, and
  retries a 429, for every method, with bounded exponential back-off and full jitter (the
  service did not process the request); reads are also retried on 5xx, timeouts and dropped
  connections. A deferring one (workflow steps, scheduled jobs) never sleeps: it raises at
  once, the error carrying `retry_at`, the date the call may be made again, which the caller
  records as its next run while it moves on to other work.
- Writes (POST, PUT, DELETE) are never retried on 5xx or a cut connection: the error says the
  outcome is unknown (`outcome_unknown`) and the caller reconciles by reading the backend.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx

from sigfox.backoff import BackOff, full_jitter_delay
from sigfox.call_ledger import CallLedger
from sigfox.errors import SigfoxConnectionError, SigfoxError
from sigfox.http_errors import WRITE_METHODS, error_from_response, retry_after, retry_reason
from sigfox.pacing import Pacer, Permit

log = logging.getLogger(__name__)

OnCall = Callable[[str, str, int | None], None]


class WaitMode(StrEnum):
    """How a client waits for a rate-limit slot or a back-off, chosen at wiring time."""

    SLEEP = "sleep"  # one-shot CLI commands: wait in place, it is what the user asked for
    DEFER = "defer"  # workflows and scheduled jobs: never sleep, raise with `retry_at`


def segment(value: str) -> str:
    """An identifier made safe as one URL path segment."""
    return quote(str(value), safe="")


def without_unset(**params: Any) -> dict[str, Any]:
    """Parameters without the unset ones (the service treats absent and empty apart)."""
    return {k: v for k, v in params.items() if v is not None}


class PacedTransport:
    """HTTP Basic auth calls to one Sigfox API, paced, retried, and failing with typed errors.
    Thread-safe; `with_waits` gives a sibling sharing connections, pacing and hooks."""

    def __init__(
        self,
        base_url: str,
        login: str,
        password: str,
        *,
        timeout: float,
        rate_limits: bool,
        max_retries: int,
        backoff_base: float,
        backoff_cap: float,
        sleep: Callable[[float], None],
        on_call: OnCall | None,
        transport: httpx.BaseTransport | None,
        clock: Callable[[], float],
        waits: WaitMode,
        ledger: CallLedger | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.waits = WaitMode(waits)
        self._sleep = sleep
        self._on_call = on_call
        self._secrets: tuple[str, ...] = (password,)
        self._rng = random.Random()
        self.pacer = Pacer(enabled=rate_limits, clock=clock, sleep=sleep, ledger=ledger,
                           back_off=BackOff(backoff_base, backoff_cap, self._rng))
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=httpx.BasicAuth(login, password),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "sigfox-chatops"},
        )

    @property
    def longest_call(self) -> float:
        """The longest one call can last, in seconds: every attempt with its pacing wait and
        its four timeouts (pool, connect, write, read), and the back-offs between attempts."""
        attempt = 4 * self.timeout
        if self.waits is WaitMode.DEFER:
            return attempt  # one attempt, never a sleep: any wait is refused with retry_at
        pacing = self.pacer.max_wait if self.pacer.enabled else 0.0
        return ((self.max_retries + 1) * (pacing + attempt)
                + self.max_retries * self.backoff_cap)

    def with_waits(self, waits: WaitMode) -> Self:
        """The same transport (connections, pacing, ledger, hooks) waiting the other way."""
        sibling = copy.copy(self)
        sibling.waits = WaitMode(waits)
        return sibling

    def close(self) -> None:
        self._http.close()

    def json(self, method: str, endpoint: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """`send`, and the answer's body, which must be a JSON object."""
        response = self.send(method, endpoint, url, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SigfoxError(
                "Sigfox answered a body that is not a JSON object",
                status=response.status_code,
                method=method,
                path=response.request.url.path,
            )
        return body

    @staticmethod
    def required(answer: dict[str, Any], key: str, method: str, path: str) -> str:
        """`answer[key]`, which Sigfox must have given."""
        value = answer.get(key)
        if not value:
            raise SigfoxError(f"Sigfox's answer lacks '{key}'", method=method, path=path)
        return str(value)

    def send(
        self,
        method: str,
        endpoint: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        device_id: str | None = None,
        secrets: tuple[str, ...] = (),
    ) -> httpx.Response:
        """One logical call: pacing, the request, retries (or `retry_at`), typed errors.
        `endpoint` is the path template the limits are published for; `url` the one sent."""
        secrets = self._secrets + secrets
        defer = self.waits is WaitMode.DEFER
        attempt = 0
        while True:
            permit = self.pacer.acquire(method, endpoint, device_id, defer=defer)
            wait_asked: float | None = None
            try:
                response = self._http.request(method, url, params=params, json=json)
            except httpx.TransportError as exc:
                error = self._transport_failed(permit, exc, method, endpoint, url, attempt)
                if defer or method in WRITE_METHODS or attempt >= self.max_retries:
                    if defer:
                        error.retry_at = self.pacer.hold(method, endpoint, device_id)
                    raise error from exc
                why = f"no answer ({type(exc).__name__})"
            else:
                status = response.status_code
                self._answered(permit, method, endpoint, device_id, status)
                if defer and (status == 429 or status >= 500):
                    refusal = error_from_response(response, method, attempts=1, secrets=secrets)
                    refusal.retry_at = self.pacer.hold(method, endpoint, device_id,
                                                       retry_after(response))
                    raise refusal
                if not self._retryable(method, status, attempt):
                    return self._checked(response, method, attempt, secrets)
                wait_asked = retry_after(response)
                why = retry_reason(response.status_code)
            self._back_off(method, endpoint, attempt, wait_asked, why)
            attempt += 1

    def _transport_failed(
        self, permit: Permit, exc: httpx.TransportError, method: str, endpoint: str, url: str,
        attempt: int,
    ) -> SigfoxConnectionError:
        # Refused before connecting: the server never saw it, so it does not count.
        if _never_sent(exc):
            self.pacer.release(permit)
        else:
            self.pacer.settle(permit)
        self._notify(method, endpoint, None)
        return self._transport_error(exc, method, url, attempt)

    def _answered(
        self, permit: Permit, method: str, endpoint: str, device_id: str | None, status: int
    ) -> None:
        # A 429 was not processed: its slot is given back, the back-off holds the call instead.
        if status == 429:
            self.pacer.refused(permit)
        else:
            self.pacer.settle(permit)
        if status != 429 and status < 500:
            self.pacer.succeeded(method, endpoint, device_id)
        self._notify(method, endpoint, status)

    def _retryable(self, method: str, status: int, attempt: int) -> bool:
        if attempt >= self.max_retries:
            return False
        if status == 429:
            return True
        return status >= 500 and method not in WRITE_METHODS

    def _back_off(
        self, method: str, endpoint: str, attempt: int, wait_asked: float | None, why: str = ""
    ) -> None:
        delay = full_jitter_delay(
            attempt,
            base=self.backoff_base,
            cap=self.backoff_cap,
            rng=self._rng,
            retry_after=wait_asked,
        )
        log.info("sigfox %s %s: %s; retry %d in %.1f s", method, endpoint, why or "failed",
                 attempt + 1, delay)
        self._sleep(delay)

    def _notify(self, method: str, endpoint: str, status: int | None) -> None:
        log.debug("sigfox %s %s -> %s", method, endpoint, status)
        if self._on_call is None:
            return
        try:
            self._on_call(method, endpoint, status)
        except Exception:
            # A metrics or audit hook must not turn a successful DELETE into a failure.
            log.exception("on_call hook failed for %s %s", method, endpoint)

    def _transport_error(
        self, exc: httpx.TransportError, method: str, url: str, attempt: int
    ) -> SigfoxConnectionError:
        path = self._full_path(url)
        # A connect failure never delivered the request; anything later may have.
        unknown = method in WRITE_METHODS and not _never_sent(exc)
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
        message = f"Connection to Sigfox {kind} ({type(exc).__name__})"
        if unknown:
            message += "; the change may or may not have been applied: read the backend"
        elif method not in WRITE_METHODS:
            message += f" after {attempt + 1} attempt(s)"
        return SigfoxConnectionError(message, method=method, path=path, outcome_unknown=unknown)

    def _full_path(self, url: str) -> str:
        """The request's path as sent (with the base path), as in HTTP error exceptions."""
        if urlsplit(url).scheme:
            return urlsplit(url).path
        return urlsplit(self.base_url).path + "/" + url.lstrip("/")

    def _checked(
        self, response: httpx.Response, method: str, attempt: int, secrets: tuple[str, ...]
    ) -> httpx.Response:
        if response.status_code < 400:
            return response
        raise error_from_response(response, method, attempts=attempt + 1, secrets=secrets)


def _never_sent(exc: httpx.TransportError) -> bool:
    # No connection was made (refused, timed out connecting, or none free in the pool).
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
