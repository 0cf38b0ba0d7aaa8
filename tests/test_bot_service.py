"""Wiring from the environment: clear one-sentence errors, and a bot that answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.slack_api import SlackApiStandIn

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
