"""The alert rules, in one place: which device states raise which alert and at which level,
which alert makes another one needless, and the instants a token's end is compared with.

Storage runs them as set operations inside SQLite (`storage.fleet`), handed the `RULES` below
as query parameters; the delivery reads `INHIBITIONS` (`commands.alerting.stages`).
How each Sigfox field is read is in docs/sigfox-semantics.md.
"""

from __future__ import annotations

from commands.alerting.model import Condition, Level
from commands.config import AlertsConfig
from sigfox.models import DeviceState, TokenState
from storage.fleet import EndingRule, RuleSet, StateRule, Thresholds

DAY = 86_400.0

# A valid token (`token.state` 0) ending within warn_days is a warning, within critical_days
# critical; a device whose device, type and contract renew automatically is not warned.
EXPIRING = EndingRule(Condition.EXPIRING, token_state=TokenState.OK, warning=Level.WARNING,
                      critical=Level.CRITICAL)
# A token Sigfox says is Invalid (state 3): the device sends into the void.
INVALID = StateRule(Condition.INVALID, Level.CRITICAL, token_states=(TokenState.INVALID,))
# Off Contract, said by the token (state 1) or by the device (state 2): it needs a renewal now.
OFF_CONTRACT = StateRule(Condition.OFF_CONTRACT, Level.CRITICAL,
                         token_states=(TokenState.OFF_CONTRACT,),
                         device_states=(DeviceState.OFF_CONTRACT,))

RULES = RuleSet(ending=EXPIRING, states=(INVALID, OFF_CONTRACT))

# (inhibiting, inhibited): while a device has the first alert open, the second one of the same
# device is not announced (it stays open and counted). A device Off Contract needs a renewal
# now: that its token ends soon, or is Invalid, says nothing more.
INHIBITIONS: tuple[tuple[Condition, Condition], ...] = (
    (Condition.OFF_CONTRACT, Condition.EXPIRING),
    (Condition.OFF_CONTRACT, Condition.INVALID),
)

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
