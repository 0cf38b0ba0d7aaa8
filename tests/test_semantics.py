"""Sigfox's contract and token model read as openapi.json describes it (docs/sigfox-semantics.md),
through the core, against a simulated backend that varies every optional shape.

Each pre-flight refusal is also tested through Slack in test_semantics_slack.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.core import APPROVER, REQUESTER, CoreHarness, make_core

from commands.planning import Request
from commands.ports import ProgressKind, Target
from commands.states import Kind, WorkflowState
from sigfox.simulator import SimulatorServer
from sigfox.simulator.clock import add_months
from sigfox.simulator.entities import DeviceType

DAY_MS = 86_400_000


def renew(harness: CoreHarness, *device_ids: str, device_type: str | None = None,
          by_delete: bool = False):
    return harness.core.request(Request(Kind.RENEW, REQUESTER, tuple(device_ids),
                                        Target("C0CHAN", ""), device_type, by_delete=by_delete))


def state_of(harness: CoreHarness, workflow_id: int) -> str:
    workflow = harness.core.store.get_workflow(workflow_id)
    assert workflow is not None
    return workflow.state


def writes(harness: CoreHarness) -> list[dict]:
    return [c for c in harness.simulator.call_log() if c["method"] != "GET"]


def run(harness: CoreHarness, ticks: int = 8, step: float = 10.0) -> None:
    for _ in range(ticks):
        harness.core.tick()
        harness.advance(step)


@pytest.fixture
def backend(make_simulator) -> SimulatorServer:
    return make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)


@pytest.fixture
def harness(backend, tmp_path: Path) -> CoreHarness:
    return make_core(backend, tmp_path / "bot.db")


def meters(world, **contract_options):
    """One order, a contract with room, and a device type that lists it in `contracts[]` only:
    the shape of the independent backend that exposed the old misreading."""
    contract = world.add_contract("Meters 2026", order_id="order-m", order_name="Order M",
                                  max_tokens=contract_options.pop("max_tokens", 10),
                                  **contract_options)
    return contract, world.add_device_type("Meters", contract.id, shape="contracts")


def off_contract_meter(harness: CoreHarness, device_id: str) -> tuple[str, DeviceType]:
    """An Off Contract device of `meters`' type, on the harness's backend."""
    world = harness.simulator.world
    _, dtype = meters(world)
    return world.add_device(device_id, device_type_id=dtype.id, token="off_contract").id, dtype


# --------------------------------------------------------------------------- contracts[] only


def test_off_contract_device_renews_on_a_backend_listing_contracts_only_in_contracts(
    harness: CoreHarness,
) -> None:
    device, dtype = off_contract_meter(harness, "ABC001")
    shown = harness.core.api.get_device_type(dtype.id)
    assert shown.contract is None and shown.contracts  # what the backend really sends

    outcome = renew(harness, device)
    assert outcome.ok, outcome.message
    assert "restart" in outcome.message and "bound to no contract" not in outcome.message
    run(harness)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert harness.core.api.find_device(device).token.state == 0


def test_delete_and_reregister_on_a_contracts_only_type_ends_with_a_token_ok(
    harness: CoreHarness,
) -> None:
    device, _ = off_contract_meter(harness, "ABC002")
    outcome = renew(harness, device, by_delete=True)
    assert outcome.ok, outcome.message
    assert "restart" in outcome.message  # asked for the delete: the better way is still said
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.advance(1800)
    harness.core.tick()
    harness.simulator.uplink(device)
    harness.core.handle_uplink(device)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE


def test_a_type_with_several_contracts_is_judged_by_all_of_them(harness: CoreHarness) -> None:
    world = harness.simulator.world
    good = world.add_contract("Good", order_id="o", order_name="O", max_tokens=10)
    full = world.add_contract("Full", order_id="o", order_name="O", max_tokens=1,
                              tokens_used=1)
    old = world.add_contract("Old", order_id="o", order_name="O", end_ms=1)
    dtype = world.add_device_type("Mixed", good.id, more_contract_ids=(full.id,),
                                  detached_contract_ids=(old.id,), shape="contracts")
    shown = harness.core.api.get_device_type(dtype.id)
    assert shown.contract_ids == [good.id, full.id]  # detached contracts are not candidates
    device = world.add_device("ABC003", device_type_id=dtype.id).id
    refused = renew(harness, device)
    assert not refused.ok and "Contract Full has no tokens left" in refused.message
    assert writes(harness) == []


# --------------------------------------------------------------------------- pre-flight


def _refusal_cases():
    """name -> (how to set the world up, returning the device id; words the refusal says)."""

    def no_pac(world):
        world.hide_pacs = True
        _, dtype = meters(world)
        return world.add_device("D00001", device_type_id=dtype.id).id

    def not_activable(world):
        _, dtype = meters(world)
        return world.add_device("D00002", device_type_id=dtype.id, activable=False).id

    def exhausted(world):
        # 2 in use + 3 used of 5: full only when used tokens count (the conservative reading).
        contract, dtype = meters(world, max_tokens=5, tokens_used=3)
        contract.tokens_in_use = 2
        return world.add_device("D00003", device_type_id=dtype.id).id

    def closed(world):
        _, dtype = meters(world, activation_end_ms=world.now_ms() - DAY_MS)
        return world.add_device("D00004", device_type_id=dtype.id).id

    def not_started(world):
        _, dtype = meters(world, start_ms=add_months(world.now_ms(), 2))
        return world.add_device("D00005", device_type_id=dtype.id).id

    def ended(world):
        _, dtype = meters(world, end_ms=world.now_ms() - DAY_MS)
        return world.add_device("D00006", device_type_id=dtype.id).id

    def no_contract(world):
        contract = world.add_contract("Hidden", order_id="o", order_name="O")
        dtype = world.add_device_type("Bare", contract.id, shape="none")
        return world.add_device("D00007", device_type_id=dtype.id).id

    return {
        "no_pac": (no_pac, ("right to read device PACs", "API user")),
        "not_activable": (not_activable, ("not activable", "nothing destructive")),
        "exhausted": (exhausted, ("no tokens left", "3 used", "counted against the maximum")),
        "closed": (closed, ("takes no new activations",)),
        "not_started": (not_started, ("has not started",)),
        "ended": (ended, ("ended on",)),
        "no_contract": (no_contract, ("lists no contract", "`contracts`", "`contract`")),
    }


REFUSALS = _refusal_cases()


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_preflight_refuses_what_cannot_end_with_a_working_device(harness, case) -> None:
    setup, words = REFUSALS[case]
    device = setup(harness.simulator.world)
    outcome = renew(harness, device)
    assert not outcome.ok
    for word in words:
        assert word in outcome.message, outcome.message
    assert outcome.message.endswith("Nothing was changed.")
    assert "to <device-type>" in outcome.message or "portal" in outcome.message  # what instead
    assert harness.core.store.list_workflows() == [] and writes(harness) == []
    assert not [e for e in harness.notifier.events if e.kind == ProgressKind.APPROVAL_NEEDED]


# --------------------------------------------------------------------------- success = token OK


def test_a_first_message_that_finds_no_token_fails_the_renewal(harness: CoreHarness) -> None:
    world = harness.simulator.world
    contract, dtype = meters(world, max_tokens=3)
    device = world.add_device("E00001", device_type_id=dtype.id).id  # no token yet
    renewed: list[str] = []
    harness.core.engine.on_renewed = renewed.append
    outcome = renew(harness, device)  # no token: only delete and re-register applies
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    harness.advance(1800)
    harness.core.tick()
    contract.tokens_in_use = contract.max_tokens  # other devices took the last tokens meanwhile
    harness.simulator.uplink(device)
    harness.core.handle_uplink(device)

    assert state_of(harness, outcome.workflow_id) == WorkflowState.FAILED
    [step] = harness.core.store.workflow_devices(outcome.workflow_id)
    assert step.state == "failed"
    assert "Sigfox says “Off Contract”" in step.last_error
    assert "Likely cause" in step.last_error and "taken them meanwhile" in step.last_error
    assert f"`/sigfox restart {device}`" in step.last_error
    assert renewed == []  # its alerts stay open
    final = harness.notifier.events[-1]
    assert final.kind == ProgressKind.FAILED and "token OK" not in final.text


# ------------------------------------------ transfers (docs/sigfox-semantics.md, "Transfers")


@pytest.fixture
def orders(harness):
    world = harness.simulator.world
    a1 = world.add_contract("A1", order_id="order-a", order_name="A", max_tokens=50)
    a2 = world.add_contract("A2", order_id="order-a", order_name="A", max_tokens=50)
    b1 = world.add_contract("B1", order_id="order-b", order_name="B", max_tokens=50)
    return {
        "home": world.add_device_type("Home", a1.id, shape="contracts"),
        "same": world.add_device_type("Same contract", a1.id, shape="contract"),
        "moved": world.add_device_type("Same order", a2.id, shape="both"),
        "lost": world.add_device_type("Other order", b1.id, shape="contracts"),
        "contracts": (a1, a2, b1),
    }


def transfer(harness, device_id: str, target: str):
    return harness.core.request(Request(Kind.TRANSFER, REQUESTER, (device_id,),
                                        Target("C0CHAN"), target))


@pytest.mark.parametrize(("target", "impact", "approval"), [
    ("Same contract", "seamless", False),
    ("Same order", "token_moved", False),
    ("Other order", "token_lost", True),
])
def test_transfer_is_judged_from_the_devices_own_contract(harness, orders, target, impact,
                                                          approval) -> None:
    world = harness.simulator.world
    device = world.add_device("F00001", device_type_id=orders["home"].id, token="ok").id
    # The device type has since moved to another order's contract: the token still came from A1.
    world.device_type(orders["home"].id).contract_id = orders["contracts"][2].id
    outcome = transfer(harness, device, target)
    assert outcome.ok, outcome.message
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["impacts"][device] == impact
    assert (workflow.state == WorkflowState.AWAITING_APPROVAL) == approval


def test_transfer_of_a_device_without_token_has_no_impact(harness, orders) -> None:
    device = harness.simulator.world.add_device("F00002", device_type_id=orders["home"].id).id
    outcome = transfer(harness, device, "Other order")
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["impacts"][device] == "no_token"
    assert workflow.state == WorkflowState.APPROVED


def test_an_unreadable_source_contract_counts_as_a_lost_token(harness, orders) -> None:
    world = harness.simulator.world
    device = world.add_device("F00003", device_type_id=orders["home"].id, token="ok").id
    source = orders["contracts"][0].id
    harness.simulator.fault(f"/v2/contract-infos/{source}", method="GET", status=403, count=5)
    outcome = transfer(harness, device, "Same order")
    assert outcome.ok, outcome.message
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["impacts"][device] == "unknown_source"
    assert workflow.state == WorkflowState.AWAITING_APPROVAL
    assert "can't be read" in outcome.message and "lost for good" in outcome.message
    assert "seamless" not in outcome.message


# --------------------------------------------------------------------------- least destructive


def test_renew_prefers_a_transfer_that_keeps_the_device(harness, orders) -> None:
    world = harness.simulator.world
    device = world.add_device("6A0001", device_type_id=orders["home"].id,
                              token="off_contract").id
    world.contract(orders["contracts"][0].id).max_tokens = 1  # its own contract is full
    world.contract(orders["contracts"][0].id).tokens_in_use = 1
    outcome = renew(harness, device, device_type="Other order")
    assert outcome.ok, outcome.message
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["method"] == "transfer"
    assert "keeps the device and its history" in outcome.message
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)  # an invoiced new token
    run(harness, ticks=4)
    assert harness.calls("DELETE", "/v2/devices/") == []
    assert state_of(harness, outcome.workflow_id) == WorkflowState.RUNNING  # until it speaks
    harness.simulator.uplink(device)
    harness.core.handle_uplink(device)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert harness.core.api.find_device(device).token.state == 0


def test_renew_switches_on_automatic_renewal_for_a_token_not_yet_ended(harness) -> None:
    world = harness.simulator.world
    _, dtype = meters(world)
    device = world.add_device("6A0002", device_type_id=dtype.id, token="ok",
                              automatic_renewal=False).id
    outcome = renew(harness, device)
    assert outcome.ok, outcome.message
    assert "automatic renewal" in outcome.message
    run(harness, ticks=2)
    assert state_of(harness, outcome.workflow_id) == WorkflowState.DONE
    assert world.device(device).automatic_renewal is True
    assert harness.calls("DELETE", "/v2/devices/") == []
    again = renew(harness, device)
    assert not again.ok and "already renews automatically" in again.message


def test_delete_only_when_nothing_else_works_and_the_approval_says_why(harness) -> None:
    world = harness.simulator.world
    contract, dtype = meters(world, max_tokens=2)
    device = world.add_device("6A0003", device_type_id=dtype.id, token="off_contract").id
    other = world.add_contract("Spare", order_id="order-m", order_name="Order M", max_tokens=9)
    world.device_type(dtype.id).contract_id = other.id  # the type now gives tokens elsewhere
    contract.tokens_in_use = 2  # its own contract is full: no restart
    outcome = renew(harness, device)
    assert outcome.ok, outcome.message
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.params["method"] == "delete"
    approval = [e for e in harness.notifier.events if e.kind == ProgressKind.APPROVAL_NEEDED]
    assert "a restart would not work" in approval[0].text and "no tokens left" in approval[0].text


def test_renew_by_delete_needs_the_same_approval(harness) -> None:
    world = harness.simulator.world
    _, dtype = meters(world)
    device = world.add_device("6A0004", device_type_id=dtype.id, token="off_contract").id
    outcome = renew(harness, device, by_delete=True)
    assert outcome.ok and outcome.approval_id is not None
    assert state_of(harness, outcome.workflow_id) == WorkflowState.AWAITING_APPROVAL
    assert "as asked (`by delete`)" in outcome.message
