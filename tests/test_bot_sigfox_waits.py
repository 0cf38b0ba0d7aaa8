"""In Slack: a job waiting on Sigfox says so on its card and in its thread, with the time."""

from __future__ import annotations

from datetime import UTC, datetime

from support.bot import CHANNEL_ID, BotHarness
from test_bot_flows import request_and_approve

from commands.states import StepState


def test_a_job_throttled_by_sigfox_shows_until_when_on_its_card(bot: BotHarness) -> None:
    device = bot.fleet.off_contract
    bot.simulator.fault(f"/v2/devices/{device}", method="DELETE", status=429, count=1000)
    workflow_id, parent, _ = request_and_approve(bot, f"renew {device} by delete")
    bot.core.tick()
    bot.advance(600)  # still throttled ten minutes on: the job is running, its card says why
    bot.core.tick()

    [step] = bot.core.store.workflow_devices(workflow_id)
    assert step.state == StepState.DELETING and step.next_run > bot.clock.now() - 1
    until = datetime.fromtimestamp(step.next_run, tz=UTC).strftime("%H:%M")
    line = f"Waiting for Sigfox's rate limit until {until} UTC."
    assert any(line in text for text in bot.thread_texts(parent["ts"])), \
        bot.thread_texts(parent["ts"])
    card = bot.standin.message(CHANNEL_ID, parent["ts"])
    assert line in str(card.get("blocks")), card  # the card's latest line, not only the thread
