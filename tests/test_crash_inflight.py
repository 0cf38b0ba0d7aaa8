"""Kills DURING slow destructive calls (issue 11, finding 1): never twice, never stuck.

Each trial is a real job run by real bot processes (tests/support/crash_runner.py) against the
simulated backend, which holds the chosen call for a random delay (POST /_sim/faults `delay`)
while the process is killed (`os._exit`, as `kill -9`) at a random moment of that delay. The
call then lands at the backend after its caller is gone. The next process must wait until the
call could no longer land, read the device, and carry on without sending it again.

Renewals are killed twice, during the DELETE and during the re-create (the device's own create,
or the bulk create job registering a two-device job's devices together); transfers, restarts
and unsubscriptions during their submission. Randomised (seeded, so a failure can be replayed):
the backend's delay, the kill's moment, the client's timeout (below or above the delay, so both
"no answer yet" and "timed out, then died" happen). Every fourth renewal and every other bulk
job is for two devices (two DELETEs in flight at the kill; one bulk call for both). Trials run
in parallel, one simulator per worker. Every trial must end with exactly one executed DELETE
and one executed create per renewed device (and one submission per bulk job), the job done,
every device in place: at least 20 trials killed during a DELETE, 20 during a create and 20
during a bulk call (the report is printed: `pytest -s`).
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.bot_processes import CRASHED, BotProcesses
from support.core import APPROVER, POLICY_TOML, REQUESTER, Fleet, build_fleet, make_core

from commands.planning import Request
from commands.ports import Target
from commands.states import Kind, WorkflowState
from sigfox.simulator import SimulatorServer

WORKERS = 8  # trials mostly wait (for calls to land): overlap them
SEED = 20261130
TRIALS = [("renew", 20), ("transfer", 10), ("restart", 10), ("unsubscribe", 2)]
BULK = ("transfer", "restart")
LANDING_MARGIN = 1.0  # seconds; the backend's delays stay below timeout + margin


@dataclass(frozen=True)
class Trial:
    kind: str
    number: int
    size: int = 1  # devices in the job

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(f"{0xD0000 + self.number * 4 + n:X}" for n in range(self.size))


@dataclass
class Report:
    trial: Trial
    deletes: dict[str, int]  # executed, per device
    creates: dict[str, int]
    submissions: int
    crashes: int
    state: str
    present: bool  # every device of the job is registered at the end


def open_job(simulator: SimulatorServer, fleet: Fleet, db: Path, trial: Trial) -> int:
    world = simulator.world
    token = "off_contract" if trial.kind in ("renew", "restart") else "ok"
    for device in trial.devices:
        world.add_device(device, device_type_id=fleet.type_a, token=token)
    harness = make_core(simulator, db)
    when = int((harness.clock.now() + 30 * 86400) * 1000) if trial.kind == "unsubscribe" else None
    target = "Fleet B" if trial.kind == "transfer" else None
    request = Request(Kind(trial.kind), REQUESTER, trial.devices, Target("C0CHAN"), target,
                      when, by_delete=trial.kind == "renew")
    outcome = harness.core.request(request)
    for _ in range(5):  # a read timed out on a loaded machine: asked again after its back-off
        if outcome.ok or "try again" not in outcome.message:
            break
        harness.clock.advance(60)
        outcome = harness.core.request(request)
    assert outcome.ok, outcome.message
    if outcome.approval_id:
        assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    harness.core.store.database.close()
    assert outcome.workflow_id is not None
    return outcome.workflow_id


# A two-device renewal registers its devices in one bulk create job, or each with its own
# create when the crashes set them apart: the process dies in whichever comes first.
CREATES = "create_device|bulk_create_devices"


# What to slow down and die in, per kind: (client method, HTTP method, path).
def slow_calls(trial: Trial) -> list[tuple[str, str, str]]:
    device = trial.devices[0]
    return {
        "renew": [("delete_device", "DELETE", f"/v2/devices/{device}"),
                  (CREATES, "POST", "/v2/devices/")],
        "transfer": [("bulk_transfer", "POST", "/v2/devices/bulk/transfer")],
        "restart": [("bulk_restart", "POST", "/v2/devices/bulk/restart")],
        "unsubscribe": [("unsubscribe_device", "PUT", f"/v2/devices/{device}/unsubscribe")],
    }[trial.kind]


def run_trial(bots: BotProcesses, simulator: SimulatorServer, fleet: Fleet, tmp: Path,
              trial: Trial) -> Report:
    rng = random.Random(SEED * 1000 + trial.number)
    db = tmp / f"trial-{trial.number}.db"
    workflow_id = open_job(simulator, fleet, db, trial)
    simulator.control("DELETE", "/calls")
    settings = {
        "url": simulator.base_url, "root": simulator.root_url, "login": simulator.login,
        "password": simulator.password, "db": str(db), "devices": list(trial.devices),
        # Its simulator runs a bulk job at once: little to wait for once it was accepted.
        "config": POLICY_TOML + f'landing_margin = "{int(LANDING_MARGIN)}s"\n'
                                'bulk_job_landing = "1s"\n',
        "now": simulator.clock.now(), "timeout": round(rng.uniform(0.1, 0.25), 3),
        "max_retries": 0, "backoff_cap": 0.1, "deadline": 60.0, "pause": 0.02,
    }
    crashes = 0
    for client_method, http_method, path in slow_calls(trial):
        delay = rng.uniform(0.2, settings["timeout"] + LANDING_MARGIN - 0.2)
        simulator.control("DELETE", "/faults")  # none left over from a call not made
        for device in trial.devices:  # every device's call slow: all in flight at the kill
            simulator.fault(path.replace(trial.devices[0], device), method=http_method,
                            delay=delay)
        if client_method == CREATES:
            simulator.fault("/v2/devices/bulk", method="POST", delay=delay)
        kill_after = rng.uniform(0.05, delay * 0.9)
        assert bots.run(f"during:{client_method}:{kill_after:.3f}", settings) == CRASHED
        crashes += 1
    simulator.control("DELETE", "/faults")
    assert bots.run("none", settings) == 0
    return report(simulator, db, trial, workflow_id, crashes)


def created_in_jobs(simulator: SimulatorServer, device: str) -> int:
    """How many bulk create jobs created the device (the call log names no device there)."""
    with simulator.world.lock:
        return sum(result == {"id": device, "outcome": "created"}
                   for job in simulator.world.job_queue.jobs.values() if job.kind == "create"
                   for result in job.results)


def report(simulator: SimulatorServer, db: Path, trial: Trial, workflow_id: int,
           crashes: int) -> Report:
    log = simulator.call_log()
    deletes = [c for c in log if c["method"] == "DELETE"]
    creates = [c for c in log if c["method"] == "POST" and c["path"] in (
        "/v2/devices/", "/v2/devices/bulk")]
    submissions = [c for c in log if c["method"] in ("POST", "PUT") and (
        c["path"].startswith("/v2/devices/bulk/") or c["path"].endswith("/unsubscribe"))]
    refused = [(c["method"], c["path"], c["status"], c.get("dropped"))
               for c in deletes + creates + submissions if not 200 <= c["status"] < 300]
    assert refused == [], (trial, refused)
    final = make_core(simulator, db)
    state = final.core.store.get_workflow(workflow_id).state
    present = all(final.core.api.find_device(d) is not None for d in trial.devices)
    final.core.store.database.close()
    assert len(deletes) == sum(d in c["path"] for c in deletes for d in trial.devices), log
    per_device = {  # a create names its device in the log once the backend made it
        "deletes": {d: sum(c["path"] == f"/v2/devices/{d}" for c in deletes)
                    for d in trial.devices},
        "creates": {d: sum(c.get("device") == d for c in creates) + created_in_jobs(simulator, d)
                    for d in trial.devices},
    }
    return Report(trial, per_device["deletes"], per_device["creates"], len(submissions),
                  crashes, state, present)


def run_worker(tmp: Path, trials: list[Trial]) -> list[Report]:
    simulator = SimulatorServer(devices=0, rate_limits=False, delete_hold=0,
                                job_delay=0.0).start()
    try:
        fleet = build_fleet(simulator)
        with BotProcesses() as bots:
            return [run_trial(bots, simulator, fleet, tmp, trial) for trial in trials]
    finally:
        simulator.stop()


def plan() -> list[Trial]:
    """The trials: every fourth renewal and every other bulk job for two devices."""
    kinds = [kind for kind, count in TRIALS for _ in range(count)]
    trials = []
    for number, kind in enumerate(kinds):
        rank = kinds[:number].count(kind)
        two = (kind == "renew" and rank % 4 == 3) or (kind in BULK and rank % 2 == 1)
        trials.append(Trial(kind, number, 2 if two else 1))
    return trials


def killed_during(reports: list[Report]) -> dict[str, int]:
    """How many trials were killed during each kind of call."""
    during = {"DELETE": 0, "create": 0, "bulk": 0, "unsubscribe": 0}
    for r in reports:
        if r.trial.kind == "renew":
            during["DELETE"] += 1
            during["create"] += 1
        else:
            during["bulk" if r.trial.kind in BULK else "unsubscribe"] += 1
    return during


@pytest.mark.timeout(300)  # ~40 trials of a second or two, 8 at a time, on a shared machine
def test_kills_during_slow_destructive_calls_never_repeat_them(tmp_path: Path) -> None:
    trials = plan()
    shares = [trials[i::WORKERS] for i in range(WORKERS)]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        reports = [r for share in pool.map(lambda s: run_worker(tmp_path, s), shares)
                   for r in share]

    during = killed_during(reports)
    devices = sum(r.trial.size for r in reports)
    print(f"\n{len(reports)} trials, {devices} devices, killed during: {during}")
    for r in reports:
        print(f"  {r.trial.kind:<11} {','.join(r.trial.devices):<13} DELETE {r.deletes} "
              f"create {r.creates} submissions {r.submissions} -> {r.state}")
    assert min(during["DELETE"], during["create"], during["bulk"]) >= 20, during
    for r in reports:
        assert r.state == WorkflowState.DONE, r
        assert r.crashes == len(slow_calls(r.trial)), r
        assert r.present, r
        if r.trial.kind == "renew":
            # Exactly one DELETE and one create per device reached the backend, and no late
            # DELETE removed a re-created device.
            assert set(r.deletes.values()) == set(r.creates.values()) == {1}, r
            assert r.submissions == 0, r
        else:  # one submission for the whole job, nothing deleted or created
            assert set(r.deletes.values()) == set(r.creates.values()) == {0}, r
            assert r.submissions == 1, r
