"""Helpers of the write-ahead tests (tests/test_writeahead.py, tests/test_pending_cancel.py):
a renewal by delete approved, its DELETE left unanswered, the device checked afterwards.

The `world` fixture (tests/conftest.py) gives the simulator, its fleet, the core harness and the
landing clock these take.
"""

from __future__ import annotations

import time
from typing import Any

from commands.planning import Request
from commands.ports import Target
from commands.states import Kind
from support.core import APPROVER, REQUESTER

MARGIN = 60.0  # the default [timing] landing_margin


def approved_renewal(harness: Any, device_id: str) -> int:
    outcome = harness.core.request(Request(Kind.RENEW, REQUESTER, (device_id,), Target("C0"),
                                           by_delete=True))
    assert harness.core.decide(outcome.approval_id, APPROVER, approve=True).ok
    return int(outcome.workflow_id)


def tick_until_sent(harness: Any, workflow_id: int, device: str) -> None:
    """Tick until the DELETE went out (a read before it may time out on a loaded machine)."""
    for _ in range(20):
        harness.core.tick()
        if harness.core.store.intents.of_step(workflow_id, device):
            return
        harness.clock.advance(900)
    raise AssertionError("the delete was never sent")


def unanswered_delete(simulator: Any, harness: Any, device: str, *, held: bool = False) -> int:
    """A renewal of `device` approved and its DELETE sent without a clean answer: a 500 (it
    may or may not have deleted the device), or, `held`, kept longer than the client waits
    (it gives up after 0.2 s; the DELETE lands about half a second later). The workflow id."""
    workflow_id = approved_renewal(harness, device)
    fault: dict[str, Any] = {"delay": 0.6} if held else {"status": 500}
    simulator.fault(f"/v2/devices/{device}", method="DELETE", **fault)
    tick_until_sent(harness, workflow_id, device)
    return workflow_id


def wait_for_call(simulator: Any, method: str, path: str, count: int = 1) -> None:
    for _ in range(200):  # the held call lands on its own, about half a second later
        if len(calls(simulator, method, path)) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{method} {path} never reached the backend")


def calls(simulator: Any, method: str, path: str) -> list[dict[str, Any]]:
    return [c for c in simulator.call_log() if c["method"] == method and c["path"] == path]


def assert_untouched_and_free(simulator: Any, harness: Any, device: str) -> None:
    """After the job ended, an hour on: its one DELETE never sent again, the device still
    registered, and free for a new job (a new request is not joined to the old one)."""
    harness.clock.advance(3600)
    harness.core.tick()
    assert len(calls(simulator, "DELETE", f"/v2/devices/{device}")) == 1
    assert harness.core.api.find_device(device) is not None
    again = harness.core.request(Request(Kind.RENEW, REQUESTER, (device,), Target("C0"),
                                         by_delete=True))
    assert again.ok and not again.joined
