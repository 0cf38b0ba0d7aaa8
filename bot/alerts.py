"""Alerts in Slack: the `AlertSink` that posts digests, and the digest buttons' handlers.

Message budget per channel per scan, whatever the fleet size: one digest, one CSV file in its
thread, at most NOTE_LIMIT threaded lines for new alerts (or one summary line) and one threaded
message for resolved ones. Buttons carry only a device id and a condition; every click is
checked against the policy again, and a refusal is answered to the clicker alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from commands import human
from commands.alerts import (
    AlertDigest,
    AlertItem,
    AlertService,
    Condition,
    DailyDigest,
    DeviceReport,
    Level,
    ScanProblem,
)
from commands.approvals import clean_reason
from commands.planning import Request
from commands.policy import Actor, Operation
from commands.ports import Target
from commands.states import Kind
from commands.workflows import Core

log = logging.getLogger(__name__)

SNOOZES: dict[str, tuple[str, timedelta | None]] = {
    "1d": ("Snooze 1 day", timedelta(days=1)),
    "7d": ("Snooze 7 days", timedelta(days=7)),
    "resolved": ("Snooze until resolved", None),
}
_ICON = {Level.CRITICAL: ":red_circle:", Level.WARNING: ":large_orange_circle:"}


# --------------------------------------------------------------------------- the sink


class SlackAlertSink:
    """Posts alert digests with slack_sdk; threads the CSV and the per-alert lines.

    Raising means "not delivered": the service tells it again at the next scan. Only the digest
    itself counts; once it is posted, a failing upload or threaded line is logged, not raised,
    so a retry never posts the same digest twice.
    """

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def deliver_digest(self, digest: AlertDigest) -> None:
        if not digest.channel:
            log.warning("alert digest of scan %d not posted: no [alerts] channel configured "
                        "and no [[alerts.routes]] entry matched", digest.scan_id)
            return
        answer = self.client.chat_postMessage(
            channel=digest.channel, text=_fallback(digest), blocks=digest_blocks(digest)
        )
        channel, ts = answer["channel"], answer["ts"]
        try:
            self._upload_csv(channel, ts, digest.csv_path, digest.csv_name,
                             f"All {digest.csv_rows:,} alerts of this digest")
            self._thread_notes(channel, ts, digest)
        except SlackApiError as error:
            log.warning("alert digest of scan %d posted in %s, its thread incomplete: %s",
                        digest.scan_id, channel, error.response.get("error"))

    def deliver_scan_problem(self, problem: ScanProblem) -> str | None:
        """Post the failure (returns its ts) or the recovery, in the failure's thread."""
        if not problem.channel:
            log.warning("fleet scan problem not posted: no [alerts] channel configured")
            return None
        thread = problem.thread or None
        icon = ":white_check_mark:" if problem.resolved else ":warning:"
        answer = self.client.chat_postMessage(
            channel=problem.channel, text=f"{icon} {problem.text()}", thread_ts=thread,
            reply_broadcast=bool(thread),
        )
        return str(answer["ts"])

    def deliver_daily(self, digest: DailyDigest) -> None:
        if not digest.channel:
            log.warning("daily alert digest not posted: no [alerts] channel configured")
            return
        text = f"{digest.summary.total:,} Sigfox tokens end in the next {digest.summary.days} days"
        if digest.late_note:
            text += f" ({digest.late_note})"
        answer = self.client.chat_postMessage(
            channel=digest.channel, text=text, blocks=daily_blocks(digest)
        )
        self._upload_csv(answer["channel"], answer["ts"], digest.csv_path, digest.csv_name,
                         "Every token ending in the window")

    def _upload_csv(self, channel: str, ts: str, path: Any, name: str, title: str) -> None:
        if path is None:
            return
        self.client.files_upload_v2(
            channel=channel, thread_ts=ts, file=str(path), filename=name, title=title
        )

    def _thread_notes(self, channel: str, ts: str, digest: AlertDigest) -> None:
        if digest.announced_collapsed:
            self._reply(channel, ts, f":bell: {digest.announced_summary()}")
        for item in digest.announced:
            self._reply(channel, ts, _note_text(item, digest), device_line_blocks(item, digest))
        if digest.resolved_collapsed:
            self._reply(channel, ts, f":white_check_mark: {digest.resolved_summary()}")
        elif digest.resolved:
            self._reply(channel, ts, resolved_text(digest))

    def _reply(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None
               ) -> None:
        self.client.chat_postMessage(channel=channel, thread_ts=ts, text=text, blocks=blocks)


def _fallback(digest: AlertDigest) -> str:
    return f"{digest.title()} ({digest.changes_line()})"


# --------------------------------------------------------------------------- Block Kit


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:2900]}


def _button(action_id: str, text: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": value,
                              "text": {"type": "plain_text", "text": text}}
    if style:
        button["style"] = style
    return button


def alert_value(item: AlertItem) -> str:
    return f"{item.device_id}|{item.condition.value}"


def _device_menu(item: AlertItem) -> dict[str, Any]:
    value = alert_value(item)
    options = [("Renew…", f"renew|{value}")]
    options += [(label, f"snooze:{key}|{value}") for key, (label, _) in SNOOZES.items()]
    options.append(("Details", f"details|{value}"))
    return {
        "type": "overflow",
        "action_id": "alert_menu",
        "options": [{"text": {"type": "plain_text", "text": t}, "value": v} for t, v in options],
    }


def digest_blocks(digest: AlertDigest) -> list[dict[str, Any]]:
    tz, now = digest.tz, digest.created_at
    counts = "\n".join(f"*{c.count:,}* {c.label}" for c in digest.counts) or "none"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": digest.title()[:150]}},
        {"type": "section", "text": _mrkdwn(f"{counts}\n_This scan: {digest.changes_line()}_")},
    ]
    if digest.top:
        blocks.append({"type": "section", "text": _mrkdwn("*Most urgent*")})
    for item in digest.top:
        blocks.append({"type": "section", "accessory": _device_menu(item),
                       "text": _mrkdwn(f"{_ICON[item.level]} {_item_text(item, tz, now)}")})
    more = human.and_more(digest.total_open, len(digest.top))
    listed = f"{more}: every" if more else "Every"
    blocks.append({"type": "context", "elements": [_mrkdwn(
        f":paperclip: {listed} alert is in the CSV file in this message's thread "
        f"({digest.csv_name}, {human.plural(digest.csv_rows, 'row')}) · Renew asks for an "
        "approval first")]})
    return blocks


def _item_text(item: AlertItem, tz: ZoneInfo, now: float) -> str:
    return item.describe(tz, now, code=True)


def _note_text(item: AlertItem, digest: AlertDigest) -> str:
    verb = {"new": "New", "worse": "Worse", "repeat": "Still open"}.get(str(item.change), "")
    return f"{verb}: {_item_text(item, digest.tz, digest.created_at)}"


def device_line_blocks(item: AlertItem, digest: AlertDigest) -> list[dict[str, Any]]:
    """One alert with its buttons: Renew, Snooze (1 day, 7 days, until resolved), Details."""
    value = alert_value(item)
    snooze = {
        "type": "static_select",
        "action_id": "alert_snooze",
        "placeholder": {"type": "plain_text", "text": "Snooze…"},
        "options": [{"text": {"type": "plain_text", "text": label}, "value": f"{key}|{value}"}
                    for key, (label, _) in SNOOZES.items()],
    }
    return [
        {"type": "section",
         "text": _mrkdwn(f"{_ICON[item.level]} {_note_text(item, digest)}")},
        {"type": "actions", "elements": [
            _button("alert_renew", "Renew…", value, "primary"), snooze,
            _button("alert_details", "Details", value),
        ]},
    ]


def resolved_text(digest: AlertDigest) -> str:
    lines = [f"`{i.device_id}` {i.name} — {i.condition.label}: {i.resolution or 'cleared'}"
             for i in digest.resolved]
    return ":white_check_mark: Resolved:\n" + "\n".join(lines)


def daily_blocks(digest: DailyDigest) -> list[dict[str, Any]]:
    summary = digest.summary
    tz = summary.tz
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": f"Tokens ending in the next {summary.days} days"}},
        {"type": "section", "text": _mrkdwn(f"*{summary.total:,}* tokens end by "
                                            f"{_day(summary.now + summary.days * 86400, tz)}")},
    ]
    if digest.late_note:
        blocks.insert(1, {"type": "context",
                          "elements": [_mrkdwn(f":hourglass: {digest.late_note}")]})
    for week in summary.weeks[:20]:
        names = ", ".join(f"`{d.device_id}`" for d in week.devices)
        more = f" and {week.count - len(week.devices):,} more" if week.count > len(week.devices) \
            else ""
        blocks.append({"type": "section",
                       "text": _mrkdwn(f"*{week.label}*: {week.count:,} — {names}{more}")})
    if digest.open_alerts:
        counts = ", ".join(f"{c.count:,} {c.label}" for c in digest.open_alerts)
        blocks.append({"type": "context", "elements": [_mrkdwn(f"Open alerts: {counts}")]})
    return blocks


def details_text(report: DeviceReport, tz: ZoneInfo) -> str:
    if not report.known:
        return f"Device `{report.device_id}` was not in the last fleet scan."
    end = _day(report.token_end, tz) if report.token_end else "no end date"
    lines = [f"*{report.device_id}* {report.name} ({report.device_type}, {report.group})",
             f"Token: {report.token_state}, ends {end}; scanned {_day(report.scanned_at, tz)}"]
    lines += [f"• {a.condition.label} ({a.level.name.lower()}) since {_day(a.first_seen, tz)}"
              for a in report.alerts]
    lines += [f"• snoozed by <@{s.snoozed_by}> "
              f"{'until resolved' if s.until is None else 'until ' + _day(s.until, tz)}: "
              f"{s.reason}" for s in report.snoozes]
    return "\n".join(lines)


def _day(ts: float | None, tz: ZoneInfo) -> str:
    return human.day(ts, tz, none="never")


# --------------------------------------------------------------------------- the buttons


class AlertServices(Protocol):
    """What the handlers need; `actor_for` (optional) resolves a user's user groups."""

    core: Core
    alerts: AlertService


ActorLookup = Callable[[str], Actor]


def register_alert_actions(bolt_app: Any, services: AlertServices) -> None:
    """Register the `alert_*` block action handlers on a Bolt `App`."""
    handlers = _Handlers(services)
    # Acknowledge at once, work in a lazy listener: a renewal's pre-flight reads Sigfox and
    # could outlast Slack's 3 s acknowledgement window.
    for action_id, work in (("alert_renew", handlers.renew), ("alert_snooze", handlers.snooze),
                            ("alert_details", handlers.details), ("alert_menu", handlers.menu)):
        bolt_app.action(action_id)(ack=_acknowledge, lazy=[work])
    # A snooze asks how long and why, in a form; its submission is checked in the ack.
    bolt_app.view(blocks.SNOOZE_MODAL)(ack=handlers.check_snooze, lazy=[handlers.snooze_form])


def _acknowledge(ack: Callable[..., Any]) -> None:
    ack()


class _Handlers:
    def __init__(self, services: AlertServices) -> None:
        self.services = services
        lookup: ActorLookup | None = getattr(services, "actor_for", None)
        self.actor_for: ActorLookup = lookup or (lambda user_id: Actor(user_id))

    def renew(self, body: dict[str, Any], client: WebClient) -> None:
        device_id, _ = _split(_action(body)["value"])
        self._renew(body, client, device_id)

    def snooze(self, body: dict[str, Any], client: WebClient) -> None:
        key, device_id, condition = _action(body)["selected_option"]["value"].split("|")
        self._snooze(body, client, key, device_id, condition)

    def details(self, body: dict[str, Any], client: WebClient) -> None:
        device_id, _ = _split(_action(body)["value"])
        self._details(body, client, device_id)

    def menu(self, body: dict[str, Any], client: WebClient) -> None:
        verb, device_id, condition = _action(body)["selected_option"]["value"].split("|")
        if verb == "renew":
            self._renew(body, client, device_id)
        elif verb.startswith("snooze:"):
            self._snooze(body, client, verb.split(":", 1)[1], device_id, condition)
        else:
            self._details(body, client, device_id)

    # -- the work, each behind its own permission check ------------------------------------

    def _allowed(self, body: dict[str, Any], client: WebClient, operation: Operation
                 ) -> Actor | None:
        actor = self.actor_for(body["user"]["id"])
        decision = self.services.core.policy.can_request(actor, operation)
        if decision.allowed:
            return actor
        _private(client, body, decision.reason)
        return None

    def _renew(self, body: dict[str, Any], client: WebClient, device_id: str) -> None:
        actor = self._allowed(body, client, Operation.RENEW)
        if actor is None:
            return
        channel, thread = _where(body)
        outcome = self.services.core.request(Request(
            kind=Kind.RENEW, actor=actor, device_ids=(device_id,),
            target=Target(channel=channel, thread=thread),
        ))
        _private(client, body, outcome.message)

    def _snooze(self, body: dict[str, Any], client: WebClient, key: str, device_id: str,
                condition: str) -> None:
        """Open the snooze form, the chosen duration preselected; the submission snoozes."""
        actor = self._allowed(body, client, Operation.SNOOZE)
        if actor is None or key not in SNOOZES:
            return
        channel, thread = _where(body)
        metadata = json.dumps({"device": device_id, "condition": condition, "channel": channel,
                               "thread": thread})
        choices = [(k, label) for k, (label, _) in SNOOZES.items()]
        modal = blocks.snooze_modal(device_id, choices, key, metadata)
        try:
            client.views_open(trigger_id=body.get("trigger_id", ""), view=modal)
        except SlackApiError as error:
            log.warning("views.open failed: %s", error.response.get("error"))
            _private(client, body, "Slack did not open the snooze form (it allows 3 seconds "
                                   "after a click): choose again.")

    def check_snooze(self, ack: Callable[..., Any], view: dict[str, Any]) -> None:
        key, reason = _snooze_answers(view)
        if key not in SNOOZES:
            ack(response_action="errors",
                errors={blocks.DURATION_BLOCK: "Choose how long to snooze."})
        elif len(reason) < 3:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: (
                "Say why, in a few words: the team reads it with the snooze.")})
        else:
            ack()

    def snooze_form(self, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        key, reason = _snooze_answers(view)
        if key not in SNOOZES or len(reason) < 3:
            return  # refused in the form (Bolt runs the lazy listener anyway)
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            return
        actor = self.actor_for(body["user"]["id"])
        outcome = self.services.alerts.snooze(
            str(meta.get("device", "")), actor=actor, duration=SNOOZES[key][1],
            condition=Condition(meta["condition"]) if meta.get("condition") else None,
            reason=reason,
        )
        channel, thread = str(meta.get("channel", "")), str(meta.get("thread", ""))
        if outcome.ok:
            _post(client, channel, thread, f":zzz: {outcome.message}")
            return
        _private_at(client, channel, thread, body["user"]["id"], outcome.message)

    def _details(self, body: dict[str, Any], client: WebClient, device_id: str) -> None:
        if self._allowed(body, client, Operation.ALERTS) is None:
            return
        report = self.services.alerts.device_report(device_id)
        _private(client, body, details_text(report, self.services.alerts.settings.tz))


def _snooze_answers(view: dict[str, Any]) -> tuple[str, str]:
    """The duration chosen and the reason typed in the snooze form."""
    values = (view.get("state") or {}).get("values") or {}
    chosen = (values.get(blocks.DURATION_BLOCK) or {}).get(blocks.DURATION_INPUT) or {}
    key = str((chosen.get("selected_option") or {}).get("value") or "")
    typed = (values.get(blocks.REASON_BLOCK) or {}).get(blocks.REASON_INPUT) or {}
    return key, clean_reason(str(typed.get("value") or ""))


def _action(body: dict[str, Any]) -> dict[str, Any]:
    return body["actions"][0]


def _split(value: str) -> tuple[str, str]:
    device_id, _, condition = value.partition("|")
    return device_id, condition


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """Channel and thread of the clicked message (its thread, or the message itself)."""
    channel = (body.get("channel") or {}).get("id", "")
    message = body.get("message") or body.get("container") or {}
    thread = message.get("thread_ts") or message.get("ts") or message.get("message_ts") or ""
    return channel, thread


def _private(client: WebClient, body: dict[str, Any], text: str) -> None:
    """Answer the clicker alone (in a channel: ephemeral; elsewhere: a direct message)."""
    channel, thread = _where(body)
    _private_at(client, channel, thread, body["user"]["id"], text)


def _private_at(client: WebClient, channel: str, thread: str, user: str, text: str) -> None:
    try:
        if channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text,
                                      thread_ts=thread or None)
        else:
            client.chat_postMessage(channel=user, text=text)
    except SlackApiError as error:
        log.warning("could not answer %s privately: %s", user, error.response.get("error"))


def _post(client: WebClient, channel: str, thread: str, text: str) -> None:
    try:
        client.chat_postMessage(channel=channel, thread_ts=thread or None, text=text)
    except SlackApiError as error:
        log.warning("could not post in %s: %s", channel, error.response.get("error"))
