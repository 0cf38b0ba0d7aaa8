"""Logging: one line per event, readable or JSON, secrets and PACs redacted."""

from __future__ import annotations

import io
import json
import logging

import pytest

from commands.logs import (
    PAC_REDACTED,
    REDACTED,
    configure_logging,
    redact,
    resolve_format,
)

PAC = "A1B2C3D4E5F60718"


def capture(log_format: str) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(log_format, stream=stream)
    return stream


def test_readable_format_is_one_line_per_event(restore_root_logger: None) -> None:
    stream = capture("text")
    logging.getLogger("sigfox_chatops.test").info("renewal %s\nstarted", "J-1",
                                                  extra={"device": "1A2B3C"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "INFO" in lines[0] and "sigfox_chatops.test: renewal J-1\\nstarted" in lines[0]
    assert "device=1A2B3C" in lines[0]


def test_json_format_is_one_object_per_line(restore_root_logger: None) -> None:
    stream = capture("json")
    log = logging.getLogger("sigfox_chatops.test")
    log.warning("slow %d", 3, extra={"device": "1A2B3C"})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(events) == 2
    assert events[0]["level"] == "WARNING" and events[0]["message"] == "slow 3"
    assert events[0]["logger"] == "sigfox_chatops.test" and events[0]["device"] == "1A2B3C"
    assert events[0]["time"].endswith("Z")
    assert "RuntimeError: boom" in events[1]["exception"]


def test_format_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGFOX_BOT_LOG_FORMAT", "json")
    assert resolve_format() == "json"
    assert resolve_format("text") == "text"
    monkeypatch.setenv("SIGFOX_BOT_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="unknown log format"):
        resolve_format()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_and_pacs_never_reach_the_log(
    restore_root_logger: None, monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    secrets = {
        "SIGFOX_API_PASSWORD": "hunter2-sigfox",
        "SLACK_BOT_TOKEN": "xoxb-123-456-abcdef",
        "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
        "SLACK_APP_TOKEN": "xapp-1-A111-222-abc",
        "SIGFOX_CALLBACK_SECRET": "callback-s3cret",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    stream = capture(log_format)
    log = logging.getLogger("sigfox_chatops.test")
    log.info("token %s and password %s", secrets["SLACK_BOT_TOKEN"],
             secrets["SIGFOX_API_PASSWORD"], extra={"pac": PAC.lower()})
    log.info("signing %s app %s callback %s", secrets["SLACK_SIGNING_SECRET"],
             secrets["SLACK_APP_TOKEN"], secrets["SIGFOX_CALLBACK_SECRET"])
    try:
        raise ValueError(f"Sigfox refused PAC {PAC}")
    except ValueError:
        log.exception("create failed")
    output = stream.getvalue()
    for value in [*secrets.values(), PAC, PAC.lower()]:
        assert value not in output
    assert REDACTED in output and PAC_REDACTED in output


def test_redaction_spares_device_ids_and_object_ids() -> None:
    text = "device 1A2B3C type 5f1a2b3c4d5e6f7a8b9c0d1e pac 0011223344556677"
    assert redact(text, []) == f"device 1A2B3C type 5f1a2b3c4d5e6f7a8b9c0d1e pac {PAC_REDACTED}"


@pytest.mark.parametrize("text", [
    f"pac%3A{PAC}", f"pac={PAC}&x=1", f"x{PAC}y", f"3A{PAC.lower()}", f"{PAC}{PAC}",
    f"id=1A2B3C4D{PAC}", f"\"pac\":\"{PAC}\"", f"PAC{PAC}ok",
])
def test_a_pac_glued_to_other_characters_is_redacted(text: str) -> None:
    redacted = redact(text, [])
    assert PAC not in redacted and PAC.lower() not in redacted
    assert PAC_REDACTED in redacted
