"""Decisions never wait behind reads (issue 11, finding 4): a flood of `/sigfox status`, each
held at Sigfox, queues in the read lane and is told its place, while an Approve clicked after
the flood is decided before any of the reads is through.

The reads are held by a gate the test keeps closed (support/gates.py), in front of the
simulator: "while the reads still wait" is a state the test sets up, not a race against the
machine's load. Were the reads run on Bolt's own workers, they would hold all of them at the
gate and the click would never be decided: the test fails on its hang guard."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.bot import APPROVER_ID, REQUESTER_ID, BotHarness, running_bot
from support.gates import GatedTransport, device_reads, wait_until

from bot import blocks
from sigfox.simulator import SimulatorServer

FLOOD = 12  # more reads than Bolt's test pool has workers (8): they would starve the click


@pytest.fixture
def gate() -> GatedTransport:
    return GatedTransport(device_reads)


@pytest.fixture
def bot(make_simulator: Callable[..., SimulatorServer], tmp_path: Path,
        gate: GatedTransport) -> Iterator[BotHarness]:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db", transport=gate) as harness:
        try:
            yield harness
        finally:
            gate.open()  # a failed test must not leave reads held while the bot stops


def test_a_click_is_decided_while_a_flood_of_status_reads_waits(bot: BotHarness,
                                                                gate: GatedTransport) -> None:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    [workflow] = bot.core.store.list_workflows()
    approval = bot.core.store.approval_for(workflow.id)
    request = bot.approval_message(approval.id)
    reads = bot.executor.also
    assert reads is not None

    gate.close_gate()
    for _ in range(FLOOD):
        bot.command(f"status {bot.fleet.valid}", user=REQUESTER_ID, settle=False)
    # Every Bolt worker has handed its command over; the lane's own workers wait at Sigfox.
    wait_until(lambda: not bot.executor.pending(), "the commands handed to the read lane")
    lane_workers = reads.workers
    gate.wait_until_held(lane_workers)
    assert len(reads.pending()) == FLOOD

    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"],
              settle=False)
    wait_until(lambda: not bot.executor.pending(), "the click decided on Bolt's workers")
    assert bot.core.store.get_approval(approval.id).state == "approved"
    # Decided while every read still waits: none answered, none more begun.
    assert len(reads.pending()) == FLOOD and gate.held == lane_workers
    assert answers(bot) == 0

    gate.open()
    bot.executor.drain(timeout=60)
    assert answers(bot) == FLOOD
    queued = [t for t in bot.ephemeral_texts(REQUESTER_ID) if "Queued behind" in t]
    # Every read but the first was told its place: how many were ahead of it, each once.
    places = sorted(int(t.split("reads: ")[1].split(" ")[0]) for t in queued)
    assert places == list(range(1, FLOOD))
    assert all(" ahead, about " in t for t in queued)


def answers(bot: BotHarness) -> int:
    """How many of the status reads have been answered."""
    said = bot.ephemeral_texts(REQUESTER_ID)
    return sum(t.startswith(f"Device {bot.fleet.valid}:") for t in said)
