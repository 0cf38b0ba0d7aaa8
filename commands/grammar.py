"""The `/sigfox` command language: text after the slash command -> a typed command, or an error.

`parse_command` never raises: whatever an operator types, they get either a command the core can
run or a `CommandError` that says what was wrong and what to type instead. Device ids come out
normalised (upper-case hex, no `0x`), deduplicated and capped; device types stay raw text,
because resolving a name to a device type needs the backend.

One module on purpose (over 500 lines): the command classes, their parsers and `COMMANDS`, the
table that declares each command once, read together.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from commands.config import parse_duration
from commands.policy import Operation

SLASH_COMMAND = "/sigfox"
MAX_DEVICES_PER_REQUEST = 100
MAX_DEVICE_ID_DIGITS = 8
DEVICE_ID_PATTERN = re.compile(rf"(?:0[xX])?([0-9A-Fa-f]{{1,{MAX_DEVICE_ID_DIGITS}}})")
DEVICE_ID_EXAMPLE = "1A2B3C"
# Job ids are the workflow ids the store hands out; accept anything id-like so the format can
# change there without touching the grammar. Kept as typed (the store may be case-sensitive).
JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
JOB_ID_EXAMPLE = "J-0042"
EXPIRING_DEFAULT_DAYS = 30
EXPIRING_MAX_DAYS = 365
MAX_REASON_LENGTH = 200

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelpCommand:
    topic: str | None = None


@dataclass(frozen=True)
class WhoamiCommand:
    """Show who the bot takes you for, and what you may do."""


@dataclass(frozen=True)
class ConfigCommand:
    """Show the effective policy and alert routing (no secrets live in the config)."""


@dataclass(frozen=True)
class StatusCommand:
    device_id: str


@dataclass(frozen=True)
class RenewCommand:
    device_ids: tuple[str, ...]
    device_type: str | None = None
    # `by delete`: delete and re-register, asked explicitly (docs/sigfox-semantics.md)
    by_delete: bool = False


@dataclass(frozen=True)
class DeleteCommand:
    device_id: str


@dataclass(frozen=True)
class TransferCommand:
    device_ids: tuple[str, ...]
    device_type: str


@dataclass(frozen=True)
class RestartCommand:
    device_ids: tuple[str, ...]


@dataclass(frozen=True)
class UnsubscribeCommand:
    """`at` is timezone-aware (UTC when none was typed); a bare date means 00:00 UTC that day."""

    device_id: str
    at: datetime
    date_only: bool


@dataclass(frozen=True)
class ExpiringCommand:
    days: int = EXPIRING_DEFAULT_DAYS
    csv: bool = False  # the complete list as a CSV file in the channel


@dataclass(frozen=True)
class JobsCommand:
    """List the running jobs."""


@dataclass(frozen=True)
class CancelCommand:
    job_id: str


@dataclass(frozen=True)
class HistoryCommand:
    device_id: str


@dataclass(frozen=True)
class AlertsCommand:
    """List open alerts and snoozes."""


@dataclass(frozen=True)
class SnoozeCommand:
    """`duration` None means the configured [alerts] repeat_after."""

    device_ids: tuple[str, ...]
    duration: timedelta | None = None
    reason: str = ""


@dataclass(frozen=True)
class ScanCommand:
    """Scan the fleet for alerts now."""


Command = (
    HelpCommand | WhoamiCommand | ConfigCommand | StatusCommand | RenewCommand | DeleteCommand
    | TransferCommand | RestartCommand | UnsubscribeCommand | ExpiringCommand | JobsCommand
    | CancelCommand | HistoryCommand | AlertsCommand | SnoozeCommand | ScanCommand
)


@dataclass(frozen=True)
class CommandError:
    """What was wrong and what to type instead; `message` is ready to show (Slack mrkdwn)."""

    message: str


class _Refused(Exception):
    """Internal: unwinds a parser to parse_command, which turns it into a CommandError."""


# ---------------------------------------------------------------------------------------------
# Help, read from the declarations (COMMANDS, at the end of this module)
# ---------------------------------------------------------------------------------------------


def usage_line(name: str) -> str:
    spec = COMMANDS[name]
    line = f"Usage: `{SLASH_COMMAND} {spec.usage}`"
    if not spec.example or spec.example == spec.usage:
        return line
    return f"{line}, e.g. `{SLASH_COMMAND} {spec.example}`"


def help_text(allowed_operations: set[Operation] | None = None) -> str:
    """One line per command the caller may run; None shows every command."""
    lines = [f"*{SLASH_COMMAND}* commands:"]
    for spec in COMMANDS.values():
        if _visible(spec, allowed_operations):
            lines.append(f"• `{SLASH_COMMAND} {spec.usage}`: {spec.summary}")
    lines.append(f"Device ids are hexadecimal, like `{DEVICE_ID_EXAMPLE}` or `0x1a2b3c`. "
                 f"Type `{SLASH_COMMAND} help <command>` for an example.")
    return "\n".join(lines)


def command_help(name: str) -> str:
    """The help for one command (`help renew`)."""
    spec = COMMANDS[name]
    return f"`{SLASH_COMMAND} {spec.usage}`: {spec.summary}\n{usage_line(name)}"


def _visible(spec: CommandSpec, allowed: set[Operation] | None) -> bool:
    return allowed is None or spec.operation is None or spec.operation in allowed


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

# Slack escapes these three in slash-command text, and phones type curly quotes.
_UNESCAPE = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
_CURLY = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
_TOKEN = re.compile(r"\"([^\"]*)\"|'([^']*)'|(\S+)")


def parse_command(text: str, *, today: date | None = None) -> Command | CommandError:
    """Parse the text typed after `/sigfox`. `today` (UTC) bounds dates; injectable for tests."""
    try:
        words = _tokenize(text)
        if not words:
            return HelpCommand()
        verb, args = words[0].lower(), words[1:]
        spec = COMMANDS.get(verb)
        if spec is None:
            raise _Refused(_unknown_verb(words[0], args))
        return spec.parse(spec, args, today or datetime.now(UTC).date())
    except _Refused as refusal:
        return CommandError(str(refusal))


def _tokenize(text: str) -> list[str]:
    for escaped, plain in _UNESCAPE:
        text = text.replace(escaped, plain)
    text = text.translate(_CURLY)
    words = []
    for match in _TOKEN.finditer(text):
        quoted = match[1] if match[1] is not None else match[2]
        if quoted is None and match[3][0] in "\"'":
            raise _Refused(f"A quote is not closed in `{_shorten(match[3])}`: put names with "
                           'spaces in double quotes, like `to "Fleet B"`.')
        words.append(quoted.strip() if quoted is not None else match[3])
    return words


def _unknown_verb(verb: str, args: Sequence[str]) -> str:
    shown = _shorten(verb)
    if DEVICE_ID_PATTERN.fullmatch(verb) and not args:
        return (f"`{shown}` is not a command. To look at that device, type "
                f"`{SLASH_COMMAND} status {verb}`.")
    close = difflib.get_close_matches(verb.lower(), COMMANDS, n=1, cutoff=0.6)
    if close:
        rest = " ".join(args)
        hint = f"`{SLASH_COMMAND} {close[0]}{' ' + _shorten(rest) if rest else ''}`"
        return f"Unknown command `{shown}`. Did you mean {hint}?"
    return (f"Unknown command `{shown}`. Type `{SLASH_COMMAND} help` for the commands you may "
            "run.")


def _shorten(text: str, limit: int = 40) -> str:
    # Echo user text back without letting it break the message's code span or flood it.
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _usage_error(name: str, what: str) -> _Refused:
    return _Refused(f"{what} {usage_line(name)}")


# -- arguments ----------------------------------------------------------------------------------


def normalize_device_id(text: str) -> str | None:
    """`0x1a2b3c` -> `1A2B3C`; None when `text` is not a device id."""
    match = DEVICE_ID_PATTERN.fullmatch(text.strip())
    return match[1].upper() if match else None


def _device_id(name: str, word: str) -> str:
    device_id = normalize_device_id(word)
    if device_id is None:
        raise _usage_error(name, f"`{_shorten(word)}` is not a device id: ids are hexadecimal "
                                 f"(up to {MAX_DEVICE_ID_DIGITS} digits), like "
                                 f"`{DEVICE_ID_EXAMPLE}` or `0x1a2b3c`.")
    return device_id


def _device_ids(name: str, words: Sequence[str]) -> tuple[str, ...]:
    # Commas are a natural separator when pasting a list; dict keeps first-seen order.
    pieces = [piece for word in words for piece in word.split(",") if piece]
    if not pieces:
        raise _usage_error(name, f"`{name}` needs at least one device id.")
    ids = tuple(dict.fromkeys(_device_id(name, piece) for piece in pieces))
    if len(ids) > MAX_DEVICES_PER_REQUEST:
        raise _Refused(f"{len(ids)} devices in one request is too many: at most "
                       f"{MAX_DEVICES_PER_REQUEST} at a time. Split the list into several "
                       f"`{SLASH_COMMAND} {name}` requests.")
    return ids


def _split_on_to(name: str, args: Sequence[str]) -> tuple[list[str], str | None]:
    """Ids before the first `to`, and the device type after it (None when there is no `to`)."""
    lowered = [a.lower() for a in args]
    if "to" not in lowered:
        return list(args), None
    cut = lowered.index("to")
    # Unquoted names with spaces (`to Fleet B`) are unambiguous after `to`: join them.
    device_type = " ".join(args[cut + 1 :]).strip()
    if not device_type:
        raise _usage_error(name, "`to` must be followed by a device type name or id.")
    return list(args[:cut]), device_type


def _exact(name: str, args: Sequence[str], count: int) -> None:
    if len(args) != count:
        what = "too many arguments" if len(args) > count else "an argument is missing"
        raise _usage_error(name, f"`{name}`: {what}.")


# -- one parser per verb ---------------------------------------------------------------------

Parser = Callable[["CommandSpec", Sequence[str], date], Command]


def _help(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    if len(args) > 1:
        raise _usage_error("help", "`help` takes at most one command name.")
    if not args:
        return HelpCommand()
    topic = args[0].lower()
    if topic not in COMMANDS:
        close = difflib.get_close_matches(topic, COMMANDS, n=1, cutoff=0.6)
        hint = f" Did you mean `{SLASH_COMMAND} help {close[0]}`?" if close else ""
        raise _Refused(f"There is no command `{_shorten(args[0])}`.{hint} Type "
                       f"`{SLASH_COMMAND} help` for the list.")
    return HelpCommand(topic)


def _no_args(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    _exact(spec.name, args, 0)
    return spec.command()


def _one_device(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    _exact(spec.name, args, 1)
    return spec.command(_device_id(spec.name, args[0]))


def _renew(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    args, by_delete = _split_by_delete(args)
    ids, device_type = _split_on_to("renew", args)
    return RenewCommand(_device_ids("renew", ids), device_type, by_delete)


def _split_by_delete(args: Sequence[str]) -> tuple[list[str], bool]:
    """A trailing `by delete`, removed; `by` followed by anything else is an error."""
    lowered = [a.lower() for a in args]
    if "by" not in lowered:
        return list(args), False
    cut = lowered.index("by")
    if lowered[cut + 1 :] != ["delete"]:
        raise _usage_error("renew", "`by` must end the command, followed by `delete` "
                                    "(`renew <id> by delete` deletes and registers it again).")
    return list(args[:cut]), True


def _transfer(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    ids, device_type = _split_on_to("transfer", args)
    if device_type is None:
        raise _usage_error("transfer", "`transfer` needs a target: add `to <device-type>`.")
    return TransferCommand(_device_ids("transfer", ids), device_type)


def _restart(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    return RestartCommand(_device_ids("restart", args))


def _snooze(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    args, reason = _split_reason(args)
    lowered = [a.lower() for a in args]
    if "for" not in lowered:
        return SnoozeCommand(_device_ids("snooze", args), None, reason)
    cut = lowered.index("for")
    ids, rest = args[:cut], args[cut + 1 :]
    if len(rest) != 1:
        raise _usage_error("snooze", "`for` must be followed by one duration, like `7d`.")
    try:
        duration = parse_duration(rest[0])
    except ValueError as exc:
        raise _usage_error("snooze", f"{exc}.") from None
    if duration <= timedelta(0):
        raise _usage_error("snooze", "A snooze must last longer than zero.")
    return SnoozeCommand(_device_ids("snooze", ids), duration, reason)


def _split_reason(args: Sequence[str]) -> tuple[Sequence[str], str]:
    """`... because <free text>`: the words after the first `because` are the reason."""
    lowered = [a.lower() for a in args]
    if "because" not in lowered:
        return args, ""
    cut = lowered.index("because")
    reason = " ".join(args[cut + 1 :]).strip()
    if not reason:
        raise _usage_error("snooze", "`because` must be followed by the reason.")
    return args[:cut], reason[:MAX_REASON_LENGTH]


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?")


def _unsubscribe(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    _exact("unsubscribe", args, 2)
    device_id = _device_id("unsubscribe", args[0])
    at, date_only = _when(args[1])
    if _utc_date(at) < today:
        raise _usage_error("unsubscribe", f"{args[1]} is in the past (today is "
                                          f"{today.isoformat()}): give today or a later date.")
    return UnsubscribeCommand(device_id, at, date_only)


def _utc_date(at: datetime) -> date:
    try:
        return at.astimezone(UTC).date()
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC date; it is in the past anyway
        return date.min


def _when(word: str) -> tuple[datetime, bool]:
    try:
        if _DATE.fullmatch(word):
            return datetime.combine(date.fromisoformat(word), datetime.min.time(), UTC), True
        if _DATETIME.fullmatch(word.upper()):
            at = datetime.fromisoformat(word.upper())
            return (at if at.tzinfo else at.replace(tzinfo=UTC)), False
    except ValueError:
        pass  # the shape was right but the date does not exist (2025-02-30): same advice
    raise _usage_error("unsubscribe", f"`{_shorten(word)}` is not a date: write YYYY-MM-DD "
                                      "(UTC), or a full ISO time like `2030-01-31T12:00Z`.")


def _expiring(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    as_csv = bool(args) and args[-1].lower() == "csv"
    args = args[:-1] if as_csv else args
    if len(args) > 1:
        raise _usage_error("expiring", "`expiring` takes at most one number of days, then "
                                       "`csv` if you want the file.")
    if not args:
        return ExpiringCommand(csv=as_csv)
    word = args[0].lower().removesuffix("d")
    if not word.isascii() or not word.isdigit() or not 1 <= int(word) <= EXPIRING_MAX_DAYS:
        raise _usage_error("expiring", f"`{_shorten(args[0])}` is not a number of days from 1 "
                                       f"to {EXPIRING_MAX_DAYS}.")
    return ExpiringCommand(int(word), csv=as_csv)


def _cancel(spec: CommandSpec, args: Sequence[str], today: date) -> Command:
    _exact("cancel", args, 1)
    if not JOB_ID_PATTERN.fullmatch(args[0]):
        raise _usage_error("cancel", f"`{_shorten(args[0])}` is not a job id; `{SLASH_COMMAND} "
                                     f"jobs` lists them, like `{JOB_ID_EXAMPLE}`.")
    return CancelCommand(args[0])


# ---------------------------------------------------------------------------------------------
# The commands, each declared once: what it builds, how it parses, its help, the operation the
# policy checks, whether it runs long. Help, parsing and the bot's dispatch all read this table.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    """One `/sigfox` command. `usage` starts with its name; `operation` is what the policy
    checks before it runs (None: anyone may); `slow` commands take minutes, so the bot says it
    started them before it answers."""

    command: Callable[..., Command]  # the command's class
    parse: Parser
    usage: str
    summary: str
    operation: Operation | None
    example: str = ""
    slow: bool = False

    @property
    def name(self) -> str:
        return self.usage.split()[0]


_DECLARED = (
    CommandSpec(HelpCommand, _help, "help [command]",
                "list the commands you may run, or explain one", None, "help renew"),
    CommandSpec(StatusCommand, _one_device, "status <id>",
                "show a device: contract, token, last message", Operation.STATUS,
                "status 1A2B3C"),
    CommandSpec(RenewCommand, _renew, "renew <id> [<id> ...] [to <device-type>] [by delete]",
                "renew devices by the least destructive way that works: restart, transfer or "
                "automatic renewal, else delete and register again (needs approval); "
                "`by delete` asks for delete and re-register explicitly",
                Operation.RENEW, 'renew 1A2B3C 0x4d5e6f to "Fleet B"'),
    CommandSpec(DeleteCommand, _one_device, "delete <id>",
                "delete a device for good (needs approval)", Operation.DELETE, "delete 1A2B3C"),
    CommandSpec(TransferCommand, _transfer, "transfer <id> [<id> ...] to <device-type>",
                "move devices to another device type (needs approval when a token would be "
                "lost)", Operation.TRANSFER, 'transfer 1A2B3C to "Fleet B"'),
    CommandSpec(RestartCommand, _restart, "restart <id> [<id> ...]",
                "bring Off Contract devices back on their contract, history kept",
                Operation.RESTART, "restart 1A2B3C"),
    CommandSpec(UnsubscribeCommand, _unsubscribe, "unsubscribe <id> <date>",
                "end a device's subscription on a date, YYYY-MM-DD in UTC (needs approval)",
                Operation.UNSUBSCRIBE, "unsubscribe 1A2B3C 2030-01-31"),
    CommandSpec(ExpiringCommand, _expiring, "expiring [days] [csv]",
                f"devices whose token ends within that many days (default "
                f"{EXPIRING_DEFAULT_DAYS}), week by week; `csv` posts the complete list as a "
                "file", Operation.EXPIRING, "expiring 14"),
    CommandSpec(JobsCommand, _no_args, "jobs", "list running jobs", Operation.JOBS, "jobs"),
    CommandSpec(CancelCommand, _cancel, "cancel <job>",
                "cancel a job before its first change; after it, stop it for the devices not "
                "touched yet", Operation.CANCEL,
                f"cancel {JOB_ID_EXAMPLE}"),
    CommandSpec(HistoryCommand, _one_device, "history <id>",
                "what the bot did to a device, and who decided", Operation.HISTORY,
                "history 1A2B3C"),
    CommandSpec(AlertsCommand, _no_args, "alerts", "list open alerts and snoozes",
                Operation.ALERTS, "alerts"),
    CommandSpec(SnoozeCommand, _snooze,
                "snooze <id> [<id> ...] [for <duration>] [because <reason>]",
                "silence alerts for devices (default: the configured repeat_after), saying why",
                Operation.SNOOZE, "snooze 1A2B3C for 7d because battery swap booked"),
    CommandSpec(ScanCommand, _no_args, "scan", "scan the fleet for alerts now", Operation.SCAN,
                "scan", slow=True),
    CommandSpec(WhoamiCommand, _no_args, "whoami",
                "show your Slack id, groups and what you may do", None, "whoami"),
    CommandSpec(ConfigCommand, _no_args, "config", "show the approval policy and alert routing",
                None, "config"),
)
COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in _DECLARED}
_SPEC_OF_COMMAND: dict[object, CommandSpec] = {spec.command: spec for spec in _DECLARED}


def spec_of(command: Command) -> CommandSpec:
    """The declaration of a parsed command."""
    return _SPEC_OF_COMMAND[type(command)]
