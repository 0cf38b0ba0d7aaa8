"""The bot's policy and routing file (TOML), named by the `SIGFOX_BOT_CONFIG` environment variable.

Loading is strict on purpose: an operator who mistypes `aprovers` must learn it at start-up, with
the file, the line and the key, rather than discover weeks later that nobody can approve a renewal.
No file at all is legal and gives the safe defaults: anyone may ask, nobody may approve.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from commands.config_errors import ConfigError as ConfigError  # re-exported: callers catch it here
from commands.config_errors import syntax_error, validation_error

CONFIG_ENV_VAR = "SIGFOX_BOT_CONFIG"

# ---------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------

_DURATION_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_DURATION_WHOLE = re.compile(r"(?:\d+[smhdw])+")
# Far below timedelta's limit, far above any sensible setting: a typo, not an overflow.
_MAX_DURATION_SECONDS = 3650 * 86400
_DURATION_EXAMPLE = (
    'write a number and a unit (s, m, h, d or w), like "30s", "5m", "24h", "7d" or "1h30m"'
)


def parse_duration(text: str) -> timedelta:
    """Parse `30s`, `5m`, `24h`, `7d`, `2w` or a combination such as `1h30m` into a timedelta.

    Raises ValueError whose message says what was wrong and shows the expected form.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration written as text, got {text!r}; {_DURATION_EXAMPLE}")
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError(f"empty duration; {_DURATION_EXAMPLE}")
    if not _DURATION_WHOLE.fullmatch(compact):
        raise ValueError(f"{text!r} is not a duration; {_DURATION_EXAMPLE}")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(compact))
    if seconds > _MAX_DURATION_SECONDS:
        raise ValueError(f"{text!r} is too long: durations go up to 10 years (3650d)")
    return timedelta(seconds=seconds)


def _to_duration(value: Any) -> timedelta:
    # A timedelta passes so that code and tests can build models directly.
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"must be longer than zero; {_DURATION_EXAMPLE}")
    return value


Duration = Annotated[timedelta, BeforeValidator(_to_duration), AfterValidator(_positive)]
# A wait that may be none at all: `wait_timer = "0m"` says "start at once" explicitly.
ZeroOrDuration = Annotated[timedelta, BeforeValidator(_to_duration)]

# ---------------------------------------------------------------------------------------------
# Slack ids
# ---------------------------------------------------------------------------------------------

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{2,}")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")
ANYONE = "*"


def _slack_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a Slack id in quotes, got {value!r}")
    # No case folding: Slack ids are upper case, and folding would let a channel *name* such
    # as "general" pass for an id ("GENERAL").
    return value.strip()


def _principal(value: str) -> str:
    if _USER_ID.fullmatch(value) or _GROUP_ID.fullmatch(value):
        return value
    raise ValueError(
        f"{value!r} is not a Slack user or user-group id: user ids start with U or W, "
        'user-group ids with S, like "U0123ABCD" or "S0456EFGH"'
    )


def _requester(value: str) -> str:
    return value if value == ANYONE else _principal(value)


def _channel(value: str) -> str:
    if _CHANNEL_ID.fullmatch(value):
        return value
    raise ValueError(
        f"{value!r} is not a Slack channel id: channel ids start with C or G, like "
        '"C0123ABCD" (in Slack: channel details, at the bottom); channel names are not accepted'
    )


def _approver(value: str) -> str:
    if value == ANYONE:
        # Approval exists to put a named human in the loop; "anyone" would defeat it.
        raise ValueError('"*" is not allowed among approvers: list users or user groups by id')
    return _principal(value)


PrincipalId = Annotated[str, BeforeValidator(_slack_text), AfterValidator(_approver)]
RequesterId = Annotated[str, BeforeValidator(_slack_text), AfterValidator(_requester)]
ChannelId = Annotated[str, BeforeValidator(_slack_text), AfterValidator(_channel)]

# ---------------------------------------------------------------------------------------------
# Other scalar types
# ---------------------------------------------------------------------------------------------

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _to_clock_time(value: Any) -> time:
    # TOML has a native local time (09:00:00); accept it as well as the documented "09:00".
    if isinstance(value, time):
        return value
    if isinstance(value, str) and (match := _HHMM.fullmatch(value.strip())):
        return time(int(match[1]), int(match[2]))
    raise ValueError(f'{value!r} is not a time of day: write 24-hour "HH:MM", like "09:00"')


ClockTime = Annotated[time, BeforeValidator(_to_clock_time)]


def _timezone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not a known time zone: use an IANA name like \"UTC\" or "
            '"Europe/Paris"'
        ) from None
    return value


TimezoneName = Annotated[StrictStr, AfterValidator(_timezone_name)]

GuardedOperationName = Literal["renew", "delete", "transfer", "restart", "unsubscribe"]
"""Operations that need an approval; must equal policy.Operation's guarded members."""

# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


class _Section(BaseModel):
    # Scalars are Strict* types: TOML already types its values, so "30" for a number is a
    # mistake worth reporting. Frozen: the policy reads the config at every decision and must
    # not see it change under it.
    model_config = ConfigDict(extra="forbid", frozen=True)


class OperationPolicy(_Section):
    """Overrides for one operation; an absent key falls back to [policy]."""

    requesters: tuple[RequesterId, ...] | None = None
    approvers: tuple[PrincipalId, ...] | None = None
    allow_self_approval: StrictBool | None = None
    # Distinct approvers this operation needs; None: as built in (0 for a restart and for a
    # transfer that keeps its token, 1 otherwise). 0 lets it run without anyone's approval.
    approvals: StrictInt | None = Field(default=None, ge=0, le=10)
    # An approved job waits this long before its first call to Sigfox: time to cancel.
    wait_timer: ZeroOrDuration = timedelta(0)


class PolicyConfig(_Section):
    requesters: tuple[RequesterId, ...] = (ANYONE,)
    approvers: tuple[PrincipalId, ...] = ()
    allow_self_approval: StrictBool = False
    approval_ttl: Duration = timedelta(hours=24)
    # From this many devices a job needs `large_job_approvals` distinct approvers, none of them
    # the requester (the two-person rule); a renewal or delete that large also asks the
    # requester for a reason. None: no size rule.
    large_job_devices: StrictInt | None = Field(default=None, ge=1)
    large_job_approvals: StrictInt = Field(default=2, ge=1, le=10)
    # Direct-message reminders to those who may decide; None: every [timing] approval_reminder.
    remind_every: Duration | None = None
    # After this long without a decision, `escalation_approvers` may decide too; None: never.
    escalate_after: Duration | None = None
    escalation_approvers: tuple[PrincipalId, ...] = ()
    operations: dict[GuardedOperationName, OperationPolicy] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _escalation_needs_both(self) -> PolicyConfig:
        if self.escalate_after is not None and not self.escalation_approvers:
            raise ValueError("escalate_after is set but escalation_approvers is empty: name the "
                             "users or user groups to ask (or remove escalate_after)")
        return self


class AlertRoute(_Section):
    """Send alerts for devices of these device types or groups (ids or names) to `channel`."""

    channel: ChannelId
    device_types: tuple[StrictStr, ...] = ()
    groups: tuple[StrictStr, ...] = ()

    @model_validator(mode="after")
    def _needs_a_selector(self) -> AlertRoute:
        if not self.groups and not self.device_types:
            raise ValueError(
                "a route needs device_types or groups (or both); for everything else, "
                "set channel in [alerts]"
            )
        return self

    def matches(self, device_type: Iterable[str], group: Iterable[str]) -> bool:
        wanted_types = {v.casefold() for v in self.device_types}
        wanted_groups = {v.casefold() for v in self.groups}
        return any(v.casefold() in wanted_types for v in device_type) or any(
            v.casefold() in wanted_groups for v in group
        )


class AlertsConfig(_Section):
    channel: ChannelId | None = None
    warn_days: StrictInt = Field(default=30, ge=1, le=3650)
    critical_days: StrictInt = Field(default=7, ge=0, le=3650)
    scan_interval: Duration = timedelta(hours=6)
    digest_time: ClockTime = time(9, 0)
    timezone: TimezoneName = "UTC"
    repeat_after: Duration = timedelta(days=7)
    routes: tuple[AlertRoute, ...] = ()

    @field_validator("critical_days")
    @classmethod
    def _critical_within_warn(cls, critical: int, info: ValidationInfo) -> int:
        warn = info.data.get("warn_days")
        if isinstance(warn, int) and critical > warn:
            raise ValueError(
                f"critical_days ({critical}) must not exceed warn_days ({warn}): a token is "
                "warned about first and becomes critical closer to its end"
            )
        return critical

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel_for(
        self, device_type: str | Iterable[str] = (), group: str | Iterable[str] = ()
    ) -> str | None:
        """The channel for a device's alerts: first matching route in file order, else default.

        Pass ids, names or both (e.g. `("5f1a...", "Fleet B")`); matching ignores case.
        """
        types_ = (device_type,) if isinstance(device_type, str) else tuple(device_type)
        groups = (group,) if isinstance(group, str) else tuple(group)
        for route in self.routes:
            if route.matches(types_, groups):
                return route.channel
        return self.channel


class TimingConfig(_Section):
    tick: Duration = timedelta(seconds=30)
    release_retry: Duration = timedelta(minutes=5)
    release_timeout: Duration = timedelta(hours=24)  # holds of many hours are reported
    first_message_poll: Duration = timedelta(minutes=5)
    first_message_timeout: Duration = timedelta(days=7)
    approval_reminder: Duration = timedelta(hours=4)
    # A big job: device steps advanced side by side (each waits for Sigfox's answers), and
    # its progress shown as one card updated at most this often, not one line per device.
    concurrent_steps: StrictInt = Field(default=8, ge=1, le=64)
    progress_interval: Duration = timedelta(seconds=5)
    device_lines_up_to: StrictInt = Field(default=10, ge=1)
    # How long after the client gives up on a destructive call it may still take effect at
    # Sigfox (a request queued at the edge, a bulk job starting late): the bot reads the
    # device to learn what happened only once this has passed, and sends nothing meanwhile.
    landing_margin: Duration = timedelta(minutes=1)
    # A bulk job (restart, transfer, create) runs after Sigfox accepted it, later when its
    # queue is busy: an unanswered submission may take effect this much longer still.
    bulk_job_landing: Duration = timedelta(minutes=10)


class BotConfig(_Section):
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    timing: TimingConfig = Field(default_factory=TimingConfig)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this configuration came from; None for the built-in defaults."""
        return self._source


# ---------------------------------------------------------------------------------------------
# Loading (what a bad file is told: config_errors.py)
# ---------------------------------------------------------------------------------------------


def load_config(path: str | Path | None = None) -> BotConfig:
    """Load the configuration: `path`, else $SIGFOX_BOT_CONFIG, else the built-in defaults."""
    if path is None or str(path) == "":
        path = os.environ.get(CONFIG_ENV_VAR) or None
    if path is None:
        return BotConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{file}: cannot read the configuration file ({exc.strerror or exc}); "
            f"check {CONFIG_ENV_VAR} or the path given",
            path=file,
        ) from exc
    return parse_config(text, file)


def parse_config(text: str, source: Path | None = None) -> BotConfig:
    """Validate TOML text; `source` only names the file in messages."""
    name = str(source) if source else "<config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise syntax_error(exc, text, name, source) from None
    try:
        config = BotConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, text, name, source, BotConfig) from None
    config._source = source
    return config
