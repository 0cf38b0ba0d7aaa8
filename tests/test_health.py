"""Honest health: /healthz (liveness), /readyz (named readiness checks with their reasons),
one log line per dependency at start and bounded-rate lines while one is down, scan metrics,
and `serve --log-format json` writing every line (uvicorn's too) as JSON on stderr."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from support.core import service_env

from bot.readiness import CheckOutcome, DependencyLog, Readiness, last_scan_check
from bot.service import Services, build_services, start
from bot.web import create_web_app
from commands import metrics
from demo.slack_standin import BackgroundServer, SlackApiStandIn
from sigfox.simulator import SimulatorServer

HOUR = 3600.0


def env_for(simulator: SimulatorServer, slack: SlackApiStandIn, tmp_path: Path,
            **extra: str) -> dict[str, str]:
    return service_env(simulator, slack, tmp_path / "bot.db",
                       **{"SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef", **extra})


@pytest.fixture
def running(make_simulator, slack: SlackApiStandIn, tmp_path: Path,
            request: pytest.FixtureRequest) -> Iterator[Services]:
    simulator = make_simulator(devices=5, rate_limits=False)
    extra = getattr(request, "param", {})
    services = build_services(env_for(simulator, slack, tmp_path, **extra), http=True)
    start(services)
    try:
        yield services
    finally:
        services.scheduler.shutdown(wait=False)
        services.close()
        for source in (metrics.set_scan_source, metrics.set_workflow_state_source,
                       metrics.set_approvals_waiting_source, metrics.set_last_success_source,
                       metrics.set_undelivered_digests_source):
            source(None)


@contextmanager
def web_of(services: Services) -> Iterator[httpx.Client]:
    app = create_web_app(services.bolt_app, health=services.health, ready=services.ready)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.root) as client:
        yield client


def test_ready_when_sigfox_slack_and_the_scheduler_are(running: Services) -> None:
    with web_of(running) as web:
        live = web.get("/healthz")
        ready = web.get("/readyz")
    assert live.status_code == 200 and live.json()["ok"] is True
    assert ready.status_code == 200, ready.json()
    checks = {c["name"]: c for c in ready.json()["checks"]}
    assert set(checks) == {"sigfox", "slack", "scheduler", "last_scan"}
    assert "connected to Slack as @" in checks["slack"]["detail"]
    assert "Sigfox API ok" in checks["sigfox"]["detail"]
    assert all(c["ok"] for c in checks.values())


@pytest.mark.parametrize("running", [{"SIGFOX_API_PASSWORD": "not-the-password"}],
                         indirect=True)
def test_not_ready_with_the_reason_when_sigfox_refuses(running: Services) -> None:
    with web_of(running) as web:
        ready = web.get("/readyz")
        live = web.get("/healthz")
    assert live.status_code == 200  # alive all the same: restarting would not help
    assert ready.status_code == 503
    body = ready.json()
    assert body["failing"] == ["sigfox"]
    detail = next(c["detail"] for c in body["checks"] if c["name"] == "sigfox")
    assert "refused the credentials" in detail and "not-the-password" not in detail


@pytest.mark.parametrize("running", [{"SLACK_API_URL": "http://127.0.0.1:9/api/"}],
                         indirect=True)
def test_not_ready_when_slack_is_unreachable(running: Services) -> None:
    with web_of(running) as web:
        ready = web.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failing"] == ["slack"]
    assert "Slack unreachable" in ready.json()["checks"][1]["detail"]


def test_a_stale_last_scan_makes_the_bot_not_ready() -> None:
    now = [100 * HOUR]
    last: list[float | None] = [None]
    check = last_scan_check(lambda: last[0], 6 * HOUR, lambda: now[0], started_at=now[0])
    assert check().ok  # just started: grace before the first scan
    now[0] += 13 * HOUR
    assert not check().ok and "since start" in check().detail
    last[0] = now[0] - 2 * HOUR
    assert check().ok and "2 hours ago" in check().detail
    last[0] = now[0] - 13 * HOUR
    stale = check()
    assert not stale.ok and "13 hours old" in stale.detail and "6 hours" in stale.detail


def test_readiness_is_a_list_of_named_checks_others_can_extend() -> None:
    calls = []
    ready = Readiness(ttl=60, clock=lambda: 0.0)
    ready.add("probe", lambda: calls.append(1) or CheckOutcome(True, "fine"), cached=True)
    ready.add("broken", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    first, second = ready.report(), ready.report()
    assert len(calls) == 1  # cached: an orchestrator polling costs Sigfox nothing more
    assert first["failing"] == second["failing"] == ["broken"]
    assert "ZeroDivisionError" in first["checks"][1]["detail"]


def test_a_dead_dependency_is_said_loudly_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    state = [CheckOutcome(False, "Slack unreachable at http://x (ConnectError)")]
    ready = Readiness(ttl=0)
    ready.add("slack", lambda: state[0])
    watch = DependencyLog(ready, ["slack"], every=300, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="bot.readiness"):
        for _ in range(10):  # every minute for ten minutes
            watch.observe()
            now[0] += 60
        state[0] = CheckOutcome(True, "connected to Slack as @sigfox-bot in T1 (Acme)")
        watch.observe()
        watch.observe()
    lines = [r.getMessage() for r in caplog.records]
    down = [line for line in lines if "NOT usable" in line]
    assert len(down) == 2  # at 0 and at 5 minutes, not ten times
    assert [line for line in lines if "reachable again" in line] == [
        "connected to Slack as @sigfox-bot in T1 (Acme) (reachable again)"]


def test_metrics_tell_the_last_successful_scan_and_failures(running: Services,
                                                           make_simulator) -> None:
    failures = "sigfox_bot_scan_failures_total"
    before = metrics.METRICS.value(failures) or 0
    report = running.alerts.scan(started_by="test")
    assert report.ok
    stamp = metrics.METRICS.value("sigfox_bot_last_successful_scan_timestamp_seconds")
    assert stamp == pytest.approx(running.alerts.last_success())
    other = make_simulator(devices=0, rate_limits=False)
    other.stop()  # nothing listens there any more: the next scan fails
    running.alerts.api = type(running.core.api)(other.base_url, "x", "y", max_retries=0)
    assert not running.alerts.scan(started_by="test").ok
    assert (metrics.METRICS.value(failures) or 0) == before + 1


# --------------------------------------------------------------------------- the real process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_logs_every_line_as_json_and_names_its_dependencies(
    make_simulator, slack: SlackApiStandIn, tmp_path: Path
) -> None:
    simulator = make_simulator(devices=3, rate_limits=False)
    port = _free_port()
    env = {**os.environ, **env_for(simulator, slack, tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--http", "--port", str(port),
         "--log-format", "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                httpx.get(f"http://127.0.0.1:{port}/nowhere", timeout=2)  # one access line
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200, answer and answer.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert out == ""  # nothing on stdout: access lines included
    events = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    messages = [e["message"] for e in events]
    assert any(m.startswith("connected to Slack as @") for m in messages), messages
    assert any(m.startswith("Sigfox API ok") for m in messages), messages
    assert any("Uvicorn running on" in m for m in messages), messages
    assert any("/nowhere" in m and e["logger"] == "uvicorn.access"
               for m, e in zip(messages, events, strict=True)), messages
    assert not any("/readyz" in m for m in messages)  # answered probes are not logged
    assert not any("will be unused" in m for m in messages)
    assert not [e for e in events if e["level"] in ("WARNING", "ERROR")], events
