from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from commands.config import (
    CONFIG_ENV_VAR,
    BotConfig,
    ConfigError,
    load_config,
    parse_config,
    parse_duration,
)

FULL = """\
[policy]
requesters = ["*"]
approvers = ["U0123ABCD", "S0456EFGH"]
allow_self_approval = false
approval_ttl = "24h"

[policy.operations.delete]
requesters = ["S0999OPS1"]
approvers = ["U0777BOSS"]

[alerts]
channel = "C0123ABCD"
warn_days = 30
critical_days = 7
scan_interval = "6h"
digest_time = "09:00"
timezone = "Europe/Paris"
repeat_after = "3d"

[[alerts.routes]]
channel = "C0FLEETB1"
device_types = ["Fleet B"]

[[alerts.routes]]
channel = "C0GROUPX1"
groups = ["5f00aa"]

[timing]
tick = "30s"
release_retry = "5m"
release_timeout = "1h30m"
first_message_timeout = "7d"
"""


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "bot.toml"
    file.write_text(text, encoding="utf-8")
    return file


def error_for(tmp_path: Path, text: str) -> ConfigError:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert str(file) in str(caught.value)
    return caught.value


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("24h", 86400), ("7d", 604800), ("2w", 1209600),
     ("1h30m", 5400), (" 1H 30M ", 5400), ("0s", 0)],
)
def test_parse_duration_accepts_units_and_combinations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "5 minutes", "m5", "1.5h", "-5m", "5y", "h"])
def test_parse_duration_rejects_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match='like "30s"'):
        parse_duration(text)


def test_parse_duration_refuses_absurd_lengths_instead_of_overflowing() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999999999999d")


# -- loading ----------------------------------------------------------------------------------


def test_no_file_gives_defaults_where_nobody_may_approve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    config = load_config()
    assert config.source is None
    assert config.policy.requesters == ("*",)
    assert config.policy.approvers == ()
    assert config.policy.allow_self_approval is False
    assert config.policy.approval_ttl == timedelta(hours=24)
    assert config.alerts.channel is None
    assert (config.alerts.warn_days, config.alerts.critical_days) == (30, 7)
    assert config.alerts.digest_time == time(9, 0)
    assert config.timing.tick == timedelta(seconds=30)
    assert config.timing.release_timeout == timedelta(hours=24)  # holds of hours are seen
    assert config.timing.first_message_poll == timedelta(minutes=5)


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write(tmp_path, '[policy]\napprovers = ["U0123ABCD"]\n')
    monkeypatch.setenv(CONFIG_ENV_VAR, str(file))
    config = load_config()
    assert config.policy.approvers == ("U0123ABCD",)
    assert config.source == file


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV_VAR, str(tmp_path / "missing.toml"))
    file = write(tmp_path, "[alerts]\nwarn_days = 10\n")
    assert load_config(file).alerts.warn_days == 10


def test_missing_file_is_an_error_not_silent_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_full_file_loads_typed_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.policy.approvers == ("U0123ABCD", "S0456EFGH")
    delete = config.policy.operations["delete"]
    assert delete.requesters == ("S0999OPS1",)
    assert delete.allow_self_approval is None
    assert config.alerts.tz.key == "Europe/Paris"
    assert config.alerts.repeat_after == timedelta(days=3)
    assert config.timing.release_timeout == timedelta(hours=1, minutes=30)
    assert config.timing.release_retry == timedelta(minutes=5)


def test_native_toml_time_is_accepted_for_digest() -> None:
    assert parse_config("[alerts]\ndigest_time = 07:30:00\n").alerts.digest_time == time(7, 30)


def test_config_is_frozen() -> None:
    config = BotConfig()
    with pytest.raises(ValueError):
        config.policy.allow_self_approval = True  # type: ignore[misc]


def test_alert_routes_first_match_then_default(tmp_path: Path) -> None:
    alerts = load_config(write(tmp_path, FULL)).alerts
    assert alerts.channel_for(device_type=("63a1", "fleet b")) == "C0FLEETB1"
    assert alerts.channel_for(group="5F00AA") == "C0GROUPX1"
    assert alerts.channel_for(device_type="Fleet B", group="5f00aa") == "C0FLEETB1"
    assert alerts.channel_for(device_type="other", group="other") == "C0123ABCD"


# -- errors: file, line and key -----------------------------------------------------------------


def test_toml_syntax_error_names_line_and_key(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[policy]\nrequesters = ["*"]\n\n[timing]\ntick = 30s\n')
    assert err.line == 5
    assert err.key == "timing.tick"
    assert "line 5" in str(err) and "timing.tick" in str(err)


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[policy]\nrequesters = ["*"]\naprovers = ["U0123ABCD"]\n')
    assert (err.line, err.key) == (3, "policy.aprovers")
    assert "did you mean 'approvers'" in str(err)


def test_unknown_table_is_reported(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[alerts]\nwarn_days = 30\n\n[timings]\ntick = \"30s\"\n")
    assert (err.line, err.key) == (4, "timings")
    assert "did you mean 'timing'" in str(err)


def test_wrong_type_is_reported(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[alerts]\nchannel = "C0123ABCD"\nwarn_days = "30"\n')
    assert (err.line, err.key) == (3, "alerts.warn_days")


def test_bad_duration_says_how_to_write_one(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[policy]\napproval_ttl = "1 day"\n')
    assert (err.line, err.key) == (2, "policy.approval_ttl")
    assert '"24h"' in str(err)


def test_number_for_a_duration_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[timing]\n\nrelease_retry = 300\n")
    assert (err.line, err.key) == (3, "timing.release_retry")


def test_zero_duration_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[timing]\ntick = "0s"\n')
    assert "longer than zero" in str(err)


def test_warn_days_below_critical_days(tmp_path: Path) -> None:
    err = error_for(tmp_path, "[alerts]\nwarn_days = 5\ncritical_days = 7\n")
    assert (err.line, err.key) == (3, "alerts.critical_days")
    assert "warn_days" in str(err)


def test_bad_timezone(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[alerts]\ntimezone = "Mars/Olympus"\n')
    assert (err.line, err.key) == (2, "alerts.timezone")
    assert "Europe/Paris" in str(err)


@pytest.mark.parametrize("value", ['"9:00"', '"24:00"', '"09:60"', '"9am"'])
def test_bad_digest_time(tmp_path: Path, value: str) -> None:
    err = error_for(tmp_path, f"[alerts]\ndigest_time = {value}\n")
    assert (err.line, err.key) == (2, "alerts.digest_time")
    assert '"HH:MM"' in str(err)


@pytest.mark.parametrize("bad", ["U1", "u0123abcd", "C0123ABCD", "@alice", "general"])
def test_bad_approver_ids_are_refused(tmp_path: Path, bad: str) -> None:
    err = error_for(tmp_path, f'[policy]\napprovers = [\n  "U0123ABCD",\n  "{bad}",\n]\n')
    assert err.key == "policy.approvers[1]"
    assert err.line == 2  # the key's line; array items have no position of their own


def test_star_is_not_an_approver(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[policy]\napprovers = ["*"]\n')
    assert '"*" is not allowed among approvers' in str(err)


def test_channel_name_instead_of_id(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[alerts]\nchannel = "general"\n')
    assert "channel names are not accepted" in str(err)


def test_unknown_operation_table(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[policy.operations.deleet]\napprovers = ["U0123ABCD"]\n')
    assert (err.line, err.key) == (1, "policy.operations.deleet")
    assert "renew, delete, transfer, restart, unsubscribe" in str(err)


def test_route_errors_point_at_the_right_array_table(tmp_path: Path) -> None:
    text = (
        '[[alerts.routes]]\nchannel = "C0AAAAAA1"\ngroups = ["g"]\n\n'
        '[[alerts.routes]]\nchannel = "nope"\ngroups = ["g"]\n\n'
        '[[alerts.routes]]\nchannel = "C0AAAAAA3"\n'
    )
    err = error_for(tmp_path, text)
    assert (err.line, err.key) == (6, "alerts.routes[1].channel")
    assert "line 9, key alerts.routes[2]: a route needs device_types or groups" in str(err)


def test_every_problem_is_listed_in_file_order(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[timing]\ntick = "x"\n[alerts]\nwarn_days = 0\n')
    lines = str(err).splitlines()
    assert len(lines) == 2
    assert "line 2" in lines[0] and "line 4" in lines[1]


def test_dotted_keys_are_located(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[policy]\noperations.delete.approvers = ["nope"]\n')
    assert (err.line, err.key) == (2, "policy.operations.delete.approvers[0]")


# -- approvals that scale with the risk -------------------------------------------------------


def test_scaled_approval_keys_load() -> None:
    config = parse_config(
        '[policy]\napprovers = ["U0123ABCD"]\nlarge_job_devices = 50\nlarge_job_approvals = 2\n'
        'remind_every = "4h"\nescalate_after = "8h"\nescalation_approvers = ["S0789IJKL"]\n'
        '[policy.operations.restart]\napprovals = 0\nwait_timer = "0m"\n'
        '[policy.operations.delete]\napprovals = 2\nwait_timer = "10m"\n'
    )
    policy = config.policy
    assert (policy.large_job_devices, policy.large_job_approvals) == (50, 2)
    assert policy.remind_every == timedelta(hours=4)
    assert policy.escalate_after == timedelta(hours=8)
    assert policy.escalation_approvers == ("S0789IJKL",)
    assert policy.operations["restart"].approvals == 0
    assert policy.operations["restart"].wait_timer == timedelta(0)
    assert policy.operations["delete"].wait_timer == timedelta(minutes=10)


def test_scaled_approval_keys_default_to_todays_rules() -> None:
    policy = BotConfig().policy
    assert policy.large_job_devices is None and policy.escalate_after is None
    assert policy.remind_every is None and policy.escalation_approvers == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("[policy.operations.renew]\napprovals = -1\n", "must be at least 0"),
    ("[policy.operations.renew]\napprovals = \"2\"\n", "a whole number, like 1; got the text"),
    ("[policy.operations.renew]\nwait_timer = \"soon\"\n", 'like "30s"'),
    ("[policy]\nescalate_after = \"8h\"\n", "escalation_approvers is empty"),
    ("[policy]\nescalation_approvers = [\"*\"]\n", "not allowed among approvers"),
    ("[policy]\nlarge_job_devices = 0\n", "must be at least 1"),
])
def test_scaled_approval_keys_refuse_mistakes(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(text)


def test_an_unclosed_list_is_blamed_on_the_line_that_opened_it() -> None:
    text = ('[policy]\nrequesters = ["*"]\nallow_self_approval = false\napproval_ttl = "24h"\n\n'
            '[alerts]\nwarn_days = 30\napprovers = ["U0123ABCD",\ncritical_days = 7\n')
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("bot.toml"))
    assert info.value.line == 8
    message = str(info.value)
    assert message.startswith("bot.toml, line 8, key alerts.approvers:")
    assert "not closed with ]" in message and "need quotes" not in message


@pytest.mark.parametrize(("text", "expected"), [
    ('[policy]\napprovers = "U0123ABCD"\n',
     'approvers must be a list of ids, like ["U0123ABCD"]; got the text "U0123ABCD"'),
    ('[alerts]\nwarn_days = "30"\n',
     'warn_days must be a whole number, like 30; got the text "30"'),
    ('[alerts]\ncritical_days = "3"\n',
     'critical_days must be a whole number, like 7; got the text "3"'),
    ('[policy]\nallow_self_approval = "no"\n',
     'allow_self_approval must be true or false (without quotes); got the text "no"'),
    ('[alerts]\nwarn_days = 0\n', "warn_days must be at least 1; got the number 0"),
])
def test_type_errors_in_the_bots_words(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("bot.toml"))
    assert str(info.value).endswith(expected)
    assert "Input should be" not in str(info.value) and info.value.line == 2
