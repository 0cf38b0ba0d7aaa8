"""A `SigfoxClient` without a backend: its HTTP answered by a handler (httpx.MockTransport),
its clock fake and its sleeps instant, for the client's own mechanics (pacing, retries, errors)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from sigfox.client import SigfoxClient

BASE = "https://api.example.test/v2"
PASSWORD = "s3cr3t-password"
PAC = "0123456789ABCDEF"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock whose sleep moves it forward instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(handler: Handler, fake: FakeTime | None = None, **kwargs: object) -> SigfoxClient:
    fake = fake or FakeTime()
    calls: list[tuple[str, str, int | None]] = kwargs.pop("calls", [])  # type: ignore[assignment]
    options: dict[str, object] = {
        "sleep": fake.sleep,
        "clock": fake.clock,
        "transport": httpx.MockTransport(handler),
        "on_call": lambda m, e, s: calls.append((m, e, s)),
    }
    options.update(kwargs)
    return SigfoxClient(BASE, "api-login", PASSWORD, **options)  # type: ignore[arg-type]


def answer(status: int, body: object = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    return handler


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


# A device as the list endpoint answers it.
DEVICE = {"id": "1A2B", "name": "d", "pac": PAC, "state": 0, "comState": 1, "creationTime": 1}
