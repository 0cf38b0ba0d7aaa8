"""Write-ahead intents in one process (issue 11, findings 1 and 2), on a separate landing clock
so the tests decide when a call "can no longer land" without waiting for it.

The simulated backend holds the DELETE longer than the client waits: the client reports an
unknown outcome, the DELETE lands anyway a moment later. Before the landing deadline nothing is
sent for the device, not even the create; after it, one read settles what happened.
"""

from __future__ import annotations

import time

from support.core import APPROVER, REQUESTER

from commands.planning import Request
from commands.ports import Target
from commands.states import Kind, WorkflowState
from storage.intents import IN_FLIGHT, LANDED, NOT_LANDED

MARGIN = 60.0  # the default [timing] landing_margin


def approved_renewal(harness, device_id):
    outcome = harness.core.request(Request(Kind.RENEW, REQUESTER, (device_id,), Target("C0"),
                                           by_delete=True))
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    return outcome.workflow_id


def tick_until_sent(harness, workflow_id, device):
    """Tick until the DELETE went out (a read before it may time out on a loaded machine)."""
    for _ in range(20):
        harness.core.tick()
        if harness.core.store.intents.of_step(workflow_id, device):
            return
        harness.clock.advance(900)
    raise AssertionError("the delete was never sent")


def wait_for_call(simulator, method, path, count=1):
    for _ in range(200):  # the held call lands on its own, about half a second later
        if len([c for c in simulator.call_log()
                if c["method"] == method and c["path"] == path]) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{method} {path} never reached the backend")


def calls(simulator, method, path):
    return [c for c in simulator.call_log() if c["method"] == method and c["path"] == path]


def test_an_unanswered_delete_is_never_sent_again_and_nothing_follows_until_it_is_settled(
        world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = approved_renewal(harness, device)
    simulator.fault(f"/v2/devices/{device}", method="DELETE", delay=0.6)
    tick_until_sent(harness, workflow_id, device)  # the client gives up after 0.2 s
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
    workflow_id = approved_renewal(harness, device)
    simulator.fault(f"/v2/devices/{device}", method="DELETE", status=500)
    tick_until_sent(harness, workflow_id, device)  # 500: it may or may not have deleted it
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.RUNNING

    landing.advance(MARGIN + 1)  # it can no longer land: the cancel checks the device
    done = harness.core.cancel(workflow_id, REQUESTER)
    assert done.ok and not done.details.get("pending"), done.message
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.CANCELLED
    [intent] = harness.core.store.intents.of_step(workflow_id, device)
    assert intent.state == NOT_LANDED
    harness.clock.advance(3600)
    harness.core.tick()
    assert len(calls(simulator, "DELETE", f"/v2/devices/{device}")) == 1
    assert harness.core.api.find_device(device) is not None
    again = harness.core.request(Request(Kind.RENEW, REQUESTER, (device,), Target("C0"),
                                         by_delete=True))
    assert again.ok and not again.joined  # the device is free for a new job


def test_a_delete_that_took_effect_cannot_be_cancelled(world) -> None:
    simulator, fleet, harness, landing = world
    device = fleet.off_contract
    workflow_id = approved_renewal(harness, device)
    simulator.fault(f"/v2/devices/{device}", method="DELETE", delay=0.6)
    tick_until_sent(harness, workflow_id, device)
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
