"""The API descriptions the tests check against travel with the repository, and a missing one
fails the test that needs it instead of skipping it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support import openapi
from support.specs import (
    SIGFOX_OPENAPI,
    SLACK_MANIFEST_SCHEMA,
    SLACK_WEB_API,
    SPECS_DIR,
    MissingSpec,
)

from demo.slack_standin import SlackApiStandIn, required_params

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("spec", [SIGFOX_OPENAPI, SLACK_WEB_API, SLACK_MANIFEST_SCHEMA])
def test_each_spec_is_in_the_repository_with_its_source_note(spec: Path) -> None:
    assert spec.is_file() and spec.is_relative_to(REPO_ROOT)
    assert (spec.parent / "SOURCE.md").is_file()
    if spec != SIGFOX_OPENAPI:  # Sigfox's document carries no licence of its own (see SOURCE.md)
        assert (spec.parent / "LICENSE").is_file()


def test_the_sigfox_spec_is_the_one_source_md_names() -> None:
    digest = hashlib.sha256(SIGFOX_OPENAPI.read_bytes()).hexdigest()
    assert digest in (SPECS_DIR / "sigfox-api-v2" / "SOURCE.md").read_text(encoding="utf-8")


def test_a_missing_sigfox_spec_fails_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIGFOX_OPENAPI", str(tmp_path / "absent.json"))
    with pytest.raises(MissingSpec, match=r"absent\.json"):
        openapi.require_spec()
    with pytest.raises(MissingSpec):
        openapi.SpecCheckingTransport()


def test_the_sigfox_spec_defaults_to_the_repository_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGFOX_OPENAPI", raising=False)
    assert openapi.spec_path() == SIGFOX_OPENAPI
    assert openapi.require_spec()["basePath"] == "/v2"


def test_a_missing_slack_spec_fails_the_stand_in(tmp_path: Path) -> None:
    with pytest.raises(MissingSpec):
        required_params(tmp_path / "absent.json")
    with pytest.raises(MissingSpec):
        SlackApiStandIn(spec_path=tmp_path / "absent.json")
