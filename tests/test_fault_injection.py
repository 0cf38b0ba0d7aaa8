"""429s, 5xx, timeouts and dropped connections at every step of a renewal.

Each fault is injected in the simulated backend (not in our code); the renewal must finish
with exactly one processed DELETE and one successful create, retrying or reporting, never
repeating a destructive call and never losing the PAC.
"""

from __future__ import annotations

import pytest
from support.core import APPROVER, REQUESTER, build_fleet, core_config, make_core, sigfox_client

from commands.planning import Request
from commands.ports import ManualClock, Target
from commands.states import Kind, WorkflowState

DEVICE = "C0FFEE"
ENDPOINTS = [
    ("GET", "/v2/devices/"),
    ("DELETE", f"/v2/devices/{DEVICE}"),
    ("POST", "/v2/devices/"),
    ("GET", "/v2/device-types/*"),
    ("GET", "/v2/contract-infos/*"),
]
def fault_id(fault: dict) -> str:
    return next(iter(fault)) + str(fault.get("status", ""))


FAULTS = [
    {"status": 429, "count": 2},
    {"status": 500, "count": 2},
    {"delay": 0.8, "count": 1},
    {"drop": True, "count": 2},
]


@pytest.mark.parametrize("fault", FAULTS, ids=fault_id)
@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=lambda v: v)
def test_renewal_survives_faults(make_simulator, tmp_path, method, path, fault) -> None:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    fleet = build_fleet(simulator)
    assert fleet.off_contract == DEVICE
    clock = ManualClock(simulator.clock.now())
    harness = make_core(
        simulator, tmp_path / "bot.db", clock=clock,
        api=sigfox_client(simulator, timeout=0.4, max_retries=3, clock=clock.now),
    )
    original_pac = simulator.world.pac_of(DEVICE)
    outcome = harness.core.request(Request(Kind.RENEW, REQUESTER, (DEVICE,), Target("C0CHAN"),
                                                 by_delete=True))
    assert outcome.ok, outcome.message
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    simulator.fault(path, method=method, **fault)

    for _ in range(30):
        harness.core.tick()
        steps = harness.core.store.workflow_devices(outcome.workflow_id)
        if steps[0].state == "awaiting_uplink" and not steps[0].data.get("uplinked"):
            simulator.uplink(DEVICE)
            harness.core.store.update_device_step(
                outcome.workflow_id,
                DEVICE,
                harness.clock.now(),
                data={**steps[0].data, "uplinked": True},
            )
        if harness.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE:
            break
        harness.clock.advance(900)

    assert simulator.control("GET", "/faults")["faults"] == []  # every injected fault fired
    workflow = harness.core.store.get_workflow(outcome.workflow_id)
    assert workflow.state == WorkflowState.DONE, harness.notifier.texts()
    log = simulator.call_log()
    assert len([c for c in log if c["method"] == "DELETE" and c["status"] == 204]) == 1
    assert (
        len(
            [
                c
                for c in log
                if c["method"] == "POST"
                and c["path"] == "/v2/devices/"
                and c["status"] in (200, 201)
            ]
        )
        == 1
    )
    assert harness.core.store.snapshots.of(outcome.workflow_id, DEVICE).pac == original_pac


BULK_FAULTS = [{"status": 500}, {"drop": True}, {"status": 429, "count": 2}, {"delay": 0.8}]


@pytest.mark.parametrize("fault", BULK_FAULTS, ids=fault_id)
@pytest.mark.parametrize(("kind", "path"), [(Kind.TRANSFER, "/v2/devices/bulk/transfer"),
                                            (Kind.RESTART, "/v2/devices/bulk/restart")])
def test_bulk_jobs_survive_faults_on_submission(make_simulator, tmp_path, kind, path,
                                                fault) -> None:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    fleet = build_fleet(simulator)
    clock = ManualClock(simulator.clock.now())
    # A job of this simulator runs at once: a minute covers one accepted without an answer.
    harness = make_core(simulator, tmp_path / "bot.db", clock=clock,
                        config=core_config('bulk_job_landing = "1m"\n'),
                        api=sigfox_client(simulator, timeout=0.4, max_retries=3, clock=clock.now))
    device, target = ((fleet.no_token, "Fleet B") if kind == Kind.TRANSFER
                      else (fleet.off_contract, None))
    outcome = harness.core.request(Request(kind, REQUESTER, (device,), Target("C0CHAN"), target))
    assert outcome.ok, outcome.message
    simulator.fault(path, method="POST", **fault)
    for _ in range(20):
        harness.core.tick()
        if harness.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE:
            break
        harness.clock.advance(30)
    assert simulator.control("GET", "/faults")["faults"] == []
    assert harness.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE
    landed = harness.core.api.find_device(device)
    if kind == Kind.TRANSFER:
        assert landed.device_type.id == fleet.type_b
    else:
        assert landed.token.state == 0
