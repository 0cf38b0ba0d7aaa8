from __future__ import annotations

from datetime import timedelta

import pytest

from commands.config import BotConfig, parse_config
from commands.policy import (
    GUARDED_OPERATIONS,
    READ_ONLY_OPERATIONS,
    Actor,
    Operation,
    Policy,
)

ALICE = Actor("U0000ALICE")  # plain user, in no group
BOB = Actor("U00000BOB", frozenset({"S0000OPS1"}))  # approver through the ops group
CAROL = Actor("U000CAROL")  # approver by name
DAVE = Actor("U0000DAVE", frozenset({"S0000DEV1"}))

CONFIG = parse_config(
    """
[policy]
requesters = ["U0000ALICE", "S0000OPS1", "U000CAROL"]
approvers = ["S0000OPS1", "U000CAROL"]
approval_ttl = "12h"

[policy.operations.delete]
requesters = ["U000CAROL"]
approvers = ["U000CAROL"]
allow_self_approval = true

[policy.operations.restart]
approvers = []
"""
)


@pytest.fixture
def policy() -> Policy:
    return Policy(CONFIG)


def test_operation_sets_match_the_config_literal() -> None:
    from typing import get_args

    from commands.config import GuardedOperationName

    assert {op.value for op in GUARDED_OPERATIONS} == set(get_args(GuardedOperationName))
    assert Operation.STATUS in READ_ONLY_OPERATIONS and not Operation.STATUS.guarded
    assert Operation.DELETE.guarded and Operation.DELETE.noun == "deletion"


def test_defaults_let_anyone_ask_and_nobody_approve() -> None:
    policy = Policy(BotConfig())
    for op in Operation:
        assert policy.can_request(DAVE, op).allowed
    for op in GUARDED_OPERATIONS:
        decision = policy.can_approve(BOB, op, requester_id=ALICE.user_id)
        assert not decision.allowed
        assert "Nobody may approve" in decision.reason
        assert "ask an admin to add approvers" in decision.reason


def test_requester_by_user_or_group(policy: Policy) -> None:
    assert policy.can_request(ALICE, Operation.RENEW).allowed
    assert policy.can_request(BOB, Operation.RENEW).allowed
    refused = policy.can_request(DAVE, Operation.RENEW)
    assert not refused.allowed
    assert "[policy] requesters" in refused.reason
    assert "ask an admin to add you" in refused.reason


def test_read_only_operations_follow_the_default_requesters(policy: Policy) -> None:
    for op in READ_ONLY_OPERATIONS:
        assert policy.can_request(ALICE, op).allowed
        assert not policy.can_request(DAVE, op).allowed


def test_per_operation_requesters_override(policy: Policy) -> None:
    refused = policy.can_request(ALICE, Operation.DELETE)
    assert not refused.allowed
    assert "[policy.operations.delete] requesters" in refused.reason
    assert "deletion" in refused.reason
    assert policy.can_request(CAROL, Operation.DELETE).allowed


def test_approver_by_group(policy: Policy) -> None:
    decision = policy.can_approve(BOB, Operation.RENEW, requester_id=ALICE.user_id)
    assert decision.allowed
    assert "S0000OPS1" in decision.reason


def test_non_approver_is_told_what_to_do(policy: Policy) -> None:
    decision = policy.can_approve(ALICE, Operation.RENEW, requester_id=CAROL.user_id)
    assert not decision.allowed
    assert decision.reason.startswith("Only approvers listed in [policy] approvers")
    assert "ask an admin to add you or your user group" in decision.reason


def test_self_approval_refused_by_default(policy: Policy) -> None:
    decision = policy.can_approve(BOB, Operation.RENEW, requester_id=BOB.user_id)
    assert not decision.allowed
    assert "You requested this renewal" in decision.reason
    assert "allow_self_approval is off" in decision.reason


def test_self_approval_allowed_per_operation(policy: Policy) -> None:
    assert policy.can_approve(CAROL, Operation.DELETE, requester_id=CAROL.user_id).allowed
    # the delete override replaces the approver list: the ops group no longer approves deletes
    assert not policy.can_approve(BOB, Operation.DELETE, requester_id=CAROL.user_id).allowed


def test_explicitly_empty_approvers_means_nobody(policy: Policy) -> None:
    decision = policy.can_approve(CAROL, Operation.RESTART, requester_id=ALICE.user_id)
    assert not decision.allowed
    assert "[policy.operations.restart] approvers is empty" in decision.reason


def test_read_only_operations_have_nothing_to_approve(policy: Policy) -> None:
    decision = policy.can_approve(CAROL, Operation.STATUS, requester_id=ALICE.user_id)
    assert not decision.allowed
    assert "needs no approval" in decision.reason


def test_approval_ttl_is_exposed(policy: Policy) -> None:
    assert policy.approval_ttl == timedelta(hours=12)


def test_decisions_read_the_config_at_call_time() -> None:
    current = {"config": BotConfig()}
    policy = Policy(lambda: current["config"])
    assert not policy.can_approve(BOB, Operation.RENEW, ALICE.user_id).allowed
    current["config"] = CONFIG
    assert policy.can_approve(BOB, Operation.RENEW, ALICE.user_id).allowed
    assert policy.approval_ttl == timedelta(hours=12)


def test_allowed_operations_for_help(policy: Policy) -> None:
    assert Operation.DELETE not in policy.allowed_operations(ALICE)
    assert Operation.RENEW in policy.allowed_operations(ALICE)
    assert policy.allowed_operations(DAVE) == set()


def test_cancel_by_requester_or_approver(policy: Policy) -> None:
    assert policy.can_cancel(ALICE, Operation.RENEW, requester_id=ALICE.user_id).allowed
    assert policy.can_cancel(BOB, Operation.RENEW, requester_id=ALICE.user_id).allowed
    refused = policy.can_cancel(DAVE, Operation.RENEW, requester_id=ALICE.user_id)
    assert not refused.allowed
    assert "<@U0000ALICE>" in refused.reason


# -- approvals that scale with the risk -------------------------------------------------------

SCALED = parse_config(
    """
[policy]
approvers = ["S0000OPS1", "U000CAROL"]
allow_self_approval = true
large_job_devices = 50
large_job_approvals = 2
escalate_after = "8h"
escalation_approvers = ["U0000DAVE"]

[policy.operations.restart]
approvals = 0
wait_timer = "0m"

[policy.operations.unsubscribe]
approvals = 3
wait_timer = "15m"
"""
)


def test_approvals_needed_per_operation_and_size() -> None:
    policy = Policy(SCALED)
    assert policy.approvals_needed(Operation.RENEW, 1, built_in=1) == 1
    assert policy.approvals_needed(Operation.RENEW, 49, built_in=1) == 1
    assert policy.approvals_needed(Operation.RENEW, 50, built_in=1) == 2  # two-person rule
    assert policy.approvals_needed(Operation.TRANSFER, 80, built_in=0) == 0  # keeps its token
    assert policy.approvals_needed(Operation.RESTART, 500, built_in=0) == 0  # configured 0
    assert policy.approvals_needed(Operation.UNSUBSCRIBE, 1, built_in=1) == 3
    assert policy.approvals_needed(Operation.UNSUBSCRIBE, 60, built_in=1) == 3  # never lowered


def test_defaults_are_todays_rules() -> None:
    policy = Policy(BotConfig())
    assert policy.approvals_needed(Operation.DELETE, 10_000, built_in=1) == 1
    assert policy.wait_timer(Operation.DELETE) == timedelta(0)
    assert not policy.is_large(10_000)


def test_wait_timer_per_operation() -> None:
    policy = Policy(SCALED)
    assert policy.wait_timer(Operation.UNSUBSCRIBE) == timedelta(minutes=15)
    assert policy.wait_timer(Operation.RESTART) == timedelta(0)
    assert policy.wait_timer(Operation.DELETE) == timedelta(0)


def test_requester_never_one_of_two_even_with_self_approval() -> None:
    policy = Policy(SCALED)
    assert policy.can_approve(CAROL, Operation.RENEW, CAROL.user_id, needed=1).allowed
    refused = policy.can_approve(CAROL, Operation.RENEW, CAROL.user_id, needed=2)
    assert not refused.allowed and "two-person rule" in refused.reason
    assert policy.can_approve(BOB, Operation.RENEW, CAROL.user_id, needed=2).allowed


def test_escalation_approvers_decide_only_once_escalated() -> None:
    policy = Policy(SCALED)
    assert not policy.can_approve(DAVE, Operation.RENEW, ALICE.user_id).allowed
    allowed = policy.can_approve(DAVE, Operation.RENEW, ALICE.user_id, escalated=True)
    assert allowed.allowed and "escalation_approvers" in allowed.reason
    # The first list keeps its right.
    assert policy.can_approve(CAROL, Operation.RENEW, ALICE.user_id, escalated=True).allowed
    assert policy.deciders(Operation.RENEW) == ("S0000OPS1", "U000CAROL")
    assert policy.deciders(Operation.RENEW, escalated=True) == ("S0000OPS1", "U000CAROL",
                                                                "U0000DAVE")
