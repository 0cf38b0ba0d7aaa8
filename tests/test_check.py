"""`sigfox-bot check` against the simulated Sigfox backend and the Slack Web API stand-in."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from demo.slack_standin import DEFAULT_TOKEN, SlackApiStandIn
from sigfox.simulator import SimulatorServer
from storage.db import open_database
from storage.fleet import FleetStore

ENV_NAMES = (
    "SIGFOX_BOT_CONFIG", "SIGFOX_API_URL", "SIGFOX_API_LOGIN", "SIGFOX_API_PASSWORD",
    "SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET",
    "SIGFOX_CALLBACK_SECRET", "SIGFOX_BOT_DB",
)
CONFIG = """
[policy]
approvers = ["U0APPROVE"]
[alerts]
channel = "C0ALERTS"
"""


@pytest.fixture
def env(simulator: SimulatorServer, slack: SlackApiStandIn, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "sigfox-bot.toml"
    config.write_text(CONFIG)
    return {
        "SIGFOX_BOT_CONFIG": str(config),
        "SIGFOX_API_URL": simulator.base_url,
        "SIGFOX_API_LOGIN": simulator.login,
        "SIGFOX_API_PASSWORD": simulator.password,
        "SLACK_BOT_TOKEN": DEFAULT_TOKEN,
        "SLACK_API_URL": slack.url,
        "SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef",
        "SIGFOX_CALLBACK_SECRET": "callback-secret",
        "SIGFOX_BOT_DB": str(tmp_path / "bot.db"),
    }


def run_check(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["check"], env=env)
    return result.exit_code, result.output.splitlines()


def line_for(lines: list[str], name: str) -> str:
    return next(line for line in lines if f"] {name}:" in line)


def test_everything_good(env: dict[str, str], slack: SlackApiStandIn,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = run_check(env, monkeypatch)
    assert code == 0, lines
    assert line_for(lines, "Sigfox API").startswith("[ ok ]")
    assert "accepted the credentials" in line_for(lines, "Sigfox API")
    assert "auth.test: bot @sigfox-bot" in line_for(lines, "Slack bot token")
    assert line_for(lines, "configuration").startswith("[ ok ]")
    assert "HTTP mode" in line_for(lines, "Slack mode")
    assert slack.methods_called() == ["auth.test"]


@pytest.mark.parametrize(("variable", "wrong", "check", "says"), [
    pytest.param("SIGFOX_API_PASSWORD", "not-the-password", "Sigfox API", ("refused", "401"),
                 id="sigfox-password"),
    pytest.param("SLACK_BOT_TOKEN", "xoxb-wrong-token", "Slack bot token", ("invalid_auth",),
                 id="slack-token"),
])
def test_a_wrong_credential_fails_plainly_and_is_not_shown(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, variable: str, wrong: str, check: str,
    says: tuple[str, ...],
) -> None:
    env[variable] = wrong
    code, lines = run_check(env, monkeypatch)
    assert code == 1
    line = line_for(lines, check)
    assert line.startswith("[FAIL]") and all(word in line for word in says)
    assert wrong not in "\n".join(lines)


def test_missing_everything_says_what_to_set(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    code, lines = run_check({"SIGFOX_BOT_DB": str(tmp_path / "bot.db")}, monkeypatch)
    assert code == 1
    assert "SIGFOX_API_LOGIN and SIGFOX_API_PASSWORD is not set" in line_for(lines, "Sigfox API")
    assert "SLACK_BOT_TOKEN is not set" in line_for(lines, "Slack bot token")
    assert "SIGFOX_BOT_CONFIG is not set" in line_for(lines, "configuration")
    assert line_for(lines, "database").startswith("[ ok ]")


def test_broken_configuration_names_the_line(env: dict[str, str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    Path(env["SIGFOX_BOT_CONFIG"]).write_text('[policy]\naprovers = ["U0APPROVE"]\n')
    code, lines = run_check(env, monkeypatch)
    assert code == 1
    line = line_for(lines, "configuration")
    assert line.startswith("[FAIL]") and "line 2" in line and "approvers" in line


def test_unreachable_sigfox(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    env["SIGFOX_API_URL"] = "http://127.0.0.1:9/v2"
    code, lines = run_check(env, monkeypatch)
    assert code == 1
    assert line_for(lines, "Sigfox API").startswith("[FAIL]")


def test_no_alerts_channel_is_a_warning_not_a_failure(env: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    Path(env["SIGFOX_BOT_CONFIG"]).write_text(
        '[policy]\napprovers = ["U0APPROVE"]\n'
        '[[alerts.routes]]\nchannel = "C0METERING"\ndevice_types = ["Gas meter"]\n')
    code, lines = run_check(env, monkeypatch)
    assert code == 0, lines
    line = line_for(lines, "configuration")
    assert line.startswith("[warn]") and "no [alerts] channel" in line and "1 route(s)" in line


def test_check_says_when_the_last_scan_completed_and_the_next_is_due(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = run_check(env, monkeypatch)
    assert "first scan runs within a minute" in line_for(lines, "fleet scans")

    result = CliRunner().invoke(main, ["scan", "--db", env["SIGFOX_BOT_DB"]], env=env)
    assert result.exit_code in (0, 2), result.output
    code, lines = run_check(env, monkeypatch)
    line = line_for(lines, "fleet scans")
    assert code == 0 and line.startswith("[ ok ]")
    assert "Last scan completed" in line and "next scan due" in line and "(in 6 hours)" in line


def test_check_warns_when_no_scan_succeeded_for_twice_the_interval(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = FleetStore(open_database(env["SIGFOX_BOT_DB"]))
    long_ago = time.time() - 13 * 3600
    fleet.finish_scan(fleet.start_scan(long_ago, "schedule"), now=long_ago, ok=True, devices=1,
                      duration=1.0)
    code, lines = run_check(env, monkeypatch)
    line = line_for(lines, "fleet scans")
    assert code == 0 and line.startswith("[warn]")
    assert "(13 hours ago)" in line and "overdue by 7 hours" in line
    assert "is the bot running?" in line


def test_an_unreadable_scan_history_warns_and_blocks_nothing(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    Path(env["SIGFOX_BOT_DB"]).write_bytes(b"not a database, whatever it is")
    _, lines = run_check(env, monkeypatch)
    line = line_for(lines, "fleet scans")
    assert line.startswith("[warn]") and "cannot read the scans" in line
