"""A renewal by delete and register over many devices: the reads its devices share are made
once per tick, its devices are read in pages, and they are registered again in bulk create
jobs (5 per 10 minutes at most), each device's outcome read from its job's status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.core import (
    APPROVER,
    POLICY_TOML,
    REQUESTER,
    CoreHarness,
    core_config,
    make_core,
    sigfox_client,
)

from commands.config import parse_config
from commands.planning import Request
from commands.ports import ManualClock, Target
from commands.states import Kind, StepState
from sigfox.simulator import SimulatorServer
from storage.call_ledger import SqliteCallLedger
from storage.db import open_database

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


def paced_core(sim: SimulatorServer, tmp_path: Path, release_retry: str = "5m"
               ) -> CoreHarness:
    """A core whose client paces to the published limits (5 bulk jobs per 10 minutes counted
    in the database), as `serve` wires it, on the bot's virtual clock."""
    clock = ManualClock(sim.clock.now())
    config = parse_config((POLICY_TOML + JOB).replace('release_retry = "5m"',
                                                      f'release_retry = "{release_retry}"'))
    api = sigfox_client(sim, rate_limits=True, clock=clock.now,
                        ledger=SqliteCallLedger(open_database(tmp_path / "bot.db")))
    return make_core(sim, tmp_path / "bot.db", config=config, api=api, clock=clock)


def creates(harness: CoreHarness) -> list[dict]:
    return [c for c in harness.calls("POST", "/v2/devices/") if c["path"] == "/v2/devices/"]


def bulk_creates(harness: CoreHarness) -> list[dict]:
    return harness.calls("POST", "/v2/devices/bulk")


def tick_for(harness: CoreHarness, seconds: float, step: float = 5.0) -> None:
    """Tick every `step` seconds of the (virtual) clock for `seconds`."""
    for _ in range(int(seconds / step)):
        harness.core.tick()
        harness.advance(step)


def test_devices_held_by_sigfox_fail_in_the_bulk_create_and_are_registered_by_a_later_one(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=True, delete_hold=240, job_delay=0.0)
    ids = off_contract_fleet(sim, "Bulk", "E4", 12)
    pacs = {sim.world.pac_of(d) for d in ids}
    harness = paced_core(sim, tmp_path)
    workflow_id = approved_renewal(harness, ids)
    sim.control("DELETE", "/calls")
    tick_for(harness, 60)  # deleted, then the first job: every id still held
    assert len(bulk_creates(harness)) == 1
    assert set(states(harness, workflow_id).values()) == {StepState.AWAITING_RELEASE.value}
    tick_for(harness, 300)  # release_retry (5 min) later: the second job registers them all
    assert set(states(harness, workflow_id).values()) == {StepState.AWAITING_UPLINK.value}
    jobs = bulk_creates(harness)
    assert [c["status"] for c in jobs] == [200, 200]  # no third, none refused (429)
    assert creates(harness) == []  # not one create per device
    assert len(harness.calls("DELETE", "/v2/devices/", 204)) == 12
    for device_id in ids:
        snapshot = harness.core.store.snapshots.of(workflow_id, device_id)
        assert snapshot is not None and snapshot.new_pac == sim.world.pac_of(device_id)
        pacs.add(snapshot.new_pac)
    # The job is told once, and no PAC is in anything told.
    told = harness.notifier.texts()
    assert sum("create job" in t for t in told) == 2
    assert not [t for t in told for pac in pacs if pac in t]


def test_a_device_the_bulk_create_refuses_for_another_reason_is_created_alone_to_learn_why(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=True, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(sim, "Mixed", "F5", 5)
    harness = paced_core(sim, tmp_path)
    workflow_id = approved_renewal(harness, ids)
    wrong = ids[2]
    sim.world.pacs[wrong] = "0123456789ABCDEF"  # its recorded PAC no longer registers it
    sim.control("DELETE", "/calls")
    tick_for(harness, 60)
    final = states(harness, workflow_id)
    assert final.pop(wrong) == StepState.FAILED.value
    assert set(final.values()) == {StepState.AWAITING_UPLINK.value}
    assert len(bulk_creates(harness)) == 1
    # The job's error says only "not registered": the device's own create said why (400).
    assert [(c["path"], c["status"]) for c in creates(harness)] == [("/v2/devices/", 400)]
    (failed,) = [s for s in harness.core.store.workflow_devices(workflow_id)
                 if s.device_id == wrong]
    assert "Sigfox refused to register it again" in failed.last_error
    assert "PAC is not valid" in failed.last_error


def test_rounds_of_bulk_creates_never_exceed_five_jobs_in_ten_minutes(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # Sigfox holds the ids 40 minutes (release_timeout, 2 h, is not reached); the job tries
    # every minute: the pacer, counting the
    # jobs in the database, spaces them so that no 10-minute window holds more than 5.
    sim = make_simulator(devices=0, rate_limits=True, delete_hold=2400, job_delay=0.0)
    ids = off_contract_fleet(sim, "Limit", "A6", 4)
    harness = paced_core(sim, tmp_path, release_retry="1m")
    workflow_id = approved_renewal(harness, ids)
    sim.control("DELETE", "/calls")
    tick_for(harness, 3000, step=20)
    assert set(states(harness, workflow_id).values()) == {StepState.AWAITING_UPLINK.value}
    jobs = bulk_creates(harness)
    assert [c for c in jobs if c["status"] != 200] == []  # never refused (429)
    times = [c["time"] for c in jobs]
    assert len(times) >= 10  # it kept trying, a job at a time
    assert max(sum(t <= u < t + 600 for u in times) for t in times) == 5
    assert creates(harness) == []


def test_a_failed_shared_read_is_one_call_and_every_device_reads_again_later(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(sim, "Flaky", "B7", 6)
    type_path = f"/v2/device-types/{sim.world.devices[ids[0]].device_type_id}"
    harness = make_core(sim, tmp_path / "bot.db", config=core_config(JOB))
    workflow_id = approved_renewal(harness, ids)
    sim.control("DELETE", "/calls")
    sim.fault(type_path, method="GET", status=500)
    tick_for(harness, 120)
    assert set(states(harness, workflow_id).values()) == {StepState.AWAITING_UPLINK.value}
    # The 500 was the tick's one read for all six devices; they all read again, once, later.
    assert [c["status"] for c in harness.calls("GET", type_path)] == [500, 200]
