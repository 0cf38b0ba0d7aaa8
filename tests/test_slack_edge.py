"""The HTTP edge under hostile or broken input: the whole bot behind `/slack/events`.

Findings of issue 11 reproduced here: the word "payload" anywhere in a slash command made Bolt
answer 404; no body-size cap before the signature check; junk (non-UTF-8, a non-numeric
timestamp, signed but malformed payloads) answered 500 with a traceback; the uplink's device id
let a trailing newline through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bot import (
    CALLBACK_SECRET,
    REQUESTER_ID,
    SIGNING_SECRET,
    BotHarness,
    running_bot,
)
from support.slack_signing import (
    block_actions_payload,
    interaction_body,
    signed_headers,
    slash_command_body,
)

from bot.slack_edge import MAX_SLACK_BYTES
from bot.web import CALLBACK_SECRET_HEADER
from sigfox.simulator import SimulatorServer


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotHarness]:
    simulator = SimulatorServer(devices=0, rate_limits=False).start()
    try:
        with running_bot(simulator, tmp_path_factory.mktemp("edge") / "bot.db") as harness:
            yield harness
    finally:
        simulator.stop()


def post_raw(bot: BotHarness, body: bytes | str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{bot.url}/slack/events", content=body, headers=headers, timeout=10)


def signed(bot: BotHarness, body: bytes | str,
           content_type: str = "application/x-www-form-urlencoded") -> httpx.Response:
    return post_raw(bot, body, signed_headers(SIGNING_SECRET, body, content_type=content_type))


# --------------------------------------------------------------------------- finding 3


@pytest.mark.parametrize("where", ["text", "channel", "user"])
def test_the_word_payload_anywhere_in_a_command_is_still_a_command(bot: BotHarness,
                                                                   where: str) -> None:
    bot.standin.reset()
    fields: dict[str, Any] = {}
    text = "help"
    if where == "text":
        text = "help payload"
    elif where == "channel":
        fields["channel_name"] = "iot-payloads"
    else:
        fields["user_name"] = "payload"  # Slack names are lowercase
    response = bot.command(text, user=REQUESTER_ID, **fields)
    assert response.status_code == 200
    # A usage error is answered in the acknowledgement itself, anything else privately after it.
    acknowledged = [response.json()["text"]] if response.content else []
    answers = acknowledged + bot.ephemeral_texts(REQUESTER_ID)
    assert answers, "the command got no answer"
    assert "payload" not in answers[0].lower() or where == "text"
    assert "/sigfox" in answers[0]


# --------------------------------------------------------------------------- finding 5


def test_an_oversized_body_is_refused_before_it_is_read(bot: BotHarness) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(MAX_SLACK_BYTES + 1)}
    response = post_raw(bot, b"{" * (MAX_SLACK_BYTES + 1), headers)
    assert response.status_code == 413


def test_an_oversized_streamed_body_is_cut_off(bot: BotHarness) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(MAX_SLACK_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = httpx.post(f"{bot.url}/slack/events", content=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413


def test_an_oversized_uplink_is_refused(bot: BotHarness) -> None:
    response = httpx.post(f"{bot.url}/sigfox/uplink", content=b"{" * 100_000,
                          headers={CALLBACK_SECRET_HEADER: CALLBACK_SECRET}, timeout=10)
    assert response.status_code == 413


# --------------------------------------------------------------------------- finding 6

def _form_as_json() -> tuple[str, str]:
    return slash_command_body("help"), "application/json"


SIGNED_JUNK: dict[str, tuple[bytes | str, str]] = {
    "non-utf8": (b"command=/sigfox&text=\xff\xfe", "application/x-www-form-urlencoded"),
    "no actions": (interaction_body({**block_actions_payload("approve", "1"), "actions": []}),
                   "application/x-www-form-urlencoded"),
    "action not an object": (
        interaction_body({**block_actions_payload("approve", "1"), "actions": ["x"]}),
        "application/x-www-form-urlencoded"),
    "payload null": ("payload=null", "application/x-www-form-urlencoded"),
    "payload array": ("payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
    "json null": ("null", "application/json"),
    "json array": ("[]", "application/json"),
    "form sent as json": _form_as_json(),
    "user not an object": (interaction_body({**block_actions_payload("approve", "1"),
                                             "user": "U1"}), "application/x-www-form-urlencoded"),
    "command without user": ("command=%2Fsigfox&text=help&channel_id=C1",
                             "application/x-www-form-urlencoded"),
    "event not an object": (json.dumps({"type": "event_callback", "event": 3}),
                            "application/json"),
    "unknown content type": ("hello", "text/plain"),
}


@pytest.mark.parametrize("case", sorted(SIGNED_JUNK))
def test_signed_junk_is_a_400_without_a_traceback(bot: BotHarness, case: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    body, content_type = SIGNED_JUNK[case]
    with caplog.at_level(logging.DEBUG):
        response = signed(bot, body, content_type)
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False and response.json()["error"]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_unsigned_junk_is_a_400(bot: BotHarness) -> None:
    non_utf8 = post_raw(bot, b"\xff\xfe\xfd", {"Content-Type": "application/json",
                                                "X-Slack-Request-Timestamp": "1700000000",
                                                "X-Slack-Signature": "v0=00"})
    timestamp = post_raw(bot, "{}", {"Content-Type": "application/json",
                                     "X-Slack-Request-Timestamp": "soon",
                                     "X-Slack-Signature": "v0=00"})
    assert timestamp.status_code == 400 and "Timestamp" in timestamp.json()["error"]
    # Non-UTF-8 but stale: still refused before any decoding can fail.
    assert non_utf8.status_code in (400, 401)
    fresh = signed_headers(SIGNING_SECRET, b"")
    fresh["X-Slack-Signature"] = "v0=00"
    assert post_raw(bot, b"\xff\xfe", fresh).status_code == 400


def test_a_wrong_signature_is_a_401(bot: BotHarness) -> None:
    body = slash_command_body("help")
    headers = signed_headers("another-secret", body)
    assert post_raw(bot, body, headers).status_code == 401
    assert post_raw(bot, body, {"Content-Type": "application/x-www-form-urlencoded"}
                    ).status_code == 401


@pytest.mark.parametrize("raw, fragment", [
    (b"\xff\xfe{}", "UTF-8"),
    (json.dumps({"device": "1A2B3C\n", "time": 1, "data": "00", "seqNumber": 1}).encode(),
     "device"),
    (json.dumps({"device": "1A2B3C", "time": 1, "data": "00\n", "seqNumber": 1}).encode(),
     "data"),
])
def test_uplink_junk_is_a_400(bot: BotHarness, raw: bytes, fragment: str) -> None:
    response = httpx.post(f"{bot.url}/sigfox/uplink", content=raw,
                          headers={CALLBACK_SECRET_HEADER: CALLBACK_SECRET}, timeout=10)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)
FIELDS = ["type", "user", "actions", "container", "channel", "message", "view", "team",
          "response_url", "api_app_id"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(changes=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4),
       drop=st.lists(st.sampled_from(FIELDS), max_size=3),
       action=st.sampled_from(["approve", "reject", "cancel", "show_pac", "unknown"]))
def test_no_payload_shape_gets_a_5xx(bot: BotHarness, changes: dict[str, Any], drop: list[str],
                                     action: str) -> None:
    payload = block_actions_payload(action, "1", user_id=REQUESTER_ID)
    payload.update(changes)
    for name in drop:
        payload.pop(name, None)
    response = signed(bot, interaction_body(payload))
    assert response.status_code < 500, response.text
    bot.executor.drain()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(document=json_values)
def test_no_event_document_gets_a_5xx(bot: BotHarness, document: Any) -> None:
    response = signed(bot, json.dumps(document), "application/json")
    assert response.status_code < 500, response.text
    bot.executor.drain()


def test_nothing_was_changed_by_junk(bot: BotHarness) -> None:
    assert bot.core.jobs() == []
