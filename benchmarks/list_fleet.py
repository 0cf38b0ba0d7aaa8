"""Benchmark: list a whole simulated fleet through the Sigfox client.

Run on demand (it is not part of the test suite):

    .venv/bin/python benchmarks/list_fleet.py --devices 150000

It starts the simulated backend as its own process (`sigfox-bot simulator --no-rate-limits`),
as a real deployment would talk to Sigfox from another machine, walks every device through
`SigfoxClient.iter_devices()` (following `paging.next`), and reports wall time, the peak memory
of the walking process, and the number of list requests, which must be ceil(N / 100). It exits
1 when a device is missed or the count differs. With `--write` a run that held replaces the
"Listing" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

from common import LOGIN, MACHINE, PASSWORD, list_requests, simulator_process, write_section

from sigfox.client import SigfoxClient

SECTION = "## Listing the fleet (Sigfox client)"


def measure(devices: int, seed: int) -> dict[str, float]:
    with simulator_process(devices, seed) as root:
        client = SigfoxClient(f"{root}/v2", LOGIN, PASSWORD, rate_limits=False)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        listed = sum(1 for _ in client.iter_devices())
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        client.close()
        requests = list_requests(root)
    return {"devices": devices, "listed": listed, "wall": wall, "peak_mib": peak / 1024,
            "growth_mib": (peak - before) / 1024, "requests": len(requests),
            "expected": math.ceil(devices / 100)}


def report(result: dict[str, float]) -> str:
    ok = "yes" if result["requests"] == result["expected"] else "NO"
    return "\n".join([
        SECTION,
        "",
        f"`benchmarks/list_fleet.py --devices {result['devices']:.0f}`: rate limits off, "
        f"simulator in its own process on loopback, {MACHINE}.",
        "",
        "| devices listed | wall time | peak RSS of the client process (growth during the "
        "walk) | list requests | ceil(N/100) | equal |",
        "|---|---|---|---|---|---|",
        f"| {result['listed']:,.0f} | {result['wall']:.1f} s | {result['peak_mib']:.0f} MiB "
        f"(+{result['growth_mib']:.1f} MiB) | {result['requests']:,.0f} | "
        f"{result['expected']:,.0f} | {ok} |",
        "",
        "The walk follows `paging.next` only (never `offset`), so the client's memory does not "
        "grow with the fleet. With the published limit of 50 list requests per 10 s, the same "
        f"walk cannot take less than ceil(N/100) / 5 seconds: {result['expected'] / 5:,.0f} s "
        f"for {result['devices']:,.0f} devices.",
        "",
    ])


def failures(result: dict[str, float]) -> list[str]:
    """What makes the run a failure: a device missed, or a request count off ceil(N/100)."""
    problems = []
    if result["listed"] != result["devices"]:
        problems.append(f"listed {result['listed']:,.0f} of {result['devices']:,.0f} devices")
    if result["requests"] != result["expected"]:
        problems.append(
            f"{result['requests']:,.0f} list requests, expected {result['expected']:,.0f}"
        )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    result = measure(args.devices, args.seed)
    section = report(result)
    print(section)
    problems = failures(result)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    # A wrong result is not written: docs/benchmarks.md only records runs that held.
    if args.write and not problems:
        write_section(SECTION, section)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
