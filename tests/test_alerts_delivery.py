"""Alert delivery: failed scans, a 10,000-device fleet into Slack, the digest's buttons."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from support.alerts import (
    CHANNEL,
    RecordingSink,
    add,
    announced,
    client_for,
    refused_client,
    service,
)
from support.bot import TrackingExecutor
from support.core import POLICY_TOML, make_core
from support.slack_signing import (
    block_actions_payload,
    interaction_body,
    signed_headers,
    view_submission_payload,
)

from bot import blocks
from bot.alerts import SlackAlertSink
from bot.listeners import alert_actions
from bot.service import build_alerts
from commands.alerting import NOTE_LIMIT, AlertService
from commands.config import parse_config
from commands.policy import Actor
from commands.workflows import Core
from demo.slack_standin import DEFAULT_TOKEN, SlackApiStandIn
from sigfox.simulator import SimulatorServer

SECRET = "alerts-signing-secret"


def web_client(standin: SlackApiStandIn) -> WebClient:
    return WebClient(token=DEFAULT_TOKEN, base_url=standin.url)


# --------------------------------------------------------------------------- failed scans


def test_rejected_credentials_alert_once_and_resolve_on_success(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0)
    add(sim, "1A0001", end_in_days=10)
    sink = RecordingSink()
    bad = refused_client(sim)
    failing = service(sim, tmp_path / "bot.db", sink, api=bad)
    first, second = failing.scan(), failing.scan()
    assert not first.ok and not second.ok
    assert "SIGFOX_API_PASSWORD" in first.error and "wrong-password" not in first.error
    assert [p.resolved for p in sink.problems] == [False]  # once, not once per scan
    assert sink.problems[0].channel == CHANNEL
    assert failing.fleet_summary().scan_failing
    assert sink.digests == []

    working = service(sim, tmp_path / "bot.db", sink)  # credentials fixed, bot restarted
    assert working.scan().ok
    assert [p.resolved for p in sink.problems] == [False, True]
    assert announced(sink) == [("1A0001", "expiring", "new")]
    assert not working.fleet_summary().scan_failing
    scans = working.fleet.recent_scans()
    assert [bool(s["ok"]) for s in scans] == [True, False, False]
    assert all(s["duration"] > 0 for s in scans)


def test_backend_errors_midway_are_an_incomplete_scan(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=250, rate_limits=False)
    sink = RecordingSink()
    api = client_for(sim, max_retries=1, backoff_base=0.001, rate_limits=False)
    svc = service(sim, tmp_path / "bot.db", sink, api=api)
    assert svc.scan().ok
    before = svc.list_alerts_and_snoozes().total_open
    sink.clear()
    # The list fails with every retry (the walk's concurrent ranges each try their pages).
    sim.fault("/v2/devices/", method="GET", status=500, count=50)
    report = svc.scan()
    sim.control("DELETE", "/faults")
    assert not report.ok and "HTTP 500" in report.error
    assert [p.resolved for p in sink.problems] == [False]
    # An incomplete scan neither resolves alerts nor forgets devices.
    assert svc.list_alerts_and_snoozes().total_open == before
    assert svc.fleet_summary().devices == 250
    assert svc.scan().ok
    assert [p.resolved for p in sink.problems] == [False, True]
    assert sink.digests == []  # nothing changed in the fleet meanwhile


# --------------------------------------------------------------------------- Slack, at scale


def test_ten_thousand_devices_two_thousand_expiring_post_a_bounded_number_of_messages(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path, slack: SlackApiStandIn
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    for n in range(10_000):
        add(sim, f"{0x100000 + n:X}", end_in_days=5 + n % 20 if n % 5 == 0 else 200)
    sink = SlackAlertSink(web_client(slack))
    svc = service(sim, tmp_path / "bot.db", sink, api=client_for(sim, rate_limits=False))

    report = svc.scan()
    assert report.ok and report.devices == 10_000
    assert report.digests[0].announced_total == 2_000
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1  # the digest (it counts the changes), not 2,000 threaded lines
    digest_ts = slack.messages(CHANNEL)[0]["ts"]
    assert all(p.params.get("thread_ts") == digest_ts for p in posts[1:])
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    (uploaded,) = slack.files.values()
    assert uploaded.thread_ts == digest_ts
    assert uploaded.content is not None and uploaded.content.count(b"\n") == 2_001

    assert svc.scan().ok  # the next scan: nothing new, nothing said
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_few_new_alerts_are_threaded_one_line_each_with_buttons(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path, slack: SlackApiStandIn
) -> None:
    sim = make_simulator(devices=0, rate_limits=False)
    for n in range(3):
        add(sim, f"2B000{n}", end_in_days=4 + n)
    svc = service(sim, tmp_path / "bot.db", SlackAlertSink(web_client(slack)))
    assert svc.scan().ok
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 1 + 3 <= 1 + NOTE_LIMIT
    lines = [p.params for p in posts[1:]]
    actions = {e["action_id"] for p in lines for b in _blocks(p["blocks"])
               if b["type"] == "actions" for e in b["elements"]}
    assert actions == {"alert_renew", "alert_snooze", "alert_details"}
    digest = _blocks(posts[0].params["blocks"])
    assert digest[0]["type"] == "header"
    assert any(b.get("accessory", {}).get("action_id") == "alert_menu" for b in digest)


# --------------------------------------------------------------------------- the buttons


@pytest.fixture
def bolt(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path, slack: SlackApiStandIn
) -> Iterator[tuple[App, AlertService, Core]]:
    sim = make_simulator(devices=0, rate_limits=False)
    add(sim, "3C0001", "off_contract", end_in_days=-20)
    cfg = parse_config(POLICY_TOML.replace('requesters = ["*"]', 'requesters = ["U0OPERATOR"]')
                       + f'\n[alerts]\nchannel = "{CHANNEL}"\n')
    harness = make_core(sim, tmp_path / "bot.db", config=cfg)
    svc = build_alerts(api=harness.core.api, database=harness.core.store.database,
                       sink=RecordingSink(), config=cfg, clock=sim.clock)
    svc.scan()
    listeners = TrackingExecutor()
    app = App(client=web_client(slack), signing_secret=SECRET,
              token_verification_enabled=False, process_before_response=True,
              listener_executor=listeners)
    alert_actions.register(app, SimpleNamespace(core=harness.core, alerts=svc, actor_for=Actor))
    yield app, svc, harness.core
    listeners.shutdown(wait=True)


def click(app: App, action_id: str, value: str, user: str = "U0OPERATOR", **select: str) -> int:
    payload = block_actions_payload(action_id, value, user_id=user, channel_id=CHANNEL)
    if select:
        payload["actions"][0] |= {"type": "static_select",
                                  "selected_option": {"value": select["option"]}}
    body = interaction_body(payload)
    response = app.dispatch(BoltRequest(body=body, headers=signed_headers(SECRET, body)))
    app.listener_runner.listener_executor.drain()  # the work is handed off to this executor
    return response.status


def submit(app: App, view: dict, answers: dict[str, str], user: str = "U0OPERATOR") -> Any:
    body = interaction_body(view_submission_payload(view, answers, user_id=user))
    response = app.dispatch(BoltRequest(body=body, headers=signed_headers(SECRET, body)))
    app.listener_runner.listener_executor.drain()
    return response


def test_snooze_asks_how_long_and_why_in_a_form(
    bolt: tuple[App, AlertService, Core], slack: SlackApiStandIn
) -> None:
    app, svc, _ = bolt
    assert click(app, "alert_snooze", "", option="7d|3C0001|off_contract") == 200
    assert svc.list_alerts_and_snoozes().snoozes == ()  # nothing before the form
    [form] = slack.modals_opened()
    [duration] = [b for b in form["blocks"] if b.get("block_id") == blocks.DURATION_BLOCK]
    assert duration["element"]["initial_option"]["value"] == "7d"  # the choice clicked

    refused = submit(app, form, {blocks.DURATION_BLOCK: "1d", blocks.REASON_BLOCK: " "})
    assert json.loads(refused.body)["response_action"] == "errors"
    assert svc.list_alerts_and_snoozes().snoozes == ()

    done = submit(app, form, {blocks.DURATION_BLOCK: "1d",
                              blocks.REASON_BLOCK: "Battery swap planned on Monday"})
    assert done.status == 200
    (snooze,) = svc.list_alerts_and_snoozes().snoozes
    assert (snooze.device_id, snooze.snoozed_by) == ("3C0001", "U0OPERATOR")
    assert snooze.reason == "Battery swap planned on Monday" and snooze.until is not None
    told = slack.calls_to("chat.postMessage")[-1].params["text"]
    assert "Snoozed" in told and "Battery swap planned on Monday" in told


def test_buttons_refuse_privately_whom_the_policy_refuses(
    bolt: tuple[App, AlertService, Core], slack: SlackApiStandIn
) -> None:
    app, svc, _ = bolt
    for action, value, extra in (("alert_renew", "3C0001|off_contract", {}),
                                 ("alert_details", "3C0001|off_contract", {}),
                                 ("alert_snooze", "", {"option": "1d|3C0001|off_contract"})):
        assert click(app, action, value, user="U0STRANGER", **extra) == 200
    refusals = slack.calls_to("chat.postEphemeral")
    assert len(refusals) == 3 and all(r.params["user"] == "U0STRANGER" for r in refusals)
    assert all("may not" in r.params["text"] for r in refusals)
    assert svc.list_alerts_and_snoozes().snoozes == ()
    assert slack.calls_to("chat.postMessage") == []


def test_renew_button_starts_the_least_destructive_renewal(
    bolt: tuple[App, AlertService, Core], slack: SlackApiStandIn
) -> None:
    app, _, core = bolt
    assert click(app, "alert_renew", "3C0001|off_contract") == 200
    (answer,) = slack.calls_to("chat.postEphemeral")
    assert answer.params["user"] == "U0OPERATOR"
    jobs = [w for w in core.jobs() if w.kind == "renew"]
    # Off Contract on a contract with tokens: a restart, which deletes nothing and needs no
    # approval (a delete would; see test_semantics.py).
    assert len(jobs) == 1 and not jobs[0].deletes, jobs
    assert core.store.get_workflow(jobs[0].id).params["method"] == "restart"
    assert jobs[0].state == "approved" and "by a restart" in answer.params["text"]
    assert click(app, "alert_details", "3C0001|off_contract") == 200
    assert "3C0001" in slack.calls_to("chat.postEphemeral")[-1].params["text"]


def _blocks(raw: object) -> list[dict]:
    return raw if isinstance(raw, list) else json.loads(str(raw))
