"""What the benchmarks share: the simulated backend in its own process, and the results file.

The simulator runs as `sigfox-bot simulator` in a separate process, as Sigfox would be another
machine: in the benchmark's own process it would share the GIL and the garbage collector's
work with the code being measured.
"""

from __future__ import annotations

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

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
LOGIN, PASSWORD = "bench", "bench-password"
MACHINE = (
    f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores "
    "shared with the simulator"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator_process(devices: int, seed: int = 1, *, rate_limits: bool = False,
                      latency: str = "0ms") -> Iterator[str]:
    """The simulated backend in its own process; yields its root URL (API under /v2).
    `latency` is the simulator's --latency (the median answer time, e.g. "300ms")."""
    port = free_port()
    env = {**os.environ, "SIGFOX_API_LOGIN": LOGIN, "SIGFOX_API_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "bot.cli", "simulator", "--port", str(port),
               "--devices", str(devices), "--seed", str(seed), "--latency", latency]
    if not rate_limits:
        command.append("--no-rate-limits")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(root, "/_sim/calls")
        httpx.delete(f"{root}/_sim/calls", timeout=10)
        yield root
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_up(root: str, path: str, child: subprocess.Popen | None = None,
                  log: Path | None = None) -> None:
    """Poll `root + path` until it answers 2xx (a minute at most); a child process that
    exits meanwhile fails at once, with the end of its log."""
    for _ in range(600):
        if child is not None and child.poll() is not None:
            tail = log.read_text()[-2000:] if log else ""
            raise RuntimeError(f"{root} exited {child.returncode}: {tail}")
        try:
            httpx.get(f"{root}{path}", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    tail = log.read_text()[-2000:] if log else ""
    raise RuntimeError(f"{root} did not start: {tail}")


def list_requests(root: str) -> list[dict]:
    log = httpx.get(f"{root}/_sim/calls", timeout=60).json()
    return [c for c in log if c["method"] == "GET" and c["path"] == "/v2/devices/"]


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_section(title: str, section: str) -> None:
    """Replace (or append) the section headed `title` in docs/benchmarks.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n\n"
    section = section.rstrip("\n") + "\n"
    if title in text:
        start = text.index(title)
        end = text.find("\n## ", start + len(title))
        rest = "" if end == -1 else "\n" + text[end + 1:]
        text = text[:start] + section + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
