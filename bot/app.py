"""The Bolt app: `/sigfox`, the buttons, App Home. Slack plumbing only, over the core.

Every listener acknowledges at once and does its work in a Bolt lazy listener (a worker thread):
Slack wants an answer within 3 seconds, and a renewal request reads the backend first. With
`process_before_response=True` the acknowledgement is the HTTP answer itself (no polling for it),
which is also what makes lazy listeners the right tool in HTTP mode.

Rules kept here:
- every click is checked by the core against the policy at that moment, with the clicker's user
  groups resolved now (`GroupResolver`); a refusal goes privately to the clicker, nothing changes;
- answers for one person go privately (response_url, ephemeral); what concerns the team goes to
  the channel or the job's thread (the notifier);
- a delivery Slack retries (`X-Slack-Retry-Num`, same `event_id`) or a replayed command (same
  `trigger_id`) runs once: `store.claim_idempotency_key`; double clicks are two distinct clicks
  that the core's compare-and-set turns into one decision;
- the recorded PAC only ever travels in the ephemeral answer to an approver's Show PAC click.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltRequest, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot import blocks
from bot.ack_gate import AckGate, AcksFirstExecutor, attach
from bot.blocks import Message
from bot.groups import GroupResolver
from bot.handler import CommandHandler, Reply, job_lines, scan_timing_line
from bot.modals import ReasonForms
from bot.notifier import SlackNotifier
from commands import grammar as g
from commands import metrics
from commands.config import BotConfig
from commands.policy import Actor, Operation
from commands.workflows import Core
from storage.records import job_label

log = logging.getLogger(__name__)
# For calls carrying a PAC (slack_sdk logs request bodies at DEBUG): a logger outside the
# logging tree, so no handler sees it and no dictConfig (uvicorn calls one) re-enables it.
_SILENT = logging.Logger("bot.silent", level=logging.CRITICAL + 1)
_SILENT.propagate = False

SLASH_COMMAND = g.SLASH_COMMAND


class _GivenClientNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment even when handed a client, then warns
    that the token "will be unused" at every start. The bot builds that client from that very
    token on purpose: the warning says nothing an operator can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_GIVEN_CLIENT_NOTICE = _GivenClientNotice()
logging.getLogger("slack_bolt.App").addFilter(_GIVEN_CLIENT_NOTICE)  # idempotent: one object


def create_bolt_app(client: WebClient, *, listener_executor: Executor | None = None) -> App:
    """A Bolt app with no listener yet: `bot.service.assemble` registers them all.

    Given `client`, Bolt calls no `auth.test` while building the app. `listener_executor` runs
    the lazy listeners (Bolt's default: a pool of 10 threads), each once no request is being
    acknowledged (`bot.ack_gate`).
    """
    gate = AckGate()
    executor = AcksFirstExecutor(
        listener_executor or ThreadPoolExecutor(max_workers=10, thread_name_prefix="lazy"), gate)
    # Signatures are verified by the HTTP edge (`bot.slack_edge`), which hands Bolt the parsed
    # document; Socket Mode needs none.
    app = App(client=client, signing_secret="verified-by-bot.slack_edge",
              request_verification_enabled=False, token_verification_enabled=False,
              process_before_response=True, listener_executor=executor)
    attach(app, gate)
    return app


class Listeners:
    """The listeners' bodies, as methods: Bolt passes arguments by name."""

    def __init__(self, *, core: Core, config: BotConfig, alerts: Any,
                 notifier: SlackNotifier | None, groups: GroupResolver) -> None:
        self.core = core
        self.config = config
        self.alerts = alerts
        self.notifier = notifier
        self.groups = groups
        self.handler = CommandHandler(core, alerts)
        self.forms = ReasonForms(core=core, handler=self.handler, groups=groups)

    def register(self, app: App) -> None:
        app.command(SLASH_COMMAND)(ack=self.ack_command, lazy=[self.run_command])
        for action_id, work in ((blocks.APPROVE, self.approve), (blocks.REJECT, self.reject),
                                (blocks.SHOW_PAC, self.show_pac), (blocks.CANCEL, self.cancel),
                                (blocks.COPY_CALLBACKS, self.copy_callbacks)):
            app.action(action_id)(ack=_ack, lazy=[work])
        app.event("app_home_opened")(ack=_ack, lazy=[self.home_opened])
        self.forms.register(app)
        app.error(_log_error)

    # -- /sigfox --------------------------------------------------------------------------

    def ack_command(self, ack: Ack, command: dict[str, Any]) -> None:
        """A typing mistake is answered in the acknowledgement itself (at once, once); a fleet
        scan, which takes minutes on a large fleet, is acknowledged as started; every other
        command answers within a second or two, so nothing is said before its answer."""
        text = command.get("text") or ""
        parsed = self.handler.parse(text)
        if isinstance(parsed, g.CommandError):
            message = blocks.text_message(parsed.message)
            ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
        elif isinstance(parsed, g.ScanCommand):
            ack(response_type="ephemeral", text=f"Working on `{SLASH_COMMAND} scan`…")
        else:
            ack()

    def run_command(self, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        if isinstance(self.handler.parse(command.get("text") or ""), g.CommandError):
            return  # the acknowledgement already said what was wrong
        if not self._first_delivery(f"slack.command:{command.get('trigger_id', '')}"):
            return
        actor = self.groups.actor(command["user_id"])
        prompt = self.handler.reason_prompt(command.get("text") or "", actor)
        if prompt:  # a large renewal or delete: the requester says why, in a form
            trouble = self.forms.open_request(command, client, prompt)
            if trouble:
                deliver(Reply(blocks.text_message(trouble)), client=client, respond=respond,
                        channel=command.get("channel_id", ""), user=command["user_id"])
            return
        reply = self.handler.handle(command.get("text") or "", actor,
                                    channel=command.get("channel_id", ""))
        deliver(reply, client=client, respond=respond, channel=command.get("channel_id", ""),
                user=command["user_id"])

    # -- buttons --------------------------------------------------------------------------

    def approve(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        self._decide(body, client, respond, approve=True)

    def reject(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """Reject asks why first: a form (modal) whose submission decides."""
        value = _action_value(body)
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button is not an approval request.")
            return
        refusal = self.forms.open_reject(body, client, int(value))
        if refusal:
            self._tell_clicker(body, client, respond, refusal)
            self._redraw_if_settled(int(value))

    def _decide(self, body: dict[str, Any], client: WebClient, respond: Respond, *,
                approve: bool) -> None:
        value = _action_value(body)
        clicker = self.groups.actor(body["user"]["id"])
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button is not an approval request.")
            return
        approval_id = int(value)
        outcome = self.core.decide(approval_id, clicker, approve)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)
            self._redraw_if_settled(approval_id)
        elif _from_home(body):
            self.publish_home(client, clicker, notice=outcome.message)

    def _redraw_if_settled(self, approval_id: int) -> None:
        """An already decided or expired request still showing buttons: show the decision."""
        approval = self.core.store.get_approval(approval_id)
        if approval is not None and approval.state != "pending" and self.notifier is not None:
            self.notifier.refresh_approval(approval_id)

    def show_pac(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(_action_value(body))
        clicker = self.groups.actor(body["user"]["id"])
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no recorded PAC.")
            return
        workflow_id, device_id = parsed
        outcome = self.core.reveal_pac(workflow_id, device_id, clicker)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)
            return
        # Ephemeral, to the approver who asked; never logged, never in a channel message.
        text = (f"PAC of {device_id} recorded by {job_label(workflow_id)}: `{outcome.message}` "
                "(only you can see this message).")
        send_secret_privately(body, client, text)

    def cancel(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        value = _action_value(body)
        clicker = self.groups.actor(body["user"]["id"])
        if not value.isdigit():
            self._tell_clicker(body, client, respond, "This button names no job.")
            return
        outcome = self.core.cancel(int(value), clicker)
        if not outcome.ok:
            self._tell_clicker(body, client, respond, outcome.message)

    def copy_callbacks(self, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        parsed = blocks.parse_pac_value(_action_value(body))
        if parsed is None:
            self._tell_clicker(body, client, respond, "This button names no device of a job.")
            return
        clicker = self.groups.actor(body["user"]["id"])
        outcome = self.core.copy_callbacks(*parsed, clicker)
        # What was copied is told in the job's thread by the core; the clicker hears either way.
        self._tell_clicker(body, client, respond, outcome.message)

    def _tell_clicker(self, body: dict[str, Any], client: WebClient, respond: Respond,
                      text: str) -> None:
        """A private answer to whoever clicked: in the conversation, or on their Home tab."""
        if _from_home(body):
            self.publish_home(client, self.groups.actor(body["user"]["id"]), notice=text)
            return
        container = body.get("container") or {}
        deliver(Reply(blocks.text_message(text)), client=client, respond=respond,
                channel=container.get("channel_id") or (body.get("channel") or {}).get("id", ""),
                user=body["user"]["id"], thread=container.get("thread_ts", ""))

    # -- App Home -------------------------------------------------------------------------

    def home_opened(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        if not self._first_delivery(f"slack.event:{body.get('event_id', '')}"):
            return  # Slack's retry of a delivery already handled
        self.publish_home(client, self.groups.actor(event["user"]))

    def publish_home(self, client: WebClient, actor: Actor, notice: str = "") -> None:
        view = home_view(self.core, actor, self.alerts)
        if notice:
            view["blocks"] = blocks.fit([blocks.section(notice), blocks.divider(),
                                         *view["blocks"]], blocks.MAX_HOME_BLOCKS)
        try:
            client.views_publish(user_id=actor.user_id, view=view)
        except (SlackApiError, SlackClientError) as error:
            log.warning("views.publish for %s failed (%s)", actor.user_id, _describe(error))

    # -- helpers --------------------------------------------------------------------------

    def _first_delivery(self, key: str) -> bool:
        if key.endswith(":"):
            return True  # nothing to recognise a replay by
        return self.core.store.claim_idempotency_key(key, self.core.clock.now())


# --------------------------------------------------------------------------- delivery


def deliver(reply: Reply, *, client: WebClient, respond: Respond | None, channel: str,
            user: str, thread: str = "") -> None:
    """Send a reply: to the channel when public, else privately to `user`. Never raises."""
    message = reply.message
    if reply.attachment is not None and _upload(client, channel, reply, thread):
        return
    try:
        if reply.public and _post(client, channel, message, thread):
            return
        if respond is not None and _respond(respond, message, public=reply.public):
            return
        client.chat_postEphemeral(channel=channel, user=user, text=message.text,
                                  blocks=message.blocks, thread_ts=thread or None)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not answer %s in %s (%s)", user, channel, _describe(error))


def _upload(client: WebClient, channel: str, reply: Reply, thread: str) -> bool:
    """The file with the answer as its comment; False (answer without it) when refused."""
    attachment = reply.attachment
    assert attachment is not None
    try:
        client.files_upload_v2(channel=channel, file=str(attachment.path),
                               filename=attachment.name, title=attachment.title,
                               initial_comment=reply.message.text, thread_ts=thread or None)
        return True
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not post %s in %s (%s)", attachment.name, channel, _describe(error))
        return False
    finally:
        attachment.path.unlink(missing_ok=True)


def _post(client: WebClient, channel: str, message: Message, thread: str) -> bool:
    try:
        client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks,
                                thread_ts=thread or None)
    except (SlackApiError, SlackClientError) as error:
        # Not in that channel (a DM, a private channel): the response URL still works there.
        log.info("chat.postMessage to %s failed (%s); answering through the response URL",
                 channel, _describe(error))
        return False
    return True


def _respond(respond: Respond, message: Message, *, public: bool) -> bool:
    if respond.response_url is None:
        return False
    try:
        respond(text=message.text, blocks=message.blocks, replace_original=False,
                response_type="in_channel" if public else "ephemeral")
    except Exception as error:  # response URLs expire (30 min, 5 uses): fall back
        log.info("response_url failed (%s)", type(error).__name__)
        return False
    return True


def send_secret_privately(body: dict[str, Any], client: WebClient, text: str) -> None:
    """An ephemeral message whose text must appear in no log, not even slack_sdk's DEBUG lines
    (they print request bodies): sent through clients given a disabled logger."""
    message = blocks.text_message(text)
    container = body.get("container") or {}
    url = body.get("response_url")
    try:
        if url:
            WebhookClient(url, logger=_SILENT, timeout=10).send(
                text=message.text, blocks=message.blocks, response_type="ephemeral",
                replace_original=False)
            return
        quiet = WebClient(token=client.token, base_url=client.base_url, logger=_SILENT,
                          retry_handlers=list(client.retry_handlers))
        quiet.chat_postEphemeral(channel=container.get("channel_id", ""),
                                 user=body["user"]["id"], text=message.text,
                                 blocks=message.blocks,
                                 thread_ts=container.get("thread_ts") or None)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not send a private answer (%s)", _describe(error))


# --------------------------------------------------------------------------- App Home


def home_view(core: Core, actor: Actor, alerts: Any = None) -> dict[str, Any]:
    waiting = [a for a in core.store.pending_approvals() if _may_approve(core, actor, a)]
    views = [_approval_view(core, a) for a in waiting]
    can_approve = any(core.policy.can_approve(actor, op, "").allowed
                      for op in Operation if op.guarded)
    return blocks.app_home(approvals=views, jobs=job_lines(core), fleet=fleet_view(alerts),
                           can_approve=can_approve)


def _may_approve(core: Core, actor: Actor, approval: Any) -> bool:
    return not core.may_decide(approval.id, actor)


def _approval_view(core: Core, approval: Any) -> blocks.ApprovalView:
    workflow = core.store.get_workflow(approval.workflow_id)
    devices = tuple(s.device_id for s in core.store.workflow_devices(approval.workflow_id))
    return blocks.ApprovalView(approval.id, job_label(approval.workflow_id),
                               workflow.kind if workflow else "", devices, approval.summary,
                               approval.requested_by, approval.expires_at)


def fleet_view(alerts: Any) -> blocks.FleetView | None:
    """From the alerts module's last scan; None until it exists and has scanned once."""
    summary_of: Callable[[], Any] | None = getattr(alerts, "fleet_summary", None)
    if summary_of is None:
        return None
    try:
        summary = summary_of()
    except Exception:
        log.exception("fleet summary unavailable")
        return None
    if summary.last_scan is None:
        return None
    schedule = ""
    if summary.timing is not None:
        schedule = scan_timing_line(summary.timing, alerts.settings.timezone)
    return blocks.FleetView(summary.devices, dict(summary.by_token_state), summary.ending_7_days,
                            summary.ending_30_days, summary.open_alerts,
                            summary.last_scan.finished_at or summary.last_scan.started_at,
                            weeks=_coming_weeks(alerts), schedule=schedule)


def _coming_weeks(alerts: Any) -> tuple[tuple[str, int], ...]:
    try:
        expiring = alerts.expiring(limit=0)
    except Exception:  # the chart is a picture: its absence must not cost the Home tab
        log.exception("weekly chart unavailable")
        return ()
    return tuple((week.label, week.count) for week in expiring.weeks)


# --------------------------------------------------------------------------- metrics


def register_metrics(core: Core, alerts: Any = None) -> None:
    """Workflows by state, approvals waiting and the last fleet scan, read at scrape time."""
    metrics.set_workflow_state_source(core.store.count_workflows_by_state)
    metrics.set_approvals_waiting_source(lambda: len(core.store.pending_approvals()))
    if alerts is not None:
        metrics.set_scan_source(ScanFigures(alerts))
        metrics.set_last_success_source(alerts.last_success, core.clock.now)


class ScanFigures:
    """The last scan's duration and devices by token state, from the alerts' database.

    Read from the store rather than pushed by the scan, so the figures survive a restart and
    cover every scan (scheduled or `/sigfox scan`). Counting the fleet table costs a query over
    every device: it is redone only when a newer scan has finished, not at every scrape.
    """

    def __init__(self, alerts: Any) -> None:
        self.alerts = alerts
        self._cached: tuple[int, metrics.ScanFigures] | None = None

    def __call__(self) -> metrics.ScanFigures | None:
        scan = self.alerts.last_scan()
        if scan is None:
            return None
        if self._cached is None or self._cached[0] != scan.id:
            summary = self.alerts.fleet_summary()
            self._cached = (scan.id, (float(scan.duration), dict(summary.by_token_state)))
        return self._cached[1]


# --------------------------------------------------------------------------- small helpers


def _ack(ack: Ack) -> None:
    ack()


def _log_error(error: Exception, request: BoltRequest) -> None:
    # The body may hold a command's text: log the error's type and where, not the payload.
    log.error("listener failed: %s", type(error).__name__, exc_info=error)


def _action_value(body: dict[str, Any]) -> str:
    found = body.get("actions") or [{}]
    return str(found[0].get("value") or "")


def _from_home(body: dict[str, Any]) -> bool:
    return (body.get("container") or {}).get("type") == "view"


def _describe(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    return type(error).__name__
