"""Delivery of DATA callbacks: real HTTP requests, like the Sigfox cloud makes after an uplink.

Runs in a daemon thread with a short timeout so an uplink never waits on a slow receiver;
failures are logged and recorded, and mark the callback `dead` as the backend does.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from sigfox.simulator.entities import Callback

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Delivery:
    callback_id: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


def substitute(template: str, variables: dict[str, str]) -> str:
    """Replace Sigfox's `{name}` variables; unknown braces stay as they are."""
    for name, value in variables.items():
        template = template.replace("{" + name + "}", value)
    return template


def plan(callback: Callback, variables: dict[str, str]) -> Delivery:
    headers = {k: substitute(v, variables) for k, v in callback.headers.items()}
    body = None
    if callback.http_method in ("POST", "PUT"):
        body = substitute(callback.body_template, variables)
        if callback.content_type:
            headers.setdefault("Content-Type", callback.content_type)
    return Delivery(callback.id, callback.http_method, substitute(callback.url, variables),
                    headers, body)


class Dispatcher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[dict[str, Any]] = []

    def send_all(self, callbacks: list[Callback], variables: dict[str, str]) -> None:
        for callback in callbacks:
            delivery = plan(callback, variables)
            threading.Thread(
                target=self._send, args=(callback, delivery), daemon=True,
                name=f"sigfox-callback-{callback.id}",
            ).start()

    def _send(self, callback: Callback, delivery: Delivery) -> None:
        record: dict[str, Any] = {"callback": delivery.callback_id, "url": delivery.url,
                                  "method": delivery.method}
        try:
            response = httpx.request(
                delivery.method, delivery.url, headers=delivery.headers,
                content=delivery.body, timeout=TIMEOUT_SECONDS,
            )
            record["status"] = response.status_code
            callback.dead = response.status_code >= 400
        except httpx.HTTPError as exc:
            log.warning("callback %s to %s failed: %s", delivery.callback_id, delivery.url, exc)
            record["error"] = str(exc)
            callback.dead = True
        with self._lock:
            self.deliveries.append(record)
