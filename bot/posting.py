"""Writing to Slack for the notifier: paced per channel, failures logged (error code only),
never raised, so a chat outage never stops a job half-way."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.blocks import Message

log = logging.getLogger(__name__)

DEFAULT_POST_INTERVAL = 1.0  # seconds between two writes in one channel (Slack: about 1/s)


class ChannelPacer:
    """At most one write per `interval` seconds per channel; callers wait their turn."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait(self, channel: str) -> None:
        with self._lock:
            now = self._clock()
            at = max(now, self._next.get(channel, 0.0))
            self._next[channel] = at + self.interval
        if at > now:
            self._sleep(at - now)


class SlackPoster:
    """Posts, edits and links messages, each write waiting its channel's turn."""

    def __init__(self, client: WebClient, pacer: ChannelPacer) -> None:
        self.client = client
        self.pacer = pacer

    def post(self, channel: str, message: Message, *, thread: str = "",
              broadcast: bool = False) -> dict[str, Any] | None:
        self.pacer.wait(channel)
        try:
            answer = self.client.chat_postMessage(
                channel=channel, text=message.text, blocks=message.blocks,
                thread_ts=thread or None, unfurl_links=False,
                reply_broadcast=True if broadcast and thread else None)
        except (SlackApiError, SlackClientError) as error:
            log.warning("chat.postMessage to %s failed (%s)", channel, describe(error))
            return None
        return {"channel": answer["channel"], "ts": answer["ts"]}

    def update(self, channel: str, ts: str, message: Message) -> bool:
        self.pacer.wait(channel)
        try:
            self.client.chat_update(channel=channel, ts=ts, text=message.text,
                                    blocks=message.blocks)
        except (SlackApiError, SlackClientError) as error:
            log.warning("chat.update of %s in %s failed (%s)", ts, channel, describe(error))
            return False
        return True

    def permalink(self, channel: str, ts: str) -> str:
        try:
            return str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except (SlackApiError, SlackClientError, KeyError):
            return ""  # the note reads fine without a link


def describe(error: Exception) -> str:
    """A Slack failure in a log line: Slack's error code, never the payload."""
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    return type(error).__name__
