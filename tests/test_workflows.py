"""The core's workflows against the simulated backend over HTTP, on virtual clocks."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from support.core import (
    APPROVER,
    OUTSIDER,
    REQUESTER,
    CoreHarness,
    Fleet,
    build_fleet,
    make_core,
)

from commands.config import parse_config
from commands.planning import Request
from commands.policy import Actor
from commands.ports import ProgressKind, Target
from commands.states import Kind, WorkflowState


@pytest.fixture
def backend(make_simulator):
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    return simulator


@pytest.fixture
def fleet(backend) -> Fleet:
    return build_fleet(backend)


@pytest.fixture
def harness(backend, fleet, tmp_path: Path) -> CoreHarness:
    return make_core(backend, tmp_path / "bot.db")


def renew(harness: CoreHarness, *device_ids: str, device_type: str | None = None, actor=REQUESTER,
          by_delete: bool = True):
    """Delete and re-register (docs/sigfox-semantics.md), asked explicitly (`by delete`) unless
    told otherwise: the planner's own choice is tested in test_semantics.py."""
    return harness.core.request(Request(Kind.RENEW, actor, tuple(device_ids), Target("C0CHAN", ""),
                                        device_type, by_delete=by_delete))


def state_of(harness: CoreHarness, workflow_id: int) -> str:
    workflow = harness.core.store.get_workflow(workflow_id)
    assert workflow is not None
    return workflow.state


def test_renewal_from_request_to_first_uplink(harness: CoreHarness, fleet: Fleet) -> None:
    original_pac = harness.simulator.world.pac_of(fleet.off_contract)
    outcome = renew(harness, fleet.off_contract)
    assert outcome.ok, outcome.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.AWAITING_APPROVAL
    harness.core.tick()
    assert harness.calls("DELETE", "/v2/devices/") == []  # nothing before the approval

    decided = harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    assert decided.ok, decided.message
    harness.core.tick()
    assert len(harness.calls("DELETE", f"/v2/devices/{fleet.off_contract}", 204)) == 1
    assert harness.calls("POST", "/v2/devices/", 409)  # the id is still held
    assert any("release the id" in t for t in harness.notifier.texts())

    harness.advance(1800)
    harness.core.tick()
    steps = harness.core.store.workflow_devices(outcome.workflow_id)
    assert steps[0].state == "awaiting_uplink"
    assert any("ends" in t and "Contract" in t for t in harness.notifier.texts())

    harness.simulator.uplink(fleet.off_contract)
    assert harness.core.handle_uplink(fleet.off_contract) == [outcome.workflow_id]
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE

    creates = [c for c in harness.calls("POST", "/v2/devices/") if c["status"] in (200, 201)]
    assert len(creates) == 1
    assert len(harness.calls("DELETE", "/v2/devices/")) == 1
    snapshot = harness.core.store.snapshots.of(outcome.workflow_id, fleet.off_contract)
    assert snapshot is not None and snapshot.pac == original_pac
    assert snapshot.new_pac == harness.simulator.world.pac_of(fleet.off_contract)
    final = harness.notifier.events[-1]
    assert final.kind == ProgressKind.FINISHED and "token OK until" in final.text
    assert all(original_pac not in t and snapshot.new_pac not in t
               for t in harness.notifier.texts())


def test_renewal_without_callback_hears_the_uplink_by_polling(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.advance(1800)
    harness.core.tick()
    harness.simulator.uplink(fleet.no_token)
    harness.advance(300)
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE


def test_a_release_wait_past_its_timeout_stays_open_and_asks(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    for _ in range(30):  # the backend never releases: only the bot's clock moves (2.5 h > 2 h)
        harness.clock.advance(300)
        harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.RUNNING  # never stranded
    overdue = [e for e in harness.notifier.events if e.details.get("release_overdue")]
    assert len(overdue) == 1 and "keep waiting" in overdue[0].text
    assert "renew" not in overdue[0].text  # no advice the bot would refuse (device is deleted)
    assert not harness.core.keep_waiting_for_release(outcome.workflow_id, fleet.no_token,
                                                     OUTSIDER).ok
    kept = harness.core.keep_waiting_for_release(outcome.workflow_id, fleet.no_token, APPROVER)
    assert kept.ok and "keep waiting" in kept.message
    for _ in range(20):  # within the new deadline: still trying, not asking again
        harness.clock.advance(300)
        harness.core.tick()
    assert len([e for e in harness.notifier.events if e.details.get("release_overdue")]) == 1

    assert not harness.core.stop_waiting_for_release(outcome.workflow_id, fleet.no_token,
                                                     OUTSIDER).ok
    stopped = harness.core.stop_waiting_for_release(outcome.workflow_id, fleet.no_token, APPROVER)
    assert stopped.ok and stopped.details["pac"] == harness.simulator.world.pac_of(fleet.no_token)
    assert stopped.details["pac"] not in stopped.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.FAILED
    failure = next(e for e in harness.notifier.events if e.kind == ProgressKind.FAILED)
    assert failure.details["pac_recorded"] is True and "Sigfox portal" in failure.text


def test_the_default_release_timeout_is_a_day() -> None:
    assert parse_config("").timing.release_timeout == timedelta(hours=24)


def test_a_400_saying_the_id_still_exists_counts_as_still_held(harness, fleet) -> None:
    harness.simulator.world.hold_status = 400
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    assert harness.calls("POST", "/v2/devices/", 400)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.RUNNING
    harness.advance(1800)
    harness.core.tick()
    [step] = harness.core.store.workflow_devices(outcome.workflow_id)
    assert step.state == "awaiting_uplink"


def test_any_other_400_fails_with_sigfoxs_reason_and_keeps_the_pac(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.simulator.world.pacs[fleet.no_token] = "0123456789ABCDEF"  # the PAC changed meanwhile
    harness.advance(1800)
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.FAILED
    [step] = harness.core.store.workflow_devices(outcome.workflow_id)
    assert "PAC is not valid" in step.last_error and "Show PAC" in step.last_error
    assert harness.core.reveal_pac(outcome.workflow_id, fleet.no_token, APPROVER).ok


@pytest.mark.parametrize(
    ("device", "reason"),
    [
        ("valid", "valid token"),
        ("invalid", "Invalid"),
    ],
)
def test_renewal_refused_before_anything_changes(harness, fleet, device, reason) -> None:
    outcome = renew(harness, getattr(fleet, device))
    assert not outcome.ok and reason in outcome.message and "Nothing was changed" in outcome.message
    assert harness.core.store.list_workflows() == []


def test_unknown_device_and_wrong_device_type_are_refused(harness, fleet) -> None:
    unknown = renew(harness, "ABCDEF")
    assert not unknown.ok and "not in this Sigfox account" in unknown.message
    wrong_type = renew(harness, fleet.no_token, device_type="Fleet Z")
    assert not wrong_type.ok and "no device type `Fleet Z`" in wrong_type.message
    full = renew(harness, fleet.no_token, device_type="Fleet Full")
    assert not full.ok and "no tokens left" in full.message
    writes = [c for c in harness.simulator.call_log() if c["method"] != "GET"]
    assert writes == []


def test_second_request_on_a_busy_device_joins_the_first(harness, fleet) -> None:
    first = renew(harness, fleet.no_token)
    second = renew(harness, fleet.no_token, actor=APPROVER)
    assert second.joined and second.workflow_id == first.workflow_id


def test_self_approval_unauthorised_and_expired_are_refused(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    mine = harness.core.decide(outcome.approval_id, REQUESTER, approve=True)
    assert not mine.ok and "requested" in mine.message.lower()
    stranger = harness.core.decide(outcome.approval_id, OUTSIDER, approve=True)
    assert not stranger.ok
    harness.clock.advance(3601)
    late = harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    assert not late.ok and "expired" in late.message and "nothing was deleted" in late.message
    assert state_of(harness, outcome.workflow_id) == WorkflowState.EXPIRED
    assert harness.calls("DELETE", "/v2/devices/") == []
    again = renew(harness, fleet.no_token)  # the device is free again
    assert again.ok and not again.joined


def test_approval_expires_on_tick_with_reminder(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.clock.advance(1300)
    harness.core.tick()
    assert any("Still waiting for an approver" in t for t in harness.notifier.texts())
    harness.clock.advance(2400)
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.EXPIRED


def test_rejection_changes_nothing(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=False).ok
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.REJECTED
    assert harness.calls("DELETE", "/v2/devices/") == []


def test_twenty_concurrent_approvals_make_one_decision(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    approvers = [Actor("U0APPROVE", frozenset()) for _ in range(10)] + [
        Actor(f"U0GROUP{i:02d}", frozenset({"S0APPROVERS"})) for i in range(10)
    ]
    results = []
    barrier = threading.Barrier(len(approvers))

    def click(actor: Actor) -> None:
        barrier.wait()
        results.append(harness.core.decide(outcome.approval_id, actor, approve=True))

    threads = [threading.Thread(target=click, args=(a,)) for a in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.ok for r in results) == 1
    assert all("already approved" in r.message for r in results if not r.ok)
    decided = [e for e in harness.notifier.events if e.kind == ProgressKind.DECIDED]
    assert len(decided) == 1


def test_cancel_before_the_delete_and_not_after(harness, fleet) -> None:
    first = renew(harness, fleet.no_token)
    assert not harness.core.cancel(first.workflow_id, OUTSIDER).ok
    assert harness.core.cancel(first.workflow_id, REQUESTER).ok
    assert state_of(harness, first.workflow_id) == WorkflowState.CANCELLED

    second = renew(harness, fleet.no_token)
    harness.core.decide(second.approval_id, APPROVER, approve=True)
    harness.core.tick()
    refused = harness.core.cancel(second.workflow_id, REQUESTER)
    assert not refused.ok and "already sent" in refused.message
    assert len(harness.calls("DELETE", "/v2/devices/")) == 1


def test_delete_workflow(harness, fleet) -> None:
    outcome = harness.core.request(
        Request(Kind.DELETE, REQUESTER, (fleet.off_contract,), Target("C0CHAN"))
    )
    assert outcome.ok
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert len(harness.calls("DELETE", "/v2/devices/")) == 1
    assert harness.core.store.snapshots.of(outcome.workflow_id, fleet.off_contract).pac


def test_renew_several_devices_with_one_approval(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token, fleet.off_contract)
    assert outcome.ok
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.advance(1800)
    harness.core.tick()
    for _ in range(2):  # several devices: registered in one bulk job, then read back together
        harness.advance(5)
        harness.core.tick()
    for device_id in (fleet.no_token, fleet.off_contract):
        harness.simulator.uplink(device_id)
        harness.core.handle_uplink(device_id)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert len(harness.calls("DELETE", "/v2/devices/")) == 2


@pytest.mark.parametrize(
    ("device", "target", "impact", "needs_approval"),
    [
        ("no_token", "Fleet B", "no_token", False),
        ("valid", "Fleet A2", "token_moved", False),
        ("valid", "Fleet B", "token_lost", True),
    ],
)
def test_transfer_outcomes(harness, fleet, device, target, impact, needs_approval) -> None:
    device_id = getattr(fleet, device)
    outcome = harness.core.request(
        Request(Kind.TRANSFER, REQUESTER, (device_id,), Target("C0CHAN"), target)
    )
    assert outcome.ok, outcome.message
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["impacts"][device_id] == impact
    assert (workflow.state == WorkflowState.AWAITING_APPROVAL) == needs_approval
    if needs_approval:
        assert "lost for good" in outcome.message
        harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    for _ in range(5):
        harness.core.tick()
        harness.clock.advance(10)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    moved = harness.core.api.find_device(device_id)
    assert moved.device_type.id == {"Fleet B": fleet.type_b, "Fleet A2": fleet.type_a2}[target]


def test_transfer_on_the_same_contract_is_seamless(harness, fleet) -> None:
    world = harness.simulator.world
    same = world.add_device_type("Fleet A bis", world.device_type(fleet.type_a).contract_id)
    outcome = harness.core.request(
        Request(Kind.TRANSFER, REQUESTER, (fleet.valid,), Target("C0CHAN"), same.name)
    )
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["impacts"][fleet.valid] == "seamless"


def test_restart_of_an_off_contract_device(harness, fleet) -> None:
    outcome = harness.core.request(
        Request(Kind.RESTART, REQUESTER, (fleet.off_contract,), Target("C0CHAN"))
    )
    assert outcome.ok, outcome.message
    for _ in range(5):
        harness.core.tick()
        harness.clock.advance(10)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert harness.core.api.find_device(fleet.off_contract).token.state == 0
    refused = harness.core.request(
        Request(Kind.RESTART, REQUESTER, (fleet.valid,), Target("C0CHAN"))
    )
    assert not refused.ok and "not Off Contract" in refused.message


def test_unsubscribe_with_a_date_needs_approval(harness, fleet) -> None:
    when = int((harness.clock.now() + 30 * 86400) * 1000)
    outcome = harness.core.request(
        Request(Kind.UNSUBSCRIBE, REQUESTER, (fleet.valid,), Target("C0CHAN"),
                unsubscribe_at_ms=when)
    )
    assert state_of(harness, outcome.workflow_id) == WorkflowState.AWAITING_APPROVAL
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert len(harness.calls("PUT", f"/v2/devices/{fleet.valid}/unsubscribe")) == 1


def test_restart_of_the_process_resumes_from_the_database(harness, fleet, tmp_path) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()  # deleted, waiting for the release
    harness.core.store.database.close()

    harness.simulator.advance(1800)
    later = make_core(harness.simulator, harness.db_path, clock=harness.clock)
    later.clock.advance(1800)
    later.core.resume()
    steps = later.core.store.workflow_devices(outcome.workflow_id)
    assert steps[0].state == "awaiting_uplink"
    assert len(later.calls("DELETE", "/v2/devices/")) == 1


def test_a_week_of_waiting_is_a_handful_of_lines(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.advance(1800)
    harness.core.tick()  # registered; now waiting for a first message that never comes
    for _ in range(7 * 24 * 12 + 12):  # every 5 minutes for a week and an hour
        harness.clock.advance(300)
        harness.core.tick()
    waits = [e for e in harness.notifier.events if e.kind == ProgressKind.WAITING]
    assert 5 <= len(waits) <= 30
    assert state_of(harness, outcome.workflow_id) == WorkflowState.FAILED
    assert "no message arrived" in harness.notifier.events[-1].text


def test_finished_renewals_are_announced_for_alerts(backend, fleet, tmp_path) -> None:
    renewed: list[str] = []
    harness = make_core(backend, tmp_path / "bot.db")
    harness.core.engine.on_renewed = renewed.append
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.advance(1800)
    harness.core.tick()
    backend.uplink(fleet.no_token)
    harness.core.handle_uplink(fleet.no_token)
    assert renewed == [fleet.no_token]


def test_a_failed_job_is_reported_with_sigfox_reason(harness, fleet) -> None:
    world = harness.simulator.world
    full = world.add_contract("Order 1 / full", order_id="order-1", order_name="Order 1",
                              max_tokens=1)
    full_type = world.add_device_type("Fleet A full", full.id)
    world.add_device("AA0002", device_type_id=full_type.id, token="ok")
    outcome = harness.core.request(
        Request(Kind.TRANSFER, REQUESTER, (fleet.valid,), Target("C0CHAN"), "Fleet A full")
    )
    assert outcome.ok, outcome.message
    for _ in range(5):
        harness.core.tick()
        harness.clock.advance(10)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.FAILED
    failure = harness.notifier.events[-1]
    assert failure.kind == ProgressKind.FAILED and "failed for BEEF02" in failure.text


def test_a_transfer_checks_callbacks_and_an_approver_copies_the_missing_ones(harness,
                                                                             fleet) -> None:
    harness.simulator.world.add_callback(fleet.type_a, {
        "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
        "url": "https://ingest.example.test/sigfox", "httpMethod": "POST",
    })
    outcome = harness.core.request(
        Request(Kind.TRANSFER, REQUESTER, (fleet.valid,), Target("C0CHAN"), "Fleet A2")
    )
    for _ in range(5):
        harness.core.tick()
        harness.clock.advance(10)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert any("previous device type had 1 callbacks" in t for t in harness.notifier.texts())
    assert not harness.core.copy_callbacks(outcome.workflow_id, fleet.valid, OUTSIDER).ok
    copied = harness.core.copy_callbacks(outcome.workflow_id, fleet.valid, APPROVER)
    assert copied.ok and copied.details["copied"] == 1
    urls = [c.url for c in harness.core.api.iter_device_type_callbacks(fleet.type_a2)]
    assert urls == ["https://ingest.example.test/sigfox"]
    again = harness.core.copy_callbacks(outcome.workflow_id, fleet.valid, APPROVER)
    assert again.ok and "nothing was copied" in again.message


def test_the_audit_log_says_who_asked_who_approved_and_every_sigfox_call(harness, fleet) -> None:
    outcome = renew(harness, fleet.no_token)
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    entries = harness.core.store.audit_entries(workflow_id=outcome.workflow_id)
    by_actor = {(e.actor, e.action) for e in entries}
    assert (REQUESTER.user_id, "request renew") in by_actor
    assert (APPROVER.user_id, "approved") in by_actor
    deletes = [e for e in entries if e.action == "sigfox delete"]
    assert [(e.device_id, e.outcome) for e in deletes] == [(fleet.no_token, "ok")]
    assert any(e.action == "sigfox create" and e.outcome == "SigfoxConflict" for e in entries)
    pac = harness.simulator.world.pac_of(fleet.no_token)
    assert all(pac not in repr(e) for e in entries)
