from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.grammar import (
    COMMANDS,
    MAX_DEVICES_PER_REQUEST,
    AlertsCommand,
    CancelCommand,
    Command,
    CommandError,
    ConfigCommand,
    DeleteCommand,
    ExpiringCommand,
    HelpCommand,
    HistoryCommand,
    JobsCommand,
    RenewCommand,
    RestartCommand,
    ScanCommand,
    SnoozeCommand,
    StatusCommand,
    TransferCommand,
    UnsubscribeCommand,
    WhoamiCommand,
    command_help,
    help_text,
    normalize_device_id,
    parse_command,
    spec_of,
)
from commands.policy import Operation

TODAY = date(2025, 6, 1)
COMMAND_TYPES = typing.get_args(Command)


def parse(text: str) -> Command | CommandError:
    return parse_command(text, today=TODAY)


def error(text: str) -> str:
    result = parse(text)
    assert isinstance(result, CommandError), result
    return result.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", HelpCommand()),
        ("help", HelpCommand()),
        ("HELP Renew", HelpCommand("renew")),
        ("status 0x1a2b3c", StatusCommand("1A2B3C")),
        ("renew 1a2b3c", RenewCommand(("1A2B3C",), None)),
        ("renew 1A 2b 0x1a", RenewCommand(("1A", "2B"), None)),
        ("renew 1A,2B, 3C", RenewCommand(("1A", "2B", "3C"), None)),
        ('renew 1A to "Fleet B"', RenewCommand(("1A",), "Fleet B")),
        ("renew 1A to “Fleet B”", RenewCommand(("1A",), "Fleet B")),
        ("renew 1A TO Fleet B", RenewCommand(("1A",), "Fleet B")),
        ("renew 1A to 5f1a2b3c4d5e", RenewCommand(("1A",), "5f1a2b3c4d5e")),
        ("delete FFFFFFFF", DeleteCommand("FFFFFFFF")),
        ("transfer 1A 2B to 'Fleet &amp; Co'", TransferCommand(("1A", "2B"), "Fleet & Co")),
        ("restart 1A 1a", RestartCommand(("1A",))),
        ("expiring", ExpiringCommand(30)),
        ("expiring 7", ExpiringCommand(7)),
        ("expiring 14d", ExpiringCommand(14)),
        ("expiring 7 csv", ExpiringCommand(7, csv=True)),
        ("expiring CSV", ExpiringCommand(30, csv=True)),
        ("jobs", JobsCommand()),
        ("cancel J-0042", CancelCommand("J-0042")),
        ("history 0X00AB", HistoryCommand("00AB")),
        ("alerts", AlertsCommand()),
        ("scan", ScanCommand()),
        ("whoami", WhoamiCommand()),
        ("config", ConfigCommand()),
        ("snooze 1A 2B", SnoozeCommand(("1A", "2B"), None)),
        ("snooze 1A for 2w", SnoozeCommand(("1A",), timedelta(days=14))),
        ("snooze 1A for 1d because Battery swap on Monday",
         SnoozeCommand(("1A",), timedelta(days=1), "Battery swap on Monday")),
        ("snooze 1A 2B because in the workshop",
         SnoozeCommand(("1A", "2B"), None, "in the workshop")),
        ("  status\u00a01A  ", StatusCommand("1A")),
    ],
)
def test_valid_commands(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_commands_are_frozen_and_carry_their_operation() -> None:
    command = parse("renew 1A")
    assert isinstance(command, RenewCommand)
    assert spec_of(command).operation is Operation.RENEW
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.device_type = "x"  # type: ignore[misc]
    assert spec_of(HelpCommand()).operation is None


def test_every_command_class_is_declared_once() -> None:
    declared = [spec.command for spec in COMMANDS.values()]
    assert sorted(declared, key=str) == sorted(COMMAND_TYPES, key=str)
    assert len(set(declared)) == len(declared)


def test_unsubscribe_dates() -> None:
    on_day = parse("unsubscribe 1a 2025-06-01")
    assert on_day == UnsubscribeCommand("1A", datetime(2025, 6, 1, tzinfo=UTC), True)
    precise = parse("unsubscribe 1a 2025-07-01T10:30:00+02:00")
    assert isinstance(precise, UnsubscribeCommand) and not precise.date_only
    assert precise.at.astimezone(UTC) == datetime(2025, 7, 1, 8, 30, tzinfo=UTC)
    naive = parse("unsubscribe 1a 2025-07-01T10:30")
    assert isinstance(naive, UnsubscribeCommand) and naive.at.tzinfo is UTC


def test_unsubscribe_in_the_past_is_refused() -> None:
    message = error("unsubscribe 1A 2025-05-31")
    assert "in the past" in message and "2025-06-01" in message
    assert "Usage: `/sigfox unsubscribe <id> <date>`" in message


@pytest.mark.parametrize("when", ["2025-02-30", "tomorrow", "20250701", "2025-W27-1", "1/7/25"])
def test_unsubscribe_bad_dates(when: str) -> None:
    assert "is not a date: write YYYY-MM-DD" in error(f"unsubscribe 1A {when}")


def test_today_is_injectable() -> None:
    assert isinstance(parse_command("unsubscribe 1A 2025-05-31", today=date(2025, 5, 1)),
                      UnsubscribeCommand)


def test_bad_device_id_shows_the_right_form() -> None:
    message = error("renew XYZ")
    assert message.startswith("`XYZ` is not a device id: ids are hexadecimal")
    assert "`1A2B3C` or `0x1a2b3c`" in message
    assert "Usage: `/sigfox renew <id> [<id> ...] [to <device-type>] [by delete]`" in message


@pytest.mark.parametrize("bad", ["123456789", "0x", "1A-2B", "-1", "0x0x1"])
def test_device_id_shapes(bad: str) -> None:
    assert normalize_device_id(bad) is None
    assert "is not a device id" in error(f"status {bad}")


def test_too_many_devices_in_one_request() -> None:
    ids = " ".join(f"{i:X}" for i in range(MAX_DEVICES_PER_REQUEST + 1))
    assert f"at most {MAX_DEVICES_PER_REQUEST}" in error(f"restart {ids}")
    # duplicates do not count against the cap
    many = parse(" ".join(["restart", ids.rsplit(" ", 1)[0], "0", "0x0"]))
    assert isinstance(many, RestartCommand) and len(many.device_ids) == MAX_DEVICES_PER_REQUEST


def test_typo_gets_did_you_mean() -> None:
    assert "Did you mean `/sigfox renew 1A`?" in error("renwe 1A")
    assert "Did you mean `/sigfox expiring`?" in error("expirng")


def test_unknown_verb_without_a_close_match_points_to_help() -> None:
    assert "Type `/sigfox help`" in error("frobnicate")


def test_bare_device_id_suggests_status() -> None:
    assert "`/sigfox status 1a2b`" in error("1a2b")


@pytest.mark.parametrize(
    ("text", "usage"),
    [
        ("status", "status <id>"),
        ("status 1A 2B", "status <id>"),
        ("delete", "delete <id>"),
        ("renew", "renew <id>"),
        ("renew to Fleet", "renew <id>"),
        ("renew 1A to", "renew <id>"),
        ("transfer 1A", "transfer <id> [<id> ...] to <device-type>"),
        ("restart", "restart <id>"),
        ("unsubscribe 1A", "unsubscribe <id> <date>"),
        ("expiring 0", "expiring [days]"),
        ("expiring 366", "expiring [days]"),
        ("expiring soon", "expiring [days]"),
        ("expiring 1 2", "expiring [days]"),
        ("jobs now", "jobs"),
        ("cancel", "cancel <job>"),
        ("cancel J-1 J-2", "cancel <job>"),
        ("cancel !!", "cancel <job>"),
        ("help renew delete", "help [command]"),
        ("snooze 1A for ever", "snooze <id>"),
        ("snooze 1A because", "snooze <id> [<id> ...] [for <duration>] [because <reason>]"),
    ],
)
def test_wrong_arguments_get_the_usage_line(text: str, usage: str) -> None:
    assert f"Usage: `/sigfox {usage}" in error(text)


def test_unclosed_quote() -> None:
    assert 'like `to "Fleet B"`' in error('renew 1A to "Fleet B')


def test_help_topic_typo() -> None:
    assert "Did you mean `/sigfox help renew`?" in error("help renwe")


def test_help_text_shows_only_what_the_caller_may_run() -> None:
    everything = help_text(None)
    for spec in COMMANDS.values():
        assert spec.usage in everything
    limited = help_text({Operation.STATUS, Operation.RENEW})
    assert "/sigfox status <id>" in limited and "/sigfox renew <id>" in limited
    assert "/sigfox delete" not in limited and "/sigfox transfer" not in limited
    assert "/sigfox help [command]" in limited  # always available
    assert "/sigfox delete" not in help_text(set())


def test_every_command_has_a_parser_and_a_parsable_example() -> None:
    for name, spec in COMMANDS.items():
        assert spec.usage.split()[0] == name
        result = parse_command(spec.example, today=date(2025, 1, 1))
        assert not isinstance(result, CommandError), (name, result)
        assert spec_of(result) is spec
        assert name in command_help(name)


# -- properties --------------------------------------------------------------------------------


def assert_well_formed(result: object) -> None:
    if isinstance(result, CommandError):
        assert result.message.strip()
    else:
        assert isinstance(result, COMMAND_TYPES)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_gives_a_command_or_a_helpful_error(text: str) -> None:
    assert_well_formed(parse(text))


WORDS = st.sampled_from(
    [*COMMANDS, "to", "for", "0x1a", "FFFFFFFF", "123456789", '"Fleet', 'B"', "'", "&amp;",
     "2025-06-01", "2024-01-01", "9999-12-31T23:59+14:00", "0001-01-01T00:00+01:00",
     "J-0042", "99999999999999999999d", "7d", ",", "0x", "365", "0"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(WORDS, st.text(min_size=1, max_size=6)), max_size=8))
def test_command_like_text_never_raises(words: list[str]) -> None:
    assert_well_formed(parse(" ".join(words)))


HEX_ID = st.text("0123456789abcdefABCDEF", min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(HEX_ID, st.booleans()), min_size=1, max_size=20))
def test_ids_normalise_and_deduplicate(ids: list[tuple[str, bool]]) -> None:
    typed = [("0x" + raw if prefixed else raw) for raw, prefixed in ids]
    result = parse("renew " + " ".join(typed))
    assert isinstance(result, RenewCommand)
    expected = tuple(dict.fromkeys(raw.upper() for raw, _ in ids))
    assert result.device_ids == expected
    assert result.device_type is None


@pytest.mark.parametrize(("text", "expected"), [
    ("renew 1A2B3C by delete", RenewCommand(("1A2B3C",), None, True)),
    ("renew 1a2b3c 0x4D5E6F BY DELETE", RenewCommand(("1A2B3C", "4D5E6F"), None, True)),
    ('renew 1A2B3C to "Fleet B" by delete', RenewCommand(("1A2B3C",), "Fleet B", True)),
    ("renew 1A2B3C", RenewCommand(("1A2B3C",), None, False)),
])
def test_renew_by_delete_asks_for_the_delete_explicitly(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["renew 1A2B3C by", "renew 1A2B3C by magic",
                                  "renew 1A2B3C by delete now"])
def test_by_must_be_followed_by_delete_alone(text: str) -> None:
    message = error(text)
    assert "`by` must end the command, followed by `delete`" in message
    assert "[by delete]" in message  # the usage line shows where it goes


def test_help_explains_the_least_destructive_renewal() -> None:
    text = command_help("renew")
    assert "least destructive" in text and "by delete" in text
