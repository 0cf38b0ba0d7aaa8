"""The pre-flight refusals and the release wait past its timeout, through Slack: signed slash
commands and clicks into the real Bolt app, its WebClient against the Slack stand-in."""

from __future__ import annotations

import pytest
from support.bot import APPROVER_ID, OUTSIDER_ID, REQUESTER_ID, buttons
from support.slack_signing import CHANNEL_ID
from test_semantics import REFUSALS

from bot import blocks
from commands.states import WorkflowState


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_reaches_the_requester_privately_and_changes_nothing(bot, case) -> None:
    setup, words = REFUSALS[case]
    device = setup(bot.simulator.world)
    assert bot.command(f"renew {device}").status_code == 200
    [answer] = bot.ephemeral_texts(REQUESTER_ID)
    for word in words:
        assert word in answer, answer
    assert "Nothing was changed." in answer
    assert bot.core.store.list_workflows() == [] and bot.parents() == []
    assert [c for c in bot.simulator.call_log() if c["method"] != "GET"] == []


def test_an_overdue_release_wait_asks_approvers_and_shows_the_pac_only_privately(bot) -> None:
    device = bot.fleet.no_token
    pac = bot.simulator.world.pac_of(device)
    bot.command(f"renew {device}")
    [workflow] = bot.core.store.list_workflows()
    approval = bot.core.store.approval_for(workflow.id)
    [parent] = bot.parents()
    request = bot.approval_message(approval.id)
    bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID, message_ts=request["ts"],
              thread_ts=parent["ts"])
    bot.core.tick()
    for _ in range(26):  # past the tests' 2 h release_timeout; the backend holds the id
        bot.clock.advance(300)
        bot.core.tick()
    assert bot.core.store.get_workflow(workflow.id).state == WorkflowState.RUNNING
    thread = bot.standin.thread(CHANNEL_ID, parent["ts"])
    [ask] = [m for m in thread if any(b["action_id"] == blocks.STOP_WAITING for b in buttons(m))]
    assert {b["action_id"] for b in buttons(ask)} == {blocks.KEEP_WAITING, blocks.STOP_WAITING}
    value = buttons(ask)[0]["value"]

    bot.click(blocks.STOP_WAITING, value, OUTSIDER_ID, message_ts=ask["ts"])
    assert any("Only approvers" in t for t in bot.ephemeral_texts(OUTSIDER_ID))
    bot.click(blocks.KEEP_WAITING, value, APPROVER_ID, message_ts=ask["ts"])
    assert any("keep waiting" in t for t in bot.thread_texts(parent["ts"]))
    bot.click(blocks.STOP_WAITING, value, APPROVER_ID, message_ts=ask["ts"])
    assert any(pac in t for t in bot.ephemeral_texts(APPROVER_ID))
    assert bot.core.store.get_workflow(workflow.id).state == WorkflowState.FAILED
    everything = [m.get("text", "") for m in bot.standin.messages(CHANNEL_ID)]
    everything += bot.thread_texts(parent["ts"])
    assert all(pac not in text for text in everything)
