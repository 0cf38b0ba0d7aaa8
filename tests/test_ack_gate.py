"""Acknowledgements first: the work behind a Slack request starts once the answers are sent."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from slack_bolt import Ack
from support.core import service_env
from support.slack_signing import signed_headers, slash_command_body

from bot.ack_gate import (
    AckGate,
    AcksFirstExecutor,
    current_gate,
    gate_of,
    hand_off,
    keep_collections_off_acks,
)
from bot.app import create_bolt_app
from bot.service import build_services, scheduler_pool
from bot.slack_client import make_web_client
from bot.web import create_web_app
from commands import metrics
from commands.runtime import start_scheduler
from demo.slack_standin import BackgroundServer, SlackApiStandIn

SECRET = "gate-signing-secret"


def test_work_waits_while_a_request_is_being_answered() -> None:
    gate = AckGate(max_hold=30, quiet=0)
    with ThreadPoolExecutor(max_workers=1) as inner:
        executor = AcksFirstExecutor(inner, gate)
        gate.enter()
        seen = executor.submit(lambda: gate.answering)
        while not seen.running():  # the worker holds the work at the gate meanwhile
            time.sleep(0.001)
        gate.leave()
        assert seen.result(timeout=10) == 0


def test_a_steady_stream_of_requests_cannot_hold_the_work_forever() -> None:
    gate = AckGate(max_hold=0.05, quiet=0)
    gate.enter()  # never left
    with ThreadPoolExecutor(max_workers=1) as inner:
        assert AcksFirstExecutor(inner, gate).submit(lambda: gate.answering).result(10) == 1
    assert gate.wait_clear() is False


@pytest.fixture
def collector() -> Iterator[None]:
    """The process's collector as it was, whatever a test did to it."""
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_waits_while_requests_are_answered(collector: None) -> None:
    gate = AckGate(max_hold=30, quiet=0)
    keep_collections_off_acks(gate)
    assert gc.get_freeze_count() > 0  # start-up's heap is out of every later collection
    gate.enter()
    gate.enter()
    assert not gc.isenabled()
    gate.leave()
    assert not gc.isenabled()  # one ack still in flight
    gate.leave()
    assert gc.isenabled()


def test_a_stream_of_requests_cannot_hold_the_collector_forever(collector: None) -> None:
    gate = AckGate(max_hold=0, quiet=0)
    gate.hold_collections = True
    gate.enter()
    gate.enter()  # the collector has waited max_hold (0 s) already: it may run
    assert gc.isenabled()
    gate.leave()
    gate.leave()
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off(collector: None) -> None:
    gate = AckGate(max_hold=30, quiet=0)
    gate.hold_collections = True
    gc.disable()
    gate.enter()
    gate.leave()
    assert not gc.isenabled()


def test_the_web_edge_lets_the_work_go_once_the_answer_is_sent() -> None:
    with SlackApiStandIn() as standin, ThreadPoolExecutor(max_workers=2) as inner:
        app = create_bolt_app(make_web_client(standin.token, standin.url),
                              listener_executor=inner)
        gate = gate_of(app)
        assert gate is not None
        gate.max_hold = 30  # a gate never left would hold the work far longer than this test
        seen: list[int] = []
        done = threading.Event()

        def work() -> None:
            seen.append(gate.answering)
            done.set()

        def only_ack(ack: Ack) -> None:
            seen.append(gate.answering)  # this request is being answered
            ack()

        app.command("/sigfox")(ack=only_ack, lazy=[work])
        body = slash_command_body("help", user_id="U0GATE")
        with BackgroundServer(create_web_app(app, signing_secret=SECRET)) as server:
            answer = httpx.post(f"{server.root}/slack/events", content=body,
                                headers=signed_headers(SECRET, body), timeout=10)
            assert answer.status_code == 200
            assert done.wait(timeout=10)
        assert seen == [1, 0] and gate.answering == 0


def test_every_answer_is_timed_by_phase_at_the_web_edge() -> None:
    phases = ("read", "verify", "queue", "dispatch", "dispatch_cpu", "send", "total")

    def counts() -> dict[str, float]:
        return {p: metrics.METRICS.value("sigfox_bot_slack_answer_seconds_count",
                                         {"phase": p}) or 0.0 for p in phases}

    with SlackApiStandIn() as standin:
        app = create_bolt_app(make_web_client(standin.token, standin.url))
        app.command("/sigfox")(lambda ack: ack())
        body = slash_command_body("help", user_id="U0TIMED")
        before = counts()
        with BackgroundServer(create_web_app(app, signing_secret=SECRET)) as server:
            answer = httpx.post(f"{server.root}/slack/events", content=body,
                                headers=signed_headers(SECRET, body), timeout=10)
            assert answer.status_code == 200
            for _ in range(1000):  # "send" and "total" are noted once the answer is out
                if counts()["total"] > before["total"]:
                    break
                time.sleep(0.01)
        assert {p: n - before[p] for p, n in counts().items()} == dict.fromkeys(phases, 1.0)


def test_collections_are_counted_by_whether_acks_were_in_flight() -> None:
    def pauses(during: str) -> float:
        return metrics.METRICS.value("sigfox_bot_gc_pauses_total",
                                     {"generation": "0", "during_acks": during}) or 0.0

    with SlackApiStandIn() as standin:
        app = create_bolt_app(make_web_client(standin.token, standin.url))

        def collecting_ack(ack: Ack) -> None:
            gc.collect(0)  # as if the collector's thresholds were crossed mid-answer
            ack()

        app.command("/sigfox")(collecting_ack)
        body = slash_command_body("help", user_id="U0COLLECT")
        with BackgroundServer(create_web_app(app, signing_secret=SECRET)) as server:
            before = pauses("true")
            answer = httpx.post(f"{server.root}/slack/events", content=body,
                                headers=signed_headers(SECRET, body), timeout=10)
            assert answer.status_code == 200
            assert pauses("true") >= before + 1
            gate = gate_of(app)
            assert gate is not None
            for _ in range(1000):  # the gate is left once the answer is out, maybe after
                if gate.answering == 0:  # the client read it
                    break
                time.sleep(0.01)
            quiet = pauses("false")
            gc.collect(0)
            assert pauses("false") >= quiet + 1
        content, _ = metrics.render_metrics()
        assert b"sigfox_bot_gc_pause_seconds_total{" in content


def test_work_handed_off_by_an_ack_listener_runs_once_gated_and_a_failure_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    with SlackApiStandIn() as standin, ThreadPoolExecutor(max_workers=2) as inner:
        app = create_bolt_app(make_web_client(standin.token, standin.url),
                              listener_executor=inner)
        gate = gate_of(app)
        assert gate is not None
        gate.max_hold = 30
        seen: list[tuple[str, int, AckGate | None]] = []
        done = threading.Event()

        def work(text: str) -> None:
            seen.append((text, gate.answering, current_gate()))
            done.set()
            raise RuntimeError("the work failed")

        def ack_and_hand_off(ack: Ack, command: dict[str, str]) -> None:
            ack()
            hand_off(app, work, command["text"])

        app.command("/sigfox")(ack_and_hand_off)
        body = slash_command_body("help", user_id="U0HANDOFF")
        with BackgroundServer(create_web_app(app, signing_secret=SECRET)) as server:
            answer = httpx.post(f"{server.root}/slack/events", content=body,
                                headers=signed_headers(SECRET, body), timeout=10)
            assert answer.status_code == 200
            assert done.wait(timeout=10)
        inner.shutdown(wait=True)
    assert seen == [("help", 0, gate)]  # once, after the answer was sent, as gated work
    assert any("background work work failed: RuntimeError" in r.getMessage()
               for r in caplog.records)


def test_the_schedulers_jobs_start_once_the_acks_are_sent(make_simulator, tmp_path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"))
        gate = gate_of(services.bolt_app)
        assert gate is not None
        gate.max_hold = 30  # far longer than this test holds the request
        seen: list[tuple[bool, int]] = []
        ran = threading.Event()

        def probe() -> None:
            seen.append((current_gate() is gate, gate.answering))
            ran.set()

        gate.enter()  # a request being answered
        scheduler = start_scheduler(
            services.core, tick=timedelta(hours=1),
            extra_jobs={"probe": (timedelta(seconds=0.05), probe)},
            job_pool=scheduler_pool(services.bolt_app))
        try:
            time.sleep(0.3)  # the job falls due meanwhile, and waits
            gate.leave()
            assert ran.wait(timeout=30)
        finally:
            scheduler.shutdown(wait=True)
            services.close()
        assert seen[0] == (True, 0)  # gated work, started once nothing was being answered
