"""Listeners of Slack events: `app_home_opened` draws the person's Home tab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.listeners.app_home import publish_home
from bot.listeners.handoff import handing_off
from bot.listeners.replies import first_delivery

if TYPE_CHECKING:
    from bot.service import Services


def register(app: App, services: Services) -> None:
    listener = Events(services)
    app.event("app_home_opened")(handing_off(app, listener.home_opened))


class Events:
    def __init__(self, services: Services) -> None:
        self.services = services

    def home_opened(self, body: dict[str, Any], event: dict[str, Any], client: WebClient
                    ) -> None:
        if event.get("tab", "home") != "home":
            return
        if not first_delivery(self.services.edge, self.services.core.clock,
                              f"slack.event:{body.get('event_id', '')}"):
            return  # Slack's retry of a delivery already handled
        publish_home(self.services, client, self.services.groups.actor(event["user"]))
