"""Every listener acknowledges and hands its work off (bot.listeners.handoff), none through a
Bolt lazy listener, whose start deep-copies the whole request in the answering thread; the
hand-off keeps the 3 s of a trigger_id in its budget, and a failure of the work is logged
without what the request carried."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from support.bot import APPROVER_ID, REQUESTER_ID, BotHarness
from support.core import service_env
from support.slack_signing import (
    block_actions_payload,
    interaction_body,
    view_submission_payload,
)

from bot import blocks
from bot.ack_gate import AckGate, AcksFirstExecutor, gate_of
from bot.alerts import ALERT_SNOOZE, SNOOZES
from bot.listeners.handoff import handing_off
from bot.service import build_services
from demo.slack_standin import SlackApiStandIn

# What a request may carry that no log line may: a PAC typed where it should not be, and a
# value no pattern-based redaction would recognise.
PAC = "9C1E0B3F2A7D4E65"
SECRET = f"{PAC}-kept-private-7Qx"


def lazy_listeners(app: App) -> list[str]:
    """The listeners of `app` that start Bolt lazy listeners, by their ack function's name."""
    return [getattr(listener.ack_function, "__qualname__", "?")
            for listener in app._listeners if listener.lazy_functions]


def test_the_check_finds_a_lazy_listener() -> None:
    app = App(signing_secret="s", token="xoxb-1", token_verification_enabled=False)
    app.action("ok")(handing_off(app, lambda body: None))
    app.action("lazy")(ack=lambda ack: ack(), lazy=[lambda body: None])
    assert len(lazy_listeners(app)) == 1


def test_no_listener_of_the_bot_starts_a_bolt_lazy_listener(make_simulator, tmp_path: Path
                                                             ) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"))
        try:
            app = services.bolt_app
            # /sigfox, 7 job buttons, 4 alert buttons, 3 forms, App Home: the app is wired.
            assert len(app._listeners) >= 16
            assert lazy_listeners(app) == []
        finally:
            services.close()


def test_work_asking_for_what_no_request_gives_is_refused_at_registration() -> None:
    app = App(signing_secret="s", token="xoxb-1", token_verification_enabled=False)

    def work(body: dict[str, Any], say: Any) -> None: ...

    def check(view: dict[str, Any]) -> bool:
        return True

    with pytest.raises(TypeError, match=r"\['say'\]"):
        handing_off(app, work)
    with pytest.raises(TypeError, match="`ack` first"):
        handing_off(app, lambda body: None, check=check)


def test_the_hold_is_counted_from_the_hand_off_not_from_a_free_worker() -> None:
    """Work queued behind other work has spent that time of its budget (a trigger_id lives
    3 s from the click): once a worker takes it after its budget ran out, it does not wait
    for the gate, even with requests still being answered."""
    gate = AckGate(max_hold=0.05, quiet=0)
    gate.enter()  # a request in flight all along
    release = threading.Event()
    try:
        with ThreadPoolExecutor(max_workers=1) as inner:
            executor = AcksFirstExecutor(inner, gate)
            busy = executor.submit(release.wait, 10)  # the only worker, taken
            handed_off = time.monotonic()
            queued = executor.submit(lambda: gate.answering)
            # Were the budget counted from the start, it would now be this one: 30 s.
            gate.max_hold = 30
            while time.monotonic() < handed_off + 0.1:  # the first budget runs out queued
                time.sleep(0.01)
            release.set()
            assert busy.result(timeout=10)
            assert queued.result(timeout=10) == 1  # ran with the request still in flight
    finally:
        gate.leave()


def test_a_click_that_opens_a_form_opens_it_through_a_flood_of_requests(bot: BotHarness) -> None:
    """Reject's form must open within the 3 s its click's trigger_id lives: requests being
    answered all along (a flood) hold the click's work no longer than the gate's budget."""
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    [workflow] = bot.core.store.list_workflows()
    approval = bot.core.store.approval_for(workflow.id)
    assert approval is not None
    gate = gate_of(bot.bolt_app)
    assert gate is not None
    gate.max_hold = 0.2  # short, for the test: the flood below never ends by itself
    gate.enter()
    try:
        bot.click(blocks.REJECT, str(approval.id), APPROVER_ID,
                  message_ts=bot.approval_message(approval.id)["ts"])
        [opened] = bot.standin.calls_to("views.open")
    finally:
        gate.leave()
    assert opened.params["view"]["callback_id"] == blocks.REJECT_MODAL


# --------------------------------------------------------------------------- failures


def _secretless(caplog: pytest.LogCaptureFixture, *secrets: str) -> list[str]:
    """Every record, formatted with its traceback if any; none may hold a secret."""
    formatter = logging.Formatter("%(message)s")
    lines = [formatter.format(record) for record in caplog.records]
    for secret in secrets:
        assert not [line for line in lines if secret in line], secret
    return lines


def test_a_failed_form_submission_is_logged_by_type_and_place_never_by_what_it_carried(
        bot: BotHarness, caplog: pytest.LogCaptureFixture) -> None:
    # A snooze form whose metadata names no condition the bot knows: the work, handed off
    # after the form was accepted, fails on it (ValueError quoting the value).
    metadata = json.dumps({"device": "3C0001", "condition": SECRET, "channel": "C0FLEETOPS",
                           "thread": ""})
    choices = [(key, label) for key, (label, _) in SNOOZES.items()]
    form = {**blocks.snooze_modal("3C0001", choices, "1d", metadata), "id": "V0SNOOZE"}
    payload = view_submission_payload(form, {blocks.DURATION_BLOCK: "1d",
                                             blocks.REASON_BLOCK: "Battery swap on Monday"},
                                      user_id=REQUESTER_ID)
    with caplog.at_level(logging.INFO):
        answer = bot.post(interaction_body(payload))
        bot.executor.drain()
    assert answer.status_code == 200 and answer.text == ""  # accepted: the form closes
    lines = _secretless(caplog, SECRET, PAC, payload["trigger_id"])
    assert [line for line in lines if line.startswith(
        "background work snooze_form failed: ValueError at ") and "in snooze_form" in line]


def test_a_failed_click_is_logged_without_its_response_url_or_trigger(
        bot: BotHarness, caplog: pytest.LogCaptureFixture) -> None:
    response_url = f"https://hooks.slack.com/actions/T0SIGFOX1/1/{SECRET}"
    payload = block_actions_payload(ALERT_SNOOZE, "", user_id=REQUESTER_ID,
                                    response_url=response_url)
    # An option value of two parts where the bot writes three: the handed-off work fails.
    payload["actions"][0] |= {"type": "static_select",
                              "selected_option": {"value": f"1d|{SECRET}"}}
    with caplog.at_level(logging.INFO):
        answer = bot.post(interaction_body(payload))
        bot.executor.drain()
    assert answer.status_code == 200
    lines = _secretless(caplog, SECRET, PAC, payload["trigger_id"])
    assert [line for line in lines if line.startswith(
        "background work snooze failed: ValueError at ")]


def test_a_failed_acknowledgement_is_logged_without_what_the_request_carried(
        bot: BotHarness, caplog: pytest.LogCaptureFixture) -> None:
    """The acknowledgement's own failure (Bolt's error handler: `replies.log_error`) is held to
    the same rule: a Reject form naming no approval number fails in its check."""
    form = {"type": "modal", "id": "V0REJECT", "callback_id": blocks.REJECT_MODAL,
            "private_metadata": json.dumps({"approval": SECRET}),
            "blocks": [{"type": "input", "block_id": blocks.REASON_BLOCK,
                        "element": {"type": "plain_text_input",
                                    "action_id": blocks.REASON_INPUT}}]}
    payload = view_submission_payload(form, {blocks.REASON_BLOCK: "Wrong device, see #1234"},
                                      user_id=REQUESTER_ID)
    with caplog.at_level(logging.INFO):
        answer = bot.post(interaction_body(payload))
    assert answer.status_code == 500
    lines = _secretless(caplog, SECRET, PAC, payload["trigger_id"])
    assert [line for line in lines
            if line.startswith("listener failed: ValueError at ") and "in check_reject" in line]

