"""Validate bodies against Sigfox's own API description (Swagger 2.0, `openapi.json`).

The spec is read from `$SIGFOX_OPENAPI`, else the copy kept in the repository,
`tests/specs/sigfox-api-v2/openapi.json` (see its SOURCE.md). When it is absent, every helper
here fails the calling test: a missing spec is never a reason to skip.

Swagger schemas become Draft 4 JSON Schema with little work: `$ref: #/definitions/X` resolves
against a root document that carries every definition, `allOf` is native, and Swagger-only
keywords (`discriminator`, `example`, `xml`, `externalDocs`, `x-*`) are dropped. As in the spec,
an object without `additionalProperties` tolerates unknown fields. Integer formats are checked
(`int32` and `int64` ranges), so an oversized value is caught like a wrong type.

    validate_response("GET", "/devices/{id}", 200, body)
    validate_request("POST", "/devices/", body)
    definition_schema("device")
    httpx.Client(transport=SpecCheckingTransport())  # validates every call it carries
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from .specs import SIGFOX_OPENAPI, require, sigfox_openapi_path

DEFAULT_SPEC = SIGFOX_OPENAPI
SWAGGER_ONLY = {"discriminator", "example", "xml", "externalDocs"}
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def spec_path() -> Path:
    return sigfox_openapi_path()


def require_spec() -> dict[str, Any]:
    """The spec as loaded JSON; fails the current test when it is missing."""
    return _load(str(require(spec_path())))


@functools.cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def to_json_schema(node: Any) -> Any:
    """A Swagger schema fragment as Draft 4 JSON Schema (Swagger-only keywords removed)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in SWAGGER_ONLY or key.startswith("x-"):
            continue
        if key == "properties" and isinstance(value, dict):
            # Property names are data, not keywords: keep them all (a property may be "example").
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = to_json_schema(value)
    return out


@functools.cache
def _definitions(path: str) -> dict[str, Any]:
    return to_json_schema(_load(path)["definitions"])


def _rooted(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` inside a document that carries every definition, for `$ref` resolution."""
    return {**to_json_schema(schema), "definitions": _definitions(str(spec_path()))}


def definition_schema(name: str) -> dict[str, Any]:
    """A JSON Schema (Draft 4) for the spec's definition `name`."""
    spec = require_spec()
    if name not in spec["definitions"]:
        raise KeyError(f"no definition {name!r} in the spec")
    return _rooted({"$ref": f"#/definitions/{name}"})


def operation(method: str, path_template: str) -> dict[str, Any]:
    """The spec's operation object; `path_template` may carry the /v2 base path or not."""
    spec = require_spec()
    base = spec.get("basePath", "")
    path = path_template
    if base and path.startswith(base + "/"):
        path = path[len(base) :]
    item = spec["paths"].get(path)
    if item is None or method.lower() not in item:
        raise AssertionError(f"{method.upper()} {path} is not in the spec")
    return item[method.lower()]


def check(schema: dict[str, Any], body: Any, what: str) -> None:
    """Validate `body`; fail with the most relevant error and where it is."""
    _check_with(jsonschema.Draft4Validator(schema, format_checker=FORMATS), body, what)


def _check_with(validator: jsonschema.Draft4Validator, body: Any, what: str) -> None:
    if validator.is_valid(body):
        return
    error = jsonschema.exceptions.best_match(validator.iter_errors(body))
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    raise AssertionError(f"{what}: {error.message} at {where}")


_VALIDATORS: dict[int, jsonschema.Draft4Validator] = {}


def _check_fragment(fragment: dict[str, Any], body: Any, what: str) -> None:
    """`check` against a schema fragment of the loaded spec, its validator built once.

    Building a validator over the spec's 191 definitions costs far more than using one, and a
    test that walks 40,000 devices validates hundreds of pages. Fragments live as long as the
    cached spec, so their id() is a stable key.
    """
    validator = _VALIDATORS.get(id(fragment))
    if validator is None:
        validator = jsonschema.Draft4Validator(_rooted(fragment), format_checker=FORMATS)
        _VALIDATORS[id(fragment)] = validator
    _check_with(validator, body, what)


def validate_response(method: str, path_template: str, status: int, body: Any) -> None:
    """Fail unless `status` is documented for the operation and `body` fits its schema.

    A documented status without a schema (204, 401, 500) accepts no body for 204 and
    anything otherwise.
    """
    responses = operation(method, path_template).get("responses", {})
    response = responses.get(str(status), responses.get("default"))
    what = f"{method.upper()} {path_template} -> {status}"
    if response is None:
        raise AssertionError(f"{what}: status not documented (has {sorted(responses)})")
    if "schema" not in response:
        if status == 204 and body not in (None, b"", ""):
            raise AssertionError(f"{what}: 204 must have no body, got {body!r}")
        return
    _check_fragment(response["schema"], body, what)


def validate_request(method: str, path_template: str, body: Any) -> None:
    """Fail unless `body` fits the operation's body parameter (or is None when it has none)."""
    op = operation(method, path_template)
    params = [p for p in op.get("parameters", []) if p.get("in") == "body"]
    what = f"{method.upper()} {path_template} request"
    if not params:
        if body is not None:
            raise AssertionError(f"{what}: the operation takes no body")
        return
    if body is None:
        if params[0].get("required"):
            raise AssertionError(f"{what}: a body is required")
        return
    _check_fragment(params[0]["schema"], body, what)


def spec_template(method: str, path: str) -> str:
    """The spec's path template matching a concrete path (with or without the base path);
    literal segments win over parameters (`/devices/bulk` before `/devices/{id}`)."""
    spec = require_spec()
    path = path.removeprefix(spec.get("basePath", ""))
    matches = [
        template
        for template, item in spec["paths"].items()
        if method.lower() in item and re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), path)
    ]
    if not matches:
        raise AssertionError(f"{method} {path} matches no path of the spec")
    return min(matches, key=lambda t: t.count("{"))


# Facts from SOURCE.md that openapi.json does not list: the live service answers 429 when a
# rate limit is hit, and a 5xx may come from any proxy. Their body is still the error shape.
OUTSIDE_SPEC_STATUSES = frozenset({429, 502, 503, 504})
ERROR_MESSAGE = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string"}},
}


def validate_exchange(
    request: httpx.Request, response: httpx.Response, *, check_request: bool = True
) -> tuple[str, str, int]:
    """Validate one API call (request body and answer); returns (method, template, status).

    Answers the simulator marks as injected (`X-Sim-Fault`) are a test's choice, not the
    simulator's behaviour: only their error shape is checked.
    """
    method, status = request.method, response.status_code
    template = spec_template(method, request.url.path)
    if check_request:
        body = json.loads(request.content) if request.content else None
        validate_request(method, template, body)
    body = json.loads(response.content) if response.content else None
    if "x-sim-fault" in response.headers or status in OUTSIDE_SPEC_STATUSES:
        check(ERROR_MESSAGE, body, f"{method} {template} -> {status}")
    else:
        validate_response(method, template, status, body)
    return method, template, status


class SpecCheckingTransport(httpx.BaseTransport):
    """A real HTTP transport that validates every request body and every answer it carries
    against openapi.json, fails the request with AssertionError on a mismatch, and keeps
    what it saw: `requests`, and `seen` as (method, template, status).

    `check_requests=False` is for tests that send malformed bodies on purpose to check the
    simulator's refusals: the answers are still validated.
    """

    def __init__(self, *, check_requests: bool = True) -> None:
        require_spec()
        self.check_requests = check_requests
        self._inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.seen: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._inner.handle_request(request)
        response.read()
        self.seen.append(
            validate_exchange(request, response, check_request=self.check_requests)
        )
        return response

    def close(self) -> None:
        self._inner.close()
