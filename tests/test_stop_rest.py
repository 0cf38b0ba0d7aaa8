"""Stopping the rest of a running job (issue 13): `/sigfox cancel` on a job some of whose
devices were already touched stops those nothing was sent for, and the job finishes the others.

Real core, SQLite and simulated backend over HTTP. "While the tick is half-way through the job"
is a state the test sets up: the tick runs one device at a time and the DELETE of the third
device waits at a gate in front of Sigfox (support/gates.py) until the test opens it, so the
tick already holds the other devices as due (pending) when the stop comes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.core import APPROVER, OUTSIDER, REQUESTER, CoreHarness, core_config, make_core
from support.core import sigfox_client as client_for
from support.gates import GatedTransport

from commands.planning import Request
from commands.ports import ManualClock, ProgressKind, Target
from commands.states import Kind, StepState, WorkflowState
from sigfox.simulator import SimulatorServer
from storage.db import open_database
from storage.store import STOP_ASKED, Store

DEVICES = 8
HELD = 2  # the tick waits at the gate with the DELETE of this device (0-based)
ONE_AT_A_TIME = "concurrent_steps = 1\n"


def off_contract_fleet(sim: SimulatorServer, count: int = DEVICES) -> list[str]:
    contract = sim.world.add_contract("Stop", order_id="order-stop", order_name="Stop",
                                      max_tokens=1000)
    dtype = sim.world.add_device_type("Stop fleet", contract.id)
    return [sim.world.add_device(f"5D{n:04X}", device_type_id=dtype.id,
                                 token="off_contract").id for n in range(count)]


@dataclass
class HalfWay:
    """A delete job whose tick has deleted the first devices and waits at the gate with the
    DELETE of the device `HELD`; the others are still pending."""

    harness: CoreHarness
    gate: GatedTransport
    ids: list[str]
    workflow_id: int
    tick: threading.Thread

    def finish_tick(self) -> None:
        self.gate.open()
        self.tick.join(timeout=60)
        assert not self.tick.is_alive()

    def run_to_the_end(self) -> None:
        for _ in range(20):
            if self.state() not in (WorkflowState.RUNNING, WorkflowState.APPROVED):
                return
            self.harness.advance(5)
            self.harness.core.tick()
        raise AssertionError(f"the job never ended: {self.state()}")

    def state(self) -> str:
        workflow = self.harness.core.store.get_workflow(self.workflow_id)
        assert workflow is not None
        return workflow.state

    def steps(self) -> dict[str, str]:
        return {s.device_id: s.state
                for s in self.harness.core.store.workflow_devices(self.workflow_id)}


def holding_delete_of(device_id: str) -> Callable[[httpx.Request], bool]:
    return lambda request: (request.method == "DELETE"
                            and request.url.path.endswith(f"/devices/{device_id}"))


def core_on(sim: SimulatorServer, db_path: Path, transport: httpx.BaseTransport | None = None,
            clock: ManualClock | None = None) -> CoreHarness:
    clock = clock or ManualClock(sim.clock.now())
    api = client_for(sim, clock=clock.now, transport=transport)
    return make_core(sim, db_path, api=api, clock=clock, config=core_config(ONE_AT_A_TIME))


@pytest.fixture
def half_way(make_simulator: Callable[..., SimulatorServer], tmp_path: Path
             ) -> Iterator[HalfWay]:
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(sim)
    gate = GatedTransport(holding_delete_of(ids[HELD]))
    harness = core_on(sim, tmp_path / "bot.db", gate)
    outcome = harness.core.request(Request(Kind.DELETE, REQUESTER, tuple(ids), Target("C0")))
    assert outcome.ok and outcome.approval_id is not None, outcome.message
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    gate.close_gate()
    tick = threading.Thread(target=harness.core.tick, name="held-tick")
    tick.start()
    job = HalfWay(harness, gate, ids, int(outcome.workflow_id or 0), tick)
    try:
        gate.wait_until_held(1)
        yield job
    finally:
        gate.open()
        tick.join(timeout=60)


def deletes(sim: SimulatorServer) -> list[str]:
    return [c["path"].rsplit("/", 1)[-1] for c in sim.call_log() if c["method"] == "DELETE"]


def calls_naming(sim: SimulatorServer, device_ids: list[str], since: int) -> list[dict]:
    later = sim.call_log()[since:]
    return [c for c in later if any(d in c["path"] or d in c["query"] for d in device_ids)]


def stop_audit(harness: CoreHarness, workflow_id: int) -> list[tuple[str, str, str]]:
    return [(a.actor, a.action, a.outcome)
            for a in harness.core.store.audit_entries(workflow_id=workflow_id)
            if a.action in ("stop", "cancel", "cancel asked")]


def test_a_stop_halts_the_untouched_devices_and_the_touched_ones_finish(half_way) -> None:
    job, harness = half_way, half_way.harness
    sim = harness.simulator
    touched, untouched = job.ids[:HELD + 1], job.ids[HELD + 1:]
    assert deletes(sim) == touched[:HELD]
    since = len(sim.call_log())

    stopped = harness.core.cancel(job.workflow_id, REQUESTER)

    assert stopped.ok, stopped.message
    assert stopped.details == {"stopped": len(untouched), "finishing": len(touched)}
    assert f"{len(untouched)} device(s) the job had not changed at Sigfox are stopped" \
        in stopped.message
    assert (f"{len(touched)} device(s) are still being finished, because Sigfox already has "
            "(or may have) their change: 3 its DELETE was sent (or may have been)") \
        in stopped.message
    assert "Their PACs stay recorded" in stopped.message and "ends when they are done" \
        in stopped.message
    assert stop_audit(harness, job.workflow_id) == [(REQUESTER.user_id, "stop", "stopped")]
    said = [e for e in harness.notifier.events if e.details.get("stop") == "stopped"]
    assert len(said) == 1 and said[0].text.startswith(f"Stopped by <@{REQUESTER.user_id}>.")
    assert {job.steps()[d] for d in untouched} == {StepState.STOPPED}

    job.finish_tick()  # the tick goes on with the devices it held as due: it sends nothing
    job.run_to_the_end()

    assert job.state() == WorkflowState.STOPPED
    assert sorted(deletes(sim)) == sorted(touched)  # each touched device deleted once
    assert calls_naming(sim, untouched, since) == []  # not a call about them after the stop
    assert all(sim.world.devices.get(d) is not None for d in untouched)
    assert {job.steps()[d] for d in touched} == {StepState.DONE}
    workflow = harness.core.store.get_workflow(job.workflow_id)
    assert workflow is not None and workflow.outcome == "stopped"
    [summary] = [e for e in harness.notifier.events if e.details.get("outcome")]
    assert summary.kind == ProgressKind.FINISHED and summary.details["outcome"] == "stopped"
    assert summary.text.startswith(
        f"Delete stopped part-way: 3 of {DEVICES} device(s) done, 0 failed, "
        f"{len(untouched)} stopped untouched ({', '.join(untouched)})")
    for device_id in touched:  # the PACs of the deleted devices are kept
        snapshot = harness.core.store.snapshots.of(job.workflow_id, device_id)
        assert snapshot is not None and snapshot.pac


def test_the_stopped_devices_are_free_for_a_new_job_at_once(half_way) -> None:
    job, harness = half_way, half_way.harness
    assert harness.core.cancel(job.workflow_id, APPROVER).ok
    again = harness.core.request(Request(Kind.DELETE, REQUESTER, (job.ids[-1],), Target("C0")))
    assert again.ok and not again.joined, again.message
    held = harness.core.request(Request(Kind.DELETE, REQUESTER, (job.ids[HELD],), Target("C0")))
    assert held.joined and held.workflow_id == job.workflow_id


def test_only_those_who_may_cancel_can_stop_and_a_refusal_stops_nothing(half_way) -> None:
    job, harness = half_way, half_way.harness
    refused = harness.core.cancel(job.workflow_id, OUTSIDER)
    assert not refused.ok
    assert "or an approver may cancel it" in refused.message, refused.message
    assert StepState.STOPPED not in job.steps().values()
    assert STOP_ASKED not in harness.core.store.get_workflow(job.workflow_id).params
    assert stop_audit(harness, job.workflow_id) == []
    job.finish_tick()
    job.run_to_the_end()
    assert job.state() == WorkflowState.DONE
    assert sorted(deletes(harness.simulator)) == sorted(job.ids)


def test_a_second_cancel_changes_nothing_and_says_so(half_way) -> None:
    job, harness = half_way, half_way.harness
    assert harness.core.cancel(job.workflow_id, REQUESTER).ok
    events = len(harness.notifier.events)
    steps = job.steps()

    again = harness.core.cancel(job.workflow_id, APPROVER)

    assert not again.ok and again.details == {"stopped_already": True}
    assert again.message.startswith(
        f"J-{job.workflow_id:04d} was already stopped by <@{REQUESTER.user_id}> at ")
    assert (f"{DEVICES - HELD - 1} device(s) stopped untouched, and 3 device(s) are still "
            "being finished; the job ends when they are done. Nothing more was changed.") \
        in again.message
    assert job.steps() == steps and len(harness.notifier.events) == events
    assert stop_audit(harness, job.workflow_id) == [(REQUESTER.user_id, "stop", "stopped")]

    job.finish_tick()
    job.run_to_the_end()
    ended = harness.core.cancel(job.workflow_id, REQUESTER)
    assert not ended.ok and "it has ended (stopped)" in ended.message


def test_a_restart_after_a_stop_changes_nothing_more(half_way, tmp_path: Path) -> None:
    job, harness = half_way, half_way.harness
    sim = harness.simulator
    assert harness.core.cancel(job.workflow_id, REQUESTER).ok
    job.finish_tick()
    since = len(sim.call_log())
    stops_said = [e for e in harness.notifier.events if e.details.get("stop")]

    # The bot restarts on the same database: it resumes the job, finishes the touched devices.
    restarted = core_on(sim, tmp_path / "bot.db", clock=harness.clock)
    restarted.core.resume()
    job.harness = restarted
    job.run_to_the_end()

    untouched = job.ids[HELD + 1:]
    assert job.state() == WorkflowState.STOPPED
    assert calls_naming(sim, untouched, since) == []
    assert {job.steps()[d] for d in untouched} == {StepState.STOPPED}
    assert [e for e in restarted.notifier.events if e.details.get("stop")] == []
    assert len(stops_said) == 1
    assert stop_audit(restarted, job.workflow_id) == [(REQUESTER.user_id, "stop", "stopped")]


def test_a_job_with_nothing_untouched_left_keeps_the_refusal(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # A bulk restart puts every device in one Sigfox job: once it is submitted, all are touched.
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=3600.0)
    ids = off_contract_fleet(sim, 4)
    harness = core_on(sim, tmp_path / "bot.db")
    outcome = harness.core.request(Request(Kind.RESTART, REQUESTER, tuple(ids), Target("C0")))
    assert outcome.ok and outcome.workflow_id is not None, outcome.message
    harness.core.tick()
    steps = {s.state for s in harness.core.store.workflow_devices(outcome.workflow_id)}
    assert steps == {StepState.AWAITING_JOB}

    refused = harness.core.cancel(outcome.workflow_id, REQUESTER)

    assert not refused.ok
    assert refused.message == (
        f"J-{outcome.workflow_id:04d} cannot be cancelled: its first change was already sent "
        "to Sigfox and took effect. The bot will finish it (the PAC is recorded), follow its "
        "thread.")
    assert stop_audit(harness, outcome.workflow_id) == []
    assert STOP_ASKED not in harness.core.store.get_workflow(outcome.workflow_id).params


# -- the compare-and-set in storage/ ---------------------------------------------------------


def running_job(store: Store, ids: list[str]) -> int:
    workflow_id, busy = store.create_workflow(
        kind=Kind.DELETE.value, state=WorkflowState.RUNNING.value, requester="U0REQUEST",
        device_ids=ids, device_state=StepState.PENDING.value, now=1.0)
    assert workflow_id is not None and not busy
    return workflow_id


def test_the_tick_and_the_stop_racing_for_a_device_exactly_one_wins(tmp_path: Path) -> None:
    """The tick's last move before a call (its claim of a bulk job's device, or the DELETE
    written ahead) against the stop, started together: the device is touched, or stopped
    and no call can be written for it, never both, never neither."""
    store = Store(open_database(tmp_path / "race.db"))
    for round_ in range(40):
        ids = [f"R{round_:03d}{n}" for n in range(2)]
        workflow_id = running_job(store, ids)
        store.cas_device(workflow_id, ids[0], StepState.PENDING, StepState.SUBMITTING, 2.0)
        first = store.intents.open(workflow_id=workflow_id, device_ids=ids[:1],
                                   action="restart", now=2.0, lands_by=3.0, running=["running"])
        store.intents.answered(str(first), True, 2.5, "job-1")  # one device already touched
        bulk = round_ % 2 == 0
        if not bulk:  # a delete step has claimed the device and is about to write ahead
            store.cas_device(workflow_id, ids[1], StepState.PENDING, StepState.DELETING, 2.0)
        start = threading.Barrier(2)
        results: dict[str, object] = {}

        def tick(workflow_id: int = workflow_id, device: str = ids[1], bulk: bool = bulk,
                 start: threading.Barrier = start, results: dict = results) -> None:
            start.wait()
            if bulk:
                results["touched"] = store.cas_device(workflow_id, device, StepState.PENDING,
                                                      StepState.SUBMITTING, 3.0)
            else:
                results["touched"] = store.intents.open(
                    workflow_id=workflow_id, device_ids=[device], action="delete", now=3.0,
                    lands_by=4.0, running=["running"]) is not None

        def stop(workflow_id: int = workflow_id, start: threading.Barrier = start,
                 results: dict = results) -> None:
            start.wait()
            results["stopped"] = store.stop_untouched(workflow_id, ["running"], {"by": "U"}, 3.0)

        threads = [threading.Thread(target=tick), threading.Thread(target=stop)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        state = store.device_step(workflow_id, ids[1]).state
        intents = store.intents.of_step(workflow_id, ids[1])
        if results["touched"]:
            assert results["stopped"] == [] and state != StepState.STOPPED
            assert STOP_ASKED not in store.get_workflow(workflow_id).params
            assert len(intents) == (0 if bulk else 1)
        else:
            assert results["stopped"] == [ids[1]] and state == StepState.STOPPED
            assert intents == []
        assert store.device_step(workflow_id, ids[0]).state == StepState.SUBMITTING


def test_a_step_of_a_stopped_job_never_leaves_pending_again(tmp_path: Path) -> None:
    store = Store(open_database(tmp_path / "stop.db"))
    ids = ["S0001", "S0002", "S0003"]
    workflow_id = running_job(store, ids)
    store.cas_device(workflow_id, ids[0], StepState.PENDING, StepState.SUBMITTING, 2.0)
    assert store.stop_untouched(workflow_id, ["running"], {"by": "U"}, 3.0) == ids[1:]
    assert store.stop_untouched(workflow_id, ["running"], {"by": "V"}, 4.0) is None
    # Its submission verified not to have reached Sigfox: back to pending, as before stops.
    assert store.cas_device(workflow_id, ids[0], StepState.SUBMITTING, StepState.PENDING, 5.0)
    assert not store.cas_device(workflow_id, ids[0], StepState.PENDING, StepState.SUBMITTING,
                                6.0)
    assert store.stop_leftovers(workflow_id, 7.0) == [ids[0]]
    assert {s.state for s in store.workflow_devices(workflow_id)} == {StepState.STOPPED}
    assert store.stop_leftovers(workflow_id, 8.0) == []
    other = running_job(store, ["S0004"])
    assert store.stop_leftovers(other, 9.0) == []  # not stopped: nothing moves
    assert store.cas_device(other, "S0004", StepState.PENDING, StepState.DELETING, 10.0)


def test_a_pending_cancel_refused_after_all_stops_the_untouched_devices(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # The first DELETE waits at the gate when the cancel comes: it may still land, nothing
    # has, so the cancel is pending (as for one device). It lands; the others were not sent.
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(sim, 4)
    gate = GatedTransport(holding_delete_of(ids[0]))
    harness = core_on(sim, tmp_path / "bot.db", gate)
    outcome = harness.core.request(Request(Kind.DELETE, REQUESTER, tuple(ids), Target("C0")))
    assert harness.core.decide(int(outcome.approval_id or 0), APPROVER, approve=True).ok
    workflow_id = int(outcome.workflow_id or 0)
    gate.close_gate()
    tick = threading.Thread(target=harness.core.tick, name="held-tick")
    tick.start()
    try:
        gate.wait_until_held(1)
        asked = harness.core.cancel(workflow_id, REQUESTER)
        assert asked.ok and asked.details["pending"], asked.message
    finally:
        gate.open()
        tick.join(timeout=60)
    assert deletes(sim) == ids[:1]  # the others were not sent: the cancel waits
    harness.advance(harness.core.api.longest_call + 61)  # past the pending cancel's check
    harness.core.tick()

    steps = {s.device_id: s.state for s in harness.core.store.workflow_devices(workflow_id)}
    assert [steps[d] for d in ids[1:]] == [StepState.STOPPED] * 3
    assert stop_audit(harness, workflow_id) == [
        (REQUESTER.user_id, "cancel asked", "pending"), (REQUESTER.user_id, "cancel", "refused"),
        (REQUESTER.user_id, "stop", "stopped")]
    texts = harness.notifier.texts()
    assert any(f"the delete of {ids[0]} took effect at Sigfox, so the job goes on for the "
               "devices already changed and is stopped for the 3 not touched yet" in t
               for t in texts)
    for _ in range(10):
        harness.advance(5)
        harness.core.tick()
    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.STOPPED
    assert deletes(sim) == ids[:1]


def test_no_call_is_written_ahead_for_a_stopped_device(tmp_path: Path) -> None:
    store = Store(open_database(tmp_path / "intents.db"))
    ids = ["W0001", "W0002"]
    workflow_id = running_job(store, ids)
    assert store.stop_untouched(workflow_id, ["running"], {"by": "U"}, 2.0) == ids

    def open_for(device_ids: list[str]) -> str | None:
        return store.intents.open(workflow_id=workflow_id, device_ids=device_ids,
                                  action="delete", now=3.0, lands_by=4.0, running=["running"])

    assert open_for(ids[:1]) is None and open_for(ids) is None
    assert store.intents.of_workflow(workflow_id) == []


def test_a_deleting_step_is_untouched_only_while_no_delete_landed_or_could(
    tmp_path: Path
) -> None:
    store = Store(open_database(tmp_path / "deleting.db"))
    ids = ["X0CLAIM", "X0REFUSED", "X0LANDED", "X0FLIGHT", "X0PEND"]
    workflow_id = running_job(store, ids)

    def delete(device_id: str, landed: bool | None) -> None:
        store.cas_device(workflow_id, device_id, StepState.PENDING, StepState.DELETING, 2.0)
        if landed is None and device_id == "X0CLAIM":
            return  # claimed, its DELETE not written ahead yet
        batch = store.intents.open(workflow_id=workflow_id, device_ids=[device_id],
                                   action="delete", now=2.0, lands_by=9.0, running=["running"])
        assert batch is not None
        if landed is not None:
            store.intents.answered(batch, landed, 3.0, "ok" if landed else "400")

    delete("X0CLAIM", None)
    delete("X0REFUSED", False)  # verified not executed: nothing took effect
    delete("X0LANDED", True)
    delete("X0FLIGHT", None)  # unanswered: may still land
    assert store.untouched_steps(workflow_id) == 3
    stopped = store.stop_untouched(workflow_id, ["running"], {"by": "U"}, 4.0)
    assert stopped == ["X0CLAIM", "X0PEND", "X0REFUSED"]
    states = {s.device_id: s.state for s in store.workflow_devices(workflow_id)}
    assert states["X0LANDED"] == states["X0FLIGHT"] == StepState.DELETING
    assert store.untouched_steps(workflow_id) == 0


def test_a_delete_found_not_to_have_landed_after_the_stop_is_not_sent_again(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # At the stop, the DELETE of ids[1] got a 500 (it may have landed: touched, finishing).
    # Checked once it can no longer land, it did nothing: the device is untouched after all,
    # and the stopped job sends it nothing more.
    sim = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(sim, 6)
    gate = GatedTransport(holding_delete_of(ids[2]))
    clock = ManualClock(sim.clock.now())
    api = client_for(sim, clock=clock.now, transport=gate, max_retries=0)
    harness = make_core(sim, tmp_path / "bot.db", api=api, clock=clock,
                        config=core_config(ONE_AT_A_TIME))
    outcome = harness.core.request(Request(Kind.DELETE, REQUESTER, tuple(ids), Target("C0")))
    assert harness.core.decide(int(outcome.approval_id or 0), APPROVER, approve=True).ok
    workflow_id = int(outcome.workflow_id or 0)
    sim.fault(f"/v2/devices/{ids[1]}", method="DELETE", status=500)
    gate.close_gate()
    tick = threading.Thread(target=harness.core.tick, name="held-tick")
    tick.start()
    try:
        gate.wait_until_held(1)
        stopped = harness.core.cancel(workflow_id, REQUESTER)
    finally:
        gate.open()
        tick.join(timeout=60)
    assert stopped.details == {"stopped": 3, "finishing": 3}, stopped.message

    harness.advance(harness.core.api.longest_call + 61)  # the 500's DELETE can no longer land
    for _ in range(10):
        harness.core.tick()
        harness.advance(5)

    assert harness.core.store.get_workflow(workflow_id).state == WorkflowState.STOPPED
    assert sorted(deletes(sim)) == sorted(ids[:3])  # the 500'd DELETE of ids[1] not sent again
    assert sim.world.devices.get(ids[1]) is not None
    assert harness.core.store.device_step(workflow_id, ids[1]).state == StepState.STOPPED
    assert any(f"{ids[1]}: Checked after the unanswered delete: it did not reach Sigfox, and "
               "the job was stopped: nothing more is sent for it." in t
               for t in harness.notifier.texts())
    [summary] = [e for e in harness.notifier.events if e.details.get("outcome")]
    assert "2 of 6 device(s) done, 0 failed, 4 stopped untouched" in summary.text
