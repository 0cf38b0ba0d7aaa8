"""Every Slack listener of the bot, registered on a Bolt app in one call.

`register_listeners(app, services)` is the only way listeners reach an app: `serve`, the demo
and the tests all build the app with `bot.service.assemble`, which calls it, so none of them
can miss a listener the others have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.alerts import register_alert_actions
from bot.app import Listeners

if TYPE_CHECKING:
    from bot.service import Services

__all__ = ["register_listeners"]


def register_listeners(app: App, services: Services) -> None:
    """`/sigfox`, the job and alert buttons, App Home, and the error logger."""
    Listeners(core=services.core, config=services.config, alerts=services.alerts,
              notifier=services.notifier, groups=services.groups).register(app)
    register_alert_actions(app, services)
