"""Benchmark: one job over many Off Contract devices at Sigfox's answer time (run on demand).

    .venv/bin/python benchmarks/big_job.py [--devices 1000[,3000]] [--latency 300ms]
        [--hold 60] [--kind restart,renew] [--write]

The bot as `serve` assembles it (`bot.service.assemble`: core, Slack notifier, real clocks),
its Slack Web API a local stand-in that records every call, its Sigfox the simulator with the
published rate limits on, `--latency` answer times and a `--hold`-second delete hold. The
devices are Off Contract on a contract with tokens left, so the least destructive path the
planner offers for them is a restart (one bulk job for all), whether asked for as a restart or
as a renewal (`--kind renew`). The scheduler's part is played by a loop calling the
core's tick every second, as `[timing] tick = "1s"` would.

Measured: the request (the planner reads every device), the time from the job's start (a
restart needs no approval by default; a renewal is approved at once) until the last device
is done (restart) or waiting for its first message (renew), Sigfox calls per device, and the
Slack calls of the whole job. With `--write`, replaces the section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
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
    load_before = os.getloadavg()[0]
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
            "state": services.core.store.get_workflow(workflow_id).state,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def _shape(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 3 and parts[2] == "devices" and parts[3] not in ("", "bulk"):
        parts[3] = "{id}"
    if len(parts) > 4 and parts[3] == "bulk" and parts[-1] not in ("restart", "transfer"):
        parts[-1] = "{jobId}"
    return "/".join(parts)


def report(results: list[dict[str, Any]], latency: str, hold: float, command: str) -> str:
    rows = [_row(r) for r in results]
    notes = [f"- {r['devices']:,} {r['kind']}: Sigfox calls {_joined(r['sigfox_by_call'])}; "
             f"Slack calls {_joined(r['slack_by_method'])}; load average before "
             f"{r['load_before']:.2f}, after {r['load_after']:.2f}." for r in results]
    return "\n".join([
        SECTION,
        "",
        f"`{command}`: {', '.join(sorted({r['kind'] for r in results}))} of Off Contract "
        "devices through the assembled bot (real clocks, tick every second, Slack stand-in "
        "recording every call), the simulator in-process with the published rate limits on, "
        f"answers in {latency} (median, with spread and slow answers) and a {hold:g} s delete "
        f"hold; {MACHINE}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. For these "
        "devices (Off Contract, their contract has tokens left) the planner picks a restart "
        "for `restart` and for `renew` alike: one bulk restart job, then each device read back.",
        "",
        "| devices | kind | request (planning) | its Sigfox calls | approval to last device "
        "settled | job's Sigfox calls per device | 429s | failed | Slack Web API calls |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *notes,
        "",
    ])


def _row(r: dict[str, Any]) -> str:
    slack = r["slack_by_method"]
    return (f"| {r['devices']:,} | {r['kind']} | {r['plan_seconds']:.1f} s | {r['plan_calls']:,} "
            f"| {r['job_seconds']:.1f} s | {r['job_calls'] / r['devices']:.3f} "
            f"| {r['throttled']} | {r['failed']} | {r['slack_calls']} "
            f"({slack.get('chat.postMessage', 0)} posts, {slack.get('chat.update', 0)} edits) |")


def _joined(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", default="1000",
                        help="device counts, comma-separated (e.g. 300,1000,3000)")
    parser.add_argument("--latency", default="300ms")
    parser.add_argument("--hold", type=float, default=60.0, help="delete hold, seconds")
    parser.add_argument("--kind", default="restart,renew",
                        help="restart, renew, or both comma-separated")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    results = []
    for count in [int(n) for n in args.devices.split(",")]:
        for kind in [Kind(k) for k in args.kind.split(",")]:
            result = run(count, parse_latency(args.latency), args.hold, kind)
            print({k: v for k, v in result.items() if k != "sigfox_by_call"}, flush=True)
            results.append(result)
    command = "python benchmarks/big_job.py " + " ".join(sys.argv[1:])
    section = report(results, args.latency, args.hold, command.replace(" --write", ""))
    print(section)
    failed = any(r["failed"] for r in results)
    if args.write and not failed:
        write_section(SECTION, section)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
