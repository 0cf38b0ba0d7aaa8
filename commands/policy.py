"""Who may ask for what, and who may approve it. Deny by default.

The policy holds no state of its own: every decision reads the configuration at call time, so
a reloaded configuration (pass a callable returning the current one) takes effect at once and a
refusal always reflects the file the operators can read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import cast

from commands.config import (
    ANYONE,
    BotConfig,
    GuardedOperationName,
    OperationPolicy,
    PolicyConfig,
)


class Operation(StrEnum):
    # Guarded: they change or destroy something at Sigfox, so they need an approval.
    RENEW = "renew"
    DELETE = "delete"
    TRANSFER = "transfer"
    RESTART = "restart"
    UNSUBSCRIBE = "unsubscribe"
    # Read-only or bookkeeping: any requester may run them.
    STATUS = "status"
    EXPIRING = "expiring"
    JOBS = "jobs"
    HISTORY = "history"
    ALERTS = "alerts"
    SNOOZE = "snooze"
    CANCEL = "cancel"
    SCAN = "scan"

    @property
    def guarded(self) -> bool:
        """True when the operation changes the fleet: requesters and approvers apply to it.
        Whether a given request waits for an approval is the workflow's call (a restart never
        does, a transfer only when it loses a token)."""
        return self in GUARDED_OPERATIONS

    @property
    def noun(self) -> str:
        """How messages name one such request: "a colleague must approve this deletion"."""
        return _NOUNS.get(self, f"{self.value} request")


GUARDED_OPERATIONS: frozenset[Operation] = frozenset(
    {Operation.RENEW, Operation.DELETE, Operation.TRANSFER, Operation.RESTART,
     Operation.UNSUBSCRIBE}
)
READ_ONLY_OPERATIONS: frozenset[Operation] = frozenset(Operation) - GUARDED_OPERATIONS

_NOUNS: dict[Operation, str] = {
    Operation.RENEW: "renewal",
    Operation.DELETE: "deletion",
    Operation.TRANSFER: "transfer",
    Operation.RESTART: "restart",
    Operation.UNSUBSCRIBE: "unsubscription",
}


@dataclass(frozen=True)
class Actor:
    """A Slack user and the user groups they belong to (resolved by the caller)."""

    user_id: str
    group_ids: frozenset[str] = frozenset()

    def matches(self, principals: Iterable[str]) -> str | None:
        """The first entry of `principals` that designates this actor, or None."""
        for principal in principals:
            if principal == self.user_id or principal in self.group_ids:
                return principal
        return None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


ConfigSource = BotConfig | PolicyConfig | Callable[[], BotConfig | PolicyConfig]


class Policy:
    """Authorization for requests and approvals, read from [policy] at every call."""

    def __init__(self, config: ConfigSource) -> None:
        self._config = config

    # -- what the configuration says, per operation -------------------------------------------

    @property
    def settings(self) -> PolicyConfig:
        config = self._config() if callable(self._config) else self._config
        return config.policy if isinstance(config, BotConfig) else config

    @property
    def approval_ttl(self) -> timedelta:
        """How long an approval request stays open before it expires."""
        return self.settings.approval_ttl

    def requesters_for(self, operation: Operation) -> tuple[str, ...]:
        override = self._override(operation)
        if override is not None and override.requesters is not None:
            return override.requesters
        return self.settings.requesters

    def approvers_for(self, operation: Operation) -> tuple[str, ...]:
        if not operation.guarded:
            return ()
        override = self._override(operation)
        if override is not None and override.approvers is not None:
            return override.approvers
        return self.settings.approvers

    def self_approval_allowed(self, operation: Operation) -> bool:
        override = self._override(operation)
        if override is not None and override.allow_self_approval is not None:
            return override.allow_self_approval
        return self.settings.allow_self_approval

    def approvals_needed(self, operation: Operation, devices: int, built_in: int) -> int:
        """Distinct approvers a request needs: the operation's `approvals` (else `built_in`, what
        the workflow needs without configuration), raised to `large_job_approvals` for a job of
        `large_job_devices` or more. An operation that needs none stays at none."""
        override = self._override(operation)
        needed = built_in if override is None or override.approvals is None else override.approvals
        if needed and self.is_large(devices):
            needed = max(needed, self.settings.large_job_approvals)
        return needed

    def is_large(self, devices: int) -> bool:
        threshold = self.settings.large_job_devices
        return threshold is not None and devices >= threshold

    def wait_timer(self, operation: Operation) -> timedelta:
        """How long an approved job of this operation waits before it starts."""
        override = self._override(operation)
        return override.wait_timer if override is not None else timedelta(0)

    def remind_every(self, fallback: timedelta) -> timedelta:
        return self.settings.remind_every or fallback

    def requester_may_approve(self, operation: Operation, needed: int) -> bool:
        """Self-approval counts only for a one-person decision: the two-person rule means two
        people besides the requester."""
        return needed <= 1 and self.self_approval_allowed(operation)

    def allowed_operations(self, actor: Actor) -> set[Operation]:
        """Everything `actor` may request (for a help text that shows only those)."""
        return {op for op in Operation if self.can_request(actor, op).allowed}

    # -- decisions -----------------------------------------------------------------------------

    def can_request(self, actor: Actor, operation: Operation) -> Decision:
        requesters = self.requesters_for(operation)
        where = self._table(operation, "requesters")
        if ANYONE in requesters:
            return Decision(True, f"anyone may request this ({where} contains \"*\")")
        if (match := actor.matches(requesters)) is not None:
            return Decision(True, f"you are allowed by {where} (as {match})")
        if not requesters:
            return Decision(False, f"Nobody may request a {operation.noun}: {where} is empty in "
                                   "the bot's configuration; ask an admin to add you or your "
                                   "user group.")
        return Decision(False, f"You may not request a {operation.noun}: only users and user "
                               f"groups listed in {where} may; ask an admin to add you or one "
                               "of your user groups.")

    def can_approve(self, actor: Actor, operation: Operation, requester_id: str, *,
                    needed: int = 1, escalated: bool = False) -> Decision:
        """May `actor` decide a request of `requester_id` needing `needed` approvers? Once the
        request is escalated, [policy] escalation_approvers may too (the first list keeps its
        right)."""
        if not operation.guarded:
            return Decision(False, f"`{operation.value}` needs no approval; there is nothing to "
                                   "approve.")
        approvers = self.approvers_for(operation)
        where = self._table(operation, "approvers")
        match = actor.matches(approvers)
        if match is None and escalated:
            match = actor.matches(self.settings.escalation_approvers)
            where = "[policy] escalation_approvers (the request was escalated)"
        if match is None:
            return Decision(False, self._not_an_approver(operation, where, bool(approvers)))
        if actor.user_id == requester_id and needed > 1:
            return Decision(False, f"You requested this {operation.noun}; it needs {needed} "
                                   "approvers other than you (the two-person rule for large "
                                   "jobs).")
        if actor.user_id == requester_id and not self.requester_may_approve(operation, needed):
            return Decision(False, f"You requested this {operation.noun}; a colleague listed as "
                                   f"approver in {where} must approve it (allow_self_approval "
                                   "is off).")
        return Decision(True, f"you are an approver in {where} (as {match})")

    def deciders(self, operation: Operation, *, escalated: bool = False) -> tuple[str, ...]:
        """Users and user groups who may decide a request of `operation` now."""
        first = self.approvers_for(operation)
        if not escalated:
            return first
        return first + tuple(p for p in self.settings.escalation_approvers if p not in first)

    def can_cancel(self, actor: Actor, operation: Operation, requester_id: str) -> Decision:
        """A job may be cancelled by whoever requested it or by anyone who could approve it."""
        if actor.user_id == requester_id:
            return Decision(True, "you requested this job")
        if actor.matches(self.approvers_for(operation)) is not None:
            return Decision(True, f"you are an approver in {self._table(operation, 'approvers')}")
        return Decision(False, f"Only <@{requester_id}>, who requested this {operation.noun}, "
                               "or an approver may cancel it; ask one of them.")

    # -- helpers ---------------------------------------------------------------------------------

    def _override(self, operation: Operation) -> OperationPolicy | None:
        # A read-only operation is not a key of the table: `get` then finds nothing.
        return self.settings.operations.get(cast(GuardedOperationName, operation.value))

    def _table(self, operation: Operation, key: str) -> str:
        """Name the table a rule comes from, so a refusal tells the admin what to edit."""
        override = self._override(operation)
        if override is not None and getattr(override, key) is not None:
            return f"[policy.operations.{operation.value}] {key}"
        return f"[policy] {key}"

    @staticmethod
    def _not_an_approver(operation: Operation, where: str, anyone_listed: bool) -> str:
        if not anyone_listed:
            return (f"Nobody may approve a {operation.noun} yet: {where} is empty in the bot's "
                    "configuration; ask an admin to add approvers (Slack user or user-group "
                    "ids).")
        return (f"Only approvers listed in {where} may approve a {operation.noun}; ask an admin "
                "to add you or your user group.")
