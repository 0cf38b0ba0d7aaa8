"""Benchmark: list a whole simulated fleet through the Sigfox client.

Run on demand (it is not part of the test suite):

    .venv/bin/python benchmarks/list_fleet.py --devices 150000

It starts the simulated backend in-process with rate limits off, walks every device through
`SigfoxClient.iter_devices()` (following `paging.next`), and reports wall time, the peak memory
allocated by the walk (tracemalloc), and the number of list requests, which must be
ceil(N / 100). With `--write` the result replaces the "Listing" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
import tracemalloc
from pathlib import Path

from sigfox_chatops.sigfox.client import SigfoxClient
from sigfox_chatops.sigfox.simulator import SimulatorServer

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Listing the fleet (Sigfox client)"


def measure(devices: int, seed: int) -> dict[str, float]:
    with SimulatorServer(devices=devices, seed=seed, rate_limits=False) as simulator:
        simulator.control("DELETE", "/calls")
        client = SigfoxClient(simulator.base_url, simulator.login, simulator.password,
                              rate_limits=False)
        tracemalloc.start()
        started = time.perf_counter()
        listed = sum(1 for _ in client.iter_devices())
        wall = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        client.close()
        requests = [c for c in simulator.call_log()
                    if c["method"] == "GET" and c["path"] == "/v2/devices/"]
    return {"devices": devices, "listed": listed, "wall": wall, "peak_mib": peak / 2**20,
            "requests": len(requests), "expected": math.ceil(devices / 100)}


def report(result: dict[str, float]) -> str:
    ok = "yes" if result["requests"] == result["expected"] else "NO"
    return "\n".join([
        SECTION,
        "",
        f"`benchmarks/list_fleet.py --devices {result['devices']:.0f}`, rate limits off, "
        f"simulator in the same process, {platform.python_version()} on "
        f"{platform.machine()} (2 cores).",
        "",
        "| devices listed | wall time | peak memory of the walk | list requests | "
        "ceil(N/100) | equal |",
        "|---|---|---|---|---|---|",
        f"| {result['listed']:,.0f} | {result['wall']:.1f} s | {result['peak_mib']:.1f} MiB | "
        f"{result['requests']:,.0f} | {result['expected']:,.0f} | {ok} |",
        "",
        "The walk follows `paging.next` only (never `offset`), so memory stays flat whatever the "
        "fleet size; the time is mostly the simulator rendering JSON and both ends parsing it "
        "in one Python process on two cores.",
        "",
    ])


def write(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if end == -1 else text[end + 1:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    result = measure(args.devices, args.seed)
    section = report(result)
    print(section)
    if args.write:
        write(section)


if __name__ == "__main__":
    main()
