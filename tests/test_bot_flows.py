"""The Slack bot end to end: signed slash commands and clicks into the real Bolt app in HTTP
mode, its real WebClient against the Slack stand-in, the core on the simulated Sigfox backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bot import (
    APPROVER_ID,
    OUTSIDER_ID,
    REQUESTER_ID,
    BotHarness,
    buttons,
    running_bot,
)
from support.slack_signing import CHANNEL_ID

from sigfox_chatops.bot import blocks
from sigfox_chatops.commands.states import WorkflowState


@pytest.fixture
def bot(make_simulator, tmp_path: Path) -> Iterator[BotHarness]:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db") as harness:
        yield harness


def only_job(bot: BotHarness) -> int:
    [workflow] = bot.core.store.list_workflows()
    return workflow.id


def test_renewal_end_to_end(bot: BotHarness) -> None:
    device = bot.fleet.off_contract
    response = bot.command(f"renew {device}")
    assert response.status_code == 200
    assert "Working on" in response.text

    workflow_id = only_job(bot)
    [parent] = bot.parents()
    assert "Waiting for approval" in parent["text"]
    approval = bot.core.store.approval_for(workflow_id)
    assert approval is not None
    request = bot.approval_message(approval.id)
    assert [b["value"] for b in buttons(request)] == [str(approval.id)] * 2
    assert "history" in str(request["blocks"]).lower()  # what it costs is said before approval
    assert any("Waiting for an approver" in t for t in bot.ephemeral_texts(REQUESTER_ID))

    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"],
              thread_ts=parent["ts"])
    decided = bot.approval_message(approval.id)
    assert buttons(decided) == []
    assert f"<@{APPROVER_ID}>" in str(decided["blocks"]) and "Approved" in str(decided["blocks"])

    bot.core.tick()  # delete, then the id is still held: a waiting line
    for _ in range(5):  # the core reports the wait at 0, 10 and 20 minutes
        bot.advance(300)
        bot.core.tick()
    waiting = [t for t in bot.thread_texts(parent["ts"]) if ":hourglass:" in t]
    assert len(waiting) == 1  # repeated waits edit one line in place
    assert "20 min" in waiting[0]
    bot.advance(300)
    bot.core.tick()
    assert bot.uplink(device).status_code == 204

    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    thread = bot.thread_texts(parent["ts"])
    assert any("First message received" in t for t in thread)
    summary = [m for m in bot.standin.thread(CHANNEL_ID, parent["ts"]) if buttons(m)
               and buttons(m)[0]["action_id"] == blocks.SHOW_PAC]
    assert summary, thread
    assert "Done" in bot.standin.message(CHANNEL_ID, parent["ts"])["text"]
