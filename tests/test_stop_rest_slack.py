"""Stopping the rest of a renewal by delete through Slack (issue 13): the running card's Stop
the rest button (Cancel's action), what the thread, the card, `/sigfox jobs` and the end summary
say, with the real Bolt app, the Slack stand-in and the simulated backend over HTTP.

The tick waits at a gate in front of Sigfox with the DELETE of the third device (the first two
deleted, the others still pending), so the stop comes while the job is half-way, by setup.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from support.bot import (
    APPROVER_ID,
    CHANNEL_ID,
    OUTSIDER_ID,
    REQUESTER_ID,
    BotHarness,
    buttons,
    running_bot,
)
from support.core import core_config
from support.gates import GatedTransport
from test_stop_rest import HELD, ONE_AT_A_TIME, holding_delete_of, off_contract_fleet

from bot import blocks
from commands.states import StepState, WorkflowState
from sigfox.simulator import SimulatorServer


def card_of(bot: BotHarness) -> dict:
    [card] = [m for m in bot.parents() if "renew" in m.get("text", "")]
    return card


def tick_to_the_end(bot: BotHarness, workflow_id: int, ids: list[str]) -> None:
    for _ in range(30):
        workflow = bot.core.store.get_workflow(workflow_id)
        if workflow is not None and workflow.state not in (WorkflowState.RUNNING,):
            return
        for step in bot.core.store.workflow_devices(workflow_id):
            if step.state == StepState.AWAITING_UPLINK:
                bot.uplink(step.device_id)
        bot.advance(60)
        bot.core.tick()
    raise AssertionError("the job never ended")


def test_stop_the_rest_from_the_card_and_what_slack_shows(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    ids = off_contract_fleet(simulator)
    gate = GatedTransport(holding_delete_of(ids[HELD]))
    with running_bot(simulator, tmp_path / "bot.db", config=core_config(ONE_AT_A_TIME),
                     transport=gate) as bot:
        bot.command(f"renew {' '.join(ids)} by delete")
        [workflow] = bot.core.store.list_workflows()
        approval = bot.core.store.approval_for(workflow.id)
        bot.click(blocks.APPROVE, str(approval.id), APPROVER_ID,
                  message_ts=bot.approval_message(approval.id)["ts"])
        gate.close_gate()
        tick = threading.Thread(target=bot.core.tick, name="held-tick")
        tick.start()
        try:
            gate.wait_until_held(1)
            # The card as drawn before the job started (its first devices' lines come with
            # the next tick): its Cancel button stops the rest now.
            card = card_of(bot)
            [stop] = [b for b in buttons(card) if b["action_id"] == blocks.CANCEL]

            bot.click(blocks.CANCEL, stop["value"], OUTSIDER_ID, message_ts=card["ts"])
            assert any("or an approver may cancel it" in t
                       for t in bot.ephemeral_texts(OUTSIDER_ID))
            bot.click(blocks.CANCEL, stop["value"], REQUESTER_ID, message_ts=card["ts"])
            untouched = ids[HELD + 1:]
            assert {bot.core.store.device_step(workflow.id, d).state for d in untouched} == {
                StepState.STOPPED}
            said = bot.thread_texts(card["ts"])
            assert any(f"Stopped by <@{REQUESTER_ID}>. {len(untouched)} device(s) the job "
                       "had not changed at Sigfox are stopped" in t for t in said)
            assert buttons(card_of(bot)) == []  # stopped: no second stop offered

            bot.command("jobs", user=APPROVER_ID)
            [jobs] = [t for t in bot.ephemeral_texts(APPROVER_ID) if "Running" in t]
            assert (f"stopped by <@{REQUESTER_ID}>: {len(untouched)} stopped untouched, "
                    f"{HELD + 1} being finished") in jobs
        finally:
            gate.open()
            tick.join(timeout=60)

        tick_to_the_end(bot, workflow.id, ids)
        assert bot.core.store.get_workflow(workflow.id).state == WorkflowState.STOPPED
        card = card_of(bot)
        assert "Stopped part-way" in json.dumps(card["blocks"])
        [summary] = [m for m in bot.standin.thread(CHANNEL_ID, card["ts"])
                     if "stopped part-way" in m.get("text", "")]
        text = json.dumps(summary["blocks"])
        assert f"3 of {len(ids)} device(s) done, 0 failed, {len(untouched)} stopped" in text
        assert "The devices stopped were not changed at Sigfox" in text
        shown = sorted(b["text"]["text"] for b in buttons(summary))
        assert shown == sorted(f"Show PAC {d}" for d in ids[:HELD + 1])


def test_a_running_card_of_several_devices_offers_to_stop_the_rest() -> None:
    running = blocks.JobView("J-0007", 7, "renew", ("5D0000", "5D0001"), "running", "U1",
                             stoppable=True)
    [stop] = buttons({"blocks": blocks.job_parent(running).blocks})
    assert (stop["action_id"], stop["value"], stop["text"]["text"]) == (
        blocks.CANCEL, "7", "Stop the rest")
    assert stop["confirm"]["title"]["text"] == "Stop this job?"
    for view in (blocks.JobView("J-0007", 7, "renew", ("5D0000",), "running", "U1"),
                 blocks.JobView("J-0007", 7, "renew", ("5D0000", "5D0001"), "stopped", "U1",
                                stoppable=True)):
        assert buttons({"blocks": blocks.job_parent(view).blocks}) == []


def test_a_running_card_offers_stop_the_rest_and_a_job_all_touched_refuses_it(
    make_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # A restart of several devices is one Sigfox bulk job: once submitted, all are touched.
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=3600.0)
    ids = off_contract_fleet(simulator, 3)
    with running_bot(simulator, tmp_path / "bot.db") as bot:
        bot.command(f"restart {' '.join(ids)}")
        [workflow] = bot.core.store.list_workflows()
        bot.core.tick()
        assert {s.state for s in bot.core.store.workflow_devices(workflow.id)} == {
            StepState.AWAITING_JOB}
        [card] = [m for m in bot.parents() if "restart" in m.get("text", "")]
        assert "Running" in json.dumps(card["blocks"])
        [stop] = buttons(card)
        assert (stop["action_id"], stop["text"]["text"]) == (blocks.CANCEL, "Stop the rest")

        bot.click(blocks.CANCEL, stop["value"], REQUESTER_ID, message_ts=card["ts"])

        assert any("cannot be cancelled: its first change was already sent" in t
                   for t in bot.ephemeral_texts(REQUESTER_ID))
        assert bot.core.store.get_workflow(workflow.id).state == WorkflowState.RUNNING
        assert [a for a in bot.core.store.audit_entries(workflow_id=workflow.id)
                if a.action == "stop"] == []
