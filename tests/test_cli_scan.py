"""`sigfox-bot scan`, `check --json`, `version` and the global options, as a script uses them."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import hoist_global_options, main
from sigfox.simulator import SimulatorServer

ENV_NAMES = ("SIGFOX_BOT_CONFIG", "SIGFOX_BOT_DB", "SIGFOX_API_URL", "SIGFOX_API_LOGIN",
             "SIGFOX_API_PASSWORD", "SLACK_BOT_TOKEN", "SLACK_API_URL")
DAY_MS = 86_400_000


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, restore_root_logger: None) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fleet(make_simulator) -> SimulatorServer:
    """Two devices ending soon (one critical), one Off Contract (critical), one fine."""
    simulator = make_simulator(devices=0, rate_limits=False)
    world = simulator.world
    contract = world.add_contract("Gold", order_id="o1", order_name="Order 1", max_tokens=100)
    meter = world.add_device_type("Gas meter", contract.id)
    now = world.now_ms()
    world.add_device("A00001", device_type_id=meter.id, token="ok", automatic_renewal=False,
                     token_end_ms=now + 3 * DAY_MS)
    world.add_device("A00002", device_type_id=meter.id, token="ok", automatic_renewal=False,
                     token_end_ms=now + 20 * DAY_MS)
    world.add_device("A00003", device_type_id=meter.id, token="off_contract")
    world.add_device("A00004", device_type_id=meter.id, token="ok", automatic_renewal=False,
                     token_end_ms=now + 400 * DAY_MS)
    return simulator


def env_of(simulator: SimulatorServer, **extra: str) -> dict[str, str]:
    return {"SIGFOX_API_URL": simulator.base_url, "SIGFOX_API_LOGIN": simulator.login,
            "SIGFOX_API_PASSWORD": simulator.password, **extra}


def scan(simulator: SimulatorServer, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main, ["scan", *args], env=env_of(simulator, **env))


def test_scan_prints_the_whole_digest_every_run_and_writes_nothing(
    fleet: SimulatorServer, tmp_path: Path
) -> None:
    first, second = scan(fleet), scan(fleet)
    for result in (first, second):
        assert result.exit_code == 2, result.output  # critical alerts are open
        assert "3 open" in result.stdout
        assert "A00003" in result.stdout and "Off Contract" in result.stdout
        assert "A00001" in result.stdout and "A00004" not in result.stdout
        assert "since the last scan" not in result.stdout
    assert list(tmp_path.iterdir()) == []  # no ./sigfox-bot.db for a one-off


def test_csv_dir_receives_the_complete_list_every_run(fleet: SimulatorServer,
                                                      tmp_path: Path) -> None:
    for run in ("one", "two"):
        folder = tmp_path / run
        result = scan(fleet, "--csv-dir", str(folder), "--db", str(tmp_path / "state.db"))
        assert result.exit_code == 2, result.output
        (written,) = folder.glob("*.csv")
        rows = list(csv.DictReader(written.open()))
        assert sorted(r["device_id"] for r in rows) == ["A00001", "A00002", "A00003"]
        assert str(written) in result.stdout


def test_json_is_one_document_with_every_alert(fleet: SimulatorServer) -> None:
    result = scan(fleet, "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)  # the whole of stdout is one document
    assert document["ok"] is True and document["exit_status"] == 2
    assert document["scan"]["devices"] == 4
    assert document["open_alerts"] == 3 and document["critical"] == 2
    assert {a["device_id"]: a["level"] for a in document["alerts"]} == {
        "A00001": "critical", "A00002": "warning", "A00003": "critical"}
    assert own_stderr(result) == []


def test_nothing_critical_exits_0(make_simulator) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    world = simulator.world
    contract = world.add_contract("Gold", order_id="o1", order_name="Order 1", max_tokens=10)
    kind = world.add_device_type("Door sensor", contract.id)
    world.add_device("B00001", device_type_id=kind.id, token="ok", automatic_renewal=False,
                     token_end_ms=world.now_ms() + 20 * DAY_MS)
    result = scan(simulator, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["critical"] == 0


def test_changes_need_a_database_and_show_only_the_delta(fleet: SimulatorServer,
                                                         tmp_path: Path) -> None:
    refused = scan(fleet, "--changes")
    assert refused.exit_code == 1 and "--db" in refused.output
    db = str(tmp_path / "state.db")
    first = scan(fleet, "--changes", "--db", db)
    assert "3 new since the previous scan" in first.stdout, first.output
    again = scan(fleet, "--changes", "--db", db)
    assert "no change since the previous scan" in again.stdout
    assert "A00001" not in again.stdout
    assert again.exit_code == 2  # the critical alerts are still open
    delta = json.loads(scan(fleet, "--changes", "--db", db, "--json").stdout)
    assert delta["alerts"] == [] and delta["open_alerts"] == 3


def own_stderr(result: Result) -> list[str]:
    """The scan's own stderr lines. CliRunner's stderr is process-wide, so a Slack client thread
    some earlier test left behind (retrying a stand-in that is gone) may write here too."""
    return [line for line in result.stderr.strip().splitlines() if "slack_sdk" not in line]


def test_a_wrong_password_is_reported_once_for_a_one_shot_command(
    fleet: SimulatorServer,
) -> None:
    result = scan(fleet, SIGFOX_API_PASSWORD="not-the-password")
    assert result.exit_code == 1
    assert result.stdout == ""
    # The command's own lines: CliRunner's stderr is process-wide, so a thread some earlier test
    # left behind (a Slack client retrying) may write here too; only the scan's lines count.
    lines = own_stderr(result)
    assert len(lines) == 1, lines
    assert "refused the API credentials" in lines[0] and "SIGFOX_API_PASSWORD" in lines[0]
    assert "keeps trying" not in result.stderr and "not-the-password" not in result.stderr
    as_json = json.loads(scan(fleet, "--json", SIGFOX_API_PASSWORD="wrong!").stdout)
    assert as_json["ok"] is False and as_json["exit_status"] == 1
    assert "refused the API credentials" in as_json["error"]


def test_missing_credentials_fail_with_status_1() -> None:
    result = CliRunner().invoke(main, ["scan", "--json"])
    assert result.exit_code == 1
    assert "SIGFOX_API_LOGIN" in json.loads(result.stdout)["error"]


def test_global_options_before_or_after_the_subcommand(fleet: SimulatorServer) -> None:
    from commands.logs import JsonFormatter

    for args in (["--log-format", "json", "scan"], ["scan", "--log-format", "json"],
                 ["scan", "--log-format=json", "--log-level", "debug"]):
        result = CliRunner().invoke(main, args, env=env_of(fleet))
        assert result.exit_code == 2, (args, result.output)
        assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    assert hoist_global_options(["serve", "--port", "1", "--log-level", "DEBUG"]) == [
        "--log-level", "DEBUG", "serve", "--port", "1"]
    assert hoist_global_options(["demo", "--", "--log-level"]) == ["demo", "--", "--log-level"]
    serve_help = CliRunner().invoke(main, ["serve", "--log-format", "json", "--help"])
    assert serve_help.exit_code == 0 and "--db" in serve_help.output


def test_version_subcommand_matches_the_option() -> None:
    runner = CliRunner()
    command, option = runner.invoke(main, ["version"]), runner.invoke(main, ["--version"])
    assert command.exit_code == option.exit_code == 0
    assert command.output.split()[-1] == option.output.split()[-1]
    assert command.output.startswith("sigfox-bot ")


def test_check_json_is_one_document(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--json", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    names = {c["name"]: c for c in document["checks"]}
    assert names["Sigfox API"]["status"] == "fail"
    assert str(tmp_path / "x.db") in names["database"]["detail"]


def test_clicks_shell_completion_is_available() -> None:
    result = CliRunner().invoke(main, [], prog_name="sigfox-bot",
                                env={"_SIGFOX_BOT_COMPLETE": "bash_source"})
    assert result.exit_code == 0
    assert "_SIGFOX_BOT_COMPLETE" in result.output and "complete" in result.output


def test_readme_tells_a_newcomer_what_they_need() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    demo_line = next(line for line in quickstart.splitlines() if "sigfox-bot demo" in line
                     and "pip install" in line)
    assert "pip install -q " in demo_line  # the first command shows no pip noise
    assert "Python 3.11" in quickstart
    for needle in ("| 0 |", "| 1 |", "| 2 |", "writes nothing to disk", "--changes --db",
                   "_SIGFOX_BOT_COMPLETE=bash_source", "GET /readyz", "sigfox-bot version"):
        assert needle in readme, needle
