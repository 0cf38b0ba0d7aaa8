"""Wiring from the environment: clear one-sentence errors, and a bot that answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.core import APPROVER, POLICY_TOML, REQUESTER, build_fleet, service_env
from support.gates import HANG_GUARD

from bot.app import register_metrics, unregister_metrics
from bot.service import ServiceError, build_services, serve, start
from bot.web import CALLBACK_SECRET_HEADER, create_web_app
from commands import metrics
from commands.planning import Request
from commands.ports import ManualClock, Target
from commands.states import Kind, WorkflowState
from demo.slack_standin import BackgroundServer, SlackApiStandIn


def test_missing_variables_are_named(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="SLACK_BOT_TOKEN is not set"):
        build_services({})
    with pytest.raises(ServiceError, match="SLACK_SIGNING_SECRET is not set"):
        build_services({"SLACK_BOT_TOKEN": "xoxb-1"}, http=True)


def test_socket_mode_needs_an_app_token(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"))
        assert services.health() == {"ok": True, "database": "ok"}
        assert services.alerts is not None and services.core.engine.on_renewed is not None
        assert services.actor_for("U0SOMEONE").user_id == "U0SOMEONE"
        with pytest.raises(ServiceError, match="SLACK_APP_TOKEN"):
            serve(services, http=False)


def test_metrics_count_sigfox_calls_and_show_the_last_scan(make_simulator, tmp_path: Path
                                                           ) -> None:
    """The served registry gets the Sigfox client's calls and the scan kept in the database."""
    simulator = make_simulator(devices=12, rate_limits=False)
    calls = "sigfox_bot_sigfox_api_calls_total"
    listing = {"method": "GET", "endpoint": "/devices", "status": "200"}
    before = metrics.METRICS.value(calls, listing) or 0
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"))
        try:
            register_metrics(services.core, services.alerts)
            report = services.alerts.scan(started_by="test")
            assert report.ok and report.devices == 12
            assert (metrics.METRICS.value(calls, listing) or 0) > before
            seen = {s: metrics.METRICS.value("sigfox_bot_devices_by_token_state", {"state": s})
                    for s in services.alerts.fleet_summary().by_token_state}
            assert sum(v or 0 for v in seen.values()) == 12
            duration = metrics.METRICS.value("sigfox_bot_last_scan_duration_seconds")
            assert duration == pytest.approx(report.duration)
        finally:
            unregister_metrics()


def test_the_backend_data_callback_finishes_a_waiting_renewal_at_once(make_simulator,
                                                                      tmp_path: Path) -> None:
    """Sigfox's DATA callback (really sent by the simulator on the device's uplink) reaches
    POST /sigfox/uplink, and the waiting renewal finishes without waiting for a tick."""
    simulator = make_simulator(devices=0, rate_limits=False, delete_hold=0, job_delay=0.0)
    fleet = build_fleet(simulator)
    config = tmp_path / "policy.toml"
    config.write_text(POLICY_TOML)
    secret = "callback-secret-for-tests"
    with SlackApiStandIn() as standin:
        env = service_env(simulator, standin, tmp_path / "bot.db", SIGFOX_BOT_CONFIG=str(config),
                          SIGFOX_CALLBACK_SECRET=secret)
        # Unpaced posts (Slack's pace is the notifier's own test): the job's dozen lines are
        # delivered while the stand-in still answers, not seconds after the test ended.
        services = build_services(env, clock=ManualClock(simulator.clock.now()),
                                  post_interval=0.0)
        web = create_web_app(services.bolt_app, uplink_handler=services.handle_uplink,
                             callback_secret=secret, health=services.health)
        with BackgroundServer(web) as server:
            simulator.world.add_callback(fleet.type_a, {
                "channel": "URL", "callbackType": 0, "callbackSubtype": 2, "enabled": True,
                "url": f"{server.root}/sigfox/uplink", "httpMethod": "POST",
                "headers": {CALLBACK_SECRET_HEADER: secret},
                "contentType": "application/json",
                "bodyTemplate": '{"device": "{device}", "time": {time}, "data": "{data}", '
                                '"seqNumber": {seqNumber}}',
            })
            core = services.core
            outcome = core.request(Request(Kind.RENEW, REQUESTER, (fleet.no_token,),
                                           Target("C0CHAN")))
            assert core.decide(outcome.approval_id, APPROVER, approve=True).ok
            core.tick()  # deleted, registered again: now waiting for the first message
            assert core.store.workflow_devices(outcome.workflow_id)[0].state == "awaiting_uplink"

            simulator.uplink(fleet.no_token, "c0ffee")  # no tick from here on
            deadline = time.monotonic() + HANG_GUARD  # a guard, not a measure of speed
            while core.store.get_workflow(outcome.workflow_id).state != WorkflowState.DONE:
                assert time.monotonic() < deadline, "the callback did not finish the renewal"
                time.sleep(0.05)
        services.uplink_workers.shutdown(wait=True)
        services.close()  # its progress lane, before the stand-in stops


def test_the_scheduler_forgets_slack_deliveries_after_a_day(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    clock = ManualClock(simulator.clock.now())
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"),
                                  clock=clock)
        assert "forget-idempotency-keys" in services.extra_jobs()
        edge = services.edge
        assert edge.claim_idempotency_key("slack:Ev1", clock.now())
        clock.advance(2 * 86400)
        services.forget_old_deliveries()
        assert edge.claim_idempotency_key("slack:Ev1", clock.now())


def test_closing_the_bot_stops_every_thread_it_started(make_simulator, tmp_path: Path) -> None:
    """`Services.close` (what `serve` does on its way out) ends the scheduler, Bolt's pool for
    the lazy listeners, the read lane, the DATA-callback workers and the progress lane: nothing
    of the bot goes on posting or logging once it has stopped."""
    simulator = make_simulator(devices=0, rate_limits=False)
    fleet = build_fleet(simulator)
    with SlackApiStandIn() as standin:
        services = build_services(service_env(simulator, standin, tmp_path / "bot.db"),
                                  clock=ManualClock(simulator.clock.now()), post_interval=0.0)
        before = set(threading.enumerate())
        try:
            start(services, paused=True)
            # Told through the progress lane, which starts its thread at the first line.
            services.core.request(Request(Kind.RENEW, REQUESTER, (fleet.no_token,),
                                          Target("C0CHAN")))
            for submit in (services.read_lane.submit, services.uplink_workers.submit,
                           services.bolt_app.listener_runner.listener_executor.submit):
                submit(lambda: None)
            started = [t for t in threading.enumerate() if t not in before]
            names = {t.name.split("_")[0] for t in started}
            assert {"progress-lane", "sigfox-read", "uplink", "lazy"} <= names, names
            services.close()
            services.close()  # twice: as safe as `serve` stopping after a failed start
        finally:
            unregister_metrics()
    for thread in started:
        thread.join(HANG_GUARD)  # the scheduler's own thread ends soon after its shutdown
    assert [t.name for t in started if t.is_alive()] == []
