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
FAST_LANDING = 'landing_margin = "1s"\n'
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

