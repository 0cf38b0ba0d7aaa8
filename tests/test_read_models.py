"""What the core offers the edges to read: approval requests as the deciders see them."""

from __future__ import annotations

from pathlib import Path

from support.core import APPROVER, REQUESTER, build_fleet, make_core

from commands.planning import Request
from commands.policy import Actor
from commands.ports import Target
from commands.states import Kind

OUTSIDER = Actor("U0OUTSIDE")


def test_an_approval_request_reads_as_its_deciders_see_it(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    fleet = build_fleet(simulator)
    harness = make_core(simulator, tmp_path / "bot.db")
    outcome = harness.core.request(Request(Kind.DELETE, REQUESTER, (fleet.off_contract,),
                                           Target("C0CHAN", "")))
    assert outcome.ok and outcome.approval_id is not None

    request = harness.core.approval_request(outcome.approval_id)
    assert request is not None
    assert (request.job, request.operation, request.devices, request.state) == (
        outcome.message.split(":")[0], "delete", (fleet.off_contract,), "pending")
    pac = simulator.world.pac_of(fleet.off_contract)
    assert request.requester == REQUESTER.user_id and pac not in request.summary
    assert REQUESTER.user_id in request.excluded  # self-approval is off by default
    assert harness.core.approval_request(outcome.approval_id + 100) is None

    # Only those whose decision would count see it waiting for them.
    assert [r.approval_id for r in harness.core.approvals_awaiting(APPROVER)] == [
        outcome.approval_id]
    assert harness.core.approvals_awaiting(REQUESTER) == []
    assert harness.core.approvals_awaiting(OUTSIDER) == []
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    assert harness.core.approval_request(outcome.approval_id).state == "approved"
    assert harness.core.approvals_awaiting(APPROVER) == []


def test_a_job_and_its_decided_request_read_as_the_edges_show_them(make_simulator,
                                                                     tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    fleet = build_fleet(simulator)
    harness = make_core(simulator, tmp_path / "bot.db")
    reads = harness.core.reads
    asked = harness.core.request(Request(Kind.RENEW, REQUESTER, (fleet.off_contract,),
                                         Target("C0CHAN", ""), by_delete=True))
    assert asked.workflow_id is not None and asked.approval_id is not None
    job = reads.job(asked.workflow_id)
    assert job is not None
    assert (job.label, job.kind, job.state, job.requester, job.channel, job.deletes) == (
        asked.label, "renew", "awaiting_approval", REQUESTER.user_id, "C0CHAN", True)
    assert reads.job_devices(asked.workflow_id) == (fleet.off_contract,)
    assert reads.device_states(asked.workflow_id) == {fleet.off_contract: "pending"}
    assert reads.step_counts(asked.workflow_id) == {"pending": 1}
    assert [j.id for j in reads.jobs()] == [asked.workflow_id]
    assert reads.job(asked.workflow_id + 100) is None

    assert harness.core.decide(asked.approval_id, APPROVER, approve=False, reason="not now").ok
    request = reads.approval_of_job(asked.workflow_id)
    assert request is not None and request.approval_id == asked.approval_id
    assert (request.state, request.decided_by, request.decision_reason) == (
        "rejected", APPROVER.user_id, "not now")
    assert request.decided_at == harness.clock.now() and request.posted == {}
    assert reads.jobs() == [] and [j.state for j in reads.jobs(active_only=False)] == ["rejected"]


def test_a_renewal_that_keeps_the_device_does_not_read_as_deleting(make_simulator,
                                                                   tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    fleet = build_fleet(simulator)
    harness = make_core(simulator, tmp_path / "bot.db")
    restart = harness.core.request(Request(Kind.RENEW, REQUESTER, (fleet.off_contract,),
                                           Target("C0CHAN", "")))
    assert restart.workflow_id is not None and "restart" in restart.message.lower()
    job = harness.core.reads.job(restart.workflow_id)
    assert job is not None and not job.deletes
    assert harness.core.reads.approval_of_job(restart.workflow_id) is None


def test_who_may_approve_what_is_the_cores_answer(make_simulator, tmp_path: Path) -> None:
    harness = make_core(make_simulator(devices=0, rate_limits=False), tmp_path / "bot.db")
    assert {op.value for op in harness.core.approvable_operations(APPROVER)} >= {"delete",
                                                                               "renew"}
    assert harness.core.approvable_operations(OUTSIDER) == []
