"""The command handler on its own: whatever is typed after /sigfox, a helpful answer, within
Slack's limits, never an exception and never a PAC (property tests over arbitrary text)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.alerts import RecordingSink
from support.core import REQUESTER, CoreHarness, build_fleet, make_core

from bot import blocks
from bot.handler import CommandHandler, Reply
from bot.service import build_alerts
from commands.grammar import COMMANDS
from commands.policy import Actor
from commands.status import mask_pac
from demo.slack_standin import check_blocks

DEVICES = ("C0FFEE", "BEEF01", "BEEF02", "BEEF03", "AA0001", "0xc0ffee", "ZZZ", "1A2B3C")
WORDS = st.sampled_from([*COMMANDS, "to", "for", '"Fleet B"', "Fleet", "7d", "J-0001", "2030-01-31",
                         "30", "-1", "`", "&lt;", "“", *DEVICES])


@pytest.fixture
def harness(make_simulator, tmp_path: Path) -> CoreHarness:
    simulator = make_simulator(devices=0, rate_limits=False)
    build_fleet(simulator)
    return make_core(simulator, tmp_path / "bot.db")


def pacs(harness: CoreHarness) -> list[str]:
    world = harness.simulator.world
    return [world.pac_of(d) for d in ("C0FFEE", "BEEF01", "BEEF02", "BEEF03", "AA0001")]


def check_reply(reply: Reply, secrets: list[str]) -> None:
    assert isinstance(reply, Reply)
    assert reply.text.strip()
    # The handler turns any exception into this apology: seeing it means something raised.
    assert "Something went wrong" not in reply.text
    assert check_blocks(reply.message.blocks) == []
    shown = reply.text + json.dumps(reply.message.blocks)
    assert not [p for p in secrets if p in shown]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300),
                      st.lists(WORDS, min_size=1, max_size=6).map(" ".join)))
def test_any_text_gets_a_helpful_answer_and_never_a_pac(
    harness: CoreHarness, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = CommandHandler(harness.core)
    for actor in (REQUESTER, Actor("U0SOMEONE")):
        check_reply(handler.handle(text, actor, channel="C0CHAN"), pacs(harness))
    assert not [p for p in pacs(harness) if p in caplog.text]


def test_errors_and_refusals_are_private(harness: CoreHarness) -> None:
    handler = CommandHandler(harness.core)
    for text in ("frobnicate", "renew", "renew BEEF02", "status 123456", "expiring 9999"):
        reply = handler.handle(text, REQUESTER, channel="C0CHAN")
        assert not reply.public, text


def test_expiring_without_alerts_says_they_are_not_set_up(harness: CoreHarness) -> None:
    reply = CommandHandler(harness.core).handle("expiring 14", REQUESTER, channel="C0CHAN")
    assert "not set up" in reply.text


def test_long_lists_fit_slack_limits() -> None:
    long = blocks.text_message("\n".join(f"line {i} " + "x" * 200 for i in range(2000)))
    assert check_blocks(long.blocks) == []
    jobs = [blocks.JobLineView(f"J-{i:04d}", "renew", "running", ("C0FFEE",) * 200, "U1", 0.0)
            for i in range(80)]
    assert check_blocks(blocks.jobs_list(jobs).blocks) == []
    summary = blocks.job_summary(job="J-0001", workflow_id=1, ok=False, text="x" * 5000,
                                 pac_devices=[f"{i:06X}" for i in range(100)])
    assert check_blocks(summary.blocks) == []


def test_mask_pac_keeps_only_the_last_four() -> None:
    assert mask_pac("0123456789AB1A2B") == "••••••••••••1A2B"
    assert mask_pac("") == "—"


def test_a_snooze_records_and_lists_why(harness: CoreHarness) -> None:
    alerts = build_alerts(api=harness.core.api, database=harness.core.store.database,
                          sink=RecordingSink(), config=harness.core.config, clock=harness.clock)
    handler = CommandHandler(harness.core, alerts)
    reply = handler.handle("snooze C0FFEE for 7d because battery swap booked", REQUESTER,
                           channel="C0CHAN")
    assert reply.public, reply.text
    listing = handler.handle("alerts", REQUESTER, channel="C0CHAN").text
    assert f"C0FFEE by <@{REQUESTER.user_id}>" in listing
    assert "battery swap booked" in listing
    history = json.dumps(handler.handle("history C0FFEE", REQUESTER,
                                        channel="C0CHAN").message.blocks)
    assert f"Alerts snoozed by <@{REQUESTER.user_id}>: battery swap booked" in history


def test_config_answer_says_truthfully_where_settings_come_from(
    make_simulator, tmp_path: Path
) -> None:
    from support.core import make_core as build

    from commands.config import BotConfig, parse_config

    simulator = make_simulator(devices=0, rate_limits=False)
    defaults = build(simulator, tmp_path / "a.db", config=BotConfig())
    text = CommandHandler(defaults.core).handle("config", REQUESTER, channel="C0CHAN").text
    assert "built-in defaults" in text and "nobody may approve" in text
    assert "approvers: nobody" in text
    assert "0:00:00" not in text
    assert "expire after 1 day" in text and "scan every 6 hours" in text

    toml = '[policy]\napprovers = ["U0BOB"]\n[alerts]\nchannel = "C0ALERTS"\n'
    for source, origin in ((None, "set by the program"), (tmp_path / "bot.toml", "bot.toml")):
        core = build(simulator, tmp_path / f"{origin}.db", config=parse_config(toml, source)).core
        text = CommandHandler(core).handle("config", REQUESTER, channel="C0CHAN").text
        assert origin in text and "built-in defaults" not in text
        assert "<@U0BOB>" in text and "<#C0ALERTS>" in text


def test_config_answer_shows_the_approval_rules(make_simulator, tmp_path: Path) -> None:
    from commands.config import parse_config

    simulator = make_simulator(devices=0, rate_limits=False)
    toml = ('[policy]\napprovers = ["U0BOB"]\nlarge_job_devices = 50\nremind_every = "4h"\n'
            'escalate_after = "8h"\nescalation_approvers = ["S0ONCALL"]\n'
            '[policy.operations.delete]\napprovals = 2\nwait_timer = "10m"\n')
    core = make_core(simulator, tmp_path / "bot.db", config=parse_config(toml)).core
    text = CommandHandler(core).handle("config", REQUESTER, channel="C0CHAN").text
    assert "reminders by direct message every 4 hours" in text
    assert "from 50 devices: 2 different approvers, none the requester" in text
    assert "no decision after 8 hours: also ask <!subteam^S0ONCALL>" in text
    assert "`delete`" in text and "2 approvers needed" in text
    assert "starts 10 minutes after its approval" in text


def test_every_declared_command_has_a_method_answering_it(harness: CoreHarness) -> None:
    handler = CommandHandler(harness.core)
    for spec in COMMANDS.values():
        assert callable(handler.runner(spec)), spec.name
