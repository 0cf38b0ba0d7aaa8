"""Clicks bound to the installation and to the job's own message (issue 11, finding 8).

Every request below is signed with the right secret: the signature alone must not be enough.
A click naming another workspace or app, or coming from another channel or another message
than the request's own, decides nothing; the same click on the request's message does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bot import APPROVER_ID, REQUESTER_ID, BotHarness, buttons, running_bot
from support.slack_signing import (
    block_actions_body,
    block_actions_payload,
    home_block_actions_payload,
    interaction_body,
    slash_command_body,
)

from bot import blocks
from commands.states import WorkflowState


@pytest.fixture
def bot(make_simulator, tmp_path: Path) -> Iterator[BotHarness]:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db") as harness:
        yield harness


def requested(bot: BotHarness) -> tuple[int, int, dict]:
    bot.command(f"renew {bot.fleet.off_contract} by delete")
    [workflow] = bot.core.store.list_workflows()
    approval = bot.core.store.approval_for(workflow.id)
    assert approval is not None
    return workflow.id, approval.id, bot.approval_message(approval.id)


def state(bot: BotHarness, workflow_id: int) -> str:
    return bot.core.store.get_workflow(workflow_id).state


@pytest.mark.parametrize("elsewhere", [
    {"channel_id": "C0ELSEWHERE"},
    {"message_ts": "1700000999.000100"},
])
def test_an_approval_clicked_off_its_message_decides_nothing(bot: BotHarness,
                                                              elsewhere: dict) -> None:
    workflow_id, approval_id, request = requested(bot)
    where = {"message_ts": request["ts"], **elsewhere}
    bot.click(blocks.APPROVE, str(approval_id), APPROVER_ID, **where)
    assert state(bot, workflow_id) == WorkflowState.AWAITING_APPROVAL
    assert any("does not belong to this message" in t for t in bot.ephemeral_texts(APPROVER_ID))
    bot.click(blocks.APPROVE, str(approval_id), APPROVER_ID, message_ts=request["ts"])
    assert state(bot, workflow_id) == WorkflowState.APPROVED


@pytest.mark.parametrize("field, value", [("team_id", "T0OTHERWS"), ("api_app_id", "A0OTHER")])
def test_a_click_for_another_workspace_or_app_is_dropped(bot: BotHarness, field: str,
                                                         value: str) -> None:
    workflow_id, approval_id, request = requested(bot)
    payload = block_actions_payload(blocks.APPROVE, str(approval_id), user_id=APPROVER_ID,
                                    message_ts=request["ts"])
    if field == "team_id":
        payload["team"]["id"] = value
        payload["user"]["team_id"] = value
    else:
        payload["api_app_id"] = value
    response = bot.post(interaction_body(payload))
    bot.executor.drain()
    assert response.status_code == 200 and response.text == ""
    assert state(bot, workflow_id) == WorkflowState.AWAITING_APPROVAL
    # The same click, for this workspace and app, decides.
    bot.post(block_actions_body(blocks.APPROVE, str(approval_id), user_id=APPROVER_ID,
                                message_ts=request["ts"]))
    bot.executor.drain()
    assert state(bot, workflow_id) == WorkflowState.APPROVED


def test_a_command_for_another_workspace_is_dropped(bot: BotHarness) -> None:
    bot.post(slash_command_body(f"renew {bot.fleet.off_contract} by delete",
                                user_id=REQUESTER_ID, team_id="T0OTHERWS"))
    bot.executor.drain()
    assert bot.core.store.list_workflows() == []


def test_approve_from_app_home_is_accepted(bot: BotHarness) -> None:
    workflow_id, approval_id, _ = requested(bot)
    bot.post(interaction_body(home_block_actions_payload(blocks.APPROVE, str(approval_id),
                                                         user_id=APPROVER_ID)))
    bot.executor.drain()
    assert state(bot, workflow_id) == WorkflowState.APPROVED


def test_cancel_clicked_in_another_channel_cancels_nothing(bot: BotHarness) -> None:
    workflow_id, _, _ = requested(bot)
    [parent] = bot.parents()
    [cancel] = [b for b in buttons(parent) if b["action_id"] == blocks.CANCEL]
    bot.click(blocks.CANCEL, cancel["value"], REQUESTER_ID, message_ts=parent["ts"],
              channel_id="C0ELSEWHERE")
    assert state(bot, workflow_id) == WorkflowState.AWAITING_APPROVAL
    bot.click(blocks.CANCEL, cancel["value"], REQUESTER_ID, message_ts=parent["ts"])
    assert state(bot, workflow_id) == WorkflowState.CANCELLED


def test_without_the_app_id_the_workspace_is_still_checked(make_simulator, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    # An app installed from a manifest without users:read: bots.info is refused.
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db") as bot:
        bot.standin.fail("bots.info", "missing_scope", times=100)
        bot.post(slash_command_body(f"renew {bot.fleet.off_contract} by delete",
                                    user_id=REQUESTER_ID, team_id="T0OTHERWS"))
        bot.executor.drain()
        assert bot.core.store.list_workflows() == []
        bot.command(f"renew {bot.fleet.off_contract} by delete")
        assert len(bot.core.store.list_workflows()) == 1
    assert any("users:read" in r.getMessage() for r in caplog.records)
