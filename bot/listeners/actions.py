"""Listeners of the job buttons: Approve, Reject, Show PAC, Cancel, Copy callbacks.

Every click is checked by the core against the policy at that moment, with the clicker's user
groups resolved now (`GroupResolver`); a refusal goes privately to the clicker, nothing changes.
Double clicks are two distinct clicks that the core's compare-and-set turns into one decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot.handler import Reply
from bot.listeners.app_home import publish_home
from bot.listeners.binding import MessageBinding
from bot.listeners.handoff import handing_off
from bot.listeners.replies import (
    action_value,
    deliver,
    from_home,
    send_secret_privately,
)
from bot.listeners.views import ReasonForms
from storage.records import job_label

if TYPE_CHECKING:
    from bot.service import Services
    from commands.outcome import Outcome
    from commands.policy import Actor

log = logging.getLogger(__name__)


def register(app: App, services: Services, forms: ReasonForms) -> None:
    buttons = JobButtons(services, forms)
    for action_id, work in ((blocks.APPROVE, buttons.approve), (blocks.REJECT, buttons.reject),
                            (blocks.SHOW_PAC, buttons.show_pac), (blocks.CANCEL, buttons.cancel),
                            (blocks.COPY_CALLBACKS, buttons.copy_callbacks),
                            (blocks.KEEP_WAITING, buttons.keep_waiting),
                            (blocks.STOP_WAITING, buttons.stop_waiting)):
        app.action(action_id)(handing_off(app, work))


class JobButtons:
    def __init__(self, services: Services, forms: ReasonForms) -> None:
        self.services = services
        self.forms = forms
        self.binding = MessageBinding(services.notifier.buttons)

    def approve(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        self._decide(body, client, respond, approve=True)

    def reject(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Reject asks why first: a form (modal) whose submission decides."""
        value = action_value(body)
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button is not an approval request.")
            return
        if self._approval_misplaced(body, client, respond, blocks.REJECT, int(value)):
            return
        refusal = self.forms.open_reject(body, client, int(value))
        if refusal:
            self._tell_clicker(body, client, respond, refusal)
            self._redraw_if_settled(int(value))

    def _decide(self, body: dict[str, Any], client: WebClient, respond: Respond, *,
                approve: bool) -> None:
        value = action_value(body)
        clicker = self.services.groups.actor(body["user"]["id"])
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button is not an approval request.")
            return
        approval_id = int(value)
        if self._approval_misplaced(body, client, respond, blocks.APPROVE if approve
                                    else blocks.REJECT, approval_id):
            return
        outcome = self.services.core.decide(approval_id, clicker, approve)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)
            self._redraw_if_settled(approval_id)
        elif from_home(body):
            publish_home(self.services, client, clicker, notice=outcome.message)

    def _approval_misplaced(self, body: dict[str, Any], client: WebClient, respond: Respond,
                            action_id: str, approval_id: int) -> bool:
        """Approve/Reject count on the request's own message, a reminder the bot sent by DM,
        or the clicker's Home tab (an unknown request is left to the core to answer)."""
        request = self.services.core.approval_request(approval_id)
        if request is None:
            return False
        return self._misplaced(body, client, respond, action_id, request.workflow_id,
                               "decide on the request's own message, on a reminder the bot "
                               "sent you, or from the bot's Home tab")

    def _misplaced(self, body: dict[str, Any], client: WebClient, respond: Respond,
                   action_id: str, workflow_id: int, where_instead: str) -> bool:
        """A job button clicked anywhere but where the bot put it: refused privately, nothing
        changed, the log says why (ids only)."""
        why = self.binding.misplaced(body, action_id, workflow_id)
        if not why:
            return False
        log.warning("%s click by %s refused: %s", action_id, _clicker_id(body), why)
        self._tell_clicker(body, client, respond, "This button does not belong to this message, "
                           f"so it did nothing: {where_instead}.")
        return True

    def _redraw_if_settled(self, approval_id: int) -> None:
        """An already decided or expired request still showing buttons: show the decision."""
        request = self.services.core.approval_request(approval_id)
        if request is not None and request.state != "pending":
            self.services.notifier.refresh_approval(approval_id)

    def show_pac(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(action_value(body))
        clicker = self.services.groups.actor(body["user"]["id"])
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no recorded PAC.")
            return
        workflow_id, device_id = parsed
        if self._misplaced(body, client, respond, blocks.SHOW_PAC, workflow_id,
                           f"use Show PAC on the summary of {job_label(workflow_id)} in its "
                           "thread"):
            return
        outcome = self.services.core.reveal_pac(workflow_id, device_id, clicker)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)
            return
        # Ephemeral, to the approver who asked; never logged, never in a channel message.
        text = (f"PAC of {device_id} recorded by {job_label(workflow_id)}: `{outcome.message}` "
                "(only you can see this message).")
        send_secret_privately(body, client, text)

    def cancel(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        value = action_value(body)
        clicker = self.services.groups.actor(body["user"]["id"])
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button names no job.")
            return
        label = job_label(int(value))
        if self._misplaced(body, client, respond, blocks.CANCEL, int(value),
                           f"cancel {label} from its own card, or with `/sigfox cancel {label}`"):
            return
        outcome = self.services.core.cancel(int(value), clicker)
        if not outcome.ok or outcome.details.get("pending"):  # refused, or decided later
            self._tell_clicker(body, client, respond, outcome.message)

    def copy_callbacks(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(action_value(body))
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no device of a job.")
            return
        if self._misplaced(body, client, respond, blocks.COPY_CALLBACKS, parsed[0],
                           f"use Copy callbacks on the summary of {job_label(parsed[0])}"):
            return
        clicker = self.services.groups.actor(body["user"]["id"])
        outcome = self.services.core.copy_callbacks(*parsed, clicker)
        # What was copied is told in the job's thread by the core; the clicker hears either way.
        self._tell_clicker(body, client, respond, outcome.message)

    def keep_waiting(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        decided = self._decide_release(body, client, respond, blocks.KEEP_WAITING,
                                       self.services.core.keep_waiting_for_release)
        if decided is not None:
            self._tell_clicker(body, client, respond, decided[1].message)

    def stop_waiting(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        decided = self._decide_release(body, client, respond, blocks.STOP_WAITING,
                                       self.services.core.stop_waiting_for_release)
        if decided is None:
            return
        (workflow_id, device_id), outcome = decided
        pac = outcome.details.get("pac")
        if not outcome.ok or not pac:
            self._tell_clicker(body, client, respond, outcome.message)
            return
        # Ephemeral, to the approver who stopped the wait; never in a channel message.
        send_secret_privately(body, client, f"{outcome.message} PAC of {device_id} "
                              f"({job_label(workflow_id)}): `{pac}` (only you can see this).")

    def _decide_release(self, body: dict[str, Any], client: WebClient, respond: Respond,
                        action_id: str, decide: Callable[[int, str, Actor], Outcome]
                        ) -> tuple[tuple[int, str], Outcome] | None:
        """A Keep/Stop waiting click checked (its value, its message) then decided by the core;
        None when the clicker has already been told why nothing was decided."""
        parsed = blocks.parse_pac_value(action_value(body))
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no device of a job.")
            return None
        if self._release_misplaced(body, client, respond, action_id, parsed[0]):
            return None
        clicker = self.services.groups.actor(body["user"]["id"])
        return parsed, decide(*parsed, clicker)

    def _release_misplaced(self, body: dict[str, Any], client: WebClient, respond: Respond,
                           action_id: str, workflow_id: int) -> bool:
        return self._misplaced(body, client, respond, action_id, workflow_id,
                               "decide on the release-wait message in the thread of "
                               f"{job_label(workflow_id)}")

    def _tell_clicker(self, body: dict[str, Any], client: WebClient, respond: Respond,
                      text: str) -> None:
        """A private answer to whoever clicked: in the conversation, or on their Home tab."""
        if from_home(body):
            clicker = self.services.groups.actor(body["user"]["id"])
            publish_home(self.services, client, clicker, notice=text)
            return
        container = body.get("container") or {}
        deliver(Reply(blocks.text_message(text)), client=client, respond=respond,
                channel=container.get("channel_id") or (body.get("channel") or {}).get("id", ""),
                user=body["user"]["id"], thread=container.get("thread_ts", ""))


def _clicker_id(body: dict[str, Any]) -> str:
    user = body.get("user")
    return str(user.get("id") or "?") if isinstance(user, dict) else "?"
