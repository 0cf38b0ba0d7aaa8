"""Write-ahead intents in one process (issue 11, findings 1 and 2), on a separate landing clock
so the tests decide when a call "can no longer land" without waiting for it.

The simulated backend holds the DELETE longer than the client waits: the client reports an
unknown outcome, the DELETE lands anyway a moment later. Before the landing deadline nothing is
sent for the device, not even the create; after it, one read settles what happened.
"""

from __future__ import annotations

from support.core import REQUESTER
from support.writeahead import (
    MARGIN,
    approved_renewal,
    assert_untouched_and_free,
    calls,
    unanswered_delete,
    wait_for_call,
)

from commands.states import WorkflowState
from commands.writeahead import RESOLVED_BY_READ, answered_job_id
from storage.intents import IN_FLIGHT, LANDED, NOT_LANDED, IntentRecord


def test_an_unanswered_delete_is_never_sent_again_and_nothing_follows_until_it_is_settled(
        world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device, held=True)
    [intent] = harness.core.store.intents.of_step(workflow_id, device)
    assert intent.state == IN_FLIGHT and intent.action == "delete"
    wait_for_call(simulator, "DELETE", f"/v2/devices/{device}")  # it landed after all

    for _ in range(5):  # the workflows' clock runs on; the landing clock does not
        harness.clock.advance(3600)
        harness.core.tick()
    assert len(calls(simulator, "DELETE", f"/v2/devices/{device}")) == 1
    assert calls(simulator, "POST", "/v2/devices/") == []  # no create while it could land
    assert any("no clean answer to the delete" in t for t in harness.notifier.texts())

    landing.advance(harness.core.api.longest_call + MARGIN)
    harness.clock.advance(harness.core.api.longest_call + MARGIN)
    harness.core.tick()
    intent = harness.core.store.intents.of_step(workflow_id, device)[0]
    assert intent.state == LANDED
    assert len(calls(simulator, "DELETE", f"/v2/devices/{device}")) == 1
    assert len([c for c in calls(simulator, "POST", "/v2/devices/") if c["status"] == 201]) == 1


def test_a_delete_that_failed_can_be_cancelled_once_verified_not_executed(world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device)
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.RUNNING

    landing.advance(MARGIN + 1)  # it can no longer land: the cancel checks the device
    done = harness.core.cancel(workflow_id, REQUESTER)
    assert done.ok and not done.details.get("pending"), done.message
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.CANCELLED
    [intent] = harness.core.store.intents.of_step(workflow_id, device)
    assert intent.state == NOT_LANDED
    assert_untouched_and_free(simulator, harness, device)


def test_a_delete_that_took_effect_cannot_be_cancelled(world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device, held=True)
    wait_for_call(simulator, "DELETE", f"/v2/devices/{device}")
    landing.advance(harness.core.api.longest_call + MARGIN)
    refused = harness.core.cancel(workflow_id, REQUESTER)
    assert not refused.ok and "took effect" in refused.message
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.RUNNING


def test_a_running_job_that_sent_nothing_can_be_cancelled(world) -> None:
    simulator, fleet, harness, _ = world
    device = fleet.off_contract
    workflow_id = approved_renewal(harness, device)
    simulator.fault("/v2/devices/", method="GET", status=503, count=10)
    harness.core.tick()  # the read before the delete fails: nothing destructive was sent
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.RUNNING
    assert harness.core.cancel(workflow_id, REQUESTER).ok
    assert calls(simulator, "DELETE", f"/v2/devices/{device}") == []


def test_only_an_answered_submission_names_a_job_to_read() -> None:
    def intent(state: str, outcome: str) -> IntentRecord:
        return IntentRecord(id=1, workflow_id=1, device_id="D1", action="restart", batch="b",
                            state=state, sent_at=0.0, lands_by=1.0, resolved_at=2.0,
                            outcome=outcome, details={})

    assert answered_job_id(intent(LANDED, "5f1e0c2a9d")) == "5f1e0c2a9d"
    # Settled by a read: no answer, so no job id, whatever the read decided.
    assert answered_job_id(intent(LANDED, RESOLVED_BY_READ)) == ""
    assert answered_job_id(intent(NOT_LANDED, RESOLVED_BY_READ)) == ""
    assert answered_job_id(intent(IN_FLIGHT, "")) == ""
    assert answered_job_id(None) == ""
