"""Listeners of the alert digests' buttons: Renew, Snooze (and its form), Details, the ⋯ menu.

Buttons carry only a device id and a condition; every click is checked against the policy
again, and a refusal is answered to the clicker alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.alerts import (
    ALERT_DETAILS,
    ALERT_MENU,
    ALERT_RENEW,
    ALERT_SNOOZE,
    SNOOZES,
    details_text,
)
from bot.listeners.handoff import handing_off
from commands.alerting import AlertService, Condition
from commands.approvals import clean_reason
from commands.planning import Request
from commands.policy import Actor, Operation
from commands.ports import Target
from commands.states import Kind
from commands.workflows import Core

log = logging.getLogger(__name__)


class AlertServices(Protocol):
    """What the alert buttons need: the core, the alerts, and a user's actor (groups resolved)."""

    core: Core
    alerts: AlertService

    def actor_for(self, user_id: str) -> Actor: ...


def register(app: App, services: AlertServices) -> None:
    """The `alert_*` buttons and menus of the alert digests (bot/alerts.py draws them)."""
    handlers = _Handlers(services)
    # Acknowledge at once, work handed off: a renewal's pre-flight reads Sigfox and could
    # outlast Slack's 3 s acknowledgement window.
    for action_id, work in ((ALERT_RENEW, handlers.renew), (ALERT_SNOOZE, handlers.snooze),
                            (ALERT_DETAILS, handlers.details), (ALERT_MENU, handlers.menu)):
        app.action(action_id)(handing_off(app, work))
    # A snooze asks how long and why, in a form; its submission is checked in the ack.
    app.view(blocks.SNOOZE_MODAL)(handing_off(app, handlers.snooze_form,
                                              check=handlers.check_snooze))


class _Handlers:
    def __init__(self, services: AlertServices) -> None:
        self.services = services
        self.actor_for = services.actor_for

    def renew(self, body: dict[str, Any], client: WebClient) -> None:
        device_id, _ = _split(_action(body)["value"])
        self._renew(body, client, device_id)

    def snooze(self, body: dict[str, Any], client: WebClient) -> None:
        key, device_id, condition = _action(body)["selected_option"]["value"].split("|")
        self._snooze(body, client, key, device_id, condition)

    def details(self, body: dict[str, Any], client: WebClient) -> None:
        device_id, _ = _split(_action(body)["value"])
        self._details(body, client, device_id)

    def menu(self, body: dict[str, Any], client: WebClient) -> None:
        verb, device_id, condition = _action(body)["selected_option"]["value"].split("|")
        if verb == "renew":
            self._renew(body, client, device_id)
        elif verb.startswith("snooze:"):
            self._snooze(body, client, verb.split(":", 1)[1], device_id, condition)
        else:
            self._details(body, client, device_id)

    # -- the work, each behind its own permission check ------------------------------------

    def _allowed(self, body: dict[str, Any], client: WebClient, operation: Operation
                 ) -> Actor | None:
        actor = self.actor_for(body["user"]["id"])
        decision = self.services.core.policy.can_request(actor, operation)
        if decision.allowed:
            return actor
        _private(client, body, decision.reason)
        return None

    def _renew(self, body: dict[str, Any], client: WebClient, device_id: str) -> None:
        actor = self._allowed(body, client, Operation.RENEW)
        if actor is None:
            return
        channel, thread = _where(body)
        outcome = self.services.core.request(Request(
            kind=Kind.RENEW, actor=actor, device_ids=(device_id,),
            target=Target(channel=channel, thread=thread),
        ))
        _private(client, body, outcome.message)

    def _snooze(self, body: dict[str, Any], client: WebClient, key: str, device_id: str,
                condition: str) -> None:
        """Open the snooze form, the chosen duration preselected; the submission snoozes."""
        actor = self._allowed(body, client, Operation.SNOOZE)
        if actor is None or key not in SNOOZES:
            return
        channel, thread = _where(body)
        metadata = json.dumps({"device": device_id, "condition": condition, "channel": channel,
                               "thread": thread})
        choices = [(k, label) for k, (label, _) in SNOOZES.items()]
        modal = blocks.snooze_modal(device_id, choices, key, metadata)
        try:
            client.views_open(trigger_id=body.get("trigger_id", ""), view=modal)
        except SlackApiError as error:
            log.warning("views.open failed: %s", error.response.get("error"))
            _private(client, body, "Slack did not open the snooze form (it allows 3 seconds "
                                   "after a click): choose again.")

    def check_snooze(self, ack: Callable[..., Any], view: dict[str, Any]) -> bool:
        """A duration and a reason, or the form says which is missing; True when accepted."""
        key, reason = _snooze_answers(view)
        if key not in SNOOZES:
            ack(response_action="errors",
                errors={blocks.DURATION_BLOCK: "Choose how long to snooze."})
            return False
        if len(reason) < 3:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: (
                "Say why, in a few words: the team reads it with the snooze.")})
            return False
        ack()
        return True

    def snooze_form(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        """A snooze form accepted by `check_snooze`: snooze, and say so in the alert's thread."""
        key, reason = _snooze_answers(view)
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            return
        actor = self.actor_for(body["user"]["id"])
        outcome = self.services.alerts.snooze(
            str(meta.get("device", "")), actor=actor, duration=SNOOZES[key][1],
            condition=Condition(meta["condition"]) if meta.get("condition") else None,
            reason=reason,
        )
        channel, thread = str(meta.get("channel", "")), str(meta.get("thread", ""))
        if outcome.ok:
            _post(client, channel, thread, f":zzz: {outcome.message}")
            return
        _private_at(client, channel, thread, body["user"]["id"], outcome.message)

    def _details(self, body: dict[str, Any], client: WebClient, device_id: str) -> None:
        if self._allowed(body, client, Operation.ALERTS) is None:
            return
        report = self.services.alerts.device_report(device_id)
        _private(client, body, details_text(report, self.services.alerts.settings.tz))


def _snooze_answers(view: dict[str, Any]) -> tuple[str, str]:
    """The duration chosen and the reason typed in the snooze form."""
    values = (view.get("state") or {}).get("values") or {}
    chosen = (values.get(blocks.DURATION_BLOCK) or {}).get(blocks.DURATION_INPUT) or {}
    key = str((chosen.get("selected_option") or {}).get("value") or "")
    typed = (values.get(blocks.REASON_BLOCK) or {}).get(blocks.REASON_INPUT) or {}
    return key, clean_reason(str(typed.get("value") or ""))


def _action(body: dict[str, Any]) -> dict[str, Any]:
    return body["actions"][0]


def _split(value: str) -> tuple[str, str]:
    device_id, _, condition = value.partition("|")
    return device_id, condition


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """Channel and thread of the clicked message (its thread, or the message itself)."""
    channel = (body.get("channel") or {}).get("id", "")
    message = body.get("message") or body.get("container") or {}
    thread = message.get("thread_ts") or message.get("ts") or message.get("message_ts") or ""
    return channel, thread


def _private(client: WebClient, body: dict[str, Any], text: str) -> None:
    """Answer the clicker alone (in a channel: ephemeral; elsewhere: a direct message)."""
    channel, thread = _where(body)
    _private_at(client, channel, thread, body["user"]["id"], text)


def _private_at(client: WebClient, channel: str, thread: str, user: str, text: str) -> None:
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text,
                                      thread_ts=thread or None)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError as error:
        log.warning("could not answer %s privately: %s", user, error.response.get("error"))


def _post(client: WebClient, channel: str, thread: str, text: str) -> None:
    try:
        client.chat_postMessage(channel=channel, thread_ts=thread or None, text=text)
    except SlackApiError as error:
        log.warning("could not post in %s: %s", channel, error.response.get("error"))
