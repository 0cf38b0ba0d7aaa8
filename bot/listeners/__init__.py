"""Every Slack listener of the bot, one small module per kind, registered in one call.

- `commands`: the `/sigfox` slash command;
- `actions`: the job buttons (Approve, Reject, Show PAC, Cancel, Copy callbacks);
- `alert_actions`: the alert digests' buttons and menus;
- `events`: `app_home_opened`; `app_home`: the Home tab those listeners draw;
- `views`: the reason forms (modals) Reject and large requests open, and their submissions;
- `replies`: how listeners answer people, and what they share;
- `handoff`: the one way a listener acknowledges and hands its work off.

Every listener acknowledges at once and hands its work off to a worker thread
(`handoff.handing_off`, `bot.ack_gate.hand_off`), never through a Bolt lazy listener, whose start
deep-copies the whole request while other acks wait: Slack wants an answer within 3 seconds, and
a renewal request reads the backend first (tests/test_listener_handoff.py checks no listener is
lazy).
`register_listeners(app, services)` is the only way listeners reach an app: `serve`, the demo
and the tests all build the app with `bot.service.assemble`, which calls it, so none of them
can miss a listener the others have (tests/test_listeners.py checks every button has one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.handler import CommandHandler
from bot.listeners import actions, alert_actions, commands, events
from bot.listeners.binding import Installation, InstallationGuard
from bot.listeners.replies import log_error
from bot.listeners.views import ReasonForms

if TYPE_CHECKING:
    from bot.service import Services

__all__ = ["register_listeners"]


def register_listeners(app: App, services: Services) -> None:
    """`/sigfox`, the job and alert buttons, App Home's event, the reason forms (modals, which
    the command and Reject open), and the error logger."""
    # Before every listener: the request must name this workspace and app.
    app.middleware(InstallationGuard(Installation(services.client),
                                     app.listener_runner.listener_executor.submit))
    handler = CommandHandler(services.core, services.alerts)
    forms = ReasonForms(core=services.core, edge=services.edge, handler=handler,
                        groups=services.groups)
    commands.register(app, services, handler, forms)
    actions.register(app, services, forms)
    alert_actions.register(app, services)
    events.register(app, services)
    forms.register(app)
    app.error(log_error)
