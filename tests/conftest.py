"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.slack_api import SlackApiStandIn

from sigfox.simulator import SimulatorServer


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
    """A running Slack Web API stand-in (support.slack_api), stopped after the test."""
    with SlackApiStandIn() as standin:
        yield standin
