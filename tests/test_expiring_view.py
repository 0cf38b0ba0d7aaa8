"""`/sigfox expiring` and App Home: the coming weeks as a bar chart, the soonest devices, and
what the list left out, with the complete list one `csv` away."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from support.alerts import RecordingSink
from support.core import REQUESTER, CoreHarness, make_core

from bot import blocks
from bot.handler import CommandHandler
from bot.listeners.app_home import fleet_view
from bot.service import build_alerts
from commands.alerting import AlertService
from demo.slack_standin import check_blocks

DAY_MS = 86_400_000


@pytest.fixture
def fleet(make_simulator, tmp_path: Path) -> tuple[CoreHarness, AlertService]:
    simulator = make_simulator(devices=0, rate_limits=False)
    world = simulator.world
    contract = world.add_contract("Gold", order_id="o1", order_name="Order 1", max_tokens=100)
    meter = world.add_device_type("Gas meter", contract.id)
    now = world.now_ms()
    for n in range(20):  # 20 tokens over the next four weeks, more in the first
        days = 1 + (n % 4) * 7 if n % 3 else 2
        world.add_device(f"E{n:05X}", device_type_id=meter.id, token="ok",
                         token_end_ms=now + days * DAY_MS + n * 60_000)
    harness = make_core(simulator, tmp_path / "bot.db")
    alerts = build_alerts(api=harness.core.api, database=harness.core.store.database,
                          sink=RecordingSink(), config=harness.core.config, clock=harness.clock)
    assert alerts.scan(started_by="test").ok
    return harness, alerts


def test_expiring_draws_the_weeks_and_says_what_it_left_out(fleet) -> None:
    harness, alerts = fleet
    reply = CommandHandler(harness.core, alerts).handle("expiring", REQUESTER, channel="C0OPS")
    text = "\n".join(b["text"]["text"] for b in reply.message.blocks if b.get("text"))
    assert "*20 tokens end within 30 days*" in text
    chart = text.split("```")[1].splitlines()
    assert 3 <= len(chart) <= 5 and all("│" in line and "█" in line for line in chart)
    counts = [int(line.rsplit(" ", 1)[1]) for line in chart]
    assert sum(counts) == 20
    longest = max(range(len(counts)), key=counts.__getitem__)
    assert chart[longest].count("█") == max(line.count("█") for line in chart)
    shown = [line for line in text.splitlines() if line.startswith("• `E")]
    assert len(shown) == 5
    assert "and 15 more: `/sigfox expiring 30 csv`" in text
    assert "Gas meter E0" not in text  # the id is said once
    assert check_blocks(reply.message.blocks) == []


def test_expiring_csv_posts_the_complete_list(fleet) -> None:
    harness, alerts = fleet
    reply = CommandHandler(harness.core, alerts).handle("expiring 30 csv", REQUESTER,
                                                        channel="C0OPS")
    assert reply.public and reply.attachment is not None
    rows = list(csv.DictReader(reply.attachment.path.open()))
    assert len(rows) == 20 and reply.attachment.name.endswith(".csv")
    reply.attachment.path.unlink()


def test_before_any_scan_expiring_says_so_instead_of_zero(make_simulator, tmp_path) -> None:
    harness = make_core(make_simulator(devices=0, rate_limits=False), tmp_path / "b.db")
    alerts = build_alerts(api=harness.core.api, database=harness.core.store.database,
                          sink=RecordingSink(), config=harness.core.config, clock=harness.clock)
    text = CommandHandler(harness.core, alerts).handle("expiring", REQUESTER,
                                                       channel="C0OPS").text
    assert "No fleet scan has completed yet" in text and "0 token" not in text


def test_app_home_shows_the_weekly_chart(fleet) -> None:
    _, alerts = fleet
    view = fleet_view(alerts)
    assert view is not None and sum(n for _, n in view.weeks) == 20
    home = blocks.app_home(approvals=[], jobs=[], fleet=view, can_approve=False)
    texts = [b["text"]["text"] for b in home["blocks"] if b.get("type") == "section"
             and b.get("text")]
    chart = next(t for t in texts if "week by week" in t)
    assert chart.count("│") == len(view.weeks) and "█" in chart
    assert check_blocks(home["blocks"]) == []
