"""`/sigfox <text>` -> a `Reply`: the whole command language, free of Bolt.

`CommandHandler.handle` never raises and always answers something helpful: the listener in
`app.py` only delivers the reply. Requests that change something go through the core (which checks
the policy, the backend, and opens the job whose thread the notifier keeps); reads come from the
store, the alerts module or, for `status`, the core's Sigfox client. The text typed is never
logged: people paste all sorts of things into a command box, PACs included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot import blocks
from bot.blocks import Message
from commands import grammar as g
from commands import human
from commands.config import BotConfig, PolicyConfig
from commands.planning import Request
from commands.policy import Actor, Operation
from commands.ports import Target
from commands.schedules import ScanTiming
from commands.states import Kind
from commands.status import BackendUnavailable
from commands.workflows import Core, Outcome
from sigfox.device_reads import ReadCount
from storage.records import job_label, parse_job_label

log = logging.getLogger(__name__)

# The reads' progress of the request being handled on this thread (`handle`'s `on_read`): the
# command methods share one signature, and the handler is shared by every thread.
_ON_READ: ContextVar[ReadCount | None] = ContextVar("on_read", default=None)

NO_ALERTS = ("Fleet alerts are not set up on this bot yet, so there is no scan data to answer "
             "from. Ask an admin to enable them.")


@dataclass(frozen=True)
class Attachment:
    """A file to post with the answer (a CSV). The file is removed once sent."""

    path: Path
    name: str
    title: str


@dataclass(frozen=True)
class Reply:
    """What to answer: privately to the person who typed, or to the whole channel."""

    message: Message
    public: bool = False
    attachment: Attachment | None = None

    @property
    def text(self) -> str:
        return self.message.text


def private(text: str) -> Reply:
    return Reply(blocks.text_message(text))


class CommandHandler:
    """Runs one typed command for one person. Thread-safe: it keeps no state of its own."""

    def __init__(self, core: Core, alerts: Any = None,
                 today: Callable[[], date] | None = None) -> None:
        self.core = core
        self.alerts = alerts
        self._today = today or (lambda: datetime.fromtimestamp(core.clock.now(), UTC).date())

    def parse(self, text: str) -> g.Command | g.CommandError:
        """The typed text as a command, or what is wrong with it (no Slack, no Sigfox)."""
        try:
            return g.parse_command(text, today=self._today())
        except Exception:  # handle() reports it; an acknowledgement must never fail
            log.exception("command could not be parsed")
            return g.HelpCommand()

    def handle(self, text: str, actor: Actor, *, channel: str, thread: str = "",
               reason: str = "", on_read: ReadCount | None = None) -> Reply:
        """`reason`: why the requester asks, for a renewal or delete (asked by a form when
        the job is large). `on_read(read, wanted)`: told as a request's devices are read."""
        token = _ON_READ.set(on_read)
        try:
            return self._handle(text, actor, channel=channel, thread=thread, reason=reason)
        finally:
            _ON_READ.reset(token)

    def _handle(self, text: str, actor: Actor, *, channel: str, thread: str, reason: str
                ) -> Reply:
        try:
            command = g.parse_command(text, today=self._today())
            if isinstance(command, g.CommandError):
                return private(command.message)
            refusal = self._refusal(command, actor)
            if refusal:
                return private(refusal)
            target = Target(channel, thread)
            if reason and isinstance(command, g.RenewCommand):
                return self._renew(command, actor, target, reason)
            if reason and isinstance(command, g.DeleteCommand):
                return self._delete(command, actor, target, reason)
            return self._run(command, actor, target)
        except BackendUnavailable as error:
            return private(f"{error}; nothing was changed. Try again in a moment.")
        except Exception as error:  # the person typing must always get an answer
            log.exception("command failed (%s)", type(error).__name__)
            return private("Something went wrong on the bot's side; nothing was changed. Try "
                           "again, and tell the bot's admins if it keeps happening.")

    def reason_prompt(self, text: str, actor: Actor) -> str:
        """What to ask the requester before a large renewal or delete runs, or "" when the
        command needs no reason (or will be refused anyway: `handle` says why)."""
        command = g.parse_command(text, today=self._today())
        if isinstance(command, g.RenewCommand):
            operation, devices = Operation.RENEW, len(command.device_ids)
        elif isinstance(command, g.DeleteCommand):
            operation, devices = Operation.DELETE, 1
        else:
            return ""
        if self._refusal(command, actor) or not self.core.reason_refusal(operation, devices, ""):
            return ""
        return (f"`/sigfox {blocks.clip(text.strip(), 300)}` is a large job "
                f"({human.plural(devices, 'device')}): say why you ask. The approvers see it "
                "on the request; it stays in the job's history.")

    def _refusal(self, command: g.Command, actor: Actor) -> str:
        operation = g.spec_of(command).operation
        if operation is None:
            return ""
        decision = self.core.policy.can_request(actor, operation)
        return "" if decision.allowed else decision.reason

    def _run(self, command: g.Command, actor: Actor, target: Target) -> Reply:
        return self.runner(g.spec_of(command))(command, actor, target)

    def runner(self, spec: g.CommandSpec) -> Callable[[Any, Actor, Target], Reply]:
        """The method answering a command is named after it (`renew` -> `_renew`), so a command
        is declared once, in `commands.grammar.COMMANDS`, and found here by its name."""
        method: Callable[[Any, Actor, Target], Reply] = getattr(self, f"_{spec.name}")
        return method

    # -- help, whoami, config -------------------------------------------------------------

    def _help(self, command: g.HelpCommand, actor: Actor, target: Target) -> Reply:
        allowed = self.core.policy.allowed_operations(actor)
        if command.topic:
            spec = g.COMMANDS[command.topic]
            if spec.operation is not None and spec.operation not in allowed:
                return private(f"You may not run `{command.topic}`. "
                               f"{self.core.policy.can_request(actor, spec.operation).reason}")
            return Reply(blocks.help_message(g.command_help(command.topic)))
        return Reply(blocks.help_message(g.help_text(allowed)))

    def _whoami(self, command: g.WhoamiCommand, actor: Actor, target: Target) -> Reply:
        policy = self.core.policy
        may = sorted(op.value for op in policy.allowed_operations(actor))
        approves = sorted(op.value for op in self.core.approvable_operations(actor))
        groups = ", ".join(f"<!subteam^{gid}>" for gid in sorted(actor.group_ids)) or "none"
        lines = [
            f"You are <@{actor.user_id}> (`{actor.user_id}`).",
            f"User groups that count for the policy: {groups}.",
            f"You may run: {', '.join(may) or 'nothing'}.",
            f"You may approve: {', '.join(approves) or 'nothing'}.",
        ]
        return private("\n".join(lines))

    def _config(self, command: g.ConfigCommand, actor: Actor, target: Target) -> Reply:
        config = self.core.config
        policy, alerts = config.policy, config.alerts
        lines = [
            f"*Policy* ({config_origin(config)})",
            f"• requesters: {_principals(policy.requesters)}",
            f"• approvers: {_principals(policy.approvers) or 'nobody'}",
            f"• self-approval: {'allowed' if policy.allow_self_approval else 'not allowed'}; "
            f"requests expire after {human.duration(policy.approval_ttl)}",
        ]
        lines += _scaled_approval_lines(policy, config.timing.approval_reminder)
        for name, override in sorted(policy.operations.items()):
            line = (f"• `{name}`: requesters {_principals(override.requesters or ())}, "
                    f"approvers {_principals(override.approvers or ())}")
            if override.approvals is not None:
                line += f", {human.plural(override.approvals, 'approver')} needed"
            if override.wait_timer:
                line += f", starts {human.duration(override.wait_timer)} after its approval"
            lines.append(line)
        channel = human.slack_channel(alerts.channel, none="no channel")
        lines += [f"*Alerts* to {channel}: warn {human.plural(alerts.warn_days, 'day')} ahead, "
                  f"critical {human.plural(alerts.critical_days, 'day')} ahead, scan every "
                  f"{human.duration(alerts.scan_interval)}"]
        lines += [f"• route to <#{r.channel}>: types {', '.join(r.device_types) or '—'}, "
                  f"groups {', '.join(r.groups) or '—'}" for r in alerts.routes]
        return private("\n".join(lines))

    # -- status and history ----------------------------------------------------------------

    def _status(self, command: g.StatusCommand, actor: Actor, target: Target) -> Reply:
        view = self.core.device_status(command.device_id)
        if view is None:
            return private(f"Device {command.device_id} is not in this Sigfox account. Check the "
                           "id on the device's label.")
        return Reply(blocks.status_card(view))

    def _history(self, command: g.HistoryCommand, actor: Actor, target: Target) -> Reply:
        events = self.core.device_history(command.device_id, limit=40)
        lines = [blocks.HistoryLineView(e.time, job_label(e.workflow_id), e.kind, e.text)
                 for e in events]
        lines += self._snooze_lines(command.device_id)
        lines.sort(key=lambda line: line.time)
        return Reply(blocks.history(command.device_id, lines))

    def _snooze_lines(self, device_id: str) -> list[blocks.HistoryLineView]:
        """Snoozes belong to a device's history too: who silenced its alerts, and why."""
        snoozes = getattr(self.alerts, "snooze_history", None)
        if snoozes is None:
            return []
        try:
            found = snoozes(device_id)
        except ValueError:  # not a device id the alerts know how to read
            return []
        return [blocks.HistoryLineView(s.created_at, "alerts", "snooze",
                                       f"Alerts snoozed by <@{s.snoozed_by}>: {s.reason}")
                for s in found]

    # -- requests --------------------------------------------------------------------------

    def _request(self, kind: Kind, actor: Actor, target: Target, device_ids: tuple[str, ...],
                 device_type: str | None = None, unsubscribe_at_ms: int | None = None,
                 reason: str = "", by_delete: bool = False) -> Reply:
        outcome = self.core.request(Request(kind, actor, device_ids, target, device_type,
                                            unsubscribe_at_ms, reason, by_delete),
                                    on_read=_ON_READ.get())
        return _outcome_reply(outcome)

    def _renew(self, command: g.RenewCommand, actor: Actor, target: Target,
               reason: str = "") -> Reply:
        return self._request(Kind.RENEW, actor, target, command.device_ids, command.device_type,
                             reason=reason, by_delete=command.by_delete)

    def _delete(self, command: g.DeleteCommand, actor: Actor, target: Target,
                reason: str = "") -> Reply:
        return self._request(Kind.DELETE, actor, target, (command.device_id,), reason=reason)

    def _transfer(self, command: g.TransferCommand, actor: Actor, target: Target) -> Reply:
        return self._request(Kind.TRANSFER, actor, target, command.device_ids,
                             command.device_type)

    def _restart(self, command: g.RestartCommand, actor: Actor, target: Target) -> Reply:
        return self._request(Kind.RESTART, actor, target, command.device_ids)

    def _unsubscribe(self, command: g.UnsubscribeCommand, actor: Actor, target: Target) -> Reply:
        at_ms = int(command.at.timestamp() * 1000)
        return self._request(Kind.UNSUBSCRIBE, actor, target, (command.device_id,),
                             unsubscribe_at_ms=at_ms)

    def _cancel(self, command: g.CancelCommand, actor: Actor, target: Target) -> Reply:
        workflow_id = parse_job_label(command.job_id)
        if workflow_id is None:
            return private(f"`{command.job_id}` is not a job id: `/sigfox jobs` lists them, "
                           "like `J-0042`.")
        return _outcome_reply(self.core.cancel(workflow_id, actor))

    def _jobs(self, command: g.JobsCommand, actor: Actor, target: Target) -> Reply:
        return Reply(blocks.jobs_list(job_lines(self.core)))

    # -- alerts ------------------------------------------------------------------------------

    def _expiring(self, command: g.ExpiringCommand, actor: Actor, target: Target) -> Reply:
        if self.alerts is None:
            return private(NO_ALERTS)
        if command.csv:
            path, name, rows = self.alerts.expiring_csv(command.days)
            text = (f"The {human.plural(rows, 'token')} ending within "
                    f"{human.plural(command.days, 'day')}, as a CSV file.")
            return Reply(blocks.text_message(text), public=True,
                         attachment=Attachment(path, name, text))
        return Reply(expiring_message(self.alerts.expiring(command.days, limit=EXPIRING_SHOWN),
                                      command.days))

    def _alerts(self, command: g.AlertsCommand, actor: Actor, target: Target) -> Reply:
        if self.alerts is None:
            return private(NO_ALERTS)
        return Reply(alerts_message(self.alerts.list_alerts_and_snoozes()))

    def _snooze(self, command: g.SnoozeCommand, actor: Actor, target: Target) -> Reply:
        if self.alerts is None:
            return private(NO_ALERTS)
        outcomes = [self.alerts.snooze(d, actor=actor, duration=command.duration,
                                       reason=command.reason)
                    for d in command.device_ids]
        text = "\n".join(o.message for o in outcomes)
        # A snooze silences the team's alerts: the team sees who did it.
        return Reply(blocks.text_message(text), public=any(o.ok for o in outcomes))

    def _scan(self, command: g.ScanCommand, actor: Actor, target: Target) -> Reply:
        if self.alerts is None:
            return private(NO_ALERTS)
        report = self.alerts.scan(started_by=actor.user_id)
        when = scan_timing_line(self.alerts.scan_timing(), self.alerts.settings.timezone)
        if not report.ok:
            return private(f"The scan did not complete: {report.error}\n{when}")
        return private(f"Fleet scan done: {report.devices:,} devices in {report.duration:.0f} s; "
                       f"{len(report.digests)} alert digest(s) posted.\n{when}")


# --------------------------------------------------------------------------- reads and renderings


def _outcome_reply(outcome: Outcome) -> Reply:
    """The job's thread states the plan for everyone; the person who asked is told where it
    is and what happens next, not the plan a second time."""
    summary = str((outcome.details or {}).get("summary") or "")
    label = job_label(outcome.workflow_id) if outcome.workflow_id else ""
    head = f"{label}: {summary}"
    if not (summary and label and outcome.message.startswith(head)) or outcome.joined:
        return private(outcome.message)
    rest = " ".join(outcome.message.removeprefix(head).split())
    return private(f"{label} is open in its thread. {rest}".strip())


def _scaled_approval_lines(policy: PolicyConfig, reminder: timedelta) -> list[str]:
    lines = [f"• reminders by direct message every "
             f"{human.duration(policy.remind_every or reminder)}"]
    if policy.large_job_devices is not None:
        lines.append(f"• from {human.plural(policy.large_job_devices, 'device')}: "
                     f"{policy.large_job_approvals} different approvers, none the requester, "
                     "and a reason for a renewal or delete")
    if policy.escalate_after is not None:
        lines.append(f"• no decision after {human.duration(policy.escalate_after)}: also ask "
                     f"{_principals(policy.escalation_approvers)}")
    return lines


def _principals(ids: tuple[str, ...] | list[str]) -> str:
    return ", ".join("anyone" if p == "*" else human.slack_person(p) for p in ids)


def config_origin(config: BotConfig) -> str:
    """Where the settings shown come from, truthfully: a file, the defaults, or the program."""
    if config.source is not None:
        return str(config.source)
    if config == BotConfig():
        return "built-in defaults: no SIGFOX_BOT_CONFIG file, so nobody may approve"
    return "set by the program running the bot, not read from a file"


def job_lines(core: Core, active_only: bool = True) -> list[blocks.JobLineView]:
    lines = []
    for workflow in core.jobs(active_only)[:20]:
        lines.append(blocks.JobLineView(workflow.label, workflow.kind, workflow.state,
                                        core.job_devices(workflow.id),
                                        workflow.requester, workflow.updated_at,
                                        workflow.channel, note=core.reads.stop_note(workflow)))
    return lines


EXPIRING_SHOWN = 5  # devices named; the rest is one `csv` away
RENEWS = ":recycle:"  # marks a token that renews automatically


def expiring_message(summary: Any, days: int | None = None) -> Message:
    """The coming weeks as a bar chart, the soonest devices, and what was left out."""
    days = summary.days if days is None else days
    if summary.as_of is None:
        text = ("No fleet scan has completed yet, so nothing is known about tokens ending. "
                "`/sigfox scan` runs one now.")
        return blocks.text_message(text)
    head = (f"*{human.plural(summary.total, 'token')} end within {human.plural(days, 'day')}* "
            f"(fleet scan of {blocks.slack_date(summary.as_of)})")
    if not summary.total:
        return blocks.text_message(head)
    chart = blocks.week_chart([(w.label, w.count) for w in summary.weeks])
    soonest = [f"• {human.device(d.device_id, d.name, d.device_type, code=True)}: "
               f"{human.day(d.token_end, summary.tz)}" + (f" {RENEWS}" if d.renews else "")
               for d in summary.devices]
    if summary.renewing:
        # Device, device type and contract all allow it: these need nobody, so no warning.
        head += (f"\n{RENEWS} {human.plural(summary.renewing, 'renews', 'renew')} "
                 "automatically, so no warning")
    more = human.and_more(summary.total, len(summary.devices), f"`/sigfox expiring {days} csv`")
    lines = [head, chart, "*Soonest*", *soonest] + ([more] if more else [])
    return blocks.text_message("\n".join(lines))


def alerts_message(overview: Any) -> Message:
    lines = [f"*{human.plural(overview.total_open, 'open alert')}*"]
    lines += [f"• {c.label}: {c.count:,}" for c in overview.counts]
    if overview.top:
        lines.append("*Most urgent*")
        lines += [f"• {human.device(item.device_id, item.name, item.device_type, code=True)}: "
                  f"{item.condition.label}" for item in overview.top]
        more = human.and_more(overview.total_open, len(overview.top),
                              "every one is in the CSV of the last alert digest")
        lines += [more] if more else []
    lines.append(f"*{human.plural(overview.snoozes_total, 'active snooze')}*")
    lines += [f"• {s.device_id} by <@{s.snoozed_by}>"
              + (f" until {human.day(s.until)}" if s.until else " until resolved")
              + (f": {s.reason}" if s.reason else "")
              for s in overview.snoozes]
    more = human.and_more(overview.snoozes_total, len(overview.snoozes))
    lines += [more] if more else []
    if overview.scan_problem:
        lines.append(f":warning: {overview.scan_problem.text()}")
    lines += [f":hourglass: {waiting.text(ZoneInfo(overview.timezone))}"
              for waiting in overview.undelivered]
    if overview.timing is not None:
        lines.append(scan_timing_line(overview.timing, overview.timezone))
    return blocks.text_message("\n".join(lines))


def scan_timing_line(timing: ScanTiming, timezone: str) -> str:
    """`Last scan completed ... (2 hours ago); next scan due ... (in 4 hours).`"""
    tz = ZoneInfo(timezone)
    return timing.sentence(lambda ts: human.moment(ts, tz))
