"""Where the tests find the API descriptions they check against: copies kept in tests/specs/.

The specs travel with the repository (each with its SOURCE.md and licence), so a fresh clone runs
every test. A missing spec is an error, never a reason to skip: a check that silently stops
checking proves nothing. `$SIGFOX_OPENAPI` still points the Sigfox checks at another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"
SIGFOX_OPENAPI = SPECS_DIR / "sigfox-api-v2" / "openapi.json"
SLACK_WEB_API = SPECS_DIR / "slack-web-api" / "slack_web_openapi_v2.json"
SLACK_MANIFEST_SCHEMA = SPECS_DIR / "slack-app-manifest" / "manifest.schema.1.0.0.json"


class MissingSpec(FileNotFoundError):
    """A spec file the tests need is not where it should be."""


def sigfox_openapi_path() -> Path:
    return Path(os.environ.get("SIGFOX_OPENAPI") or SIGFOX_OPENAPI)


def require(path: Path) -> Path:
    """`path`, or a failure naming what is missing and where it belongs."""
    if not path.is_file():
        raise MissingSpec(
            f"spec file {path} is missing: it is part of the repository (tests/specs/, see its "
            "SOURCE.md); restore it with git, or point SIGFOX_OPENAPI at a copy for Sigfox's"
        )
    return path
