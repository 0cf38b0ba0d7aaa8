"""Reasons asked in modals: Reject says why, a large renewal or delete says why it is asked.

A modal opens from the `trigger_id` of the click or command that asks for it (`views.open`,
within Slack's 3 seconds: the work handed off by the acknowledgement runs within the ack gate's
`max_hold` of it, bot.ack_gate). Its submission (`view_submission`) is checked in the
acknowledgement itself, so a reason that is missing, or a decision the person may no longer
take, is shown in the modal (`response_action: errors`) and changes nothing; only a valid one
closes the modal and is handed off to be carried out (`bot.listeners.handoff`). What the
modal needs to remember (which request, which channel, the command typed) travels in its
`private_metadata`, or in the store when it is too long.
"""

from __future__ import annotations

import json
import logging
import secrets
from functools import partial
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.groups import GroupResolver
from bot.handler import CommandHandler, Reply
from bot.listeners.handoff import handing_off
from commands.approvals import clean_reason
from commands.read_progress import ReadProgress
from commands.workflows import Core
from storage.edge import EdgeRecords

log = logging.getLogger(__name__)

MIN_REASON = 3
PENDING_PREFIX = "slack.pending-request."  # a long command waiting for its reason


class ReasonForms:
    """Opens the reason modals and handles their submissions."""

    def __init__(self, *, core: Core, edge: EdgeRecords, handler: CommandHandler,
                 groups: GroupResolver) -> None:
        self.core = core
        self.edge = edge
        self.handler = handler
        self.groups = groups

    def register(self, app: App) -> None:
        app.view(blocks.REJECT_MODAL)(handing_off(app, self.reject, check=self.check_reject))
        app.view(blocks.REQUEST_REASON_MODAL)(handing_off(app, self.request,
                                                          check=self.check_request))

    # -- Reject ------------------------------------------------------------------------------

    def open_reject(self, body: dict[str, Any], client: WebClient, approval_id: int) -> str:
        """Open the Reject form for the clicker; "" when opened, else why not (to tell them)."""
        clicker = self.groups.actor(body["user"]["id"])
        refusal = self.core.may_decide(approval_id, clicker)
        if refusal:
            return refusal
        request = self.core.approval_request(approval_id)
        if request is None:
            return f"There is no approval request {approval_id}."
        view = blocks.approval_view(request)
        where = _where(body)
        metadata = json.dumps({"approval": approval_id, **where})
        return self._open(client, body.get("trigger_id", ""), blocks.reject_modal(view, metadata))

    def check_reject(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> bool:
        """A reason, from someone who may still decide, or the form says why not; True when
        accepted (the rejection is then handed off)."""
        meta = _metadata(view)
        reason = _reason(view)
        if len(reason) < MIN_REASON:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: (
                "Say why you reject it, in a few words: the requester and the team read it.")})
            return False
        refusal = self.core.may_decide(int(meta.get("approval", 0)),
                                       self.groups.actor(body["user"]["id"]))
        if refusal:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: refusal})
            return False
        ack()
        return True

    def reject(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        meta = _metadata(view)
        user = body["user"]["id"]
        if self.core.may_decide(int(meta.get("approval", 0)), self.groups.actor(user)):
            return  # no longer theirs to decide since the form was checked
        outcome = self.core.decide(int(meta.get("approval", 0)), self.groups.actor(user),
                                   approve=False, reason=_reason(view))
        if not outcome.ok:  # someone decided between the check and now
            _tell(client, meta, user, outcome.message)

    # -- the reason of a large request ------------------------------------------------------

    def open_request(self, command: dict[str, Any], client: WebClient, prompt: str) -> str:
        """Ask the requester why, before a large renewal or delete is requested."""
        text = command.get("text") or ""
        where = {"channel": command.get("channel_id", ""), "thread": ""}
        metadata = json.dumps({"text": text, **where})
        if len(metadata) > blocks.MAX_METADATA:  # thousands of ids: kept aside
            key = secrets.token_hex(8)
            self.edge.set_value(PENDING_PREFIX + key, text)
            metadata = json.dumps({"key": key, **where})
        modal = blocks.request_reason_modal(prompt, metadata)
        return self._open(client, command.get("trigger_id", ""), modal)

    def check_request(self, ack: Ack, view: dict[str, Any]) -> bool:
        """A reason, or the form asks for one; True when accepted."""
        if len(_reason(view)) < MIN_REASON:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: (
                "Say why this job is needed, in a few words: approvers decide on it.")})
            return False
        ack()
        return True

    def request(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        meta = _metadata(view)
        text = meta.get("text")
        if text is None:
            text = self.edge.get_value(PENDING_PREFIX + str(meta.get("key", ""))) or ""
        user = body["user"]["id"]
        # A private line can't be replaced after a form (no response URL): at most one.
        progress = ReadProgress(partial(_tell, client, meta, user), most=1,
                                every=self.core.config.timing.progress_interval.total_seconds())
        reply = self.handler.handle(str(text), self.groups.actor(user),
                                    channel=str(meta.get("channel", "")), reason=_reason(view),
                                    on_read=progress)
        _tell(client, meta, user, reply.text, reply)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _open(client: WebClient, trigger_id: str, view: dict[str, Any]) -> str:
        try:
            client.views_open(trigger_id=trigger_id, view=view)
        except (SlackApiError, SlackClientError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else None
            log.warning("views.open failed (%s)", code or type(error).__name__)
            return ("Slack did not open the form (it allows 3 seconds after a click): click "
                    "again.")
        return ""


def _where(body: dict[str, Any]) -> dict[str, str]:
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id", "")
    return {"channel": channel, "thread": container.get("thread_ts", "")}


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _reason(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    entry = (values.get(blocks.REASON_BLOCK) or {}).get(blocks.REASON_INPUT) or {}
    return clean_reason(str(entry.get("value") or ""))


def _tell(client: WebClient, meta: dict[str, Any], user: str, text: str,
          reply: Reply | None = None) -> None:
    """A private answer after a form: in the channel it came from, else by direct message."""
    message = reply.message if reply is not None else blocks.text_message(text)
    channel = str(meta.get("channel") or "")
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=message.text,
                                      blocks=message.blocks,
                                      thread_ts=meta.get("thread") or None)
            return
        client.chat_postMessage(channel=user, text=message.text, blocks=message.blocks)
    except (SlackApiError, SlackClientError) as error:
        code = error.response.get("error") if isinstance(error, SlackApiError) else None
        log.warning("could not answer %s after a form (%s)", user, code or type(error).__name__)
