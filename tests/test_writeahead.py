"""Write-ahead intents in one process (issue 11, findings 1 and 2), on a separate landing clock
so the tests decide when a call "can no longer land" without waiting for it.

The simulated backend holds the DELETE longer than the client waits: the client reports an
unknown outcome, the DELETE lands anyway a moment later. Before the landing deadline nothing is
sent for the device, not even the create; after it, one read settles what happened.
"""

from __future__ import annotations

from support.core import APPROVER, REQUESTER, build_fleet, core_config, make_core, sigfox_client
from support.writeahead import (
    MARGIN,
    approved_renewal,
    assert_untouched_and_free,
    calls,
    unanswered_delete,
    wait_for_call,
)

from commands.planning import Request
from commands.ports import ManualClock, Target
from commands.states import Kind, WorkflowState
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


def test_a_bulk_job_accepted_without_an_answer_is_awaited_not_submitted_again(
        make_simulator, tmp_path) -> None:
    """Sigfox runs a bulk job after accepting it: an unanswered submission may take effect
    long after the call could still reach it ([timing] bulk_job_landing), and reading the
    device in between would wrongly say it did nothing, and send it again."""
    # Jobs run only when the test says (a clock advance), as on a busy Sigfox queue.
    simulator = make_simulator(devices=0, rate_limits=False, job_delay=3600.0)
    fleet = build_fleet(simulator)
    landing = ManualClock(1_000_000.0)
    harness = make_core(simulator, tmp_path / "bot.db", landing_clock=landing,
                        config=core_config('bulk_job_landing = "10m"\n'),
                        api=sigfox_client(simulator, timeout=0.2, max_retries=0))
    device = fleet.off_contract
    outcome = harness.core.request(Request(Kind.RESTART, REQUESTER, (device,), Target("C0")))
    assert outcome.ok, outcome.message
    if outcome.approval_id is not None:
        assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    submit = "/v2/devices/bulk/restart"
    simulator.fault(submit, method="POST", delay=0.6)  # accepted after the client gave up
    harness.core.tick()
    wait_for_call(simulator, "POST", submit)

    landing.advance(harness.core.api.longest_call + MARGIN + 1)  # past the plain margin
    harness.clock.advance(3600)
    harness.core.tick()
    assert len(calls(simulator, "POST", submit)) == 1  # not read as "did nothing" yet

    simulator.advance(1)  # the job runs at last
    landing.advance(600)
    harness.clock.advance(3600)
    for _ in range(3):
        harness.core.tick()
        harness.clock.advance(60)
    assert len(calls(simulator, "POST", submit)) == 1
    [intent] = harness.core.store.intents.of_step(outcome.workflow_id, device)
    assert intent.state == LANDED
    assert harness.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE
