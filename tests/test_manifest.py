"""app.yaml must create the app as is: valid against Slack's manifest schema, with the command,
events and the fewest scopes the bot needs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from support.specs import SLACK_MANIFEST_SCHEMA, require

from demo.slack_standin import method_scopes

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = REPO_ROOT / "app.yaml"
SCHEMA = SLACK_MANIFEST_SCHEMA
BOT_SCOPES = {"chat:write", "commands", "usergroups:read", "files:write", "users:read"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(require(SCHEMA).read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def problems(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_manifest_is_valid_against_slacks_schema(
    validator: Draft7Validator, manifest: dict[str, Any]
) -> None:
    assert problems(validator, manifest) == []


def test_background_colour_matches_the_schemas_own_pattern(
    validator: Draft7Validator, manifest: dict[str, Any]
) -> None:
    # The schema writes this pattern under a non-standard keyword, so validation skips it.
    definition = validator.schema["definitions"]["app-manifests.v1.display_information.schema"]
    pattern = definition["properties"]["background_color"]["regex"]
    assert re.match(pattern, manifest["display_information"]["background_color"])


def test_validation_would_catch_a_broken_manifest(
    validator: Draft7Validator, manifest: dict[str, Any]
) -> None:
    broken = copy.deepcopy(manifest)
    broken["features"]["slash_commands"][0]["command"] = "sigfox"  # no leading slash
    broken["settings"]["interactivity"] = {}  # is_enabled is required
    assert len(problems(validator, broken)) == 2


def test_slash_command(manifest: dict[str, Any]) -> None:
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/sigfox"
    assert command["usage_hint"] == "renew <id> | status <id> | expiring [days] | help"
    assert command["description"]
    assert command["should_escape"] is False


def test_fewest_bot_scopes(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes["bot"]) == BOT_SCOPES
    assert len(scopes["bot"]) == len(BOT_SCOPES)
    assert "user" not in scopes


def test_bot_user_home_tab_interactivity_and_socket_mode(manifest: dict[str, Any]) -> None:
    assert manifest["features"]["bot_user"]["display_name"] == "sigfox-bot"
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    # Reminders and escalations arrive in the Messages tab; nobody is invited to write there.
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_read_only_enabled"] is True
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is True


def test_request_urls_are_consistent_with_the_mode(manifest: dict[str, Any]) -> None:
    # Socket Mode needs no URL; HTTP mode needs one everywhere Slack posts.
    settings = manifest["settings"]
    urls = [
        *(c.get("url") for c in manifest["features"]["slash_commands"]),
        settings["interactivity"].get("request_url"),
        settings["event_subscriptions"].get("request_url"),
    ]
    if settings["socket_mode_enabled"]:
        assert urls == [None, None, None]
    else:
        assert all(u and u.startswith("https://") and u.endswith("/slack/events") for u in urls)


# slack_sdk helpers that call other Web API methods than their name says; every other WebClient
# method is its API method with dots (`chat_postMessage` is chat.postMessage).
API_METHODS_OF_HELPERS = {
    "files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal"),
}
_CALL = re.compile(r"\.((?:chat|views|usergroups|files|auth|bots|conversations|users|reactions|"
                   r"pins|bookmarks|team|apps|dnd|emoji|reminders|search|stars)_[A-Za-z0-9_]+)\(")


def web_api_calls() -> set[str]:
    """WebClient methods called anywhere in the bot's code (the demo's fake Slack aside)."""
    found: set[str] = set()
    for package in ("bot", "commands", "storage", "sigfox"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            found |= set(_CALL.findall(path.read_text(encoding="utf-8")))
    return found


def api_methods(call: str) -> tuple[str, ...]:
    return API_METHODS_OF_HELPERS.get(call, (call.replace("_", "."),))


def test_every_web_api_call_is_covered_by_the_manifests_scopes(manifest: dict[str, Any]) -> None:
    # The scopes each method needs are the Slack stand-in's (read from Slack's OpenAPI file),
    # which refuses a call outside the manifest while the tests run; this also reads the code.
    calls = web_api_calls()
    assert {"chat_postMessage", "chat_update", "views_publish"} <= calls  # the scan works
    table = method_scopes()
    methods = {m for call in calls for m in api_methods(call)}
    unknown = methods - table.keys()
    assert not unknown, f"unknown Web API methods (a helper? see API_METHODS_OF_HELPERS): {unknown}"
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    uncovered = {m: table[m] for m in methods if table[m] and granted.isdisjoint(table[m])}
    assert not uncovered, f"add one scope of each to app.yaml: {uncovered}"
    used = {s for m in methods for s in table[m] if s in granted}
    assert used == BOT_SCOPES - {"commands"}  # and no scope is there for nothing
