"""A stand-in for Slack's Web API, served on loopback, that answers and refuses like Slack.

The one stand-in: the tests point a real `slack_sdk.WebClient(base_url=standin.url)` (or
`SLACK_API_URL`) at it, and so does `sigfox-bot demo`, whose terminal renders what it records.
It:

- checks the bot token (`Authorization: Bearer`, or a `token` form field as Slack still accepts):
  `not_authed` without one, `invalid_auth` for a wrong one;
- refuses a call whose scope the bot token lacks (`missing_scope`, `scopes.py`): the token has
  the scopes the app manifest `app.yaml` asks for, unless told otherwise;
- refuses a call lacking a parameter that Slack's OpenAPI file marks required (`spec.py`, the
  file shipped in `spec/`);
- enforces the Block Kit limits that are cheap to check (`invalid_blocks`, `blockkit.py`);
- records every call and keeps messages per channel and thread, with each message's versions
  (`record.py`);
- can be told to answer 429 with `Retry-After`, to fail with an error, or to answer a method it
  does not implement;
- serves the upload URLs handed out by `files.getUploadURLExternal` and response URLs
  (`response_url(...)`) for Bolt's `respond`;
- is Slack's Socket Mode end too (`standin.socket`, `socket_mode.py`).

Modules: `server.py` (HTTP, checks, dispatch), `spec.py` and `scopes.py` (what Slack requires),
`chat.py`, `views.py`, `people.py` (auth, bots, users, user groups, conversations), `files.py`
(the methods), `workspace.py`, `directory.py`, `record.py` (the state), `protocol.py` (the
wire), `blockkit.py`, `socket_mode.py`, `loopback.py` (uvicorn in a thread).
"""

from demo.slack_standin.blockkit import check_blocks, check_modal
from demo.slack_standin.directory import dm_channel
from demo.slack_standin.loopback import BackgroundServer
from demo.slack_standin.protocol import SlackError
from demo.slack_standin.record import (
    Call,
    Message,
    Record,
    Refusal,
    ResponseUrl,
    UploadedFile,
)
from demo.slack_standin.scopes import MANIFEST_PATH, manifest_scopes, method_scopes
from demo.slack_standin.server import DEFAULT_APP_TOKEN, DEFAULT_TOKEN, SlackApiStandIn
from demo.slack_standin.socket_mode import SocketModeStandIn
from demo.slack_standin.spec import SPEC_PATH, MissingSpec, required_params
from demo.slack_standin.workspace import DEFAULT_IDENTITY, Identity, Workspace

__all__ = [
    "DEFAULT_APP_TOKEN",
    "DEFAULT_IDENTITY",
    "DEFAULT_TOKEN",
    "MANIFEST_PATH",
    "SPEC_PATH",
    "BackgroundServer",
    "Call",
    "Identity",
    "Message",
    "MissingSpec",
    "Record",
    "Refusal",
    "ResponseUrl",
    "SlackApiStandIn",
    "SlackError",
    "SocketModeStandIn",
    "UploadedFile",
    "Workspace",
    "check_blocks",
    "check_modal",
    "dm_channel",
    "manifest_scopes",
    "method_scopes",
    "required_params",
]
