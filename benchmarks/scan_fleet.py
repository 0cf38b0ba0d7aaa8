"""Benchmark: a full fleet scan against the simulated backend (not a test).

    .venv/bin/python benchmarks/scan_fleet.py [--devices 150000] [--limited 20000]

Part 1, rate limits off: wall time and peak memory (tracemalloc, Python allocations of the
scanning side; the simulator runs in the same process, so its fleet is built *before* tracing
starts and its per-request allocations are included: an upper bound).
Part 2, published limits on (50 list requests / 10 s): the number of list requests, which must be
ceil(N/100), and the wall time against the floor those limits impose.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import tracemalloc
from pathlib import Path

from sigfox_chatops.commands.alerts import AlertService
from sigfox_chatops.commands.config import parse_config
from sigfox_chatops.sigfox.client import SigfoxClient
from sigfox_chatops.sigfox.simulator import SimulatorServer
from sigfox_chatops.storage.db import open_database


class NullSink:
    def deliver_digest(self, digest: object) -> None: ...

    def deliver_scan_problem(self, problem: object) -> None: ...

    def deliver_daily(self, digest: object) -> None: ...


def run_scan(devices: int, rate_limits: bool, trace: bool) -> dict[str, float]:
    with SimulatorServer(devices=devices, rate_limits=rate_limits) as sim, \
            tempfile.TemporaryDirectory() as tmp:
        client = SigfoxClient(sim.base_url, sim.login, sim.password, rate_limits=rate_limits)
        service = AlertService(
            api=client, database=open_database(Path(tmp) / "bench.db"), sink=NullSink(),
            config=parse_config('[alerts]\nchannel = "C0BENCH01"\n'), clock=sim.clock,
        )
        sim.control("DELETE", "/calls")
        if trace:
            tracemalloc.start()
        started = time.monotonic()
        report = service.scan(started_by="benchmark")
        wall = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
        lists = [c for c in sim.call_log() if c["method"] == "GET" and c["path"] == "/v2/devices/"]
        assert report.ok, report.error
        return {"devices": report.devices, "wall": wall, "peak_mib": peak / 2**20,
                "list_requests": len(lists), "throttled": sum(c["status"] == 429 for c in lists),
                "open_alerts": service.fleet_summary().open_alerts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=150_000)
    parser.add_argument("--limited", type=int, default=20_000,
                        help="fleet size for the run with rate limits on")
    args = parser.parse_args()

    fast = run_scan(args.devices, rate_limits=False, trace=True)
    print(f"rate limits off: {fast['devices']:,} devices in {fast['wall']:.1f}s "
          f"({fast['devices'] / fast['wall']:,.0f} devices/s), peak traced memory "
          f"{fast['peak_mib']:.1f} MiB, {fast['list_requests']:,} list requests, "
          f"{fast['open_alerts']:,} open alerts")

    slow = run_scan(args.limited, rate_limits=True, trace=False)
    expected = math.ceil(args.limited / 100)
    # 50 requests per sliding 10 s: the first 50 go at once, then 50 more every 10 s.
    floor = max(0, math.ceil(expected / 50) - 1) * 10.0
    print(f"rate limits on: {slow['devices']:,} devices, {slow['list_requests']:,} list "
          f"requests (ceil(N/100) = {expected:,}), {slow['throttled']:.0f} answered 429, "
          f"{slow['wall']:.1f}s against a floor of {floor:.0f}s")
    full = math.ceil(args.devices / 100)
    full_floor = max(0, math.ceil(full / 50) - 1) * 10.0
    # Above the floor, the time is the bot's own work, which grows with the requests.
    overhead = (slow["wall"] - floor) / slow["list_requests"]
    print(f"extrapolated to {args.devices:,} devices: {full:,} list requests, floor "
          f"{full_floor:.0f}s, projected {full_floor + full * overhead:.0f}s")


if __name__ == "__main__":
    main()
