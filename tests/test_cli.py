"""The `sigfox-bot` command line: help everywhere, errors as one sentence, log options."""

from __future__ import annotations

import logging

import click
import pytest
from click.testing import CliRunner

from bot.cli import BotGroup, main
from commands.config import ConfigError
from sigfox.errors import SigfoxUnauthorized

EXPECTED_COMMANDS = {"check", "demo", "scan", "serve", "simulator"}


pytestmark = pytest.mark.usefixtures("restore_root_logger")


def test_top_level_help_lists_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.commands:
        assert name in result.output
    assert "--log-format" in result.output


@pytest.mark.parametrize("name", sorted(EXPECTED_COMMANDS))
def test_each_command_has_help(name: str) -> None:
    assert name in main.commands, f"`sigfox-bot {name}` is missing"
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {name}") or f" {name} " in result.output
    assert len(result.output.splitlines()) > 3


def _group_with(error: Exception) -> click.Group:
    @click.group(cls=BotGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise error

    return group


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("bot.toml, line 3, key policy.aprovers: unknown key"),
        SigfoxUnauthorized("Sigfox refused the credentials", status=401),
        FileNotFoundError(2, "No such file or directory"),
    ],
)
def test_known_errors_are_one_sentence_not_a_traceback(error: Exception) -> None:
    result = CliRunner().invoke(_group_with(error), ["boom"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_errors_are_not_hidden() -> None:
    result = CliRunner().invoke(_group_with(ZeroDivisionError("bug")), ["boom"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_error_messages_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGFOX_API_PASSWORD", "very-secret-pw")
    error = SigfoxUnauthorized("login refused for password very-secret-pw", status=401)
    result = CliRunner().invoke(_group_with(error), ["boom"])
    assert "very-secret-pw" not in result.output


def test_log_format_option_and_environment() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--log-format", "json", "simulator", "--help"]).exit_code == 0
    bad = runner.invoke(main, ["--log-format", "xml", "check"])
    assert bad.exit_code == 1 and "xml" in bad.output  # 2 means "critical alerts open"
    runner.invoke(main, ["simulator", "--help"], env={"SIGFOX_BOT_LOG_FORMAT": "json"})
    from commands.logs import JsonFormatter

    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)


def test_the_example_configuration_is_valid() -> None:
    from pathlib import Path

    from commands.config import load_config

    example = Path(__file__).resolve().parents[1] / "sigfox-bot.example.toml"
    config = load_config(example)
    assert config.policy.approvers == ("U0123ABCD", "S0456EFGH")
    assert not config.policy.allow_self_approval
    assert config.alerts.channel_for("Gas meter") == "C0METERING"
    assert config.alerts.channel_for("Door sensor", "Acme Logistics") == "C0LOGISTICS"
    assert config.alerts.channel_for("Door sensor") == "C0123ABCD"
    assert config.timing.release_retry.total_seconds() == 300
    policy = config.policy  # the approval keys, as README explains them
    assert (policy.large_job_devices, policy.large_job_approvals) == (50, 2)
    assert policy.remind_every is not None and policy.remind_every.total_seconds() == 4 * 3600
    assert policy.escalate_after is not None and policy.escalation_approvers == ("S0789IJKL",)
    assert policy.operations["delete"].approvals == 2
    assert policy.operations["delete"].wait_timer.total_seconds() == 600
    assert policy.operations["restart"].approvals == 0
