"""Wiring from the environment: clear one-sentence errors, and a bot that answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.slack_api import SlackApiStandIn

from sigfox_chatops import metrics
from sigfox_chatops.bot.app import register_metrics
from sigfox_chatops.bot.service import ServiceError, build_services, serve


def test_missing_variables_are_named(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="SLACK_BOT_TOKEN is not set"):
        build_services({})
    with pytest.raises(ServiceError, match="SLACK_SIGNING_SECRET is not set"):
        build_services({"SLACK_BOT_TOKEN": "xoxb-1"}, http=True)


def test_socket_mode_needs_an_app_token(make_simulator, tmp_path: Path) -> None:
    simulator = make_simulator(devices=0, rate_limits=False)
    with SlackApiStandIn() as standin:
        services = build_services({
            "SLACK_BOT_TOKEN": standin.token, "SLACK_API_URL": standin.url,
            "SIGFOX_API_URL": simulator.base_url, "SIGFOX_API_LOGIN": simulator.login,
            "SIGFOX_API_PASSWORD": simulator.password,
            "SIGFOX_BOT_DB": str(tmp_path / "bot.db"),
        })
        assert services.health() == {"ok": True, "database": "ok"}
        assert services.alerts is not None and services.core.on_renewed is not None
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
        services = build_services({
            "SLACK_BOT_TOKEN": standin.token, "SLACK_API_URL": standin.url,
            "SIGFOX_API_URL": simulator.base_url, "SIGFOX_API_LOGIN": simulator.login,
            "SIGFOX_API_PASSWORD": simulator.password,
            "SIGFOX_BOT_DB": str(tmp_path / "bot.db"),
        })
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
            metrics.set_scan_source(None)
            metrics.set_workflow_state_source(None)
            metrics.set_approvals_waiting_source(None)
