"""Errors the simulated API answers, shaped like the spec's error bodies.

400 carries `ErrorContent` (`message` plus `errors` [{type, field, message}]); 403, 404 and 409
carry `{"message"}` only, as openapi.json and its notes describe
(tests/specs/sigfox-api-v2/SOURCE.md).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.status == 400 and self.errors:
            body["errors"] = self.errors
        return body


def field_error(field: str, message: str, where: str = "body") -> ApiError:
    """A 400 naming the faulty field, so a client can tell the operator exactly what is wrong."""
    return ApiError(
        400, "Bad request", [{"type": where, "field": field, "message": message}]
    )


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what} {ident} not found")
