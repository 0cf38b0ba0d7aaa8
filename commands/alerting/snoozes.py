"""Snoozes: people silencing a device's alerts for a while, or until they resolve.

A snooze is the silence stage of the delivery (`commands.alerting.stages`): silenced
alerts stay open and counted, they are just not announced.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from commands import human
from commands.alerting.model import Condition, SnoozeInfo, SnoozeOutcome
from commands.config import AlertsConfig
from commands.policy import Actor, Operation, Policy
from commands.ports import Clock
from sigfox.models import normalize_device_id
from storage.fleet import FleetStore

Audit = Callable[..., None]


class Snoozes:
    """Records snoozes asked for by people the policy allows, and audits them."""

    def __init__(self, fleet: FleetStore, *, policy: Callable[[], Policy],
                 settings: Callable[[], AlertsConfig], clock: Clock,
                 audit: Audit | None = None) -> None:
        self.fleet = fleet
        self._policy = policy
        self._settings = settings
        self.clock = clock
        self._audit = audit

    def snooze(
        self,
        device_id: str,
        *,
        actor: Actor,
        duration: timedelta | None,
        reason: str = "",
        condition: Condition | str | None = None,
    ) -> SnoozeOutcome:
        """Silence a device's alerts for `duration`, or until they resolve (None)."""
        decision = self._policy().can_request(actor, Operation.SNOOZE)
        if not decision.allowed:
            return SnoozeOutcome(False, decision.reason)
        try:
            did = normalize_device_id(device_id)
            wanted = Condition(condition) if condition else None
        except ValueError as error:
            return SnoozeOutcome(False, f"{error}.")
        refusal = self._snooze_refusal(did, wanted, duration)
        if refusal:
            return SnoozeOutcome(False, refusal)
        return self._record_snooze(did, wanted, duration, actor.user_id, reason.strip())

    def _snooze_refusal(
        self, device_id: str, condition: Condition | None, duration: timedelta | None
    ) -> str:
        if duration is not None and duration <= timedelta(0):
            return "A snooze needs a duration longer than zero."
        if duration is None and not self._has_open_alert(device_id, condition):
            what = f"{condition.label} alert" if condition else "open alert"
            return (f"Device {device_id} has no {what} to snooze until resolved; snooze it "
                    "for a duration instead.")
        return ""

    def _has_open_alert(self, device_id: str, condition: Condition | None) -> bool:
        return any(a["state"] == "open" and (condition is None or a["condition"] == condition)
                   for a in self.fleet.alerts_of(device_id))

    def _record_snooze(
        self, device_id: str, condition: Condition | None, duration: timedelta | None,
        who: str, reason: str,
    ) -> SnoozeOutcome:
        now = self.clock.now()
        until = None if duration is None else now + duration.total_seconds()
        why = reason or "no reason given"
        snooze_id = self.fleet.add_snooze(device_id, condition or "", until, who, why, now)
        if self._audit is not None:
            self._audit(who, "snooze", now, device_id=device_id, outcome="ok",
                        details={"condition": condition or "", "until": until, "reason": why})
        info = SnoozeInfo(snooze_id, device_id, condition or "", until, who, why, now)
        return SnoozeOutcome(True, snooze_text(info, self._settings().tz), info)


def snooze_text(info: SnoozeInfo, tz: ZoneInfo) -> str:
    what = f"{Condition(info.condition).label} alerts" if info.condition else "alerts"
    until = "until they resolve" if info.until is None else f"until {human.moment(info.until, tz)}"
    return (f"Snoozed {what} of device {info.device_id} {until}, by <@{info.snoozed_by}>: "
            f"{info.reason}.")
