"""Shared pytest fixtures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support.threads import left_running

from demo.slack_standin import SlackApiStandIn
from sigfox.simulator import SimulatorServer

if TYPE_CHECKING:
    from support.bot import BotHarness


@pytest.fixture(autouse=True)
def no_thread_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that leaves a thread running (a progress lane, a scheduler, a server, a
    socket client): it would go on posting and logging into later tests, which then fail far
    from the cause. Threads of the module's own fixtures, started before, are not the test's."""
    before = threading.enumerate()
    yield
    leaked = left_running(before, pools_open=True)
    if leaked:
        pytest.fail(f"{request.node.nodeid} left {len(leaked)} thread(s) running:\n"
                    + "\n".join(leaked), pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def no_thread_outlives_its_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """The same for a module, once its fixtures are torn down, idle pool workers included
    (a pool never shut down, or a server's that is still open)."""
    before = threading.enumerate()
    yield
    leaked = left_running(before, pools_open=False)
    if leaked:
        pytest.fail(f"{request.node.nodeid} left {len(leaked)} thread(s) running:\n"
                    + "\n".join(leaked), pytrace=False)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    """For tests that configure logging (`configure_logging`, the CLI's `--log-format`): the
    root logger's handlers and level are put back afterwards, so later tests log as before."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """A factory of running simulators: `make_simulator(devices=0, rate_limits=False, ...)`
    takes SimulatorServer's keyword options; every one made is stopped after the test."""
    servers: list[SimulatorServer] = []

    def factory(**options: Any) -> SimulatorServer:
        server = SimulatorServer(**options).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    """A running simulated Sigfox backend (20 devices, seed 1, rate limits on)."""
    return make_simulator()


@pytest.fixture
def slack() -> Iterator[SlackApiStandIn]:
    """A running Slack Web API stand-in (demo.slack_standin), stopped after the test."""
    with SlackApiStandIn() as standin:
        yield standin


@pytest.fixture
def bot(make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> Iterator[BotHarness]:
    """The whole bot (signed Slack requests in, the Slack stand-in out) on an empty simulated
    fleet plus `support.core.build_fleet`'s devices, deletes held 30 minutes; a test module may
    define its own `bot` for another setup."""
    from support.bot import running_bot  # the Bolt app: imported only by tests that use it

    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db") as harness:
        yield harness


@pytest.fixture
def world(make_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> tuple[Any, ...]:
    """A core whose destructive calls may go unanswered (test_writeahead, test_pending_cancel):
    the simulator, its `build_fleet` devices, the core harness (a client that waits 0.2 s and
    never retries) and the clock that dates when an unanswered call can no longer land."""
    from support.core import build_fleet, make_core, sigfox_client

    from commands.ports import ManualClock

    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    fleet = build_fleet(simulator)
    landing = ManualClock(1_000_000.0)
    harness = make_core(simulator, tmp_path / "bot.db", landing_clock=landing,
                        api=sigfox_client(simulator, timeout=0.2, max_retries=0))
    return simulator, fleet, harness, landing
