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


def tick_until(harness: CoreHarness, workflow_id: int, state: StepState, ticks: int = 10
               ) -> None:
    """Tick (a tick a second, as the test config says) until every device is in `state`."""
    for _ in range(ticks):
        harness.core.tick()
        if set(states(harness, workflow_id).values()) == {state.value}:
            return
        harness.advance(1)
    raise AssertionError(f"not all {state}: {states(harness, workflow_id)}")


def test_the_device_type_and_contract_are_read_once_per_tick_for_devices_sharing_them(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    alpha = off_contract_fleet(sim, "Alpha", "A1", 6)
    beta = off_contract_fleet(sim, "Beta", "B2", 3)
    harness = make_core(sim, tmp_path / "bot.db", config=core_config(JOB))
    workflow_id = approved_renewal(harness, alpha + beta)
    sim.control("DELETE", "/calls")
    tick_until(harness, workflow_id, StepState.AWAITING_UPLINK)
    # One read of each device type and of its contract for the tick, not one per device; the
    # devices of each type read their own.
    type_reads = sorted(c["path"] for c in harness.calls("GET", "/v2/device-types/"))
    assert type_reads == sorted(f"/v2/device-types/{sim.world.devices[d].device_type_id}"
                                for d in (alpha[0], beta[0]))
    assert len(harness.calls("GET", "/v2/contract-infos/")) == 2
    reported = {s.device_id: s.data["contract"]
                for s in harness.core.store.workflow_devices(workflow_id)}
    assert reported == {**dict.fromkeys(alpha, "Alpha"), **dict.fromkeys(beta, "Beta")}


def device_reads(harness: CoreHarness) -> list[dict]:
    return [c for c in harness.calls("GET", "/v2/devices/") if c["path"] == "/v2/devices/"]


def test_the_reads_before_and_after_each_delete_and_create_come_in_pages(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(sim, "Paged", "C3", 30)
    harness = make_core(sim, tmp_path / "bot.db", config=core_config(JOB))
    workflow_id = approved_renewal(harness, ids)
    sim.control("DELETE", "/calls")
    tick_until(harness, workflow_id, StepState.AWAITING_UPLINK)
    # A page before the deletes, one seeing them gone (then the creates), one seeing the
    # devices back: no read of one device (30 devices fit one page).
    reads = device_reads(harness)
    assert not [c for c in reads if "id=" in str(c.get("query")).replace("minId", "")], reads
    assert len(reads) == 3, reads
    assert len(harness.calls("DELETE", "/v2/devices/", 204)) == 30
    # Each device's new PAC (registration consumes the old one) was read back and recorded.
    for device_id in ids:
        snapshot = harness.core.store.snapshots.of(workflow_id, device_id)
        assert snapshot is not None and snapshot.new_pac == sim.world.pac_of(device_id)
