"""How listeners answer people, and the few helpers every listener shares.

- answers for one person go privately (response_url, ephemeral); what concerns the team goes to
  the channel or the job's thread (the notifier);
- a delivery Slack retries (`X-Slack-Retry-Num`, same `event_id`) or a replayed command (same
  `trigger_id`) runs once: `first_delivery`;
- the recorded PAC only ever travels through `send_secret_privately`.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import BoltRequest, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot import blocks
from bot.blocks import Message
from bot.handler import Reply
from bot.posting import describe
from commands.logs import failure_summary
from commands.ports import Clock
from storage.edge import EdgeRecords

log = logging.getLogger(__name__)
# For calls carrying a PAC (slack_sdk logs request bodies at DEBUG): a logger outside the
# logging tree, so no handler sees it and no dictConfig (uvicorn calls one) re-enables it.
_SILENT = logging.Logger("bot.silent", level=logging.CRITICAL + 1)
_SILENT.propagate = False


def log_error(error: Exception, request: BoltRequest) -> None:
    # The body (and so the error's message) may hold what the request carried: log the
    # error's type and where only, never the payload.
    log.error("listener failed: %s", failure_summary(error))


def first_delivery(edge: EdgeRecords, clock: Clock, key: str) -> bool:
    """False when Slack delivers again what was handled (same trigger or event id)."""
    if key.endswith(":"):
        return True  # nothing to recognise a replay by
    return edge.claim_idempotency_key(key, clock.now())


def deliver(reply: Reply, *, client: WebClient, respond: Respond | None, channel: str,
            user: str, thread: str = "") -> None:
    """Send a reply: to the channel when public, else privately to `user`. Never raises."""
    message = reply.message
    if reply.attachment is not None and _upload(client, channel, reply, thread):
        return
    try:
        if reply.public and _post(client, channel, message, thread):
            return
        if respond is not None and _respond(respond, message, public=reply.public):
            return
        client.chat_postEphemeral(channel=channel, user=user, text=message.text,
                                  blocks=message.blocks, thread_ts=thread or None)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not answer %s in %s (%s)", user, channel, describe(error))


def _upload(client: WebClient, channel: str, reply: Reply, thread: str) -> bool:
    """The file with the answer as its comment; False (answer without it) when refused."""
    attachment = reply.attachment
    assert attachment is not None
    try:
        client.files_upload_v2(channel=channel, file=str(attachment.path),
                               filename=attachment.name, title=attachment.title,
                               initial_comment=reply.message.text, thread_ts=thread or None)
        return True
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not post %s in %s (%s)", attachment.name, channel, describe(error))
        return False
    finally:
        attachment.path.unlink(missing_ok=True)


def _post(client: WebClient, channel: str, message: Message, thread: str) -> bool:
    try:
        client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks,
                                thread_ts=thread or None)
    except (SlackApiError, SlackClientError) as error:
        # Not in that channel (a DM, a private channel): the response URL still works there.
        log.info("chat.postMessage to %s failed (%s); answering through the response URL",
                 channel, describe(error))
        return False
    return True


def _respond(respond: Respond, message: Message, *, public: bool) -> bool:
    if respond.response_url is None:
        return False
    try:
        respond(text=message.text, blocks=message.blocks, replace_original=False,
                response_type="in_channel" if public else "ephemeral")
    except Exception as error:  # response URLs expire (30 min, 5 uses): fall back
        log.info("response_url failed (%s)", type(error).__name__)
        return False
    return True


def send_secret_privately(body: dict[str, Any], client: WebClient, text: str) -> None:
    """An ephemeral message whose text must appear in no log, not even slack_sdk's DEBUG lines
    (they print request bodies): sent through clients given a disabled logger."""
    message = blocks.text_message(text)
    container = body.get("container") or {}
    url = body.get("response_url")
    try:
        if url:
            WebhookClient(url, logger=_SILENT, timeout=10).send(
                text=message.text, blocks=message.blocks, response_type="ephemeral",
                replace_original=False)
            return
        quiet = WebClient(token=client.token, base_url=client.base_url, logger=_SILENT,
                          retry_handlers=list(client.retry_handlers))
        quiet.chat_postEphemeral(channel=container.get("channel_id", ""),
                                 user=body["user"]["id"], text=message.text,
                                 blocks=message.blocks,
                                 thread_ts=container.get("thread_ts") or None)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not send a private answer (%s)", describe(error))


def action_value(body: dict[str, Any]) -> str:
    found = body.get("actions") or [{}]
    return str(found[0].get("value") or "")


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view"
