"""The Slack edge and the process: Bolt app, Block Kit, the Slack notifier, runners, the CLI.

It turns Slack requests into calls of the core (`commands/`) and the core's progress into
Slack messages; it holds no Sigfox rules. What it offers:

- `assemble`, `build_services`, `Services`, `ServiceError`, `serve` (service.py): the running
  bot, built from its parts (the one wiring `serve`, the demo and the tests share) or from the
  environment, and its Socket Mode or HTTP runner; `build_alerts`: its alerts (`assemble` and
  `sigfox-bot scan` build them so);
- `register_listeners` (listeners/): every Slack listener, one module per kind;
- `create_bolt_app` (app.py), `create_web_app` (web.py): the bare Bolt app and the web endpoints
  (`/slack/events`, `/healthz`, `/metrics`, `/sigfox/uplink`);
- `CommandHandler` (handler.py): `/sigfox` commands answered from the core;
- `SlackNotifier` (notifier.py), `SlackAlertSink` (alerts.py): the core's progress and alerts,
  as Slack messages;
- `make_web_client` (slack_client.py): the `slack_sdk` client every part shares;
- `run_checks` (checks.py): `sigfox-bot check`; `run_terminal_scan` (scan_cli.py):
  `sigfox-bot scan`; `main` (cli.py): the `sigfox-bot` script.

The names load on first use, so `sigfox-bot --help` does not load Slack's libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.alerts import SlackAlertSink
    from bot.app import create_bolt_app
    from bot.checks import run_checks
    from bot.cli import main
    from bot.handler import CommandHandler
    from bot.listeners import register_listeners
    from bot.notifier import SlackNotifier
    from bot.scan_cli import run_terminal_scan
    from bot.service import (
        ServiceError,
        Services,
        assemble,
        build_alerts,
        build_services,
        serve,
    )
    from bot.slack_client import make_web_client
    from bot.web import create_web_app

__all__ = [
    "CommandHandler",
    "ServiceError",
    "Services",
    "SlackAlertSink",
    "SlackNotifier",
    "assemble",
    "build_alerts",
    "build_services",
    "create_bolt_app",
    "create_web_app",
    "main",
    "make_web_client",
    "register_listeners",
    "run_checks",
    "run_terminal_scan",
    "serve",
]

_HOMES = {
    "alerts": ["SlackAlertSink"],
    "app": ["create_bolt_app"],
    "checks": ["run_checks"],
    "cli": ["main"],
    "handler": ["CommandHandler"],
    "listeners": ["register_listeners"],
    "notifier": ["SlackNotifier"],
    "scan_cli": ["run_terminal_scan"],
    "service": ["ServiceError", "Services", "assemble", "build_alerts", "build_services",
                "serve"],
    "slack_client": ["make_web_client"],
    "web": ["create_web_app"],
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
