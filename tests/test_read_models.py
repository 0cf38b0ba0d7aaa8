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
