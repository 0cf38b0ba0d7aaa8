"""Alerts in Slack: the `AlertSink` that posts digests with their buttons.

Message budget per channel per scan, whatever the fleet size: one digest, one CSV file in its
thread, at most NOTE_LIMIT threaded lines for new alerts (or one summary line) and one threaded
message for resolved ones. Buttons carry only a device id and a condition; their listeners
(bot/listeners/alert_actions.py) check every click against the policy again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from commands import human
from commands.alerting import (
    AlertDigest,
    AlertItem,
    ConditionCount,
    DailyDigest,
    DeviceReport,
    Level,
    ScanProblem,
)

log = logging.getLogger(__name__)

SNOOZES: dict[str, tuple[str, timedelta | None]] = {
    "1d": ("Snooze 1 day", timedelta(days=1)),
    "7d": ("Snooze 7 days", timedelta(days=7)),
    "resolved": ("Snooze until resolved", None),
}
# The action ids of the alert buttons (their listeners: bot/listeners/alert_actions.py).
ALERT_RENEW = "alert_renew"
ALERT_SNOOZE = "alert_snooze"
ALERT_DETAILS = "alert_details"
ALERT_MENU = "alert_menu"
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
        try:  # posted: from here a failure is logged, or the retry would post it twice
            self._upload_csv(answer["channel"], answer["ts"], digest.csv_path, digest.csv_name,
                             "Every token ending in the window")
        except SlackApiError as error:
            log.warning("daily digest posted in %s without its CSV: %s", answer["channel"],
                        error.response.get("error"))

    def _upload_csv(self, channel: str, ts: str, path: Path | None, name: str, title: str
                    ) -> None:
        if path is None:
            return
        self.client.files_upload_v2(
            channel=channel, thread_ts=ts, file=str(path), filename=name, title=title
        )

    def _thread_notes(self, channel: str, ts: str, digest: AlertDigest) -> None:
        """A line with buttons per changed alert, when there are few. Past NOTE_LIMIT nothing
        more is said: the digest already counts the changes and the CSV lists them."""
        for item in digest.announced:
            self._reply(channel, ts, _note_text(item, digest), device_line_blocks(item, digest))
        if digest.resolved and not digest.resolved_collapsed:
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
        "action_id": ALERT_MENU,
        "options": [{"text": {"type": "plain_text", "text": t}, "value": v} for t, v in options],
    }


def counts_by_level(counts: Iterable[ConditionCount]) -> str:
    """`*Critical*: 8 Off Contract · 20 token Invalid` then `*Warning*: ...`, one line each."""
    lines = []
    for level in (Level.CRITICAL, Level.WARNING):
        parts = [f"{c.count:,} {c.condition.label}" for c in counts if c.level is level]
        if parts:
            lines.append(f"*{level.name.capitalize()}*: " + " · ".join(parts))
    return "\n".join(lines)


def digest_blocks(digest: AlertDigest) -> list[dict[str, Any]]:
    tz, now = digest.tz, digest.created_at
    counts = counts_by_level(digest.counts) or "none"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": f"{digest.title()} ({digest.changes_line()})"[:150]}},
        {"type": "section", "text": _mrkdwn(counts)},
    ]
    if digest.top:
        blocks.append({"type": "section", "text": _mrkdwn("*Most urgent*")})
    for item in digest.top:
        blocks.append({"type": "section", "accessory": _device_menu(item),
                       "text": _mrkdwn(f"{_ICON[item.level]} {_item_text(item, tz, now)}")})
    more = human.and_more(digest.total_open, len(digest.top))
    every = f"the CSV in the thread lists all {digest.csv_rows:,}"
    blocks.append({"type": "context", "elements": [_mrkdwn(
        f":paperclip: {more}: {every}" if more else f":paperclip: {every[0].upper()}"
                                                     f"{every[1:]}")]})
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
        "action_id": ALERT_SNOOZE,
        "placeholder": {"type": "plain_text", "text": "Snooze…"},
        "options": [{"text": {"type": "plain_text", "text": label}, "value": f"{key}|{value}"}
                    for key, (label, _) in SNOOZES.items()],
    }
    return [
        {"type": "section",
         "text": _mrkdwn(f"{_ICON[item.level]} {_note_text(item, digest)}")},
        {"type": "actions", "elements": [
            _button(ALERT_RENEW, "Renew…", value, "primary"), snooze,
            _button(ALERT_DETAILS, "Details", value),
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
