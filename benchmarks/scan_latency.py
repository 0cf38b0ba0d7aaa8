"""Benchmark: the fleet scan at Sigfox's answer time (run on demand, not a test).

One command, from the repository with its virtualenv (pysigfox-client is the reference of the
comparison, installed in the benchmark's environment only, never a dependency of the project):

    .venv/bin/pip install pysigfox-client && .venv/bin/python benchmarks/scan_latency.py --write

Options: `--latency 300ms`, `--sizes 1000,10000,150000` (both tables), `--write` (replaces the
section of docs/benchmarks.md). The simulator runs in its own process with `--latency`
(log-normal answer times around the median, 1 % slow answers); every measurement runs in a
fresh process of its own, so its peak RSS is its own. Side by side in one run, for each size:

1. published limits on (enforced by the simulator, paced by the client): a full alert scan
   (`AlertService.scan`: the list walked over concurrent id ranges, rows upserted in SQLite,
   rules in SQL, digests streamed): wall time against the floor the limit of 50 list calls
   per 10 s imposes on ceil(N/100) pages, list requests, 429s, peak RSS;
2. limits off: the bot's walk of the device list (`SigfoxClient.iter_all_devices`) against
   pysigfox-client's `devices(list_all=True)` on the same simulator and latency. Without
   pysigfox-client, the comparison is against a sequential walk of `paging.next`
   (`iter_devices`), and the table says so.

The load average of the machine is noted before and after: the simulator shares the CPUs.
Exits 1 when a run misses a device.
"""

from __future__ import annotations

import argparse
import math
import os
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

from sigfox.pacing import DATING_MARGIN

SECTION = "## Fleet scan at Sigfox's answer time"


def isolated(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `function(*args)` in a fresh process: its peak RSS is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as child:
        return child.submit(function, *args).result()


# ------------------------------------------------------------------------ in the child process


def scan(root: str) -> dict[str, Any]:
    from bot.service import build_alerts
    from commands.config import parse_config
    from commands.ports import SystemClock
    from sigfox.client import SigfoxClient
    from storage.db import open_database

    class NullSink:
        def deliver_digest(self, digest: object) -> None: ...

        def deliver_scan_problem(self, problem: object) -> None: ...

        def deliver_daily(self, digest: object) -> None: ...

    import httpx

    sent: list[tuple[str, float]] = []
    answered = [0.0]

    class Stamped(httpx.HTTPTransport):
        """Notes when each request leaves the client (the simulator notes when it dates it),
        and when the last answer came."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent.append((request.url.query.decode("latin-1"), time.time()))
            response = super().handle_request(request)
            answered[0] = time.monotonic()
            return response

    with tempfile.TemporaryDirectory() as tmp:
        client = SigfoxClient(f"{root}/v2", LOGIN, PASSWORD, rate_limits=True,
                              transport=Stamped())
        service = build_alerts(  # as the running bot builds them
            api=client, database=open_database(Path(tmp) / "bench.db"), sink=NullSink(),
            config=parse_config('[alerts]\nchannel = "C0BENCH01"\n'), clock=SystemClock(),
        )
        started = time.monotonic()
        report = service.scan(started_by="benchmark")
        wall = time.monotonic() - started
        assert report.ok, report.error
        return {"devices": report.devices, "wall": wall, "peak_mib": peak_rss_mib(),
                "walk": answered[0] - started, "sent": sent}


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
        load = os.getloadavg()[0]
        result = isolated(scan, root)
        result["load"] = load
        calls = list_requests(root)
    result["requests"] = len(calls)
    result["throttled"] = sum(c["status"] == 429 for c in calls)
    result["dating"] = dating_delays(result.pop("sent"), calls)
    result["expected"] = math.ceil(devices / 100)
    result["floor"] = floor_seconds(result["expected"])
    shown = {k: v for k, v in result.items() if k != "dating"}
    print(f"limits on, {devices:,}: {shown}, dated after sending (median/p99/max): "
          f"{milliseconds(result['dating'])}", flush=True)
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


def dating_delays(sent: list[tuple[str, float]], calls: list[dict[str, Any]]) -> list[float]:
    """How long after leaving the client each list call was dated by the simulator, sorted
    (a call sent again after a 429 is matched in order, by its query)."""
    pending: dict[str, list[float]] = {}
    for query, at in sent:
        pending.setdefault(query, []).append(at)
    delays = []
    for call in sorted(calls, key=lambda c: c["time"]):
        times = pending.get(call["query"])
        if times:
            delays.append(call["time"] - times.pop(0))
    return sorted(delays)


def quantile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))] if values else 0.0


def load_average() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def milliseconds(delays: list[float]) -> str:
    return " / ".join(f"{quantile(delays, q) * 1000:.0f}" for q in (0.5, 0.99, 1.0)) + " ms"


def ratio(wall: float, floor: float) -> str:
    return f"{wall / floor:.3f}" if floor else "— (one window)"


def report(limited: list[dict[str, Any]], unlimited: list[dict[str, Any]], latency: str,
           other: str, loads: tuple[str, str]) -> str:
    other_name = ("pysigfox-client `devices(list_all=True)`" if other == "pysigfox" else
                  "a sequential walk of `paging.next` (pysigfox-client not installed here)")
    sizes = ",".join(str(run["devices"]) for run in limited or unlimited)
    lines = [
        SECTION,
        "",
        "Command (from the repository, with its virtualenv): `.venv/bin/pip install "
        "pysigfox-client && .venv/bin/python benchmarks/scan_latency.py --write` "
        f"(here `--latency {latency} --sizes {sizes}`, the defaults). The simulator answers in "
        f"{latency} (median; log-normal spread, 1 % of answers five times slower) from its own "
        f"process; each measurement in a fresh process; {MACHINE}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average (1/5/15 min) "
        f"{loads[0]} at the start, {loads[1]} at the end.",
        "",
        "Published limits on (enforced by the simulator, paced by the client): a full alert "
        "scan, the list walked over concurrent id ranges. The floor is what 50 list calls per "
        "10 s allow for ceil(N/100) pages: (ceil(pages / 50) - 1) x 10 s.",
        "",
        "| devices | list requests | ceil(N/100) | answered 429 | wall time (last answer) | "
        "floor | wall / floor | peak RSS | load (1 min) at its start | dated after sending: "
        f"median / p99 / max | dated > {DATING_MARGIN * 1000:.0f} ms late |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in limited:
        lines.append(
            f"| {run['devices']:,} | {run['requests']:,} | {run['expected']:,} | "
            f"{run['throttled']} | {run['wall']:.1f} s ({run['walk']:.1f} s) | "
            f"{run['floor']:.0f} s | "
            f"{ratio(run['wall'], run['floor'])} | {run['peak_mib']:.0f} MiB | "
            f"{run['load']:.1f} | {milliseconds(run['dating'])} | "
            f"{sum(d > DATING_MARGIN for d in run['dating'])} |")
    lines += [
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
    lines.append("")
    return "\n".join(lines)


def failures(limited: list[dict[str, Any]], unlimited: list[dict[str, Any]],
             other: str) -> list[str]:
    problems = []
    for run in limited:
        if run["devices"] < 1:
            problems.append(f"the limited scan of {run['expected'] * 100} listed nothing")
    for run in unlimited:
        for how in ("bot", other):
            if run[how]["listed"] != run["devices"]:
                problems.append(f"{how} listed {run[how]['listed']} of {run['devices']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", default="300ms")
    parser.add_argument("--sizes", default="1000,10000,150000")
    parser.add_argument("--limits", default="on,off",
                        help="which tables: on, off or both (the default); --write needs both")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    tables = set(args.limits.split(","))
    other = reference()
    sizes = [int(n) for n in args.sizes.split(",")]
    started = load_average()
    print(f"load average {started}", flush=True)
    limited = [measure_limited(n, args.latency) for n in sizes] if "on" in tables else []
    unlimited = ([measure_unlimited(n, args.latency, other) for n in sizes]
                 if "off" in tables else [])
    section = report(limited, unlimited, args.latency, other, (started, load_average()))
    print(section)
    problems = failures(limited, unlimited, other)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if args.write and not problems and tables == {"on", "off"}:
        write_section(SECTION, section)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
