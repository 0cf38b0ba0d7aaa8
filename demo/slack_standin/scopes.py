"""Which OAuth scope each Web API method needs, and which scopes the bot's token was granted.

A method's scopes come from Slack's OpenAPI file (`security: [{"slackAuth": [...]}]`): any one of
those listed suffices (`conversations.info` takes `channels:read` for a public channel,
`groups:read` for a private one...), `none` means no scope. The file predates granular bot
tokens, so a few of its user-token scopes are read as the bot scopes that replaced them
(`BOT_SCOPE_OF`), and methods newer than the file have their scopes here (`SCOPES_BEYOND_SPEC`),
from each method's page on api.slack.com.

The bot token's scopes default to those the app manifest (`app.yaml`, `oauth_config.scopes.bot`)
asks for: what an installed app gets. A call needing a scope outside them is refused as Slack
refuses it: `missing_scope`, with `needed` (the scope to add) and `provided` (the token's, comma
separated). So the whole suite and the demo prove the manifest grants every scope the bot uses.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from .protocol import SlackError
from .spec import SPEC_PATH, load_spec

# The repository's manifest (README's Quickstart installs the checkout, which holds it); an
# installed package has the copy pyproject.toml puts in <prefix>/share/sigfox-chatops/.
_CHECKOUT_MANIFEST = Path(__file__).resolve().parents[2] / "app.yaml"
_INSTALLED_MANIFEST = Path(sys.prefix) / "share" / "sigfox-chatops" / "app.yaml"
MANIFEST_PATH = _CHECKOUT_MANIFEST if _CHECKOUT_MANIFEST.is_file() else _INSTALLED_MANIFEST

# User-token scopes in the spec and the granular bot scope a bot token needs instead.
BOT_SCOPE_OF = {
    "chat:write:bot": "chat:write",
    "chat:write:user": "chat:write",
    "files:write:user": "files:write",
}
# Methods the spec does not describe: the scopes Slack's method pages name.
SCOPES_BEYOND_SPEC: dict[str, tuple[str, ...]] = {
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "apps.connections.open": ("connections:write",),  # an app-level token's scope
}


class MissingManifest(FileNotFoundError):
    """The app manifest the token's scopes are read from is not there."""


@functools.lru_cache(maxsize=4)
def method_scopes(spec_path: Path = SPEC_PATH) -> dict[str, tuple[str, ...]]:
    """Method -> the scopes any one of which lets a bot token call it (empty: none needed)."""
    table: dict[str, tuple[str, ...]] = dict(SCOPES_BEYOND_SPEC)
    for path, operations in load_spec(spec_path)["paths"].items():
        listed = [scope for op in operations.values() for entry in op.get("security") or []
                  for scope in entry.get("slackAuth", [])]
        accepted = dict.fromkeys(BOT_SCOPE_OF.get(s, s) for s in listed if s != "none")
        table[path.lstrip("/")] = tuple(accepted)
    return table


def manifest_scopes(manifest: Path = MANIFEST_PATH) -> frozenset[str]:
    """The bot scopes an app manifest asks for (`oauth_config.scopes.bot`)."""
    if not manifest.is_file():
        raise MissingManifest(
            f"app manifest {manifest} is missing: the stand-in grants its token the scopes the "
            "manifest lists; reinstall the package (it ships app.yaml) or pass scopes=[...]"
        )
    document = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    scopes = ((document.get("oauth_config") or {}).get("scopes") or {}).get("bot") or []
    return frozenset(str(s) for s in scopes)


def check_scope(method: str, granted: Iterable[str], table: dict[str, tuple[str, ...]]) -> None:
    """Refuse `method` as Slack does when the token has none of the scopes it accepts."""
    accepted = table.get(method, ())
    provided = frozenset(granted)
    if accepted and provided.isdisjoint(accepted):
        raise SlackError("missing_scope", needed=accepted[0],
                         provided=",".join(sorted(provided)))
