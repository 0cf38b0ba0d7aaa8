"""The alert rules, in one place: which device states raise which alert, at which level, and the
instants a token's end is compared with. Storage runs them as set operations inside SQLite
(`storage.fleet`), parameterised by what is defined here.
"""

from __future__ import annotations

from commands.config import AlertsConfig
from storage.fleet import Thresholds

DAY = 86_400.0

# Sigfox's token states (`token.state` in openapi.json) as people and metrics name them.
TOKEN_STATE_NAMES = {0: "ok", 1: "off_contract", 2: "not_applicable", 3: "invalid", None: "none"}


def token_state_name(code: int | None) -> str:
    return TOKEN_STATE_NAMES.get(code, f"unknown_{code}")


def thresholds(settings: AlertsConfig, now: float) -> Thresholds:
    """The instants the rules compare token ends (and last announcements) with."""
    return Thresholds(
        now=now,
        warn_until=now + settings.warn_days * DAY,
        critical_until=now + settings.critical_days * DAY,
        repeat_before=now - settings.repeat_after.total_seconds(),
    )
