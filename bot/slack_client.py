"""The Slack Web API client the bot uses: retries Slack's 429s, counts every call.

Two slack_sdk facts shape this module:

- `WebClient` does not retry a 429 unless a `RateLimitErrorRetryHandler` is installed; that
  handler sleeps for `Retry-After` (plus up to one second of jitter) before the next attempt.
- Bolt does not use the client it is given for listeners: it builds a fresh plain `WebClient` per
  request from its base_url, headers and a copy of its `retry_handlers` list. A `WebClient`
  subclass or a wrapped `api_call` would therefore miss every call made through the `client`
  and `say` of a listener. The retry handlers do survive that copy, and slack_sdk consults them
  after *every* HTTP answer (200s included), so the metrics hook is a retry handler that only
  observes and never asks for a retry.
"""

from __future__ import annotations

import json
import os
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from commands import metrics

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class SlackCallObserver(RetryHandler):
    """Records each HTTP attempt to a Web API method (a retried 429 counts as an attempt)."""

    def __init__(self, sink: metrics.Metrics | None = None) -> None:
        super().__init__(max_retry_count=0)
        self._sink = sink

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        ok, code = _outcome(response, error)
        (self._sink or metrics.METRICS).record_slack_call(_method_of(request.url), ok, code)
        return False


def _method_of(url: str) -> str:
    """`https://slack.com/api/chat.postMessage?x=1` -> `chat.postMessage`."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _outcome(response: HttpResponse | None, error: Exception | None) -> tuple[bool, str | None]:
    if response is None:
        return False, type(error).__name__ if error is not None else "no_response"
    if response.status_code == 429:
        return False, "ratelimited"  # the error code Slack puts in a 429's body
    body = _body_of(response)
    if response.status_code == 200 and body.get("ok") is True:
        return True, None
    return False, str(body.get("error") or f"http_{response.status_code}")


def _body_of(response: HttpResponse) -> dict[str, Any]:
    # slack_sdk parses the body of 200 answers only; an HTTP error keeps its raw bytes.
    if isinstance(response.body, dict):
        return response.body
    try:
        parsed = json.loads(response.data or b"")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def slack_api_url(base_url: str | None = None) -> str:
    """The Web API root: explicit, else `SLACK_API_URL`, else Slack's; always ending in "/"."""
    url = base_url or os.environ.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
    return url if url.endswith("/") else url + "/"


def make_web_client(
    token: str,
    base_url: str | None = None,
    *,
    max_rate_limit_retries: int = 3,
    max_connection_retries: int = 2,
    timeout: int = 30,
    sink: metrics.Metrics | None = None,
) -> WebClient:
    """A `WebClient` that honours Retry-After, retries dropped connections and feeds metrics."""
    handlers: list[RetryHandler] = [
        SlackCallObserver(sink),  # first: the observer must see every answer before a retry
        RateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries),
        ConnectionErrorRetryHandler(max_retry_count=max_connection_retries),
    ]
    return WebClient(
        token=token, base_url=slack_api_url(base_url), timeout=timeout, retry_handlers=handlers
    )
