"""The `/sigfox` slash command: acknowledged at once ("Working on it" for the slow ones), then
parsed and answered from the core in work handed off to a worker (`bot.handler.CommandHandler`)."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot.handler import CommandHandler, Reply
from bot.listeners.handoff import handing_off
from bot.listeners.lanes import BUSY_TEXT, queued_text
from bot.listeners.replies import deliver, first_delivery
from bot.listeners.views import ReasonForms
from commands import grammar as g
from commands.read_progress import ReadProgress

if TYPE_CHECKING:
    from bot.service import Services

log = logging.getLogger(__name__)

SLASH_COMMAND = g.SLASH_COMMAND
# Commands that read Sigfox before answering: they wait in the read lane, not on a worker
# that a click may need.
READS = frozenset({"status", "renew", "delete", "transfer", "restart", "unsubscribe"})


def register(app: App, services: Services, handler: CommandHandler, forms: ReasonForms) -> None:
    listener = SlashCommand(services, handler, forms)
    # One listener that acknowledges and hands the work over itself (`handing_off`), not a Bolt
    # lazy listener: Bolt deep-copies the whole request to start one, in the thread that is
    # answering, which made the bot's dispatch cost 5 times the bare app's CPU.
    app.command(SLASH_COMMAND)(handing_off(app, listener.run_command,
                                           check=listener.ack_command))


class SlashCommand:
    def __init__(self, services: Services, handler: CommandHandler, forms: ReasonForms) -> None:
        self.services = services
        self.handler = handler
        self.forms = forms

    def ack_command(self, ack: Ack, command: dict[str, Any]) -> bool:
        """A typing mistake is answered in the acknowledgement itself (at once, once); a fleet
        scan, which takes minutes on a large fleet, is acknowledged as started; every other
        command answers within a second or two, so nothing is said before its answer. True when
        there is work (`run_command`), which then runs once the acks in flight are sent."""
        text = command.get("text") or ""
        parsed = self.handler.parse(text)
        if isinstance(parsed, g.CommandError):
            message = blocks.text_message(parsed.message)
            ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
            return False  # the acknowledgement said what was wrong: there is no work
        if g.spec_of(parsed).slow:
            name = g.spec_of(parsed).name
            ack(response_type="ephemeral", text=f"Working on `{SLASH_COMMAND} {name}`…")
        else:
            ack()
        return True

    def run_command(self, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        if not first_delivery(self.services.edge, self.services.core.clock,
                              f"slack.command:{command.get('trigger_id', '')}"):
            return
        actor = self.services.groups.actor(command["user_id"])
        prompt = self.handler.reason_prompt(command.get("text") or "", actor)
        if prompt:  # a large renewal or delete: the requester says why, in a form
            trouble = self.forms.open_request(command, client, prompt)
            if trouble:
                deliver(Reply(blocks.text_message(trouble)), client=client, respond=respond,
                        channel=command.get("channel_id", ""), user=command["user_id"])
            return
        channel, user = command.get("channel_id", ""), command["user_id"]

        def answer() -> None:
            progress = ReadProgress(partial(_show_progress, respond, []),
                                    every=self.services.config.timing.progress_interval
                                    .total_seconds())
            reply = self.handler.handle(command.get("text") or "", actor, channel=channel,
                                        on_read=progress)
            deliver(reply, client=client, respond=respond, channel=channel, user=user)

        parsed = self.handler.parse(command.get("text") or "")
        if isinstance(parsed, g.CommandError) or g.spec_of(parsed).name not in READS:
            answer()  # decisions, help, the bot's own records: on this worker, at once
            return
        ahead = self.services.read_lane.submit(answer)
        if ahead is None or ahead > 0:
            text = BUSY_TEXT if ahead is None else queued_text(
                ahead, self.services.read_lane.wait_estimate(ahead))
            deliver(Reply(blocks.text_message(text)), client=client, respond=respond,
                    channel=channel, user=user)


def _show_progress(respond: Respond, shown: list[str], text: str) -> None:
    """How far the reads are, privately: one message, replaced by each later line."""
    try:
        respond(text=text, response_type="ephemeral", replace_original=bool(shown))
        shown.append(text)
    except Exception as error:  # progress is a courtesy: the answer still comes
        log.warning("could not show the reads' progress (%s)", type(error).__name__)
