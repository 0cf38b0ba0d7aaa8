"""Slack's own description of its Web API, read as data: which parameters each method requires.

The file (`spec/slack_web_openapi_v2.json`, with its SOURCE.md and licence) ships inside this
package, so the demo's stand-in checks calls exactly as the tests' does. Its known flaws are
forgiven here: the `token` parameter is left out (clients send `Authorization: Bearer`) and the
HTTP verb it lists is not enforced (slack_sdk POSTs everything).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parent / "spec" / "slack_web_openapi_v2.json"

# Methods newer than the spec file (October 2020); their required parameters per Slack's docs.
REQUIRED_BEYOND_SPEC: dict[str, frozenset[str]] = {
    "files.getUploadURLExternal": frozenset({"filename", "length"}),
    "files.completeUploadExternal": frozenset({"files"}),
}
# What Slack answers when one of these is missing; any other missing field: invalid_arguments.
MISSING_PARAM_ERROR = {"channel": "channel_not_found"}


class MissingSpec(FileNotFoundError):
    """A spec file the stand-in or the tests need is not where it should be."""


def require(path: Path) -> Path:
    """`path`, or a failure naming what is missing and where it belongs."""
    if not path.is_file():
        raise MissingSpec(
            f"spec file {path} is missing: it is part of the repository (next to its "
            "SOURCE.md); restore it with git, or point SIGFOX_OPENAPI at a copy for Sigfox's"
        )
    return path


@functools.lru_cache(maxsize=4)
def load_spec(spec_path: Path = SPEC_PATH) -> dict[str, Any]:
    """The parsed document; a missing file fails: the stand-in never runs without the check."""
    spec: dict[str, Any] = json.loads(require(spec_path).read_text(encoding="utf-8"))
    return spec


@functools.lru_cache(maxsize=4)
def required_params(spec_path: Path = SPEC_PATH) -> dict[str, frozenset[str]]:
    """Method -> parameters the spec marks required (all verbs merged, `token` left out)."""
    table: dict[str, frozenset[str]] = {}
    for path, operations in load_spec(spec_path)["paths"].items():
        names = {
            p["name"]
            for op in operations.values()
            for p in op.get("parameters", [])
            if p.get("required") and p["name"] != "token"
        }
        table[path.lstrip("/")] = frozenset(names)
    return table


def missing_params(method: str, params: dict[str, Any],
                   table: dict[str, frozenset[str]]) -> list[str]:
    """The required parameters of `method` absent (or empty) in `params`, sorted."""
    required = table.get(method) or REQUIRED_BEYOND_SPEC.get(method, frozenset())
    return [name for name in sorted(required) if params.get(name) in (None, "")]
