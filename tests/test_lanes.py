"""Decisions never wait behind reads (issue 11, finding 4): a flood of `/sigfox status`, each
slowed down at the backend, queues in the read lane and is told its place, while an Approve
clicked after the flood is decided before the reads are through."""

from __future__ import annotations

import time

from support.bot import APPROVER_ID, REQUESTER_ID, BotHarness

from bot import blocks

FLOOD = 12


def test_a_click_is_decided_while_a_flood_of_status_reads_waits(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    [workflow] = bot.core.store.list_workflows()
    approval = bot.core.store.approval_for(workflow.id)
    request = bot.approval_message(approval.id)
    reads = bot.executor.also
    assert reads is not None

    # Every read of the device list is held 0.3 s by the backend: the flood takes a while.
    bot.simulator.fault("/v2/devices/", method="GET", delay=0.3, count=FLOOD * 3)
    for _ in range(FLOOD):
        bot.command(f"status {bot.fleet.valid}", user=REQUESTER_ID, settle=False)
    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"],
              settle=False)
    for _ in range(500):  # the decision comes on its own lane
        if bot.core.store.get_approval(approval.id).state == "approved":
            break
        time.sleep(0.01)
    still_reading = len(reads.pending())
    assert bot.core.store.get_approval(approval.id).state == "approved"
    assert still_reading > 0  # decided before the reads were through

    bot.executor.drain(timeout=60)
    queued = [t for t in bot.ephemeral_texts(REQUESTER_ID) if "Queued behind" in t]
    assert queued and any(" ahead, about " in t for t in queued)
    assert max(int(t.split("reads: ")[1].split(" ")[0]) for t in queued) >= 2  # its place
