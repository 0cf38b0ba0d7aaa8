"""The Slack Web API stand-in now lives in `demo.slack_standin` (shipped with the demo, which
uses it too). This name stays while other tests move their imports; it goes at the end."""

from demo.slack_standin import (
    DEFAULT_APP_TOKEN,
    DEFAULT_TOKEN,
    SPEC_PATH,
    BackgroundServer,
    Call,
    SlackApiStandIn,
    SlackError,
    SocketModeStandIn,
    check_blocks,
    check_modal,
    dm_channel,
    required_params,
)

__all__ = [
    "DEFAULT_APP_TOKEN",
    "DEFAULT_TOKEN",
    "SPEC_PATH",
    "BackgroundServer",
    "Call",
    "SlackApiStandIn",
    "SlackError",
    "SocketModeStandIn",
    "check_blocks",
    "check_modal",
    "dm_channel",
    "required_params",
]
