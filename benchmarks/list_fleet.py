"""Benchmark: list a whole simulated fleet through the Sigfox client.

Run on demand (it is not part of the test suite):

    .venv/bin/python benchmarks/list_fleet.py --devices 150000

It starts the simulated backend as its own process (`sigfox-bot simulator --no-rate-limits`),
as a real deployment would talk to Sigfox from another machine, walks every device through
`SigfoxClient.iter_devices()` (following `paging.next`), and reports wall time, the peak memory
of the walking process, and the number of list requests, which must be ceil(N / 100). With
`--write` the result replaces the "Listing" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sigfox_chatops.sigfox.client import SigfoxClient

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Listing the fleet (Sigfox client)"


LOGIN, PASSWORD = "bench", "bench-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator_process(devices: int, seed: int) -> Iterator[str]:
    """The simulated backend in its own process; yields its root URL."""
    port = free_port()
    env = {**os.environ, "SIGFOX_API_LOGIN": LOGIN, "SIGFOX_API_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "sigfox_chatops.cli", "simulator", "--port", str(port),
               "--devices", str(devices), "--seed", str(seed), "--no-rate-limits"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{root}/_sim/calls", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield root
    finally:
        process.terminate()
        process.wait(timeout=10)


def measure(devices: int, seed: int) -> dict[str, float]:
    with simulator_process(devices, seed) as root:
        httpx.delete(f"{root}/_sim/calls", timeout=10)
        client = SigfoxClient(f"{root}/v2", LOGIN, PASSWORD, rate_limits=False)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        listed = sum(1 for _ in client.iter_devices())
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        client.close()
        log = httpx.get(f"{root}/_sim/calls", timeout=30).json()
        requests = [c for c in log if c["method"] == "GET" and c["path"] == "/v2/devices/"]
    return {"devices": devices, "listed": listed, "wall": wall, "peak_mib": peak / 1024,
            "growth_mib": (peak - before) / 1024, "requests": len(requests),
            "expected": math.ceil(devices / 100)}


def report(result: dict[str, float]) -> str:
    ok = "yes" if result["requests"] == result["expected"] else "NO"
    return "\n".join([
        SECTION,
        "",
        f"`benchmarks/list_fleet.py --devices {result['devices']:.0f}`: rate limits off, "
        "simulator in its own process on loopback, Python "
        f"{platform.python_version()} on {platform.machine()} (2 cores, shared with the "
        "simulator).",
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
        "walk cannot take less than ceil(N/100) / 5 seconds: 300 s for 150,000 devices.",
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
