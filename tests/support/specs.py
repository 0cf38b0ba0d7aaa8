"""Where the tests find the API descriptions they check against: copies kept in tests/specs/,
except Slack's Web API description, which ships inside `demo.slack_standin` (the stand-in reads it
at run time, in the demo too).

The specs travel with the repository (each with its SOURCE.md and licence), so a fresh clone runs
every test. A missing spec is an error, never a reason to skip: a check that silently stops
checking proves nothing. `$SIGFOX_OPENAPI` still points the Sigfox checks at another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from demo.slack_standin.spec import SPEC_PATH as SLACK_WEB_API
from demo.slack_standin.spec import MissingSpec, require

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
SIGFOX_OPENAPI = SPECS_DIR / "sigfox-api-v2" / "openapi.json"
SLACK_MANIFEST_SCHEMA = SPECS_DIR / "slack-app-manifest" / "manifest.schema.1.0.0.json"


def sigfox_openapi_path() -> Path:
    return Path(os.environ.get("SIGFOX_OPENAPI") or SIGFOX_OPENAPI)


__all__ = [
    "SIGFOX_OPENAPI",
    "SLACK_MANIFEST_SCHEMA",
    "SLACK_WEB_API",
    "SPECS_DIR",
    "MissingSpec",
    "require",
    "sigfox_openapi_path",
]
