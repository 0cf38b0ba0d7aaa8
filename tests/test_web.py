"""HTTP mode end to end: a real Bolt app behind `create_web_app`, served by uvicorn on loopback,
receiving requests signed as Slack signs them, its real WebClient talking to the stand-in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from support.slack_signing import (
    CHANNEL_ID,
    USER_ID,
    app_home_opened_event,
    block_actions_body,
    signed_headers,
    slash_command_body,
)

from bot.slack_client import make_web_client
from bot.web import CALLBACK_SECRET_HEADER, create_web_app
from commands import metrics
from demo.slack_standin import BackgroundServer, SlackApiStandIn

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CALLBACK_SECRET = "sigfox-callback-secret-for-tests"
UPLINK = {"device": "1a2b3c", "time": 1700000000, "data": "0A0B0C", "seqNumber": 12}


@dataclass
class Served:
    url: str
    standin: SlackApiStandIn
    seen: list[tuple[str, str]] = field(default_factory=list)
    uplinks: list[dict[str, Any]] = field(default_factory=list)
    # The "slow" command holds its listener between these two events, so a test can act while it
    # is certainly inside (no sleeps, no timed assertions).
    inside_slow: threading.Event = field(default_factory=threading.Event)
    release_slow: threading.Event = field(default_factory=threading.Event)

    def post_signed(self, body: str, *, timestamp: int | None = None, **kw: Any) -> httpx.Response:
        headers = signed_headers(SIGNING_SECRET, body, timestamp=timestamp, **kw)
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=10)


def build_bolt_app(standin: SlackApiStandIn, served: Served) -> App:
    app = App(
        client=make_web_client(standin.token, standin.url),
        signing_secret=SIGNING_SECRET,
        process_before_response=True,
        request_verification_enabled=False,  # bot.slack_edge verifies in front of Bolt
    )

    @app.command("/sigfox")
    def sigfox(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        if command["text"] == "slow":
            served.inside_slow.set()
            served.release_slow.wait(timeout=10)
        ack(text=f"on it: {command['text']}")
        client.chat_postMessage(channel=command["channel_id"], text=f"status {command['text']}")
        served.seen.append(("command", command["text"]))

    @app.action("approve")
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        served.seen.append(("action", body["actions"][0]["value"]))
        respond(text=f"Approved by <@{body['user']['id']}>", replace_original=True)

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient) -> None:
        view = {
            "type": "home",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Fleet"}}],
        }
        client.views_publish(user_id=event["user"], view=view)

    return app


@pytest.fixture(scope="module")
def served_module() -> Iterator[Served]:
    with SlackApiStandIn() as standin:
        served = Served(url="", standin=standin)
        web = create_web_app(
            build_bolt_app(standin, served),
            signing_secret=SIGNING_SECRET,
            uplink_handler=served.uplinks.append,
            callback_secret=CALLBACK_SECRET,
            health=lambda: {"ok": True, "database": "ok"},
        )
        with BackgroundServer(web) as server:
            served.url = server.root
            yield served


@pytest.fixture
def served(served_module: Served) -> Served:
    # Servers live for the module (uvicorn takes ~0.2 s to stop); what they saw is per test.
    served_module.standin.reset()
    served_module.seen.clear()
    served_module.uplinks.clear()
    return served_module


def idle_bolt_app() -> App:
    """A Bolt app that never reaches a network: App(client=...) would call auth.test at once."""
    client = WebClient(token="xoxb-idle", base_url="http://127.0.0.1:9/api/")
    return App(client=client, signing_secret="unused", token_verification_enabled=False)


# --------------------------------------------------------------------------- Slack requests


def test_signed_slash_command_runs_the_handler_and_its_ack_is_returned(served: Served) -> None:
    response = served.post_signed(slash_command_body("status 1A2B3C"))
    assert response.status_code == 200
    # Bolt answers an ack carrying only text as text/plain, which Slack shows as ephemeral.
    assert response.text == "on it: status 1A2B3C"
    assert served.seen == [("command", "status 1A2B3C")]
    [posted] = served.standin.messages(CHANNEL_ID)
    assert posted["text"] == "status status 1A2B3C"


def test_listener_calls_are_counted_in_metrics_despite_bolts_per_request_client(
    served: Served,
) -> None:
    # Bolt hands listeners a fresh WebClient per request; the observing retry handler survives.
    labels = {"method": "chat.postMessage", "ok": "true"}
    name = "sigfox_bot_slack_api_calls_total"
    before = metrics.METRICS.value(name, labels) or 0.0
    served.post_signed(slash_command_body("status 1"))
    assert metrics.METRICS.value(name, labels) == before + 1


def test_signed_button_click_runs_the_action_handler_and_replaces_the_message(
    served: Served,
) -> None:
    standin = served.standin
    posted = WebClient(token=standin.token, base_url=standin.url).chat_postMessage(
        channel=CHANNEL_ID, text="Delete 1A2B3C?"
    )
    url = standin.response_url(CHANNEL_ID, USER_ID, message_ts=posted["ts"])
    body = block_actions_body("approve", "wf-42", message_ts=posted["ts"], response_url=url)
    response = served.post_signed(body)
    assert response.status_code == 200
    assert served.seen == [("action", "wf-42")]
    assert standin.message(CHANNEL_ID, posted["ts"])["text"] == f"Approved by <@{USER_ID}>"


def test_signed_event_is_handled(served: Served) -> None:
    body = json.dumps(app_home_opened_event(USER_ID))
    response = served.post_signed(body, content_type="application/json")
    assert response.status_code == 200
    assert served.standin.home_views[USER_ID]["blocks"][0]["text"]["text"] == "Fleet"


def test_bad_signature_is_refused_and_the_handler_never_runs(served: Served) -> None:
    body = slash_command_body("renew 1A2B3C")
    headers = signed_headers("not-the-signing-secret", body)
    response = httpx.post(f"{served.url}/slack/events", content=body, headers=headers)
    assert response.status_code == 401
    assert served.seen == []
    assert served.standin.calls_to("chat.postMessage") == []


def test_tampered_body_is_refused(served: Served) -> None:
    headers = signed_headers(SIGNING_SECRET, slash_command_body("status 1"))
    tampered = slash_command_body("renew 1")
    response = httpx.post(f"{served.url}/slack/events", content=tampered, headers=headers)
    assert response.status_code == 401
    assert served.seen == []


def test_signature_older_than_five_minutes_is_refused(served: Served) -> None:
    response = served.post_signed(slash_command_body("status 1"), timestamp=int(time.time()) - 301)
    assert response.status_code == 401
    assert served.seen == []


def test_missing_signature_headers_are_refused(served: Served) -> None:
    response = httpx.post(
        f"{served.url}/slack/events",
        content=slash_command_body("status 1"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401


def test_a_slow_listener_does_not_block_the_event_loop(served: Served) -> None:
    slow = threading.Thread(target=served.post_signed, args=(slash_command_body("slow"),))
    slow.start()
    assert served.inside_slow.wait(timeout=10)  # the slow command is now inside its listener
    assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
    assert slow.is_alive() and served.seen == []  # answered while the listener still held
    served.release_slow.set()
    slow.join(timeout=5)
    assert served.seen == [("command", "slow")]


# --------------------------------------------------------------------------- health and metrics


def test_healthz_reports_the_health_function(served: Served) -> None:
    response = httpx.get(f"{served.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "database": "ok"}


def test_healthz_is_503_when_unhealthy_or_the_probe_fails() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("database is locked")

    for health, status in ((lambda: {"ok": False, "database": "locked"}, 503), (broken, 503)):
        app = create_web_app(idle_bolt_app(), health=health)
        with BackgroundServer(app) as server:
            response = httpx.get(f"{server.root}/healthz")
        assert response.status_code == status
        assert response.json()["ok"] is False


def test_metrics_endpoint_serves_prometheus_text(served: Served) -> None:
    metrics.record_sigfox_call("GET", "/devices/1A2B3C", 429)
    response = httpx.get(f"{served.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'sigfox_bot_sigfox_api_rate_limited_total{endpoint="/devices/{id}"}' in response.text


# --------------------------------------------------------------------------- Sigfox uplinks


def post_uplink(served: Served, body: str | bytes, secret: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[CALLBACK_SECRET_HEADER] = secret
    return httpx.post(f"{served.url}/sigfox/uplink", content=body, headers=headers)


def test_uplink_with_the_secret_is_handed_over_normalised(served: Served) -> None:
    response = post_uplink(served, json.dumps({**UPLINK, "rssi": "-120.00"}), CALLBACK_SECRET)
    assert response.status_code == 204
    assert served.uplinks == [
        {
            "device": "1A2B3C",
            "time": 1700000000,
            "data": "0a0b0c",
            "seqNumber": 12,
            "rssi": "-120.00",
        }
    ]


def test_uplink_numbers_may_arrive_as_strings_from_the_callback_template(served: Served) -> None:
    body = json.dumps({**UPLINK, "time": "1700000000", "seqNumber": "7", "data": ""})
    assert post_uplink(served, body, CALLBACK_SECRET).status_code == 204
    assert served.uplinks[0]["seqNumber"] == 7 and served.uplinks[0]["data"] == ""


@pytest.mark.parametrize("secret", [None, "", "wrong", CALLBACK_SECRET + "x"])
def test_uplink_without_the_right_secret_is_refused(served: Served, secret: str | None) -> None:
    response = post_uplink(served, json.dumps(UPLINK), secret)
    assert response.status_code == 401
    assert served.uplinks == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "not valid JSON"),
        (b'{"device": "\x80"}', "not UTF-8"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"device": "1A2B3C"}), "missing field(s): time, data, seqNumber"),
        (json.dumps({**UPLINK, "device": "XYZ"}), "device"),
        (json.dumps({**UPLINK, "data": "abc"}), "data"),
        (json.dumps({**UPLINK, "data": "00" * 13}), "12 bytes"),
        (json.dumps({**UPLINK, "seqNumber": 4096}), "seqNumber"),
        (json.dumps({**UPLINK, "time": -1}), "time"),
    ],
)
def test_bad_uplink_body_is_400_with_a_clear_message(
    served: Served, body: str | bytes, fragment: str
) -> None:
    response = post_uplink(served, body, CALLBACK_SECRET)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert served.uplinks == []


def test_uplink_route_is_absent_without_a_callback_secret() -> None:
    app = create_web_app(idle_bolt_app())
    with BackgroundServer(app) as server:
        response = httpx.post(
            f"{server.root}/sigfox/uplink",
            content=json.dumps(UPLINK),
            headers={CALLBACK_SECRET_HEADER: ""},
        )
    assert response.status_code == 404
