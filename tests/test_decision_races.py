"""One outcome, one record (issue 11, finding 7): Approve, Reject, Cancel and the expiry of the
request racing each other in threads. Whatever wins, the approval, the job and the audit log
tell the same story, and every click that was told "done" is the one that happened."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from support.core import APPROVER, REQUESTER, build_fleet, make_core

from commands.planning import Request
from commands.policy import Actor
from commands.ports import Target
from commands.states import Kind, WorkflowState

GROUP_APPROVER = Actor("U0GROUPIE", frozenset({"S0APPROVERS"}))
ROUNDS = 12


def race(actions: dict[str, Callable[[], object]]) -> dict[str, object]:
    barrier = threading.Barrier(len(actions))
    results: dict[str, object] = {}

    def run(name: str, action: Callable[[], object]) -> None:
        barrier.wait()
        results[name] = action()

    threads = [threading.Thread(target=run, args=item) for item in actions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_approve_reject_cancel_and_expiry_leave_one_story(make_simulator, tmp_path,
                                                          round_number: int) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    fleet = build_fleet(simulator)
    harness = make_core(simulator, tmp_path / "bot.db")
    core, store = harness.core, harness.core.store
    device = simulator.world.add_device(f"DA{round_number:04X}", device_type_id=fleet.type_a,
                                        token="off_contract").id
    asked = core.request(Request(Kind.RENEW, REQUESTER, (device,), Target("C0"), by_delete=True))
    approval_id, workflow_id = asked.approval_id, asked.workflow_id
    assert approval_id is not None and workflow_id is not None

    def expire() -> bool:
        # What the tick does once the request is due: its expiry racing the clicks.
        core.approvals.expire(approval_id, core.books.workflow(workflow_id))
        return store.get_approval(approval_id).state == "expired"

    results = race({
        "approve": lambda: core.decide(approval_id, APPROVER, approve=True).ok,
        "reject": lambda: core.decide(approval_id, GROUP_APPROVER, approve=False).ok,
        "cancel": lambda: core.cancel(workflow_id, REQUESTER).ok,
        "expire": expire,
    })
    done = {name for name, ok in results.items() if ok}
    approval = store.get_approval(approval_id).state
    workflow = store.get_workflow(workflow_id).state
    audit = [e.action for e in store.audit_entries(workflow_id=workflow_id)
             if e.action in ("approved", "rejected", "cancel")]
    story = (approval, workflow, audit, done)
    stories = {
        # Approved, maybe cancelled after (before anything ran): both clicks were honoured.
        ("approved", WorkflowState.APPROVED, ("approved",), frozenset({"approve"})),
        ("approved", WorkflowState.CANCELLED, ("approved", "cancel"),
         frozenset({"approve", "cancel"})),
        ("rejected", WorkflowState.REJECTED, ("rejected",), frozenset({"reject"})),
        ("cancelled", WorkflowState.CANCELLED, ("cancel",), frozenset({"cancel"})),
        ("expired", WorkflowState.EXPIRED, (), frozenset({"expire"})),
    }
    assert (approval, workflow, tuple(audit), frozenset(done)) in stories, story
