"""Benchmark: one job over many Off Contract devices at Sigfox's answer time (run on demand).

    .venv/bin/python benchmarks/big_job.py [--devices 1000] [--latency 300ms] [--hold 60]
        [--kind restart] [--write]

The bot as `serve` assembles it (`bot.service.assemble`: core, Slack notifier, real clocks),
its Slack Web API a local stand-in that records every call, its Sigfox the simulator with the
published rate limits on, `--latency` answer times and a `--hold`-second delete hold. The
devices are Off Contract on a contract with tokens left, so the least destructive path the
planner offers for them is a restart (one bulk job for all; `--kind renew` asks for the
delete-and-register renewal instead). The scheduler's part is played by a loop calling the
core's tick every second, as `[timing] tick = "1s"` would.

Measured: the request (the planner reads every device), the time from the job's start (a
restart needs no approval by default; a renewal is approved at once) until the last device
is done (restart) or waiting for its first message (renew), Sigfox calls per device, and the
Slack calls of the whole job. With `--write`, replaces the section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from common import MACHINE, write_section  # noqa: E402
from support.slack_api import SlackApiStandIn  # noqa: E402

from bot.service import assemble  # noqa: E402
from bot.slack_client import make_web_client  # noqa: E402
from commands.config import parse_config  # noqa: E402
from commands.planning import Request  # noqa: E402
from commands.policy import Actor  # noqa: E402
from commands.ports import SystemClock, Target  # noqa: E402
from commands.states import Kind, StepState, WorkflowState  # noqa: E402
from sigfox.client import SigfoxClient  # noqa: E402
from sigfox.simulator import SimulatorServer  # noqa: E402
from sigfox.simulator.latency import LatencyModel, parse_latency  # noqa: E402
from storage.call_ledger import SqliteCallLedger  # noqa: E402
from storage.db import open_database  # noqa: E402

SECTION = "## One job over many devices"
CHANNEL = "C0BIGJOB1"
REQUESTER, APPROVER = Actor("U0REQUEST"), Actor("U0APPROVE")
CONFIG = f"""
[policy]
requesters = ["*"]
approvers = ["U0APPROVE"]

[alerts]
channel = "{CHANNEL}"

[timing]
tick = "1s"
release_retry = "20s"
"""
# The step each kind has reached once the bot has nothing left to do but wait for the device.
SETTLED = {Kind.RESTART: {StepState.DONE.value}, Kind.RENEW: {StepState.AWAITING_UPLINK.value,
                                                         StepState.DONE.value}}


def off_contract_devices(sim: SimulatorServer, count: int) -> list[str]:
    contract = sim.world.add_contract("Bench", order_id="order-bench", order_name="Bench",
                                      max_tokens=count * 2)
    dtype = sim.world.add_device_type("Bench fleet", contract.id)
    return [sim.world.add_device(f"B{n:06X}", device_type_id=dtype.id,
                                 token="off_contract").id for n in range(count)]


def settled(services: Any, workflow_id: int, kind: Kind) -> tuple[int, int]:
    counts = services.core.store.step_states(workflow_id)
    done = sum(n for state, n in counts.items() if state in SETTLED[kind])
    return done, counts.get(StepState.FAILED.value, 0)


def run(devices: int, latency: float, hold: float, kind: Kind) -> dict[str, Any]:
    sim = SimulatorServer(devices=0, rate_limits=True, delete_hold=hold,
                          latency=LatencyModel(latency)).start()
    try:
        ids = off_contract_devices(sim, devices)
        with SlackApiStandIn() as standin, tempfile.TemporaryDirectory() as tmp:
            database = open_database(Path(tmp) / "bench.db")
            api = SigfoxClient(sim.base_url, sim.login, sim.password, rate_limits=True,
                               ledger=SqliteCallLedger(database))
            services = assemble(api=api, database=database,
                                client=make_web_client(standin.token, standin.url),
                                config=parse_config(CONFIG), clock=SystemClock())
            return measure(services, sim, standin, ids, kind)
    finally:
        sim.stop()


def measure(services: Any, sim: SimulatorServer, standin: SlackApiStandIn, ids: list[str],
            kind: Kind) -> dict[str, Any]:
    sim.calls.clear()
    started = time.monotonic()
    outcome = services.core.request(Request(kind, REQUESTER, tuple(ids), Target(CHANNEL)))
    assert outcome.ok, outcome.message
    planned = time.monotonic() - started
    plan_calls = len(sim.calls.all())
    if outcome.approval_id is not None:
        services.core.decide(outcome.approval_id, APPROVER, approve=True)
    job_started = time.monotonic()
    workflow_id = outcome.workflow_id
    while True:
        services.core.tick()
        done, failed = settled(services, workflow_id, kind)
        if done + failed == len(ids):
            break
        time.sleep(1.0)
    job_time = time.monotonic() - job_started
    if kind == Kind.RESTART:  # the job finishes by itself once every device is back
        for _ in range(5):
            if services.core.store.get_workflow(workflow_id).state != WorkflowState.RUNNING:
                break
            services.core.tick()
    calls = sim.calls.all()
    slack = Counter(c.method for c in standin.calls)
    return {"devices": len(ids), "kind": kind.value, "plan_seconds": planned,
            "plan_calls": plan_calls, "job_seconds": job_time, "failed": failed,
            "job_calls": len(calls) - plan_calls,
            "throttled": sum(c["status"] == 429 for c in calls),
            "sigfox_by_call": Counter(f"{c['method']} {_shape(c['path'])}" for c in calls),
            "slack_calls": sum(slack.values()), "slack_by_method": dict(slack),
            "state": services.core.store.get_workflow(workflow_id).state}


def _shape(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[2] == "devices" and parts[3] not in ("", "bulk"):
        parts[3] = "{id}"
    if len(parts) > 4 and parts[3] == "bulk" and parts[-1] not in ("restart", "transfer"):
        parts[-1] = "{jobId}"
    return "/".join(parts)


def report(result: dict[str, Any], latency: str, hold: float) -> str:
    n = result["devices"]
    settled_as = "done" if result["kind"] == "restart" else "waiting for its first message"
    by_call = ", ".join(f"{k}: {v:,}" for k, v in sorted(result["sigfox_by_call"].items()))
    by_method = ", ".join(f"{k}: {v}" for k, v in sorted(result["slack_by_method"].items()))
    return "\n".join([
        SECTION,
        "",
        f"`benchmarks/big_job.py --devices {n} --latency {latency} --hold {hold:g} --kind "
        f"{result['kind']}`: a {result['kind']} of {n:,} Off Contract devices through the "
        "assembled bot (real clocks, tick every second, Slack stand-in), the simulator with the "
        f"published rate limits on, answers in {latency} (median) and a {hold:g} s delete "
        f"hold; {MACHINE}; {time.strftime('%Y-%m-%d')}.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| request (the planner reads every device) | {result['plan_seconds']:.0f} s, "
        f"{result['plan_calls']:,} Sigfox calls |",
        f"| from the job's start to the last device {settled_as} | "
        f"{result['job_seconds']:.0f} s |",
        f"| Sigfox calls of the job, per device | {result['job_calls'] / n:.2f} |",
        f"| answered 429 | {result['throttled']} |",
        f"| devices failed | {result['failed']} |",
        f"| Slack Web API calls for the whole job | {result['slack_calls']} |",
        "",
        f"Sigfox calls (request and job): {by_call}.",
        "",
        f"Slack calls: {by_method}.",
        "",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--latency", default="300ms")
    parser.add_argument("--hold", type=float, default=60.0, help="delete hold, seconds")
    parser.add_argument("--kind", choices=["restart", "renew"], default="restart")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    result = run(args.devices, parse_latency(args.latency), args.hold, Kind(args.kind))
    print(result, flush=True)
    section = report(result, args.latency, args.hold)
    print(section)
    if args.write and result["failed"] == 0:
        write_section(SECTION, section)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
