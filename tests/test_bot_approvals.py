"""Approvals that scale with the risk, through signed Slack requests: two approvers for a large
job, reasons asked in modals, reminders by direct message, escalation, the wait timer, and a
Show PAC told in the open. Real Bolt app, real WebClient against the Slack stand-in, the core on
the simulated backend, a virtual clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.bot import (
    APPROVER_ID,
    GROUP_APPROVER_ID,
    OUTSIDER_ID,
    REQUESTER_ID,
    BotHarness,
    buttons,
    running_bot,
)
from support.slack_signing import CHANNEL_ID, interaction_body, view_submission_payload

from bot import blocks
from commands.config import parse_config
from commands.states import WorkflowState
from demo.slack_standin import dm_channel

ESCALATION_ID = "U0ESCALAT"
CONFIG = """
[policy]
requesters = ["*"]
approvers = ["U0APPROVE", "U0REQUEST", "S0APPROVERS"]
approval_ttl = "24h"
large_job_devices = 2
large_job_approvals = 2
remind_every = "1h"
escalate_after = "3h"
escalation_approvers = ["U0ESCALAT"]

[policy.operations.delete]
wait_timer = "10m"

[timing]
tick = "1s"
"""
HOUR = 3600.0


@pytest.fixture
def bot(make_simulator, tmp_path: Path) -> Iterator[BotHarness]:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    with running_bot(simulator, tmp_path / "bot.db", config=parse_config(CONFIG)) as harness:
        yield harness


# --------------------------------------------------------------------------- helpers


def submit(bot: BotHarness, modal: dict[str, Any], answers: dict[str, str],
           user: str) -> httpx.Response:
    """Press Submit on `modal` (as views.open left it) with these answers, signed as Slack."""
    response = bot.post(interaction_body(view_submission_payload(modal, answers, user_id=user)))
    bot.executor.drain()
    return response


def last_modal(bot: BotHarness, callback_id: str) -> dict[str, Any]:
    opened = [v for v in bot.standin.modals_opened() if v["callback_id"] == callback_id]
    assert opened, bot.standin.methods_called()
    return opened[-1]


def the_request(bot: BotHarness) -> tuple[int, int, dict[str, Any], dict[str, Any]]:
    [workflow] = bot.core.store.list_workflows()
    approval = bot.core.store.approval_for(workflow.id)
    assert approval is not None, bot.ephemeral_texts(REQUESTER_ID)
    [parent] = bot.parents()
    return workflow.id, approval.id, parent, bot.approval_message(approval.id)


def approve(bot: BotHarness, approval_id: int, user: str, **fields: Any) -> None:
    bot.click(blocks.APPROVE, str(approval_id), user, **fields)


def deletes(bot: BotHarness) -> list[dict[str, Any]]:
    return [c for c in bot.simulator.call_log()
            if c["method"] == "DELETE" and c["path"].startswith("/v2/devices/")]


def text_of(message: dict[str, Any]) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks", []))


# --------------------------------------------------------------------------- two approvers


def test_a_large_job_needs_two_people_neither_the_requester(bot: BotHarness) -> None:
    second = bot.simulator.world.add_device("BEEF04", device_type_id=bot.fleet.type_a,
                                            token="none").id
    devices = f"{bot.fleet.no_token} {second}"  # both renewed by delete: one job
    bot.command(f"renew {devices}")
    assert bot.core.store.list_workflows() == []  # nothing before the reason
    form = last_modal(bot, blocks.REQUEST_REASON_MODAL)
    assert "is a large job (2 devices): say why you ask" in json.dumps(form["blocks"])
    blank = submit(bot, form, {blocks.REASON_BLOCK: "  "}, REQUESTER_ID)
    assert blank.json()["response_action"] == "errors"
    assert blocks.REASON_BLOCK in blank.json()["errors"]
    assert bot.core.store.list_workflows() == []
    assert submit(bot, form, {blocks.REASON_BLOCK: "Batch 7 came back from the field"},
                  REQUESTER_ID).status_code == 200
    workflow_id, approval_id, parent, request = the_request(bot)
    assert "Batch 7 came back from the field" in text_of(request)
    assert "0 of 2 approvals" in text_of(request)

    approve(bot, approval_id, APPROVER_ID, message_ts=request["ts"], thread_ts=parent["ts"])
    shown = text_of(bot.approval_message(approval_id))
    # Who approved, and who may still: the group expanded, the requester left out.
    assert (f"1 of 2 approvals: <@{APPROVER_ID}>; waiting for one more of "
            f"<@{GROUP_APPROVER_ID}>") in shown
    assert f"<@{REQUESTER_ID}>; " not in shown and f"of <@{REQUESTER_ID}>" not in shown
    assert buttons(bot.approval_message(approval_id))  # still open

    approve(bot, approval_id, APPROVER_ID, message_ts=request["ts"])  # the same one again
    assert any("already approved" in t for t in bot.ephemeral_texts(APPROVER_ID))
    approve(bot, approval_id, REQUESTER_ID, message_ts=request["ts"])  # the requester
    assert any("two-person rule" in t for t in bot.ephemeral_texts(REQUESTER_ID))
    bot.core.tick()
    assert deletes(bot) == []
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.AWAITING_APPROVAL

    approve(bot, approval_id, GROUP_APPROVER_ID, message_ts=request["ts"])
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.APPROVED
    assert buttons(bot.approval_message(approval_id)) == []
    bot.core.tick()
    assert len(deletes(bot)) == 2
    history = bot.command(f"history {bot.fleet.no_token}", user=OUTSIDER_ID)
    assert history.status_code == 200
    assert any("Batch 7 came back" in t for t in bot.ephemeral_texts(OUTSIDER_ID))


# --------------------------------------------------------------------------- reject reason


def test_reject_asks_a_reason_in_a_modal_shown_in_history(bot: BotHarness) -> None:
    device = bot.fleet.no_token
    bot.command(f"renew {device}")
    workflow_id, approval_id, parent, request = the_request(bot)

    bot.click(blocks.REJECT, str(approval_id), OUTSIDER_ID, message_ts=request["ts"])
    assert bot.standin.modals_opened() == []  # not an approver: no form, told why
    assert any("Only approvers" in t for t in bot.ephemeral_texts(OUTSIDER_ID))

    bot.click(blocks.REJECT, str(approval_id), APPROVER_ID, message_ts=request["ts"],
              thread_ts=parent["ts"])
    [opened] = bot.standin.calls_to("views.open")
    assert opened.params["trigger_id"]  # from the click
    form = last_modal(bot, blocks.REJECT_MODAL)
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.AWAITING_APPROVAL

    refused = submit(bot, form, {blocks.REASON_BLOCK: "no"}, APPROVER_ID)
    assert refused.json() == {"response_action": "errors", "errors": {
        blocks.REASON_BLOCK: "Say why you reject it, in a few words: the requester and the "
                             "team read it."}}
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.AWAITING_APPROVAL

    done = submit(bot, form, {blocks.REASON_BLOCK: "Wrong device: BEEF02 was meant"},
                  APPROVER_ID)
    assert done.status_code == 200 and not done.content  # closes the modal
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.REJECTED
    decided = text_of(bot.approval_message(approval_id))
    assert "Wrong device: BEEF02 was meant" in decided
    # In the thread: the request itself now says who rejected it and why.
    assert any(f"<@{APPROVER_ID}>" in t and "Wrong device: BEEF02 was meant" in t
               for t in bot.thread_texts(parent["ts"]))
    bot.command(f"history {device}", user=OUTSIDER_ID)
    [history] = [t for t in bot.ephemeral_texts(OUTSIDER_ID) if "History of" in t]
    assert "Wrong device: BEEF02 was meant" in history
    audit = bot.core.store.audit_entries(workflow_id=workflow_id)
    assert any(a.action == "rejected" and "BEEF02 was meant" in a.details.get("reason", "")
               for a in audit)
    assert deletes(bot) == []

    # A form submitted after the decision changes nothing and says why, in the modal.
    late = submit(bot, form, {blocks.REASON_BLOCK: "me too"}, GROUP_APPROVER_ID)
    assert "already rejected" in late.json()["errors"][blocks.REASON_BLOCK]


# --------------------------------------------------------------------------- reminders


def test_reminders_by_direct_message_until_decided(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.no_token}")
    workflow_id, approval_id, parent, _request = the_request(bot)
    bot.advance(HOUR - 60)
    bot.core.tick()
    assert bot.standin.direct_messages(APPROVER_ID) == []
    bot.advance(60)
    bot.core.tick()
    [reminder] = bot.standin.direct_messages(APPROVER_ID)
    assert "waits for your decision" in reminder["text"]
    assert [b["value"] for b in buttons(reminder)] == [str(approval_id)] * 2
    assert len(bot.standin.direct_messages(GROUP_APPROVER_ID)) == 1  # group expanded
    assert bot.standin.direct_messages(REQUESTER_ID) == []  # not asked to approve their own
    assert any("Reminded" in t and f"<@{APPROVER_ID}>" in t
               for t in bot.thread_texts(parent["ts"]))

    bot.advance(HOUR)
    bot.core.tick()
    assert len(bot.standin.direct_messages(APPROVER_ID)) == 2
    # Approve from the direct message itself.
    dm = dm_channel(APPROVER_ID)
    approve(bot, approval_id, APPROVER_ID, channel_id=dm,
            message_ts=bot.standin.direct_messages(APPROVER_ID)[-1]["ts"])
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.APPROVED
    assert all(buttons(m) == [] for m in bot.standin.direct_messages(APPROVER_ID))

    bot.advance(5 * HOUR)
    bot.core.tick()
    assert len(bot.standin.direct_messages(APPROVER_ID)) == 2  # stopped
    assert len(bot.standin.direct_messages(GROUP_APPROVER_ID)) == 2


# --------------------------------------------------------------------------- escalation


def test_escalation_after_the_delay_lets_the_second_list_decide(bot: BotHarness) -> None:
    bot.command(f"renew {bot.fleet.no_token}")
    workflow_id, approval_id, _parent, request = the_request(bot)
    approve(bot, approval_id, ESCALATION_ID, message_ts=request["ts"])
    assert any("Only approvers" in t for t in bot.ephemeral_texts(ESCALATION_ID))
    bot.advance(3 * HOUR - 1)
    bot.core.tick()
    assert bot.standin.direct_messages(ESCALATION_ID) == []

    bot.advance(1)
    bot.core.tick()
    [posted] = [c for c in bot.standin.calls_to("chat.postMessage")
                if "now also asked" in c.params.get("text", "")]
    assert posted.params["reply_broadcast"] is True  # in the channel too
    assert f"<@{ESCALATION_ID}>" in posted.params["text"] and "3 h" in posted.params["text"]
    [dm] = bot.standin.direct_messages(ESCALATION_ID)
    assert "Escalated to you" in text_of(dm)
    assert f"<@{ESCALATION_ID}>" in text_of(bot.approval_message(approval_id))

    approve(bot, approval_id, ESCALATION_ID, channel_id=dm_channel(ESCALATION_ID),
            message_ts=dm["ts"])
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.APPROVED
    assert f"<@{ESCALATION_ID}>" in text_of(bot.approval_message(approval_id))


# --------------------------------------------------------------------------- wait timer


def test_a_wait_timer_cancelled_in_time_sends_nothing(bot: BotHarness) -> None:
    bot.command(f"delete {bot.fleet.no_token}")
    workflow_id, approval_id, parent, request = the_request(bot)
    approve(bot, approval_id, APPROVER_ID, message_ts=request["ts"])
    card = text_of(bot.standin.message(CHANNEL_ID, parent["ts"]))
    assert "starts in 10 min" in card and ":stopwatch:" in card
    bot.advance(6 * 60)
    bot.core.tick()
    card = bot.standin.message(CHANNEL_ID, parent["ts"])
    assert "starts in 4 min" in text_of(card)
    [cancel] = [b for b in buttons(card) if b["action_id"] == blocks.CANCEL]

    bot.click(blocks.CANCEL, cancel["value"], REQUESTER_ID, message_ts=parent["ts"])
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.CANCELLED
    bot.advance(HOUR)
    bot.core.tick()
    assert deletes(bot) == []


def test_show_pac_is_told_in_the_thread_never_the_pac(bot: BotHarness) -> None:
    device = bot.fleet.no_token
    pac = bot.simulator.world.pac_of(device)
    bot.command(f"delete {device}")
    workflow_id, approval_id, parent, request = the_request(bot)
    approve(bot, approval_id, APPROVER_ID, message_ts=request["ts"])
    bot.advance(10 * 60)
    bot.core.tick()
    assert bot.core.store.get_workflow(workflow_id).state == WorkflowState.DONE
    [summary] = [m for m in bot.standin.thread(CHANNEL_ID, parent["ts"])
                 if any(b["action_id"] == blocks.SHOW_PAC for b in buttons(m))]
    bot.click(blocks.SHOW_PAC, buttons(summary)[0]["value"], APPROVER_ID,
              message_ts=summary["ts"])
    assert any(pac in t for t in bot.ephemeral_texts(APPROVER_ID))
    assert any(f"<@{APPROVER_ID}> viewed the PAC of {device}" in t
               for t in bot.thread_texts(parent["ts"]))
    public = [c for c in bot.standin.calls if c.method != "chat.postEphemeral"]
    assert not any(pac in json.dumps(c.params) for c in public)
    [row] = [a for a in bot.core.store.audit_entries(workflow_id=workflow_id)
             if a.action == "reveal pac"]
    assert row.actor == APPROVER_ID and row.outcome == "shown"


def test_an_escalation_group_counts_for_the_policy() -> None:
    from bot.groups import configured_groups

    config = parse_config('[policy]\napprovers = ["U0APPROVE"]\nescalate_after = "1h"\n'
                          'escalation_approvers = ["S0ONCALL"]\n')
    assert "S0ONCALL" in configured_groups(config)  # so a member's clicks are recognised
