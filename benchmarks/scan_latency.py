"""Benchmark: the fleet scan at Sigfox's answer time (run on demand, not a test).

    .venv/bin/python benchmarks/scan_latency.py [--latency 300ms] [--limited 150000]
        [--sizes 1000,10000,150000] [--write]

The simulator runs in its own process with `--latency` (log-normal answer times around the
median, 1 % slow answers); every measurement runs in a fresh process of its own, so its peak
RSS is its own. Side by side in one run:

1. published limits on (enforced by the simulator, paced by the client): a full alert scan of
   `--limited` devices (`AlertService.scan`: the list walked over concurrent id ranges, rows
   upserted in SQLite, rules in SQL, digests streamed): wall time against the floor the limit
   of 50 list calls per 10 s imposes on ceil(N/100) pages, list requests, 429s, peak RSS;
2. limits off, for each of `--sizes`: the bot's walk of the device list
   (`SigfoxClient.iter_all_devices`) against pysigfox-client's `devices(list_all=True)` on the
   same simulator and latency. pysigfox-client (PyPI) is installed in the benchmark's
   environment only (`pip install pysigfox-client`), never a dependency of the project; without
   it, the comparison is against a sequential walk of `paging.next` (`iter_devices`), and the
   table says so.

Exits 1 when a run misses a device. With `--write`, replaces the section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from common import (
    LOGIN,
    MACHINE,
    PASSWORD,
    list_requests,
    peak_rss_mib,
    simulator_process,
    write_section,
)

SECTION = "## Fleet scan at Sigfox's answer time"


def isolated(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `function(*args)` in a fresh process: its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as child:
        return child.submit(function, *args).result()


# ------------------------------------------------------------------------ in the child process


def scan(root: str) -> dict[str, Any]:
    from commands.alerting import AlertService
    from commands.config import parse_config
    from commands.ports import SystemClock
    from sigfox.client import SigfoxClient
    from storage.db import open_database

    class NullSink:
        def deliver_digest(self, digest: object) -> None: ...

        def deliver_scan_problem(self, problem: object) -> None: ...

        def deliver_daily(self, digest: object) -> None: ...

    with tempfile.TemporaryDirectory() as tmp:
        client = SigfoxClient(f"{root}/v2", LOGIN, PASSWORD, rate_limits=True)
        service = AlertService(
            api=client, database=open_database(Path(tmp) / "bench.db"), sink=NullSink(),
            config=parse_config('[alerts]\nchannel = "C0BENCH01"\n'), clock=SystemClock(),
        )
        started = time.monotonic()
        report = service.scan(started_by="benchmark")
        wall = time.monotonic() - started
        assert report.ok, report.error
        return {"devices": report.devices, "wall": wall, "peak_mib": peak_rss_mib()}


def walk(root: str, how: str) -> dict[str, Any]:
    if how == "pysigfox":
        from pysigfox.sigfox import Sigfox

        api = Sigfox(LOGIN, PASSWORD)
        api.base_url = f"{root}/v2/"
        started = time.monotonic()
        listed = len(api.devices(list_all=True))
    else:
        from sigfox.client import SigfoxClient

        client = SigfoxClient(f"{root}/v2", LOGIN, PASSWORD, rate_limits=False)
        started = time.monotonic()
        devices = client.iter_all_devices() if how == "bot" else client.iter_devices()
        listed = sum(1 for _ in devices)
    return {"listed": listed, "wall": time.monotonic() - started, "peak_mib": peak_rss_mib()}


# ---------------------------------------------------------------------------- the parent


def floor_seconds(requests: int) -> float:
    """50 requests per sliding 10 s: the first 50 at once, then 50 more every 10 s."""
    return max(0, math.ceil(requests / 50) - 1) * 10.0


def reference() -> str:
    try:
        import pysigfox.sigfox  # noqa: F401
    except ImportError:
        return "sequential"
    return "pysigfox"


def measure_limited(devices: int, latency: str) -> dict[str, Any]:
    with simulator_process(devices, rate_limits=True, latency=latency) as root:
        result = isolated(scan, root)
        calls = list_requests(root)
    result["requests"] = len(calls)
    result["throttled"] = sum(c["status"] == 429 for c in calls)
    result["expected"] = math.ceil(devices / 100)
    result["floor"] = floor_seconds(result["expected"])
    print(f"limits on, {devices:,}: {result}", flush=True)
    return result


def measure_unlimited(devices: int, latency: str, other: str) -> dict[str, Any]:
    with simulator_process(devices, rate_limits=False, latency=latency) as root:
        runs = {}
        for how in ("bot", other):
            import httpx

            httpx.delete(f"{root}/_sim/calls", timeout=30)
            runs[how] = isolated(walk, root, how)
            runs[how]["requests"] = len(list_requests(root))
            print(f"limits off, {devices:,}, {how}: {runs[how]}", flush=True)
    return {"devices": devices, **runs}


def report(limited: dict[str, Any], unlimited: list[dict[str, Any]], latency: str,
           other: str) -> str:
    other_name = ("pysigfox-client `devices(list_all=True)`" if other == "pysigfox" else
                  "a sequential walk of `paging.next` (pysigfox-client not installed here)")
    lines = [
        SECTION,
        "",
        f"`benchmarks/scan_latency.py --latency {latency} --limited {limited['devices']}`: "
        f"the simulator answers in {latency} (median; log-normal spread, 1 % of answers five "
        f"times slower) from its own process; each measurement in a fresh process; {MACHINE}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "Published limits on (enforced by the simulator, paced by the client): a full alert "
        "scan, the list walked over concurrent id ranges.",
        "",
        "| devices | list requests | ceil(N/100) | answered 429 | wall time | floor | "
        "wall / floor | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {limited['devices']:,} | {limited['requests']:,} | {limited['expected']:,} | "
        f"{limited['throttled']} | {limited['wall']:.1f} s | {limited['floor']:.0f} s | "
        f"{limited['wall'] / max(limited['floor'], 1):.3f} | {limited['peak_mib']:.0f} MiB |",
        "",
        f"Limits off: the bot's walk (`iter_all_devices`) against {other_name}, same simulator, "
        "same latency.",
        "",
        "| devices | bot: wall | bot: requests | bot: peak RSS | reference: wall | "
        "reference: requests | reference: peak RSS | bot faster by |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in unlimited:
        bot, ref = run["bot"], run[other]
        lines.append(
            f"| {run['devices']:,} | {bot['wall']:.1f} s | {bot['requests']:,} | "
            f"{bot['peak_mib']:.0f} MiB | {ref['wall']:.1f} s | {ref['requests']:,} | "
            f"{ref['peak_mib']:.0f} MiB | {ref['wall'] / bot['wall']:.1f}x |")
    lines += [
        "",
        "The floor counts only the pages (ceil(N/100)); the walk's few extra requests are the "
        "probes that find the id ranges (`sigfox/fleet_walk.py`). The bot's requests include "
        "them; its memory does not grow with the fleet, pysigfox-client keeps every device.",
        "",
    ]
    return "\n".join(lines)


def failures(limited: dict[str, Any], unlimited: list[dict[str, Any]], other: str) -> list[str]:
    problems = []
    if limited["devices"] != limited["expected"] * 100 and limited["devices"] < 1:
        problems.append("the limited scan listed nothing")
    for run in unlimited:
        for how in ("bot", other):
            if run[how]["listed"] != run["devices"]:
                problems.append(f"{how} listed {run[how]['listed']} of {run['devices']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", default="300ms")
    parser.add_argument("--limited", type=int, default=150_000)
    parser.add_argument("--sizes", default="1000,10000,150000")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    other = reference()
    limited = measure_limited(args.limited, args.latency)
    unlimited = [measure_unlimited(int(n), args.latency, other) for n in args.sizes.split(",")]
    section = report(limited, unlimited, args.latency, other)
    print(section)
    problems = failures(limited, unlimited, other)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if args.write and not problems:
        write_section(SECTION, section)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
