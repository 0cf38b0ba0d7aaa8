"""A renewal by delete and register over many devices: the reads its devices share are made
once per tick, not once per device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.core import APPROVER, REQUESTER, CoreHarness, core_config, make_core

from commands.planning import Request
from commands.ports import Target
from commands.states import Kind, StepState
from sigfox.simulator import SimulatorServer

JOB = """
concurrent_steps = 4
device_lines_up_to = 5
progress_interval = "1h"
"""


def off_contract_fleet(sim: SimulatorServer, name: str, prefix: str, count: int) -> list[str]:
    """`count` Off Contract devices of one device type, on their own contract."""
    contract = sim.world.add_contract(name, order_id=f"order-{name.lower()}", order_name=name,
                                      max_tokens=1000)
    dtype = sim.world.add_device_type(f"{name} fleet", contract.id)
    return [sim.world.add_device(f"{prefix}{n:04X}", device_type_id=dtype.id,
                                 token="off_contract").id for n in range(count)]


def approved_renewal(harness: CoreHarness, ids: list[str]) -> int:
    outcome = harness.core.request(Request(Kind.RENEW, REQUESTER, tuple(ids), Target("C0CHAN"),
                                           by_delete=True))
    assert outcome.ok and outcome.approval_id is not None, outcome.message
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    assert outcome.workflow_id is not None
    return outcome.workflow_id


def states(harness: CoreHarness, workflow_id: int) -> dict[str, str]:
    return {s.device_id: s.state for s in harness.core.store.workflow_devices(workflow_id)}


def test_the_device_type_and_contract_are_read_once_per_tick_for_devices_sharing_them(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    alpha = off_contract_fleet(sim, "Alpha", "A1", 6)
    beta = off_contract_fleet(sim, "Beta", "B2", 3)
    harness = make_core(sim, tmp_path / "bot.db", config=core_config(JOB))
    workflow_id = approved_renewal(harness, alpha + beta)
    sim.control("DELETE", "/calls")
    harness.core.tick()  # no hold: deleted, registered and reported in this one tick
    assert set(states(harness, workflow_id).values()) == {StepState.AWAITING_UPLINK.value}
    # One read of each device type and of its contract for the tick, not one per device; the
    # devices of each type read their own.
    type_reads = sorted(c["path"] for c in harness.calls("GET", "/v2/device-types/"))
    assert type_reads == sorted(f"/v2/device-types/{sim.world.devices[d].device_type_id}"
                                for d in (alpha[0], beta[0]))
    assert len(harness.calls("GET", "/v2/contract-infos/")) == 2
    reported = {s.device_id: s.data["contract"]
                for s in harness.core.store.workflow_devices(workflow_id)}
    assert reported == {**dict.fromkeys(alpha, "Alpha"), **dict.fromkeys(beta, "Beta")}
