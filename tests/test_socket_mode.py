"""Socket Mode, the way `sigfox-bot serve` runs by default: the real services connected by Bolt's
SocketModeHandler (slack_sdk's built-in WebSocket client) to the Slack stand-in's Socket Mode
end, envelopes pushed as Slack sends them, acknowledgements read off the wire."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import websockets.exceptions
import websockets.sync.client
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from support.core import APPROVER, POLICY_TOML, REQUESTER, Fleet, build_fleet, service_env
from support.slack_signing import (
    API_APP_ID,
    CHANNEL_ID,
    app_home_opened_event,
    block_actions_payload,
    slash_command_fields,
    view_submission_payload,
)

from bot import blocks
from bot.ack_gate import gate_of
from bot.posting import ChannelPacer
from bot.service import Services, build_services, connect_socket_mode
from commands.ports import ManualClock
from commands.states import WorkflowState
from demo.slack_standin import SlackApiStandIn
from sigfox.simulator import SimulatorServer

T = TypeVar("T")
# Slack shows the user an error when a command or a click is not acknowledged within 3 s; how
# fast the bot acknowledges is measured by benchmarks/ack_latency.py, never here. The tests wait
# for an acknowledgement with a hang guard only: a loaded machine may take longer than 3 s.
ACK_WAIT = 60.0


def eventually(check: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy; the work runs in the bot's threads."""
    # `timeout` guards against a hang; it measures nothing (a loaded machine is slow).
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # slack_sdk sends the Web API calls and the WebSocket through a proxy named in the
    # environment: these tests stay on loopback whatever the machine has set.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class SocketBot:
    services: Services
    standin: SlackApiStandIn
    simulator: SimulatorServer
    fleet: Fleet

    def command(self, text: str, user: str) -> str:
        fields = slash_command_fields(text, user_id=user, user_name=user.lower(),
                                      response_url=self.standin.response_url(CHANNEL_ID, user))
        return self.standin.socket.push("slash_commands", fields)

    def settle(self) -> None:
        """Wait for the work the listeners handed off. Ends Bolt's executor: a test's last step."""
        self.services.bolt_app.listener_runner.listener_executor.shutdown(wait=True)


def all_text(message: dict[str, Any]) -> str:
    return message.get("text", "") + "\n" + json.dumps(message.get("blocks", []))


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks", []) if b["type"] == "actions"
            for e in b["elements"] if e.get("type") == "button"]


def bot_env(standin: SlackApiStandIn, simulator: SimulatorServer, tmp_path: Path,
            **extra: str) -> dict[str, str]:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY_TOML)
    return service_env(simulator, standin, tmp_path / "bot.db",
                       **{"SLACK_APP_TOKEN": standin.app_token, "SIGFOX_BOT_CONFIG": str(policy),
                          **extra})


@pytest.fixture
def bot(make_simulator, tmp_path: Path) -> Iterator[SocketBot]:
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=1800, job_delay=0.0)
    fleet = build_fleet(simulator)
    with SlackApiStandIn() as standin:
        services = build_services(bot_env(standin, simulator, tmp_path),
                                  clock=ManualClock(simulator.clock.now()))
        # Slack's one-message-per-second pacing is the notifier's own test; here it would only
        # make every post of a job wait its turn.
        services.notifier.poster.pacer = ChannelPacer(0.0)
        handler = connect_socket_mode(services)  # what `serve` does before serving HTTP
        try:
            standin.socket.wait_connected()
            yield SocketBot(services, standin, simulator, fleet)
        finally:
            handler.close()
            services.close()  # every thread it started: the lanes, the workers


# --------------------------------------------------------------------------- the bot


def test_help_is_acknowledged_at_once_and_answered_privately(bot: SocketBot) -> None:
    socket = bot.standin.socket
    assert [c.method for c in bot.standin.calls][:1] == ["apps.connections.open"]

    envelope_id = bot.command("help", REQUESTER.user_id)
    ack = socket.wait_ack(envelope_id, timeout=ACK_WAIT)
    assert ack == {"envelope_id": envelope_id}  # a plain ack: the answer comes on its own

    [answer] = eventually(lambda: bot.standin.ephemerals, "the help")
    assert answer["ephemeral_user"] == REQUESTER.user_id
    assert "/sigfox renew" in all_text(answer)
    assert bot.standin.messages(CHANNEL_ID) == []  # nothing said in the channel
    bot.settle()
    assert len(socket.acks[envelope_id]) == 1 and socket.unexpected == []


def test_a_request_over_the_socket_is_counted_by_the_ack_gate_until_acked(
        bot: SocketBot) -> None:
    gate = gate_of(bot.services.bolt_app)
    assert gate is not None
    seen: list[int] = []

    def probe(ack: Any) -> None:
        seen.append(gate.answering)  # the lazy work and the collector wait meanwhile
        ack()

    bot.services.bolt_app.command("/probe")(probe)
    fields = slash_command_fields("", command="/probe", user_id=REQUESTER.user_id,
                                  response_url=bot.standin.response_url(CHANNEL_ID, "U0PROBE"))
    envelope_id = bot.standin.socket.push("slash_commands", fields)
    bot.standin.socket.wait_ack(envelope_id, timeout=ACK_WAIT)
    assert seen == [1]
    eventually(lambda: gate.answering == 0 or None, "the gate left once the ack was sent")


def test_renewal_requested_approved_and_started_over_the_socket(bot: SocketBot) -> None:
    socket, standin, core = bot.standin.socket, bot.standin, bot.services.core
    device = bot.fleet.off_contract

    envelope_id = bot.command(f"renew {device} by delete", REQUESTER.user_id)
    ack = socket.wait_ack(envelope_id, timeout=ACK_WAIT)
    # Answered within seconds in the job's thread and privately: the ack itself says nothing.
    assert "Working on" not in json.dumps(ack.get("payload") or {})

    [parent] = eventually(lambda: standin.messages(CHANNEL_ID), "the job's parent message")
    assert "Waiting for approval" in parent["text"]
    request = eventually(
        lambda: next((m for m in standin.thread(CHANNEL_ID, parent["ts"])
                      if any(b["text"]["text"] == "Approve" for b in buttons(m))), None),
        "the approval request in the job's thread")
    approve = next(b for b in buttons(request) if b["text"]["text"] == "Approve")

    # The approver clicks Approve: an `interactive` envelope carrying the block_actions payload.
    click = block_actions_payload(
        approve["action_id"], approve["value"], user_id=APPROVER.user_id,
        user_name="approver", message_ts=request["ts"], message_blocks=request["blocks"],
        message_text=request["text"], thread_ts=request.get("thread_ts"),
        response_url=standin.response_url(CHANNEL_ID, APPROVER.user_id, request["ts"]))
    click_id = socket.push("interactive", click)
    assert socket.wait_ack(click_id, timeout=ACK_WAIT) == {"envelope_id": click_id}

    [workflow] = core.store.list_workflows()
    eventually(lambda: core.store.get_workflow(workflow.id).state == WorkflowState.APPROVED,
               "the decision")
    decided = eventually(lambda: (m := standin.message(CHANNEL_ID, request["ts"]))
                         and not buttons(m) and m, "the approval message redrawn")
    assert f"<@{APPROVER.user_id}>" in all_text(decided) and "Approved" in all_text(decided)

    core.tick()  # deleted at Sigfox; the id is held for a while: waiting to register it again
    [step] = core.store.workflow_devices(workflow.id)
    assert step.state == "awaiting_release"
    # Progress reaches Slack through the progress lane (the tick never waits for Slack's pace).
    eventually(lambda: any(":hourglass:" in all_text(m)
                           for m in standin.thread(CHANNEL_ID, parent["ts"])[1:]),
               "the wait in the job's thread")
    bot.settle()
    assert socket.unexpected == []


def test_a_reject_form_answers_its_errors_in_the_acknowledgement(bot: SocketBot) -> None:
    """Over the socket, a view submission's `response_action` travels in the ack's payload."""
    socket, standin, core = bot.standin.socket, bot.standin, bot.services.core
    socket.wait_ack(bot.command(f"renew {bot.fleet.no_token}", REQUESTER.user_id))
    [workflow] = eventually(lambda: core.store.list_workflows(), "the job")
    approval = eventually(lambda: core.store.approval_for(workflow.id), "the request")
    posted = eventually(lambda: core.store.get_approval(approval.id).message_ref, "its message")
    click = block_actions_payload(blocks.REJECT, str(approval.id), user_id=APPROVER.user_id,
                                  channel_id=posted["channel"], message_ts=posted["ts"])
    socket.wait_ack(socket.push("interactive", click), timeout=ACK_WAIT)
    [form] = eventually(lambda: standin.modals_opened(), "the reject form")

    blank = socket.push("interactive", view_submission_payload(
        form, {blocks.REASON_BLOCK: " "}, user_id=APPROVER.user_id))
    ack = socket.wait_ack(blank, timeout=ACK_WAIT)
    assert ack["payload"]["response_action"] == "errors"
    assert blocks.REASON_BLOCK in ack["payload"]["errors"]

    valid = socket.push("interactive", view_submission_payload(
        form, {blocks.REASON_BLOCK: "Not this one"}, user_id=APPROVER.user_id))
    assert "payload" not in socket.wait_ack(valid, timeout=ACK_WAIT)  # the form closes
    eventually(lambda: core.store.get_workflow(workflow.id).state == WorkflowState.REJECTED,
               "the rejection")
    bot.settle()
    assert core.store.get_approval(approval.id).reason == "Not this one"


def test_an_event_redelivered_by_slack_runs_once(bot: SocketBot) -> None:
    socket = bot.standin.socket
    event = app_home_opened_event(APPROVER.user_id)
    first = socket.push("events_api", event)
    socket.wait_ack(first, timeout=ACK_WAIT)
    # Slack redelivers an event it thinks was not acknowledged in time: a new envelope, the
    # same event_id, retry_attempt counting up.
    again = socket.push("events_api", event, retry_attempt=1, retry_reason="timeout")
    assert socket.wait_ack(again, timeout=ACK_WAIT) == {"envelope_id": again}
    bot.settle()
    published = bot.standin.calls_to("views.publish")
    assert [c.params["user_id"] for c in published] == [APPROVER.user_id]
    assert APPROVER.user_id in bot.standin.home_views


def test_an_app_token_of_the_wrong_kind_is_refused_at_connect(make_simulator,
                                                              tmp_path: Path) -> None:
    """A bot token put in SLACK_APP_TOKEN: `serve` fails at once, with Slack's own error."""
    simulator = make_simulator(devices=0, rate_limits=False)
    with SlackApiStandIn() as standin:
        env = bot_env(standin, simulator, tmp_path, SLACK_APP_TOKEN=standin.token)
        services = build_services(env, clock=ManualClock(simulator.clock.now()))
        with pytest.raises(SlackApiError) as refused:
            connect_socket_mode(services)
        assert refused.value.response["error"] == "not_allowed_token_type"
        assert not standin.socket.connected
        services.close()


# --------------------------------------------------------------------------- the stand-in


def test_connections_open_wants_the_app_level_token() -> None:
    with SlackApiStandIn() as standin:
        def open_with(token: str | None) -> dict[str, Any]:
            client = WebClient(base_url=standin.url)
            try:
                return client.apps_connections_open(app_token=token).data  # type: ignore[arg-type]
            except SlackApiError as error:
                return error.response.data  # type: ignore[return-value]

        assert open_with(standin.token)["error"] == "not_allowed_token_type"
        assert open_with("xapp-1-A0OTHER-1-wrong")["error"] == "invalid_auth"
        url = open_with(standin.app_token)["url"]
        assert url.startswith(f"ws://127.0.0.1:{standin.url.split(':')[2].split('/')[0]}/socket/")
        assert f"app_id={API_APP_ID}" in url
        # ...and the app-level token is no bot token.
        posted = WebClient(token=standin.app_token, base_url=standin.url)
        with pytest.raises(SlackApiError, match="not_allowed_token_type"):
            posted.chat_postMessage(channel=CHANNEL_ID, text="hi")

        # A URL is good for one connection.
        with websockets.sync.client.connect(url, open_timeout=5) as ws:
            hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": API_APP_ID}
        assert set(hello["debug_info"]) >= {"host", "build_number",
                                           "approximate_connection_time"}
        with pytest.raises(websockets.exceptions.InvalidStatus, match="403"):
            websockets.sync.client.connect(url, open_timeout=5)


def test_slack_sdk_client_acks_pings_and_reconnects_when_told() -> None:
    """slack_sdk's built-in client (what SocketModeHandler uses) against the stand-in alone:
    envelopes of each kind reach it and its acknowledgements come back; a `disconnect`
    message makes it open a new connection, as Slack expects every few hours."""
    received: list[SocketModeRequest] = []
    hellos: list[dict[str, Any]] = []

    def listener(client: Any, request: SocketModeRequest) -> None:
        received.append(request)
        payload = {"text": "ok"} if request.accepts_response_payload else None
        client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload))

    def on_message(raw: str) -> None:
        message = json.loads(raw)
        if message.get("type") == "hello":
            hellos.append(message)

    with SlackApiStandIn() as standin:
        socket = standin.socket
        client = SocketModeClient(app_token=standin.app_token, ping_interval=0.2,
                                  web_client=WebClient(base_url=standin.url),
                                  on_message_listeners=[on_message])
        client.socket_mode_request_listeners.append(listener)
        try:
            client.connect()
            socket.wait_connected()
            command = socket.push("slash_commands", slash_command_fields("help"))
            assert socket.wait_ack(command) == {"envelope_id": command,
                                                "payload": {"text": "ok"}}
            event = socket.push("events_api", app_home_opened_event(), retry_attempt=2,
                                retry_reason="http_timeout")
            assert socket.wait_ack(event) == {"envelope_id": event}
            assert (received[-1].retry_attempt, received[-1].retry_reason) == (2, "http_timeout")
            click = socket.push("interactive", block_actions_payload("a", "1"))
            assert socket.wait_ack(click) == {"envelope_id": click}
            assert [r.type for r in received] == ["slash_commands", "events_api", "interactive"]
            # Pings flow both ways: the client's own monitor pings every 0.2 s and would drop
            # a connection whose pongs stopped for 4 intervals.
            eventually(lambda: client.current_session is not None
                       and client.current_session.last_ping_pong_time is not None, "a pong")

            socket.disconnect("refresh_requested")
            socket.wait_connected(connections=2)
            eventually(lambda: len(hellos) == 2, "the second hello")
            assert len(standin.calls_to("apps.connections.open")) == 2
            # The client closes the old connection once the new one is up.
            eventually(lambda: socket.open_connections == 1, "the old connection closed")
            again = socket.push("events_api", app_home_opened_event())
            assert socket.wait_ack(again) == {"envelope_id": again}
        finally:
            client.close()
        assert socket.unexpected == []
        assert all(h["connection_info"]["app_id"] == API_APP_ID for h in hellos)

