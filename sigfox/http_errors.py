"""An HTTP error answer of the Sigfox API turned into the typed exception a caller handles.

Each message says what to do next, and server texts are scrubbed of the call's secrets
(password, PACs) before they are put in one (see `errors`).
"""

from __future__ import annotations

from typing import TypedDict

import httpx

from sigfox.errors import (
    FieldError,
    SigfoxBadRequest,
    SigfoxConflict,
    SigfoxError,
    SigfoxForbidden,
    SigfoxNotFound,
    SigfoxRateLimited,
    SigfoxServerError,
    SigfoxUnauthorized,
    scrub,
)

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE"})


class _Where(TypedDict):
    """The request an error answered, as `SigfoxError` takes it."""

    method: str
    path: str


def error_from_response(
    response: httpx.Response, method: str, *, attempts: int = 1, secrets: tuple[str, ...] = ()
) -> SigfoxError:
    """The typed exception for an HTTP error answer (server texts scrubbed of secrets)."""
    status = response.status_code
    path = response.request.url.path
    text, field_errors = _error_body(response)
    text = scrub(text, secrets)
    where: _Where = {"method": method, "path": path}
    if status == 400:
        cleaned = [
            FieldError(e.type, e.field, scrub(e.message or "", secrets) or None)
            for e in field_errors
        ]
        return SigfoxBadRequest(
            f"Sigfox rejected the request ({text})", field_errors=cleaned, **where
        )
    if status == 401:
        return SigfoxUnauthorized("Sigfox refused the API credentials.", status=401, **where)
    if status == 403:
        return SigfoxForbidden(f"Sigfox forbids this ({text}).", status=403, **where)
    if status == 404:
        return SigfoxNotFound(f"Not found ({text}).{_version_hint(path)}", status=404, **where)
    if status == 409:
        hint = ""
        if method == "POST" and path.endswith("/devices/"):
            hint = " After a delete, this means Sigfox has not released the id yet: retry later."
        return SigfoxConflict(f"Conflict ({text}).{hint}", status=409, **where)
    if status == 429:
        return SigfoxRateLimited(
            f"Sigfox's rate limit (HTTP 429) answered {method} {path} {attempts} time(s) in a "
            "row.", attempts=attempts, **where
        )
    if status >= 500:
        return _server_error(status, text, method, path, attempts)
    return SigfoxError(f"Unexpected answer ({text}).", status=status, **where)


def retry_after(response: httpx.Response) -> float | None:
    """The answer's `Retry-After` in seconds, None when absent or not a number."""
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def retry_reason(status: int) -> str:
    """Why a call is tried again after this answer, for the log."""
    if status == 429:
        return "Sigfox's rate limit answered (HTTP 429)"
    return f"Sigfox server error (HTTP {status})"


def _error_body(response: httpx.Response) -> tuple[str, list[FieldError]]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return response.reason_phrase or f"HTTP {response.status_code}", []
    errors = [
        FieldError(type=e.get("type"), field=e.get("field"), message=e.get("message"))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    return str(body.get("message") or response.reason_phrase), errors


def _version_hint(path: str) -> str:
    """Every API v2 path starts with /v2/: a 404 elsewhere is most likely a SIGFOX_API_URL
    written without it, which no amount of checking the device id would fix."""
    if "/v2/" in f"{path}/":
        return ""
    return (" The request went to a path without /v2: SIGFOX_API_URL must end in /v2, like "
            "https://api.sigfox.com/v2.")


def _server_error(
    status: int, text: str, method: str, path: str, attempts: int
) -> SigfoxServerError:
    if method in WRITE_METHODS:
        message = (
            f"Sigfox failed with a server error ({text}); the change may or may not have been "
            "applied: read the backend before trying again."
        )
        return SigfoxServerError(
            message, status=status, method=method, path=path, outcome_unknown=True
        )
    message = f"Sigfox failed with a server error ({text}) after {attempts} attempt(s)."
    return SigfoxServerError(message, status=status, method=method, path=path)
