"""The generated fleet, and the simulator as the `sigfox-bot simulator` command runs it."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx

from sigfox.simulator import World, build_fleet
from sigfox.simulator.entities import TokenState

DAY_MS = 86_400_000


def test_large_fleet_is_realistic() -> None:
    # How fast it builds is a benchmark's business (benchmarks/list_fleet.py), not a test's.
    world = World(seed=7)
    layout = build_fleet(world, 150_000, seed=7)
    assert len(world.devices) == 150_000 and len(world.indexes.all_ids) == 150_000
    now = world.now_ms()
    kinds: Counter[str] = Counter()
    for device in world.devices.values():
        state = world.token_state(device)
        if state is None:
            kinds["none"] += 1
        elif state is TokenState.OK:
            days = (device.token.end_ms - now) / DAY_MS
            kinds["ok<=7d" if days <= 7 else "ok<=30d" if days <= 30 else "ok"] += 1
            assert days <= 366
        else:
            kinds[state.name] += 1
    assert kinds["ok"] > 0.6 * 150_000
    for kind in ("none", "OFF_CONTRACT", "INVALID_TOKEN", "ok<=7d", "ok<=30d"):
        assert kinds[kind] > 1000, kinds
    assert len(layout.groups) >= 3 and len(layout.orders) == 3
    assert len({world.contracts[c].order_id for c in layout.contracts}) == 3
    held = Counter(d.token.contract_id for d in world.devices.values()
                   if d.token is not None and not d.token.off_contract)
    assert all(world.contracts[c].tokens_in_use == n for c, n in held.items())
    assert all(world.pac_of(ident) == d.pac for ident, d in list(world.devices.items())[:100])


def test_fleet_build_leaves_the_garbage_collector_as_it_found_it() -> None:
    assert gc.isenabled()
    build_fleet(World(seed=5), 50, seed=5)
    assert gc.isenabled()
    gc.disable()
    try:
        build_fleet(World(seed=5), 50, seed=5)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_fleet_is_reproducible_from_its_seed() -> None:
    first, second, other = World(seed=3), World(seed=3), World(seed=4)
    for world, seed in ((first, 3), (second, 3), (other, 4)):
        build_fleet(world, 200, seed=seed)
    assert sorted(first.devices) == sorted(second.devices) != sorted(other.devices)
    assert [d.pac for d in first.devices.values()] == [d.pac for d in second.devices.values()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_prints_url_and_generated_credentials() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("SIGFOX_API_LOGIN", "SIGFOX_API_PASSWORD")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "simulator", "--port", str(port),
         "--devices", "10", "--no-rate-limits"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert f"http://127.0.0.1:{port}/v2" in lines[0]
        login = lines[1].strip().removeprefix("SIGFOX_API_LOGIN=")
        password = lines[2].strip().removeprefix("SIGFOX_API_PASSWORD=")
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v2/devices/",
                                   auth=(login, password))
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert answer.status_code == 200 and len(answer.json()["data"]) == 10
    finally:
        process.terminate()
        process.wait(timeout=10)
