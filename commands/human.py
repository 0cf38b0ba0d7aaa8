"""The one place that turns times, durations, counts, channels and people into words.

Every message the bot writes (Slack, the terminal, the CLI, logs meant for people) goes through
these functions, so a duration always reads `1 day` or `1 hour 30 minutes` (never Python's
`1 day, 0:00:00`), a date always reads `2026-11-24`, a moment `2026-11-24 04:11 UTC`, and a
list that was cut always says how much it left out.

Only the standard library is imported: every package (the Slack edge, the core, the demo) may
use this module without pulling anything else in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

DAY = 86_400.0

_UNITS = (("week", 7 * 86_400), ("day", 86_400), ("hour", 3_600), ("minute", 60),
          ("second", 1))

NameOf = Callable[[str], str | None]


# --------------------------------------------------------------------------- counts


def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 device`, `3 devices`, `1,204 devices`; `words` for irregular plurals."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def and_more(total: int, shown: int, how: str = "") -> str:
    """What a cut list left out: `and 3 more`, or `and 3 more: <how to see them>`; "" if none."""
    left = total - shown
    if left <= 0:
        return ""
    return f"and {left:,} more" + (f": {how}" if how else "")


# --------------------------------------------------------------------------- durations


def duration(value: timedelta | float, *, parts: int = 2) -> str:
    """A duration as people say it: `1 day`, `6 hours`, `1 hour 30 minutes`, `45 seconds`.

    Whole weeks read as weeks only when nothing smaller is left (`2 weeks`, but `10 days`).
    At most `parts` units are named, largest first; the rest is rounded off.
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    negative = seconds < 0
    remaining = round(abs(seconds))
    if remaining == 0:
        return "0 seconds"
    words: list[str] = []
    for unit, size in _UNITS:
        if unit == "week" and remaining % size:
            continue  # "10 days" reads better than "1 week 3 days"
        count, remaining = divmod(remaining, size)
        if count:
            words.append(plural(count, unit))
        if len(words) == parts:
            break
    text = " ".join(words)
    return f"minus {text}" if negative else text


def short_duration(seconds: float) -> str:
    """For a waiting line that changes every minute: `0 s`, `45 s`, `10 min`, `2 h 5 min`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return plural(hours // 24, "day")


# --------------------------------------------------------------------------- dates


def _moment(ts: float | datetime, tz: tzinfo | None) -> datetime:
    if isinstance(ts, datetime):
        return ts.astimezone(tz or UTC)
    return datetime.fromtimestamp(ts, tz=tz or UTC)


def day(ts: float | datetime | None, tz: tzinfo | None = None, *, none: str = "—") -> str:
    """A calendar day: `2026-11-24` (UTC unless `tz`); `none` when there is no date."""
    if ts is None:
        return none
    return _moment(ts, tz).strftime("%Y-%m-%d")


def day_ms(ms: float | None, tz: tzinfo | None = None, *, none: str = "—") -> str:
    """A Sigfox time (milliseconds since the epoch; 0 means none) as a calendar day."""
    return day(ms / 1000, tz) if ms else none


def moment(ts: float | datetime | None, tz: tzinfo | None = None, *, seconds: bool = False,
           none: str = "—") -> str:
    """A moment: `2026-11-24 04:11 UTC` (with `:05` seconds when asked)."""
    if ts is None:
        return none
    fmt = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
    return _moment(ts, tz).strftime(fmt)


def iso(ts: float | None) -> str | None:
    """For machines (JSON): `2026-11-24T04:11:13Z`; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock(ts: float, tz: tzinfo | None = None) -> str:
    """The time of day only: `04:11`."""
    return _moment(ts, tz).strftime("%H:%M")


def week_of(start: datetime | object) -> str:
    """A week by its Monday: `week of Mon 30 Nov`."""
    return f"week of {start:%a %d %b}"


def file_stamp(ts: float, tz: tzinfo | None = None) -> str:
    """For file names: `20261124-0411`."""
    return _moment(ts, tz).strftime("%Y%m%d-%H%M")


def relative(ts: float, now: float) -> str:
    """How far `ts` is from `now`, in days: `in 3 days`, `within a day`, `ended 2 days ago`."""
    days = (ts - now) / DAY
    if days < 0:
        ago = int(-days)
        return "ended today" if ago == 0 else f"ended {plural(ago, 'day')} ago"
    if days < 1:
        return "within a day"
    return f"in {plural(round(days), 'day')}"


def day_and_relative(ts: float | None, tz: tzinfo | None, now: float | None) -> str:
    """`2026-11-24 (in 3 days)`; only the day when `now` is None."""
    if ts is None:
        return "(no end date)"
    if now is None:
        return day(ts, tz)
    return f"{day(ts, tz)} ({relative(ts, now)})"


# --------------------------------------------------------------------------- people, channels


def person(user_id: str, name_of: NameOf | None = None) -> str:
    """`@bob` when the name is known, else the id as `@U0BOB`."""
    name = name_of(user_id) if name_of and user_id else None
    return f"@{name or user_id}"


def channel(channel_id: str | None, name_of: NameOf | None = None, *,
            none: str = "the default channel") -> str:
    """`#fleet-ops` when the name is known, else `#C0123ABCD`; `none` when there is none."""
    if not channel_id:
        return none
    name = name_of(channel_id) if name_of else None
    return f"#{name or channel_id}"


def slack_person(user_id: str) -> str:
    """A mention Slack shows as the person's name in every reader's client."""
    return f"<!subteam^{user_id}>" if user_id.startswith("S") else f"<@{user_id}>"


def slack_channel(channel_id: str | None, *, none: str = "no channel") -> str:
    """A channel link Slack shows as `#name`."""
    return f"<#{channel_id}>" if channel_id else none


# --------------------------------------------------------------------------- devices


def device(device_id: str, name: str = "", device_type: str = "", *, code: bool = False) -> str:
    """A device said once: `801B103 Pallet tracker`, not `801B103 Pallet tracker 801B103
    (Pallet tracker)`. The id leads (in code font for Slack with `code`); the name follows
    without the id it often repeats; the type only when the name does not already say it."""
    words = " ".join(w for w in name.split() if w.casefold() != device_id.casefold())
    if device_type and device_type.casefold() not in words.casefold():
        words = f"{words} ({device_type})" if words else device_type
    lead = f"`{device_id}`" if code else device_id
    return f"{lead} {words}".rstrip()


# --------------------------------------------------------------------------- pictures


_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: int, largest: int, width: int = 20) -> str:
    """A horizontal bar of unicode blocks, `width` cells for `largest` (at least a sliver > 0)."""
    if value <= 0 or largest <= 0:
        return ""
    eighths = max(1, round(value / largest * width * 8))
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")
