"""A cancel asked while a DELETE could still land (issue 11, finding 2): accepted as pending,
decided when Sigfox can say whether the device was touched, the audit log and the job agreeing.

Real core, SQLite and simulated backend; the workflows' clock and the landing clock (when a call
"can no longer land") are virtual, so nothing here waits for a landing deadline.
"""

from __future__ import annotations

from support.bot import APPROVER_ID, REQUESTER_ID, running_bot
from support.core import APPROVER, OUTSIDER, REQUESTER, make_core, sigfox_client
from support.writeahead import (
    MARGIN,
    assert_untouched_and_free,
    calls,
    unanswered_delete,
    wait_for_call,
)

from bot import blocks
from commands.states import WorkflowState
from storage.intents import CANCEL_ASKED, IN_FLIGHT, LANDED, NOT_LANDED


def audit(harness, workflow_id):
    return [(a.actor, a.action, a.outcome)
            for a in harness.core.store.audit_entries(workflow_id=workflow_id)
            if "cancel" in a.action]


def past_landing(harness, landing) -> None:
    """Both clocks past the unanswered call's `lands_by`."""
    landing.advance(harness.core.api.longest_call + MARGIN + 1)
    harness.clock.advance(harness.core.api.longest_call + MARGIN + 1)


def test_a_cancel_while_an_unexecuted_delete_could_land_is_done_once_it_cannot(world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device)

    asked = harness.core.cancel(workflow_id, REQUESTER)
    assert asked.ok and asked.details["pending"], asked.message
    assert "will be cancelled at " in asked.message and "untouched" in asked.message
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.RUNNING
    assert audit(harness, workflow_id) == [(REQUESTER.user_id, "cancel asked", "pending")]
    assert any("will be cancelled at" in t for t in harness.notifier.texts())
    again = harness.core.cancel(workflow_id, APPROVER)
    assert again.ok and "already asked" in again.message
    assert len(audit(harness, workflow_id)) == 1

    for _ in range(3):  # before it can be checked: nothing happens, nothing is sent
        harness.clock.advance(10)
        harness.core.tick()
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.RUNNING

    past_landing(harness, landing)
    harness.core.tick()  # checks the device: untouched, so the job is cancelled
    workflow = harness.core.store.get_workflow(workflow_id)
    assert workflow.state == WorkflowState.CANCELLED
    [intent] = harness.core.store.intents.of_step(workflow_id, device)
    assert intent.state == NOT_LANDED
    assert audit(harness, workflow_id)[-1] == (REQUESTER.user_id, "cancel", "cancelled")
    assert any("Cancelled as <@U0REQUEST> asked" in t for t in harness.notifier.texts())
    assert_untouched_and_free(simulator, harness, device)


def test_a_cancel_whose_delete_landed_after_all_is_refused_and_the_job_goes_on(world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device, held=True)
    asked = harness.core.cancel(workflow_id, REQUESTER)
    assert asked.ok and asked.details["pending"]
    wait_for_call(simulator, "DELETE", f"/v2/devices/{device}")  # it landed after all

    past_landing(harness, landing)
    harness.core.tick()
    workflow = harness.core.store.get_workflow(workflow_id)
    assert workflow.state == WorkflowState.RUNNING and CANCEL_ASKED not in workflow.params
    delete = harness.core.store.intents.of_step(workflow_id, device)[0]
    assert (delete.action, delete.state) == ("delete", LANDED)
    assert audit(harness, workflow_id) == [(REQUESTER.user_id, "cancel asked", "pending"),
                                           (REQUESTER.user_id, "cancel", "refused")]
    assert any("cannot be done: the delete of" in t and "took effect" in t
               for t in harness.notifier.texts())
    for _ in range(5):  # the job carries on: the device is registered again, once
        harness.clock.advance(60)
        harness.core.tick()
    assert len(calls(simulator, "DELETE", f"/v2/devices/{device}")) == 1
    assert len([c for c in calls(simulator, "POST", "/v2/devices/") if c["status"] == 201]) == 1
    assert harness.core.api.find_device(device) is not None
    # Asked again now, the cancel is refused outright: the job has changed the device.
    refused = harness.core.cancel(workflow_id, REQUESTER)
    assert not refused.ok and "took effect" in refused.message


def test_a_pending_cancel_survives_a_restart(world, tmp_path) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device)
    assert harness.core.cancel(workflow_id, REQUESTER).details["pending"]
    harness.core.store.database.close()  # the process dies

    past_landing(harness, landing)
    restarted = make_core(simulator, tmp_path / "bot.db", landing_clock=landing,
                          clock=harness.clock,
                          api=sigfox_client(simulator, timeout=0.2, max_retries=0))
    restarted.core.resume()
    assert restarted.core.store.get_workflow(workflow_id).state == WorkflowState.CANCELLED
    assert len(calls(simulator, "DELETE", f"/v2/devices/{device}")) == 1


def test_nothing_is_sent_for_a_job_whose_cancel_waits(world) -> None:
    simulator, fleet, harness, _ = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device)
    harness.core.cancel(workflow_id, REQUESTER)
    # Even were a step to try (a worker holding the job from before the cancel), the intent
    # cannot be written: the call is never sent.
    batch = harness.core.store.intents.open(
        workflow_id=workflow_id, device_ids=[fleet.no_token], action="delete", now=0.0,
        lands_by=1.0, running=[WorkflowState.RUNNING.value])
    assert batch is None
    assert [i.state for i in harness.core.store.intents.of_workflow(workflow_id)] == [IN_FLIGHT]


def test_only_those_who_may_cancel_can_ask_for_a_pending_cancel(world) -> None:
    simulator, fleet, harness, _ = world
    device = fleet.off_contract
    workflow_id = unanswered_delete(simulator, harness, device)
    refused = harness.core.cancel(workflow_id, OUTSIDER)
    assert not refused.ok
    assert CANCEL_ASKED not in harness.core.store.get_workflow(workflow_id).params
    assert audit(harness, workflow_id) == []


def test_through_slack_the_requester_is_told_when_the_cancel_is_decided(make_simulator,
                                                                        tmp_path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db") as bot:
        device = bot.fleet.off_contract
        bot.command(f"renew {device} by delete")
        [workflow] = bot.core.jobs()
        approval = bot.core.store.approval_for(workflow.id)
        request = bot.approval_message(approval.id)
        bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"])
        simulator.fault(f"/v2/devices/{device}", method="DELETE", status=500)
        bot.core.tick()
        assert [i.state for i in bot.core.store.intents.of_workflow(workflow.id)] == [IN_FLIGHT]

        bot.command(f"cancel {workflow.label}")
        answers = [t for t in bot.ephemeral_texts(REQUESTER_ID) if "will be cancelled at" in t]
        assert answers and bot.core.store.get_workflow(workflow.id).state == "running"
        bot.advance(MARGIN + bot.core.api.longest_call + 1)
        bot.core.tick()
        assert bot.core.store.get_workflow(workflow.id).state == WorkflowState.CANCELLED
        [parent] = bot.parents()
        assert any("Cancelled as" in t for t in bot.thread_texts(parent["ts"]))
