"""A real core (SQLite store, Sigfox client over HTTP) against a running simulator."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from commands.config import BotConfig, parse_config
from commands.policy import Actor
from commands.ports import ManualClock, Progress, ProgressKind
from commands.workflows import Core
from demo.world import VIRTUAL_CLOCK_TIMING
from sigfox.client import SigfoxClient, WaitMode
from sigfox.simulator import SimulatorServer
from storage.db import open_database
from storage.store import Store

REQUESTER = Actor("U0REQUEST")
APPROVER = Actor("U0APPROVE")
OUTSIDER = Actor("U0OUTSIDE")

POLICY_TOML = f"""
[policy]
requesters = ["*"]
approvers = ["U0APPROVE", "U0REQUEST", "S0APPROVERS"]
approval_ttl = "1h"
{VIRTUAL_CLOCK_TIMING}approval_reminder = "20m"
"""


class RecordingNotifier:
    """Keeps every progress event the core hands out, for tests to read."""

    def __init__(self) -> None:
        self.events: list[Progress] = []
        self._lock = threading.Lock()

    def notify(self, progress: Progress) -> None:
        with self._lock:
            self.events.append(progress)

    def texts(self) -> list[str]:
        return [p.text for p in self.events]

    def kinds(self) -> list[ProgressKind]:
        return [p.kind for p in self.events]


def core_config(extra: str = "") -> BotConfig:
    return parse_config(POLICY_TOML + extra)


class SlackEndpoint(Protocol):
    """Where a bot's Slack Web API is: the stand-in (demo.slack_standin) in tests."""

    token: str
    url: str


def service_env(simulator: SimulatorServer, slack: SlackEndpoint, database: Path,
                **extra: str) -> dict[str, str]:
    """The environment `sigfox-bot serve` reads, pointed at the simulated backend, the Slack
    stand-in and `database`; `extra` adds or overrides variables."""
    return {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url,
            "SIGFOX_API_URL": simulator.base_url, "SIGFOX_API_LOGIN": simulator.login,
            "SIGFOX_API_PASSWORD": simulator.password, "SIGFOX_BOT_DB": str(database),
            **extra}


def sigfox_client(simulator: SimulatorServer, **options: Any) -> SigfoxClient:
    options.setdefault("rate_limits", False)
    options.setdefault("sleep", lambda _s: None)
    options.setdefault("timeout", 2.0)
    options.setdefault("waits", WaitMode.DEFER)  # as the bot wires its workflows: never sleep
    return SigfoxClient(simulator.base_url, simulator.login, simulator.password, **options)


@dataclass
class CoreHarness:
    core: Core
    notifier: RecordingNotifier
    clock: ManualClock
    simulator: SimulatorServer
    db_path: Path

    def advance(self, seconds: float) -> None:
        """Move the bot's clock and the backend's together."""
        self.clock.advance(seconds)
        self.simulator.advance(seconds)

    def run_until_quiet(self, max_ticks: int = 20) -> None:
        for _ in range(max_ticks):
            self.core.tick()

    def calls(self, method: str, path_prefix: str, status: int | None = None) -> list[dict]:
        return [
            c
            for c in self.simulator.call_log()
            if c["method"] == method
            and c["path"].startswith(path_prefix)
            and (status is None or c["status"] == status)
        ]


def make_core(
    simulator: SimulatorServer,
    db_path: Path,
    *,
    config: BotConfig | None = None,
    api: Any = None,
    clock: ManualClock | None = None,
    notifier: Any = None,
    landing_clock: ManualClock | None = None,
    **core_options: Any,
) -> CoreHarness:
    notifier = notifier or RecordingNotifier()
    clock = clock or ManualClock(simulator.clock.now())
    core = Core(
        # The client's pacing and back-off dates are on the bot's (virtual) clock.
        api=api or sigfox_client(simulator, clock=clock.now),
        store=Store(open_database(db_path)),
        notifier=notifier,
        clock=clock,
        config=config or core_config(),
        landing_clock=landing_clock,
        **core_options,
    )
    return CoreHarness(core, notifier, clock, simulator, db_path)


@dataclass
class Fleet:
    """A small, named world: one order with two contracts, a second order."""

    type_a: str
    type_a2: str
    type_b: str
    type_full: str
    off_contract: str
    no_token: str
    valid: str
    invalid: str


def build_fleet(simulator: SimulatorServer) -> Fleet:
    world = simulator.world
    order_1 = world.add_contract("Order 1 / A", order_id="order-1", order_name="Order 1",
                                 max_tokens=100)
    order_1b = world.add_contract("Order 1 / B", order_id="order-1", order_name="Order 1",
                                  max_tokens=100)
    order_2 = world.add_contract("Order 2", order_id="order-2", order_name="Order 2",
                                 max_tokens=100)
    full = world.add_contract("Full", order_id="order-3", order_name="Order 3", max_tokens=1)
    type_a = world.add_device_type("Fleet A", order_1.id)
    type_a2 = world.add_device_type("Fleet A2", order_1b.id)
    type_b = world.add_device_type("Fleet B", order_2.id)
    type_full = world.add_device_type("Fleet Full", full.id)
    world.add_device("AA0001", device_type_id=type_full.id, token="ok")
    return Fleet(
        type_a=type_a.id,
        type_a2=type_a2.id,
        type_b=type_b.id,
        type_full=type_full.id,
        off_contract=world.add_device("C0FFEE", device_type_id=type_a.id,
                                      token="off_contract").id,
        no_token=world.add_device("BEEF01", device_type_id=type_a.id, token="none").id,
        valid=world.add_device("BEEF02", device_type_id=type_a.id, token="ok").id,
        invalid=world.add_device("BEEF03", device_type_id=type_a.id, token="invalid").id,
    )
