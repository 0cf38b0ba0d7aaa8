"""Started lazy work yields to acks at its safe points (bot.ack_gate): before each Sigfox
request, after each Slack answer, before each SQLite write transaction. It parks there while a
request is being answered, resumes once none is, runs once and whole, and never parks while it
holds the database (an ack may need it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.ack_gate import (
    AckGate,
    AcksFirstExecutor,
    CheckpointTransport,
    SlackCheckpoint,
    checkpoint,
    current_gate,
    gate_of,
)
from bot.listeners.lanes import ReadLane
from bot.listeners.replies import first_delivery
from bot.service import build_services
from bot.slack_client import make_web_client
from demo.slack_standin import SlackApiStandIn
from sigfox.client import SigfoxClient
from storage.db import SafeDatabase

PATIENT = 60.0  # a hold no test reaches: parking ends when the ack is out, never by time


@pytest.fixture
def gated() -> Iterator[tuple[AckGate, AcksFirstExecutor]]:
    gate = AckGate(max_hold=PATIENT, quiet=0)
    with ThreadPoolExecutor(max_workers=2) as inner:
        yield gate, AcksFirstExecutor(inner, gate)


def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError("the condition never came")


def run_stepwise(executor: AcksFirstExecutor, safe_point: Callable[[], Any]
                 ) -> tuple[Future[Any], threading.Event, list[str]]:
    """Gated work that does a first step, waits for `go`, reaches `safe_point`, then a second
    step: the test sets an ack in flight between the two."""
    go = threading.Event()
    steps: list[str] = []

    def work() -> Any:
        steps.append("first")
        assert go.wait(timeout=30)
        result = safe_point()
        steps.append("second")
        return result

    return executor.submit(work), go, steps


def park_then_resume(gate: AckGate, executor: AcksFirstExecutor,
                     safe_point: Callable[[], Any]) -> Any:
    parks = gate.parks
    future, go, steps = run_stepwise(executor, safe_point)
    wait_for(lambda: steps == ["first"])
    gate.enter()  # a Slack request arrives and is being answered
    go.set()
    wait_for(lambda: gate.parked_now == 1)
    assert steps == ["first"] and not future.done()  # parked at its safe point
    gate.leave()  # the answer is sent
    result = future.result(timeout=30)
    assert steps == ["first", "second"]  # resumed, ran once, whole
    assert gate.parks == parks + 1 and gate.parked_now == 0
    return result


def test_started_work_parks_at_its_next_safe_point_and_resumes_after_the_ack(gated) -> None:
    gate, executor = gated
    park_then_resume(gate, executor, checkpoint)


def test_a_sigfox_request_is_a_safe_point(gated, make_simulator) -> None:
    gate, executor = gated
    simulator = make_simulator(devices=3, rate_limits=False)
    device_id = _first_device(simulator)
    api = SigfoxClient(simulator.base_url, simulator.login, simulator.password,
                       rate_limits=False, transport=CheckpointTransport())
    device = park_then_resume(gate, executor, lambda: api.get_device(device_id))
    assert device.id == device_id  # the request went out once the ack was sent, and answered


def test_a_slack_answer_is_a_safe_point_before_the_next_call(gated) -> None:
    gate, executor = gated
    with SlackApiStandIn() as standin:
        client = make_web_client(standin.token, standin.url)
        client.retry_handlers.append(SlackCheckpoint())
        answer = park_then_resume(
            gate, executor, lambda: client.chat_postMessage(channel="C0SAFEPT", text="once"))
        assert answer["ok"]
        assert [m["text"] for m in standin.messages("C0SAFEPT")] == ["once"]  # posted once


def test_an_sqlite_write_is_a_safe_point(gated, tmp_path: Path) -> None:
    gate, executor = gated
    database = SafeDatabase(tmp_path / "gate.db")
    database.before_transaction = checkpoint

    def write() -> None:
        with database.transaction() as db:
            db["notes"].insert({"text": "once"})

    park_then_resume(gate, executor, write)
    assert [r["text"] for r in database.query("SELECT text FROM notes")] == ["once"]


def test_work_holding_the_database_never_parks(gated, tmp_path: Path) -> None:
    gate, executor = gated
    database = SafeDatabase(tmp_path / "held.db")
    database.before_transaction = checkpoint
    gate.never_park_while(database.held_here)
    inside, go = threading.Event(), threading.Event()

    def inside_a_transaction() -> str:
        with database.transaction() as db:
            inside.set()
            assert go.wait(timeout=30)
            checkpoint()  # e.g. a Sigfox call made inside the transaction
            db["notes"].insert({"text": "kept"})
        return "done"

    future = executor.submit(inside_a_transaction)
    assert inside.wait(timeout=30)
    gate.enter()  # an ack in flight the whole time: it may need the database
    go.set()
    assert future.result(timeout=30) == "done"  # finished while the ack is still in flight
    assert gate.parks == 0
    gate.leave()
    assert [r["text"] for r in database.query("SELECT text FROM notes")] == ["kept"]


def test_work_handed_to_the_read_lane_stays_gated(gated) -> None:
    gate, executor = gated
    lane = ReadLane(workers=1)
    seen: list[AckGate | None] = []
    done = threading.Event()

    def read() -> None:
        seen.append(current_gate())
        done.set()

    executor.submit(lambda: lane.submit(read)).result(timeout=30)
    assert done.wait(timeout=30)
    assert seen == [gate]


def test_work_outside_the_gate_never_parks() -> None:
    gate = AckGate(max_hold=PATIENT, quiet=0)
    gate.enter()
    checkpoint()  # the serving threads, the scheduler: not gated work
    assert gate.parks == 0 and current_gate() is None
    gate.leave()


def test_the_bot_as_served_yields_at_its_sigfox_calls_slack_calls_and_writes(
        make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=3, rate_limits=False)
    device_id = _first_device(simulator)
    with SlackApiStandIn() as standin:
        env = {"SLACK_BOT_TOKEN": standin.token, "SLACK_API_URL": standin.url,
               "SLACK_SIGNING_SECRET": "safe-points-secret",
               "SIGFOX_API_URL": simulator.base_url, "SIGFOX_API_LOGIN": simulator.login,
               "SIGFOX_API_PASSWORD": simulator.password,
               "SIGFOX_BOT_DB": str(tmp_path / "bot.db")}
        services = build_services(env, http=True, post_interval=0.0)
        gate = gate_of(services.bolt_app)
        assert gate is not None
        gate.max_hold, gate.quiet = PATIENT, 0
        with ThreadPoolExecutor(max_workers=2) as inner:
            executor = AcksFirstExecutor(inner, gate)
            device = park_then_resume(gate, executor,
                                      lambda: services.core.api.get_device(device_id))
            assert device.id == device_id
            posted = park_then_resume(gate, executor, lambda: services.client.chat_postMessage(
                channel="C0SAFEPT", text="from the bot"))
            assert posted["ok"]
            claim = lambda: first_delivery(services.edge, services.core.clock,  # noqa: E731
                                           "slack.command:T1")
            assert park_then_resume(gate, executor, claim) is True
        assert claim() is False  # written, once
        services.close()


def _first_device(simulator: Any) -> str:
    with simulator.client() as http:
        answer = http.get("devices/", params={"limit": 1})
        answer.raise_for_status()
        return str(answer.json()["data"][0]["id"])
