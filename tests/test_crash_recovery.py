"""Crash injection: the bot dies around every Sigfox call and after every step.

Each run is a real process (forked by tests/support/fork_server.py) killed with `os._exit`;
the next process on the same database finishes the job. The backend's call log must show
exactly one processed DELETE and one successful create, and the recorded PAC must be intact.
"""

from __future__ import annotations

import pytest
from support.bot_processes import BotProcesses
from support.core import APPROVER, POLICY_TOML, REQUESTER, build_fleet, make_core

from commands.planning import Request
from commands.ports import Target
from commands.states import Kind, WorkflowState

# A call dying with its process is settled by a read only once it can no longer land: keep
# that wait short here (client timeout 0.2 s, no retries, 1 s margin: under 2 s).
FAST_LANDING = 'landing_margin = "1s"\nbulk_job_landing = "1s"\n'
FAST_CLIENT = {"timeout": 0.2, "max_retries": 0, "backoff_cap": 0.1, "deadline": 30.0,
               "pause": 0.02}


# `call:{n}`: the n-th process dies at its n-th call, so the deaths walk along every call;
# `step:1`: every process dies right after recording one step, so each step is survived.
@pytest.mark.parametrize("mode", ["call:{n}:before", "call:{n}:after", "step:1"])
def test_a_crash_anywhere_loses_nothing_and_repeats_nothing(make_simulator, tmp_path, mode):
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    fleet = build_fleet(simulator)
    harness = make_core(simulator, tmp_path / "bot.db")
    device = fleet.off_contract
    original_pac = simulator.world.pac_of(device)
    outcome = harness.core.request(
        Request(Kind.RENEW, REQUESTER, (device,), Target("C0CHAN"), by_delete=True)
    )
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.store.database.close()
    simulator.control("DELETE", "/calls")

    settings = {
        "url": simulator.base_url, "root": simulator.root_url, "login": simulator.login,
        "password": simulator.password, "db": str(tmp_path / "bot.db"),
        "config": POLICY_TOML + FAST_LANDING, "device": device, "now": harness.clock.now(),
        **FAST_CLIENT,
    }
    crashes = 0
    with BotProcesses() as bots:
        for n in range(1, 40):
            if bots.run(mode.format(n=n), settings) == 0:
                break
            crashes += 1
    assert crashes >= 3  # it really died along the way

    final = make_core(simulator, tmp_path / "bot.db")
    assert final.core.store.get_workflow(outcome.workflow_id).state == WorkflowState.DONE
    log = simulator.call_log()
    deletes = [c for c in log if c["method"] == "DELETE" and c["status"] == 204]
    creates = [c for c in log if c["method"] == "POST" and c["path"] == "/v2/devices/"
               and c["status"] in (200, 201)]
    assert len(deletes) == 1 and len(creates) == 1
    snapshot = final.core.store.snapshots.of(outcome.workflow_id, device)
    assert snapshot.pac == original_pac
    assert snapshot.new_pac == simulator.world.pac_of(device)




def several_devices_deleted(simulator, tmp_path, count=3):
    """A renewal by delete of `count` devices, approved, its DELETEs sent in-process: the
    next tick sees them gone and registers them again in one bulk create job."""
    fleet = build_fleet(simulator)
    devices = [simulator.world.add_device(f"D0C0{n}", device_type_id=fleet.type_a,
                                          token="off_contract").id for n in range(count)]
    pacs = {d: simulator.world.pac_of(d) for d in devices}
    harness = make_core(simulator, tmp_path / "bot.db")
    outcome = harness.core.request(
        Request(Kind.RENEW, REQUESTER, tuple(devices), Target("C0CHAN"), by_delete=True))
    harness.core.decide(outcome.approval_id, APPROVER, approve=True)
    harness.core.tick()
    assert len(harness.calls("DELETE", "/v2/devices/", 204)) == count
    harness.core.store.database.close()
    simulator.control("DELETE", "/calls")
    settings = {
        "url": simulator.base_url, "root": simulator.root_url, "login": simulator.login,
        "password": simulator.password, "db": str(tmp_path / "bot.db"),
        "config": POLICY_TOML + FAST_LANDING, "devices": devices,
        "now": harness.clock.now() + 60, **FAST_CLIENT,
    }
    return outcome.workflow_id, pacs, settings


def assert_registered_once_in_one_job(simulator, tmp_path, workflow_id, pacs):
    final = make_core(simulator, tmp_path / "bot.db")
    assert final.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    log = simulator.call_log()
    jobs = [c for c in log if c["method"] == "POST" and c["path"] == "/v2/devices/bulk"]
    assert [c["status"] for c in jobs] == [200]  # one job, sent once, found again
    assert not [c for c in log if c["method"] == "POST" and c["path"] == "/v2/devices/"]
    assert not [c for c in log if c["method"] == "DELETE"]
    for device, pac in pacs.items():
        snapshot = final.core.store.snapshots.of(workflow_id, device)
        assert snapshot.pac == pac
        assert snapshot.new_pac == simulator.world.pac_of(device)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crash_around_a_bulk_create_neither_loses_nor_repeats_it(make_simulator, tmp_path,
                                                                     when):
    # Before: the intent is written, nothing sent: sent once it is verified not to have been.
    # After: Sigfox accepted the job and the process died before recording its id: the next
    # one finds the job by the id its intent kept, and sends nothing again.
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    workflow_id, pacs, settings = several_devices_deleted(simulator, tmp_path)
    with BotProcesses() as bots:
        assert bots.run(f"at:bulk_create_devices:{when}", settings) == 17
        assert bots.run("none", settings) == 0
    assert_registered_once_in_one_job(simulator, tmp_path, workflow_id, pacs)


def test_a_crash_while_a_bulk_create_is_in_flight_waits_for_it_and_sends_it_once(
        make_simulator, tmp_path):
    # The backend holds the job's submission half a second and takes it after the process
    # died: the next process waits until it could no longer land, reads the devices (there:
    # the job took effect) and registers them without a second job.
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    workflow_id, pacs, settings = several_devices_deleted(simulator, tmp_path)
    simulator.fault("/v2/devices/bulk", method="POST", delay=0.5)
    with BotProcesses() as bots:
        assert bots.run("during:bulk_create_devices:0.1", settings) == 17
        assert bots.run("none", settings) == 0
    assert_registered_once_in_one_job(simulator, tmp_path, workflow_id, pacs)


@pytest.mark.parametrize("mode", ["call:{n}:before", "call:{n}:after"])
def test_a_crash_anywhere_in_a_renewal_of_several_devices_loses_nothing(make_simulator,
                                                                         tmp_path, mode):
    # The deaths walk along every call of a three-device renewal (pages, deletes, a bulk
    # create or, for devices the crashes set apart, their own creates, the job's status).
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    workflow_id, pacs, settings = several_devices_deleted(simulator, tmp_path)
    crashes = 0
    with BotProcesses() as bots:
        for n in range(1, 40):
            if bots.run(mode.format(n=n), settings) == 0:
                break
            crashes += 1
    assert crashes >= 3
    final = make_core(simulator, tmp_path / "bot.db")
    assert final.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    log = simulator.call_log()
    writes = [c for c in log if c["method"] == "DELETE" or (
        c["method"] == "POST" and c["path"] in ("/v2/devices/bulk", "/v2/devices/"))]
    assert [c for c in writes if not 200 <= c["status"] < 300] == []  # none refused
    assert not [c for c in writes if c["method"] == "DELETE"]  # sent once, before
    for device, pac in pacs.items():
        snapshot = final.core.store.snapshots.of(workflow_id, device)
        assert snapshot.pac == pac
        assert snapshot.new_pac == simulator.world.pac_of(device)
