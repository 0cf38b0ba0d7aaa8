"""The one formatter of times, durations, counts, people and channels (`commands.human`)."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commands import human

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("value", "text"), [
    (timedelta(days=1), "1 day"),
    (timedelta(hours=6), "6 hours"),
    (timedelta(hours=1, minutes=30), "1 hour 30 minutes"),
    (timedelta(seconds=45), "45 seconds"),
    (timedelta(days=14), "2 weeks"),
    (timedelta(days=10), "10 days"),
    (timedelta(days=1, hours=2, minutes=3), "1 day 2 hours"),
    (0, "0 seconds"),
    (3600.0, "1 hour"),
])
def test_durations_read_as_people_say_them(value: timedelta | float, text: str) -> None:
    assert human.duration(value) == text


def test_short_durations_for_waiting_lines() -> None:
    assert [human.short_duration(s) for s in (0, 59, 600, 7500, 3 * 86400)] == [
        "0 s", "59 s", "10 min", "2 h 5 min", "3 days"]


def test_dates_and_moments() -> None:
    ts = 1795407073.0  # 2026-11-23 04:11:13 UTC
    assert human.day(ts) == "2026-11-23"
    assert human.moment(ts) == "2026-11-23 04:11 UTC"
    assert human.moment(ts, seconds=True) == "2026-11-23 04:11:13 UTC"
    assert human.moment(ts, ZoneInfo("Europe/Paris")) == "2026-11-23 05:11 CET"
    assert human.day_ms(ts * 1000) == "2026-11-23"
    assert human.day_ms(0) == "—" and human.day(None, none="never") == "never"
    assert human.relative(ts + 3 * 86400, ts) == "in 3 days"
    assert human.relative(ts + 3600, ts) == "within a day"
    assert human.relative(ts - 2 * 86400, ts) == "ended 2 days ago"
    assert human.day_and_relative(ts + 86400, None, ts) == "2026-11-24 (in 1 day)"


def test_people_and_channels_by_name_when_known() -> None:
    names = {"U0BOB": "bob", "C0OPS": "fleet-ops"}.get
    assert human.person("U0BOB", names) == "@bob"
    assert human.person("U0NOBODY", names) == "@U0NOBODY"
    assert human.channel("C0OPS", names) == "#fleet-ops"
    assert human.channel("C0ELSE", names) == "#C0ELSE"
    assert human.channel(None) == "the default channel"
    assert human.slack_person("S0GROUP") == "<!subteam^S0GROUP>"
    assert human.slack_channel("C0OPS") == "<#C0OPS>"


def test_counts_and_what_a_list_left_out() -> None:
    assert human.plural(1, "device") == "1 device"
    assert human.plural(1204, "device") == "1,204 devices"
    how = "`/sigfox expiring 7 csv`"
    assert human.and_more(8, 5, how) == f"and 3 more: {how}"
    assert human.and_more(5, 5) == ""


def test_bars_scale_to_the_largest() -> None:
    assert human.bar(10, 10, width=10) == "█" * 10
    assert human.bar(5, 10, width=10) == "█" * 5
    assert human.bar(1, 1000, width=10) == "▏"  # never invisible when there is something
    assert human.bar(0, 10) == ""


def test_no_other_module_formats_dates_itself() -> None:
    """strftime lives in commands/human.py; logs (ISO timestamps) and the grammar excepted."""
    allowed = {"commands/human.py", "commands/logs.py"}
    offenders = []
    for folder in ("bot", "commands", "demo", "storage"):
        for path in (ROOT / folder).rglob("*.py"):
            name = path.relative_to(ROOT).as_posix()
            if name in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr == "strftime":
                    offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_a_device_is_said_once() -> None:
    assert human.device("801B103", "Pallet tracker 801B103", "Pallet tracker") == (
        "801B103 Pallet tracker")
    assert human.device("801B103", "Dock 4", "Pallet tracker", code=True) == (
        "`801B103` Dock 4 (Pallet tracker)")
    assert human.device("801B103", "", "Gas meter") == "801B103 Gas meter"
    assert human.device("801B103") == "801B103"
    assert human.iso(1795407073.0) == "2026-11-23T04:11:13Z" and human.iso(None) is None
