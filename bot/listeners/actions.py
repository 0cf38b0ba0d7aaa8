"""Listeners of the job buttons: Approve, Reject, Show PAC, Cancel, Copy callbacks.

Every click is checked by the core against the policy at that moment, with the clicker's user
groups resolved now (`GroupResolver`); a refusal goes privately to the clicker, nothing changes.
Double clicks are two distinct clicks that the core's compare-and-set turns into one decision.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot.handler import Reply
from bot.listeners.app_home import publish_home
from bot.listeners.binding import container_of, off_its_channel, off_its_message
from bot.listeners.replies import (
    acknowledge,
    action_value,
    deliver,
    from_home,
    send_secret_privately,
)
from bot.listeners.views import ReasonForms
from storage.records import job_label

if TYPE_CHECKING:
    from bot.service import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services, forms: ReasonForms) -> None:
    buttons = JobButtons(services, forms)
    for action_id, work in ((blocks.APPROVE, buttons.approve), (blocks.REJECT, buttons.reject),
                            (blocks.SHOW_PAC, buttons.show_pac), (blocks.CANCEL, buttons.cancel),
                            (blocks.COPY_CALLBACKS, buttons.copy_callbacks),
                            (blocks.KEEP_WAITING, buttons.keep_waiting),
                            (blocks.STOP_WAITING, buttons.stop_waiting)):
        app.action(action_id)(ack=acknowledge, lazy=[work])


class JobButtons:
    def __init__(self, services: Services, forms: ReasonForms) -> None:
        self.services = services
        self.forms = forms

    def approve(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        self._decide(body, client, respond, approve=True)

    def reject(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Reject asks why first: a form (modal) whose submission decides."""
        value = action_value(body)
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button is not an approval request.")
            return
        if self._not_on_its_message(body, client, respond, int(value)):
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
        if self._not_on_its_message(body, client, respond, approval_id):
            return
        outcome = self.services.core.decide(approval_id, clicker, approve)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)
            self._redraw_if_settled(approval_id)
        elif from_home(body):
            publish_home(self.services, client, clicker, notice=outcome.message)

    def _not_on_its_message(self, body: dict[str, Any], client: WebClient, respond: Respond,
                            approval_id: int) -> bool:
        """A click on an approval's button must come from that approval's own message (or a
        reminder in a DM, or App Home): refused privately otherwise, nothing decided."""
        approval = self.services.core.store.get_approval(approval_id)
        if approval is None or not off_its_message(body, approval.message_ref or {}):
            return False
        log.warning("click on approval %s outside its message (%s) refused", approval_id,
                    container_of(body))
        self._tell_clicker(body, client, respond, "This button does not belong to this message: "
                           "decide on the request's own message, or from the bot's Home tab.")
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
        workflow = self.services.core.store.get_workflow(int(value))
        if workflow is not None and off_its_channel(body, workflow.channel):
            log.warning("cancel of %s clicked outside its channel refused", workflow.label)
            self._tell_clicker(body, client, respond, "This button does not belong to this "
                               f"channel: cancel {workflow.label} from its own thread, or with "
                               f"`/sigfox cancel {workflow.label}`.")
            return
        outcome = self.services.core.cancel(int(value), clicker)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)

    def copy_callbacks(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(action_value(body))
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no device of a job.")
            return
        clicker = self.services.groups.actor(body["user"]["id"])
        outcome = self.services.core.copy_callbacks(*parsed, clicker)
        # What was copied is told in the job's thread by the core; the clicker hears either way.
        self._tell_clicker(body, client, respond, outcome.message)

    def keep_waiting(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(action_value(body))
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no device of a job.")
            return
        clicker = self.services.groups.actor(body["user"]["id"])
        outcome = self.services.core.keep_waiting_for_release(*parsed, clicker)
        self._tell_clicker(body, client, respond, outcome.message)

    def stop_waiting(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(action_value(body))
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no device of a job.")
            return
        clicker = self.services.groups.actor(body["user"]["id"])
        outcome = self.services.core.stop_waiting_for_release(*parsed, clicker)
        pac = outcome.details.get("pac")
        if not outcome.ok or not pac:
            self._tell_clicker(body, client, respond, outcome.message)
            return
        # Ephemeral, to the approver who stopped the wait; never in a channel message.
        workflow_id, device_id = parsed
        send_secret_privately(body, client, f"{outcome.message} PAC of {device_id} "
                              f"({job_label(workflow_id)}): `{pac}` (only you can see this).")

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
