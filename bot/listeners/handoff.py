"""Listeners that acknowledge, then hand their work off: what Bolt's lazy listeners did, for
the price of one executor submit.

Starting a Bolt lazy listener deep-copies the whole request (body, context, client) in the
thread that is answering Slack, about 1.5 ms of CPU while every other ack of a burst waits for
the GIL (docs/benchmarks.md, "Slash command acknowledgement"). `handing_off` builds the one
listener Bolt calls instead: it acknowledges (a bare `ack()`, or `check`, which answers in the
ack itself, e.g. a form's errors), then hands `work` to the app's gated executor
(`bot.ack_gate.hand_off`), which runs it once the acks in flight are sent, within the gate's
`max_hold` of the hand-off.

The work gets what a lazy listener got, passed explicitly from this request: `body`, the
request's `client` (Bolt builds one per request) and `respond` (its response URL), and what
Bolt names `command` (a slash command's body), `view` and `event` (parts of the body). It asks
for them by parameter name, read once at registration; a name outside `ARGUMENTS` is refused
then, not at the first click. Nothing copies the body: Bolt parsed it for this request alone
and nothing changes it after the ack.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.ack_gate import hand_off

# What a check or a piece of work may ask for, taken from the request as Bolt gives it.
ARGUMENTS: dict[str, Callable[[dict[str, Any], WebClient, Respond], Any]] = {
    "body": lambda body, client, respond: body,
    "command": lambda body, client, respond: body,  # a slash command's body is the command
    "client": lambda body, client, respond: client,
    "respond": lambda body, client, respond: respond,
    "view": lambda body, client, respond: body.get("view"),
    "event": lambda body, client, respond: body.get("event"),
}


def handing_off(app: App, work: Callable[..., None],
                check: Callable[..., bool] | None = None) -> Callable[..., None]:
    """The Bolt listener that acknowledges and hands `work` off. `check(ack, ...)` answers in
    the acknowledgement and returns whether there is work (False: it said what was wrong, and
    nothing runs); without it the request is acknowledged with nothing to say."""
    work_wants = _wanted(work)
    check_wants = _wanted(check, ack=True) if check is not None else ()

    def acknowledge_and_hand_off(ack: Ack, body: dict[str, Any], client: WebClient,
                                 respond: Respond) -> None:
        if check is None:
            ack()
        elif not check(ack, **_arguments(check_wants, body, client, respond)):
            return  # the acknowledgement refused it (shown to the person): no work
        hand_off(app, work, **_arguments(work_wants, body, client, respond))

    return acknowledge_and_hand_off


def _wanted(fn: Callable[..., Any], *, ack: bool = False) -> tuple[str, ...]:
    names = tuple(inspect.signature(fn).parameters)
    if ack:
        if names[:1] != ("ack",):
            raise TypeError(f"{fn.__name__}: a check takes `ack` first, got {names}")
        names = names[1:]
    unknown = [name for name in names if name not in ARGUMENTS]
    if unknown:
        raise TypeError(f"{fn.__name__} asks for {unknown}: handed-off work may ask for "
                        f"{sorted(ARGUMENTS)}")
    return names


def _arguments(names: tuple[str, ...], body: dict[str, Any], client: WebClient,
               respond: Respond) -> dict[str, Any]:
    return {name: ARGUMENTS[name](body, client, respond) for name in names}
