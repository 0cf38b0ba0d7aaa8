"""The `/sigfox` slash command: acknowledged at once ("Working on it" for the slow ones), then
parsed and answered from the core in a lazy listener (`bot.handler.CommandHandler`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot.handler import CommandHandler, Reply
from bot.listeners.replies import deliver, first_delivery
from bot.listeners.views import ReasonForms
from commands import grammar as g

if TYPE_CHECKING:
    from bot.service import Services

SLASH_COMMAND = g.SLASH_COMMAND


def register(app: App, services: Services, handler: CommandHandler, forms: ReasonForms) -> None:
    listener = SlashCommand(services, handler, forms)
    app.command(SLASH_COMMAND)(ack=listener.ack_command, lazy=[listener.run_command])


class SlashCommand:
    def __init__(self, services: Services, handler: CommandHandler, forms: ReasonForms) -> None:
        self.services = services
        self.handler = handler
        self.forms = forms

    def ack_command(self, ack: Ack, command: dict[str, Any]) -> None:
        """A typing mistake is answered in the acknowledgement itself (at once, once); a fleet
        scan, which takes minutes on a large fleet, is acknowledged as started; every other
        command answers within a second or two, so nothing is said before its answer."""
        text = command.get("text") or ""
        parsed = self.handler.parse(text)
        if isinstance(parsed, g.CommandError):
            message = blocks.text_message(parsed.message)
            ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
        elif g.spec_of(parsed).slow:
            name = g.spec_of(parsed).name
            ack(response_type="ephemeral", text=f"Working on `{SLASH_COMMAND} {name}`…")
        else:
            ack()

    def run_command(self, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        if isinstance(self.handler.parse(command.get("text") or ""), g.CommandError):
            return  # the acknowledgement already said what was wrong
        if not first_delivery(self.services.core, f"slack.command:{command.get('trigger_id', '')}"):
            return
        actor = self.services.groups.actor(command["user_id"])
        prompt = self.handler.reason_prompt(command.get("text") or "", actor)
        if prompt:  # a large renewal or delete: the requester says why, in a form
            trouble = self.forms.open_request(command, client, prompt)
            if trouble:
                deliver(Reply(blocks.text_message(trouble)), client=client, respond=respond,
                        channel=command.get("channel_id", ""), user=command["user_id"])
            return
        reply = self.handler.handle(command.get("text") or "", actor,
                                    channel=command.get("channel_id", ""))
        deliver(reply, client=client, respond=respond, channel=command.get("channel_id", ""),
                user=command["user_id"])
