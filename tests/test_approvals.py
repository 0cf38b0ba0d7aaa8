"""Approvals that scale with the risk, in the core: N distinct approvers, reminders and
escalation dated from the database, the wait timer, the reason of a large request."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.core import APPROVER, REQUESTER, CoreHarness, Fleet, build_fleet, make_core

from commands.config import BotConfig, parse_config
from commands.planning import Request
from commands.policy import Actor
from commands.ports import ProgressKind, Target
from commands.states import Kind, WorkflowState
from commands.workflows import Outcome

SECOND = Actor("U0SECOND")
ESCALATION = Actor("U0ESCALATE")
SCALED = """
[policy]
requesters = ["*"]
approvers = ["U0APPROVE", "U0REQUEST", "U0SECOND"]
allow_self_approval = true
approval_ttl = "2h"
large_job_devices = 2
large_job_approvals = 2
remind_every = "10m"
escalate_after = "30m"
escalation_approvers = ["U0ESCALATE"]

[policy.operations.delete]
wait_timer = "15m"

[timing]
tick = "1s"
"""


@pytest.fixture
def backend(make_simulator):
    return make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)


@pytest.fixture
def fleet(backend) -> Fleet:
    return build_fleet(backend)


@pytest.fixture
def harness(backend, fleet: Fleet, tmp_path: Path) -> CoreHarness:
    return make_core(backend, tmp_path / "bot.db", config=parse_config(SCALED))


def request(harness: CoreHarness, kind: Kind, *device_ids: str, reason: str = "",
            actor: Actor = REQUESTER) -> Outcome:
    return harness.core.request(Request(kind, actor, tuple(device_ids), Target("C0CHAN", ""),
                                        reason=reason))


def state_of(harness: CoreHarness, workflow_id: int | None) -> str:
    assert workflow_id is not None
    workflow = harness.core.store.get_workflow(workflow_id)
    assert workflow is not None
    return workflow.state


def second_without_token(harness: CoreHarness, fleet: Fleet) -> str:
    """Another device with no token: renewed by delete like `fleet.no_token`, in one job."""
    return harness.simulator.world.add_device("BEEF04", device_type_id=fleet.type_a,
                                              token="none").id


def large_renewal(harness: CoreHarness, fleet: Fleet) -> Outcome:
    outcome = request(harness, Kind.RENEW, fleet.no_token, second_without_token(harness, fleet),
                      reason="batch 7 expired in the field")
    assert outcome.ok, outcome.message
    return outcome


def test_a_large_job_needs_two_distinct_approvers(harness: CoreHarness, fleet: Fleet) -> None:
    outcome = large_renewal(harness, fleet)
    assert "2 approvers other than you" in outcome.message
    approval_id = outcome.approval_id
    assert approval_id is not None

    first = harness.core.decide(approval_id, APPROVER, approve=True)
    assert first.ok and "1 of 2" in first.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.AWAITING_APPROVAL
    again = harness.core.decide(approval_id, APPROVER, approve=True)
    assert not again.ok and "already approved" in again.message
    # The requester is an approver and self-approval is on, yet not one of the two.
    own = harness.core.decide(approval_id, REQUESTER, approve=True)
    assert not own.ok and "two-person rule" in own.message
    harness.core.tick()
    assert harness.calls("DELETE", "/v2/devices/") == []

    second = harness.core.decide(approval_id, SECOND, approve=True)
    assert second.ok, second.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.APPROVED
    votes = harness.core.store.votes(approval_id)
    assert [v.user_id for v in votes] == [APPROVER.user_id, SECOND.user_id]


def test_one_reject_refuses_and_keeps_its_reason(harness: CoreHarness, fleet: Fleet) -> None:
    outcome = large_renewal(harness, fleet)
    assert outcome.approval_id is not None
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    rejected = harness.core.decide(outcome.approval_id, SECOND, approve=False,
                                   reason="  wrong   batch ")
    assert rejected.ok
    assert state_of(harness, outcome.workflow_id) == WorkflowState.REJECTED
    assert any("Rejected by <@U0SECOND>: wrong batch" in t for t in harness.notifier.texts())
    audit = harness.core.store.audit_entries(workflow_id=outcome.workflow_id)
    assert any(a.action == "rejected" and a.details.get("reason") == "wrong batch"
               for a in audit)


def test_a_large_renewal_needs_a_reason(harness: CoreHarness, fleet: Fleet) -> None:
    refused = request(harness, Kind.RENEW, fleet.no_token, second_without_token(harness, fleet))
    assert not refused.ok and "say why" in refused.message
    assert harness.core.store.list_workflows() == []
    outcome = request(harness, Kind.RENEW, fleet.no_token, "BEEF04",
                      reason="batch 7 expired in the field")
    assert any("Reason: batch 7 expired in the field" in t for t in harness.notifier.texts())
    history = harness.core.store.device_history(fleet.no_token)
    assert any("batch 7" in e.text for e in history)
    approval = harness.core.store.get_approval(outcome.approval_id or 0)
    assert approval is not None and approval.request_reason == "batch 7 expired in the field"


def test_small_jobs_keep_todays_single_approval(harness: CoreHarness, fleet: Fleet) -> None:
    outcome = request(harness, Kind.RENEW, fleet.no_token)
    assert outcome.ok and outcome.approval_id is not None
    assert harness.core.decide(outcome.approval_id, REQUESTER, approve=True).ok  # self: allowed
    assert state_of(harness, outcome.workflow_id) == WorkflowState.APPROVED


def test_reminders_are_dated_from_the_request_and_stop_when_decided(
    harness: CoreHarness, fleet: Fleet, backend, tmp_path: Path
) -> None:
    outcome = large_renewal(harness, fleet)
    reminders = lambda h: [p for p in h.notifier.events if p.kind == ProgressKind.REMINDER]  # noqa: E731
    harness.clock.advance(9 * 60)
    harness.core.tick()
    assert reminders(harness) == []
    harness.clock.advance(60)
    harness.core.tick()
    harness.core.tick()
    [first] = reminders(harness)
    assert first.details["deciders"] == ["U0APPROVE", "U0REQUEST", "U0SECOND"]
    assert "U0REQUEST" in first.details["excluded"]  # never asked to approve their own job

    # A restart (a new core on the same database) 4 minutes later changes no date.
    harness.clock.advance(4 * 60)
    restarted = make_core(backend, tmp_path / "bot.db", config=parse_config(SCALED),
                          clock=harness.clock)
    restarted.core.resume()
    harness.clock.advance(5 * 60)  # 19 min: the second is due at 20
    restarted.core.tick()
    assert reminders(restarted) == []
    harness.clock.advance(60)
    restarted.core.tick()
    assert len(reminders(restarted)) == 1

    assert outcome.approval_id is not None
    restarted.core.decide(outcome.approval_id, APPROVER, approve=False, reason="no")
    harness.clock.advance(3600)
    restarted.core.tick()
    assert len(reminders(restarted)) == 1


def test_escalation_once_after_the_delay_then_the_second_list_decides(
    harness: CoreHarness, fleet: Fleet
) -> None:
    outcome = request(harness, Kind.RENEW, fleet.no_token)
    assert outcome.approval_id is not None
    early = harness.core.decide(outcome.approval_id, ESCALATION, approve=True)
    assert not early.ok and "Only approvers" in early.message
    harness.clock.advance(30 * 60)
    harness.core.tick()
    harness.core.tick()
    [escalated] = [p for p in harness.notifier.events if p.kind == ProgressKind.ESCALATED]
    assert escalated.details["asked"] == ["U0ESCALATE"]
    assert "<@U0ESCALATE>" in escalated.text and "30 min" in escalated.text
    decided = harness.core.decide(outcome.approval_id, ESCALATION, approve=True)
    assert decided.ok, decided.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.APPROVED


def test_wait_timer_cancelled_in_time_sends_nothing(harness: CoreHarness, fleet: Fleet) -> None:
    outcome = request(harness, Kind.DELETE, fleet.no_token)
    assert outcome.approval_id is not None
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.advance(14 * 60)
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.APPROVED
    countdown = [p for p in harness.notifier.events
                 if p.kind == ProgressKind.WAITING and p.details.get("wait") == "wait_timer"]
    assert "starts in 15 min" in countdown[0].text and "starts in 1 min" in countdown[-1].text
    assert harness.core.cancel(outcome.workflow_id or 0, REQUESTER).ok
    harness.advance(3600)
    harness.core.tick()
    assert harness.calls("DELETE", "/v2/devices/") == []
    assert state_of(harness, outcome.workflow_id) == WorkflowState.CANCELLED


def test_wait_timer_survives_a_restart_then_runs(
    harness: CoreHarness, fleet: Fleet, backend, tmp_path: Path
) -> None:
    outcome = request(harness, Kind.DELETE, fleet.no_token)
    assert outcome.approval_id is not None
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.advance(5 * 60)
    restarted = make_core(backend, tmp_path / "bot.db", config=parse_config(SCALED),
                          clock=harness.clock)
    restarted.core.resume()
    assert harness.calls("DELETE", "/v2/devices/") == []  # the restart did not start it early
    harness.advance(10 * 60)
    restarted.core.tick()
    assert len(harness.calls("DELETE", f"/v2/devices/{fleet.no_token}", 204)) == 1


def test_restart_needs_no_approval_and_can_be_made_to(backend, fleet: Fleet,
                                                      tmp_path: Path) -> None:
    needs_one = BotConfig.model_validate({
        **parse_config(SCALED).model_dump(),
        "policy": {**parse_config(SCALED).policy.model_dump(),
                   "operations": {"restart": {"approvals": 1}}},
    })
    harness = make_core(backend, tmp_path / "bot.db", config=needs_one)
    outcome = request(harness, Kind.RESTART, fleet.off_contract)
    assert outcome.ok and outcome.approval_id is not None, outcome.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.AWAITING_APPROVAL


def test_show_pac_is_told_in_the_thread_without_the_pac(harness: CoreHarness,
                                                         fleet: Fleet) -> None:
    pac = harness.simulator.world.pac_of(fleet.no_token)
    outcome = request(harness, Kind.RENEW, fleet.no_token)
    shown = harness.core.reveal_pac(outcome.workflow_id or 0, fleet.no_token, APPROVER)
    assert shown.ok and shown.message == pac
    assert any(f"<@{APPROVER.user_id}> viewed the PAC of {fleet.no_token}" in t
               for t in harness.notifier.texts())
    assert not any(pac in t for t in harness.notifier.texts())
    [row] = [a for a in harness.core.store.audit_entries(workflow_id=outcome.workflow_id)
             if a.action == "reveal pac"]
    assert row.outcome == "shown" and pac not in str(row)


@pytest.mark.parametrize("ending", ["cancelled", "expired"])
def test_reminders_stop_when_cancelled_or_expired(harness: CoreHarness, fleet: Fleet,
                                                  ending: str) -> None:
    outcome = request(harness, Kind.RENEW, fleet.no_token)
    assert outcome.workflow_id is not None
    harness.clock.advance(10 * 60)
    harness.core.tick()
    if ending == "cancelled":
        assert harness.core.cancel(outcome.workflow_id, REQUESTER).ok
    else:
        harness.clock.advance(2 * 3600)  # approval_ttl
        harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == ending
    sent = len([p for p in harness.notifier.events if p.kind == ProgressKind.REMINDER])
    assert sent == 1
    for _ in range(3):
        harness.clock.advance(10 * 60)
        harness.core.tick()
    assert len([p for p in harness.notifier.events if p.kind == ProgressKind.REMINDER]) == sent


def test_three_approvers_at_once_settle_a_two_person_request_once(harness: CoreHarness,
                                                                   fleet: Fleet) -> None:
    import threading

    outcome = large_renewal(harness, fleet)
    assert outcome.approval_id is not None
    third = Actor("U0THIRD")
    config = parse_config(SCALED.replace('"U0SECOND"]', '"U0SECOND", "U0THIRD"]'))
    # The third approver is configured: the clicks reach a core (same database) that knows it.
    deciding = make_core(harness.simulator, harness.db_path, config=config, clock=harness.clock,
                         notifier=harness.notifier).core
    barrier = threading.Barrier(3)
    results = []

    def click(actor: Actor) -> None:
        barrier.wait()
        results.append(deciding.decide(outcome.approval_id or 0, actor, approve=True))

    threads = [threading.Thread(target=click, args=(a,)) for a in (APPROVER, SECOND, third)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.APPROVED
    assert len(harness.core.store.votes(outcome.approval_id)) == 2
    decided = [p for p in harness.notifier.events if p.kind == ProgressKind.DECIDED]
    assert len(decided) == 1
    assert sum(r.ok for r in results) == 2  # one vote recorded, one settling; the third late
