"""Acknowledgement latency of `/sigfox` under 50 concurrent commands, in HTTP mode.

Slack gives a slash command 3 seconds. This measures, from the client's side, the time until the
HTTP answer (the ack) for 50 commands sent at once, a few rounds, for:

- the real bot: `create_bolt_app` behind `create_web_app`, on the simulated Sigfox backend, its
  WebClient talking to the Slack stand-in (the lazy listeners do the real work meanwhile);
- a bare Bolt app whose listener only acknowledges, behind the same web app.

Run: `.venv/bin/python benchmarks/ack_latency.py [--rounds 5] [--concurrency 50]`. Appends (or
refreshes) the section "Slash command acknowledgement" of docs/benchmarks.md, leaving the other
sections alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from multiprocessing import get_context
from pathlib import Path

import httpx
from slack_bolt import Ack, App

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from common import write_section  # noqa: E402
from support.bot import SIGNING_SECRET, running_bot  # noqa: E402
from support.slack_api import BackgroundServer, SlackApiStandIn  # noqa: E402
from support.slack_signing import signed_headers, slash_command_body  # noqa: E402

from bot.slack_client import make_web_client  # noqa: E402
from bot.web import create_web_app  # noqa: E402
from sigfox.simulator import SimulatorServer  # noqa: E402

HEADING = "## Slash command acknowledgement"
COMMANDS = ("status C0FFEE", "help", "jobs", "status BEEF02", "renew BEEF01", "expiring 14")


ResponseUrl = Callable[[str], str]
Target = tuple[str, ResponseUrl]


def signed_burst(concurrency: int, round_no: int, response_url: ResponseUrl
                 ) -> list[tuple[bytes, dict[str, str]]]:
    requests = []
    for i in range(concurrency):
        user = f"U0BENCH{round_no:02d}{i:03d}"
        body = slash_command_body(COMMANDS[i % len(COMMANDS)], user_id=user,
                                  response_url=response_url(user))
        requests.append((body.encode(), signed_headers(SIGNING_SECRET, body)))
    return requests


def send_burst(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> list[float]:
    """Runs in the load-generator process: all requests at once, each on its own connection
    (as Slack's deliveries arrive), timed until the HTTP answer."""

    async def one(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> float:
        started = time.perf_counter()
        response = await client.post(f"{url}/slack/events", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return elapsed

    async def all_at_once() -> list[float]:
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return list(await asyncio.gather(*(one(client, b, h) for b, h in requests)))

    return asyncio.run(all_at_once())


def burst(target: Target, concurrency: int, rounds: int) -> list[float]:
    url, response_url = target
    samples: list[float] = []
    # The load comes from another process, so it does not compete for the servers' GIL.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as loader:
        loader.submit(send_burst, url, signed_burst(1, 99, response_url)).result()  # warm-up
        for round_no in range(rounds):
            requests = signed_burst(concurrency, round_no, response_url)
            samples += loader.submit(send_burst, url, requests).result()
            time.sleep(0.5)  # let the lazy work of the round drain before the next burst
    return samples


@contextmanager
def bare_app() -> Iterator[Target]:
    with SlackApiStandIn() as standin:
        app = App(client=make_web_client(standin.token, standin.url),
                  signing_secret=SIGNING_SECRET, process_before_response=True,
                  token_verification_enabled=False, request_verification_enabled=False)

        @app.command("/sigfox")
        def only_ack(ack: Ack) -> None:
            ack()

        with BackgroundServer(create_web_app(app, signing_secret=SIGNING_SECRET)) as server:
            yield server.root, lambda user: standin.response_url("C0FLEETOPS", user)


@contextmanager
def real_bot() -> Iterator[Target]:
    simulator = SimulatorServer(devices=0, rate_limits=False).start()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                running_bot(simulator, Path(tmp) / "bench.db") as bot:
            bot.notifier.pacer.interval = 0.0
            yield bot.url, lambda user: bot.standin.response_url("C0FLEETOPS", user)
    finally:
        simulator.stop()


def measure(name: str, server: Callable[[], AbstractContextManager[Target]], concurrency: int,
            rounds: int) -> tuple[str, list[float]]:
    with server() as target:
        return name, burst(target, concurrency, rounds)


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"| {name} | {len(samples)} | {statistics.median(samples) * 1000:.1f} | "
            f"{p99 * 1000:.1f} | {max(samples) * 1000:.1f} |")


def section(rows: list[str], concurrency: int, rounds: int) -> str:
    machine = f"{platform.python_implementation()} {platform.python_version()}, " \
              f"{os.cpu_count()} CPUs, {platform.system()}"
    return "\n".join([
        HEADING,
        "",
        f"`benchmarks/ack_latency.py`: {rounds} bursts of {concurrency} concurrent `/sigfox` "
        "commands (status, help, jobs, renew, expiring), signed as Slack signs them, over "
        "loopback HTTP to the bot in HTTP mode (uvicorn, `create_web_app`). Latency is the time "
        "until the HTTP answer, which is the acknowledgement Slack waits for (3 s at most). The "
        "real bot acknowledges in the ack function and does the work in Bolt lazy listeners; the "
        "bare app only calls `ack()`. The 50 requests of a burst leave together from a separate "
        "load-generator process; the server under test shares its process with the Slack "
        "stand-in and the simulated backend, on the same 2 cores: absolute figures are "
        "pessimistic, the comparison is what counts.",
        "",
        "Why the bot's acks cost more than the bare app's (measured before the cure: 1.78x at "
        "p99): not the request path, which is the same Bolt dispatch plus a listener that only "
        "calls `ack()` (one command at a time, on the loaded machine: 58 ms against 46 ms at "
        "the median); it was the lazy work. Bolt starts a command's lazy listener as soon as "
        "its ack is built, so the first acks of a burst set worker threads to CPU-bound work "
        "(Sigfox reads, SQLite, Slack posts, and here the simulated backend and Slack stand-in "
        "serving them) while the event loop still had the other acks to read, verify, dispatch "
        "and write. Python threads share one GIL, handed over every 5 ms, and the loop thread "
        "gave it up at every socket operation: each ack waited behind the work of the others. "
        "The cure (`bot/ack_gate.py`): the HTTP edge counts the Slack requests it is answering "
        "until each answer is sent, and a lazy listener starts only once none has been for 20 "
        "ms (at most 2 s held): nothing but acknowledgements runs while acknowledgements are "
        "due.",
        "",
        "| app | commands | median (ms) | p99 (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"Measured on {machine}, {time.strftime('%Y-%m-%d')}, load average "
        f"{os.getloadavg()[0]:.1f} at the end of the run (other work shares the 2 CPUs).",
        "",
        "The gate holds only the work that has not started: when a burst arrives while the "
        "work of the previous one still runs (on a loaded machine it outlasts the 0.5 s between "
        "bursts), that work competes with the acks for the CPU and the GIL, and the simulated "
        "backend and Slack stand-in that serve it run in the same process. The p99 goal "
        "(<= 1.2x the bare app) is met only when the work of a burst ends before the next.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    results = [measure("bare Bolt app (ack only)", bare_app, args.concurrency, args.rounds),
               measure("sigfox-bot", real_bot, args.concurrency, args.rounds)]
    rows = [row(name, samples) for name, samples in results]
    text = section(rows, args.concurrency, args.rounds)
    print(text)
    if not args.no_write:
        write_section(HEADING, text)


if __name__ == "__main__":
    main()
