"""Block Kit builders: plain data in, `Message(text, blocks)` out. No Slack calls, no Sigfox.

Every builder respects Slack's limits so a message is never refused for its shape: at most 50
blocks (`MAX_BLOCKS`; 100 in a Home view), section text at most 3,000 characters, a button's text
75 and its value 2,000. `text` is the notification fallback Slack shows where blocks are not
rendered (push notifications, screen readers), so it always says the essential thing too.

Nothing here ever receives a PAC: the status card gets one the core already masked.

One module on purpose (over 500 lines): the messages are made of each other's parts. An
approval's head and its Approve/Reject pair stand in the channel request, the reminder DM and
the Home tab; a job's state label in its parent message, the jobs list and the Home tab; the
Home tab shows the jobs list itself. Split by message kind, each module would import the
others' private parts; all of them build through the primitives and `fit` below, which hold the
limits above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from commands import human
from commands.read_models import ApprovalRequest
from commands.status import DeviceStatus

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_TEXT = 2000
MAX_HEADER_TEXT = 150

APPROVE = "sigfox_approve"
REJECT = "sigfox_reject"
SHOW_PAC = "sigfox_show_pac"
CANCEL = "sigfox_cancel"
COPY_CALLBACKS = "sigfox_copy_callbacks"
KEEP_WAITING = "sigfox_keep_waiting"
STOP_WAITING = "sigfox_stop_waiting"

_STATE_LABELS = {
    "awaiting_approval": ":hourglass_flowing_sand: Waiting for approval",
    "approved": ":arrow_forward: Starting",  # approved, or needing no approval
    "running": ":arrows_counterclockwise: Running",
    "done": ":large_green_circle: Done",
    "failed": ":red_circle: Failed",
    "rejected": ":no_entry_sign: Rejected",
    "expired": ":alarm_clock: Approval expired",
    "cancelled": ":heavy_multiplication_x: Cancelled",
    "stopped": ":octagonal_sign: Stopped part-way",
}


@dataclass(frozen=True)
class Message:
    """What to send: fallback text plus blocks."""

    text: str
    blocks: list[Block] = field(default_factory=list)


# --------------------------------------------------------------------------- primitives


def clip(text: str, limit: int) -> str:
    """Cut text to `limit` characters, marking the cut (Slack refuses longer, it never trims)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text or " ", limit)}


def plain(text: str, limit: int = MAX_BUTTON_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text or " ", limit), "emoji": True}


def section(text: str, *, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def fields_section(pairs: Sequence[tuple[str, str]]) -> Block:
    """Up to 10 label/value fields, shown two per row."""
    return {
        "type": "section",
        "fields": [mrkdwn(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in pairs[:10]],
    }


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text, MAX_CONTEXT_TEXT)]}


def divider() -> Block:
    return {"type": "divider"}


def button(action_id: str, text: str, value: str, *, style: str | None = None,
           confirm: dict[str, Any] | None = None) -> Block:
    if len(value) > MAX_BUTTON_VALUE:
        raise ValueError(f"a button value holds at most {MAX_BUTTON_VALUE} characters")
    element: Block = {"type": "button", "action_id": action_id, "text": plain(text),
                      "value": value}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def actions(elements: Sequence[Block], block_id: str | None = None) -> list[Block]:
    """Buttons in rows of at most 25 (Slack's limit per actions block)."""
    rows = [list(elements[i : i + MAX_ACTIONS_ELEMENTS])
            for i in range(0, len(elements), MAX_ACTIONS_ELEMENTS)]
    blocks: list[Block] = []
    for n, row in enumerate(rows):
        block: Block = {"type": "actions", "elements": row}
        if block_id:
            block["block_id"] = block_id if n == 0 else f"{block_id}-{n}"
        blocks.append(block)
    return blocks


def fit(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    """Keep the first blocks and say how many were left out, within `limit`."""
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    return [*kept, context(f"…{len(blocks) - len(kept)} more not shown.")]


def slack_date(ts: float, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A timestamp each reader sees in their own time zone; the fallback is UTC."""
    return f"<!date^{int(ts)}^{fmt}|{human.moment(ts)}>"


def devices_text(devices: Sequence[str], limit: int = 10) -> str:
    rest = human.and_more(len(devices), limit)
    return " ".join(filter(None, [", ".join(f"`{d}`" for d in devices[:limit]), rest]))


def state_label(state: str) -> str:
    return _STATE_LABELS.get(state, state.replace("_", " ").capitalize())


# --------------------------------------------------------------------------- approvals


@dataclass(frozen=True)
class ApprovalView(ApprovalRequest):
    """An approval request as a message shows it: the core's read model, and who may still
    decide as mentions (users; a user group whose members the bot can't read)."""

    waiting_for: tuple[str, ...] = ()


def approval_view(request: ApprovalRequest, waiting_for: tuple[str, ...] = ()) -> ApprovalView:
    """The view of a request; only the notifier can expand user groups into `waiting_for`."""
    values = {f.name: getattr(request, f.name) for f in fields(request)}
    return ApprovalView(**values, waiting_for=waiting_for)


def _approval_head(view: ApprovalView) -> list[Block]:
    blocks = [
        section(f"*{view.job}: {view.operation} {devices_text(view.devices)}* requested by "
                f"<@{view.requester}>"),
        section(view.summary),
    ]
    if view.reason:
        blocks.append(section(f"*Reason:* {view.reason}"))
    return blocks


def approval_progress(view: ApprovalView) -> str:
    """"1 of 2 approvals: @bob; waiting for one more of @carol, @dan"."""
    left = view.required - len(view.approved_by)
    who = ", ".join(view.waiting_for[:15]) or "nobody (no approver can decide it: ask an admin)"
    if view.required == 1:
        return f"Waiting for one of {who} to decide."
    more = "one more" if left == 1 else f"{left} more"
    done = ", ".join(f"<@{u}>" for u in view.approved_by) or "none yet"
    return (f"{len(view.approved_by)} of {view.required} approvals: {done}; waiting for {more} "
            f"of {who} (different people, not the requester).")


def approve_confirmation(view: ApprovalView) -> dict[str, Any]:
    """Slack's confirm dialog on Approve: wherever the button is, one more look at what it does."""
    return {
        "title": plain("Approve this?", 100),
        "text": mrkdwn(clip(view.summary, 300)),
        "confirm": plain("Approve", 30),
        "deny": plain("Not yet", 30),
    }


def _decision_buttons(view: ApprovalView, *, block_id: str) -> list[Block]:
    """Approve (with its confirm dialog) and Reject; each value is the approval id only."""
    value = str(view.approval_id)
    return actions([button(APPROVE, "Approve", value, style="primary",
                           confirm=approve_confirmation(view)),
                    button(REJECT, "Reject", value, style="danger")], block_id=block_id)


def approval_request(view: ApprovalView) -> Message:
    """The request with Approve/Reject; the button value is the approval id, nothing else."""
    blocks = [
        *_approval_head(view),
        # Where it stands and until when, in one line: a thread reads better short.
        context(f"{approval_progress(view)} It expires {slack_date(view.expires_at)}; one "
                "Reject refuses it."
                + (f" Escalated {slack_date(view.escalated_at)}." if view.escalated_at else "")),
        *_decision_buttons(view, block_id=f"approval-{view.approval_id}"),
    ]
    text = f"{view.job}: approval needed to {view.operation} {', '.join(view.devices[:5])}"
    return Message(text, fit(blocks))


def approval_decided(view: ApprovalView, *, decision: str, by: str, at: float,
                     reason: str = "") -> Message:
    """The same request once decided (approved, rejected, cancelled): no buttons any more."""
    mark = {"approved": ":white_check_mark:", "rejected": ":no_entry_sign:"}.get(
        decision, ":heavy_multiplication_x:")
    who = f" by <@{by}>" if by else ""
    line = f"{mark} *{decision.capitalize()}*{who} {slack_date(at)}" + (
        f": {reason}" if reason else "")
    blocks = [*_approval_head(view), context(line)]
    return Message(f"{view.job}: {decision}{who}", fit(blocks))


def approval_expired(view: ApprovalView, *, at: float) -> Message:
    line = (f":alarm_clock: *Expired* {slack_date(at)} without a decision: nothing was "
            f"changed. Ask again with `/sigfox {view.operation} ...` if still needed.")
    return Message(f"{view.job}: the approval request expired", fit([*_approval_head(view),
                                                                     context(line)]))


# --------------------------------------------------------------------------- job thread


@dataclass(frozen=True)
class JobView:
    """The parent message of a job: what, for whom, where it stands now."""

    job: str
    workflow_id: int
    operation: str
    devices: tuple[str, ...]
    state: str
    requester: str
    latest: str = ""
    approval_note: str = ""
    cancellable: bool = False
    starts_at: float = 0.0  # approved, in its wait timer: when it starts
    # Running over several devices, not stopped yet: Cancel stops those not touched yet.
    stoppable: bool = False




def job_parent(view: JobView) -> Message:
    blocks: list[Block] = [
        section(f"*{view.job}: {view.operation} {devices_text(view.devices)}*\n"
                f"{state_label(view.state)}"),
        context(f"Requested by <@{view.requester}> · progress in the thread"),
    ]
    if view.approval_note:
        blocks.append(section(view.approval_note))
    if view.starts_at and view.state == "approved":
        blocks.append(section(f":stopwatch: {clip(view.latest, 300)} "
                              f"(at {slack_date(view.starts_at, '{time}')})"))
    elif view.latest:
        blocks.append(context(f"Latest: {clip(view.latest, 1500)}"))
    if view.cancellable:
        blocks += actions([button(CANCEL, "Cancel job", str(view.workflow_id))],
                          block_id=f"job-{view.workflow_id}")
    elif view.stoppable and view.state == "running":
        blocks += actions([button(CANCEL, "Stop the rest", str(view.workflow_id),
                                  confirm=stop_confirmation(view))],
                          block_id=f"job-{view.workflow_id}")
    text = f"{view.job}: {view.operation} {', '.join(view.devices[:5])}: {state_label(view.state)}"
    return Message(text, fit(blocks))


def stop_confirmation(view: JobView) -> dict[str, Any]:
    """Slack's confirm dialog on Stop the rest: what it stops and what it cannot."""
    return {
        "title": plain("Stop this job?", 100),
        "text": mrkdwn(f"The devices of {view.job} on which nothing was sent to Sigfox yet are "
                       "stopped and left as they are. Those already changed are finished."),
        "confirm": plain("Stop the rest", 30),
        "deny": plain("Keep going", 30),
    }


def job_line(text: str, *, mark: str = "·") -> Message:
    """One step or waiting line in a job's thread."""
    return Message(text, [section(f"{mark} {text}")])


def job_summary(*, job: str, workflow_id: int, ok: bool, text: str, next_steps: str = "",
                pac_devices: Sequence[str] = (), copy_devices: Sequence[str] = ()) -> Message:
    """The end of a job: what happened, what to do next, Show PAC and Copy callbacks (both for
    approvers only; the core checks the clicker)."""
    mark = ":large_green_circle:" if ok else ":red_circle:"
    blocks: list[Block] = [section(f"{mark} *{job}*: {text}")]
    if next_steps:
        blocks.append(section(f"*What next:* {next_steps}"))
    if pac_devices:
        blocks.append(context("The PAC was recorded before the delete. Approvers can see it "
                              "privately:"))
        blocks += actions([button(SHOW_PAC, f"Show PAC {d}", pac_value(workflow_id, d))
                           for d in pac_devices], block_id=f"pac-{workflow_id}")
    if copy_devices:
        blocks.append(context("The previous device type had callbacks the new one lacks. "
                              "Approvers can copy them (it changes the new type for all its "
                              "devices):"))
        blocks += actions([button(COPY_CALLBACKS, f"Copy callbacks {d}", pac_value(workflow_id, d))
                           for d in copy_devices], block_id=f"callbacks-{workflow_id}")
    return Message(f"{job}: {text.splitlines()[0] if text else ''}", fit(blocks))


def release_overdue(text: str, workflow_id: int, device_id: str) -> Message:
    """Sigfox holds a deleted id past release_timeout: the job goes on trying, and approvers
    choose to keep waiting or to stop and get the PAC (privately) to register it by hand."""
    value = pac_value(workflow_id, device_id)
    blocks: list[Block] = [section(f":hourglass: {text}")]
    blocks += actions([button(KEEP_WAITING, "Keep waiting", value),
                       button(STOP_WAITING, f"Stop, show me the PAC of {device_id}", value,
                              style="danger")], block_id=f"release-{workflow_id}-{device_id}")
    return Message(text, fit(blocks))


def pac_value(workflow_id: int, device_id: str) -> str:
    """`job:device`, the value of the Show PAC and Copy callbacks buttons."""
    return f"{workflow_id}:{device_id}"


def parse_pac_value(value: str) -> tuple[int, str] | None:
    workflow, _, device = value.partition(":")
    return (int(workflow), device) if workflow.isdigit() and device else None


# --------------------------------------------------------------------------- answers to commands


def status_card(view: DeviceStatus) -> Message:
    last = slack_date(view.last_message_at) if view.last_message_at else "never"
    blocks = [
        header(f"Device {view.device_id}" + (f" · {view.name}" if view.name else "")),
        fields_section([
            ("State", view.state), ("Token", view.token),
            ("Token ends", view.token_end), ("Last message", last),
            ("Device type", view.device_type), ("Contract", view.contract),
            ("Contract ends", view.contract_end), ("PAC", view.pac_masked),
        ]),
    ]
    if view.note:
        blocks.append(context(view.note))
    return Message(f"Device {view.device_id}: {view.token}", blocks)


def text_message(text: str) -> Message:
    """Long text split over sections (3,000 characters each), within the block limit."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines() or [""]:
        piece = clip(line, MAX_SECTION_TEXT)
        if current and len(current) + 1 + len(piece) > MAX_SECTION_TEXT:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n{piece}" if current else piece
    chunks.append(current)
    return Message(clip(text, 3000), fit([section(c) for c in chunks]))


def help_message(text: str) -> Message:
    return text_message(text)


@dataclass(frozen=True)
class JobLineView:
    job: str
    operation: str
    state: str
    devices: tuple[str, ...]
    requester: str
    updated_at: float
    channel: str = ""
    note: str = ""  # after the state: "stopping: 980 stopped untouched, 20 being finished"


def jobs_list(jobs: Sequence[JobLineView], *, title: str = "Running jobs") -> Message:
    if not jobs:
        return Message("No job is running.", [section("No job is running.")])
    blocks: list[Block] = [header(title)]
    for job in jobs:
        where = f" in <#{job.channel}>" if job.channel else ""
        blocks.append(section(
            f"*{job.job}* {job.operation} {devices_text(job.devices, 5)}: "
            f"{state_label(job.state)}{f' ({job.note})' if job.note else ''}\n"
            f"by <@{job.requester}>{where}, last change "
            f"{slack_date(job.updated_at)}"))
    return Message(f"{len(jobs)} job(s)", fit(blocks))


@dataclass(frozen=True)
class HistoryLineView:
    time: float
    job: str
    kind: str
    text: str


def history(device_id: str, lines: Sequence[HistoryLineView]) -> Message:
    if not lines:
        text = f"The bot has done nothing to {device_id} yet."
        return Message(text, [section(text)])
    rows = [f"{slack_date(line.time, '{date_short} {time}')} *{line.job}* {line.text}"
            for line in lines]
    message = text_message("\n".join(rows))
    return Message(f"History of {device_id}", fit([header(f"History of {device_id}"),
                                                   *message.blocks]))


# --------------------------------------------------------------------------- App Home


@dataclass(frozen=True)
class FleetView:
    devices: int
    by_token_state: dict[str, int]
    ending_7_days: int
    ending_30_days: int
    open_alerts: int = 0
    scanned_at: float | None = None
    weeks: tuple[tuple[str, int], ...] = ()  # (label, tokens ending that week), coming weeks
    schedule: str = ""  # when the last scan completed and the next is due


def week_chart(weeks: Sequence[tuple[str, int]], width: int = 20) -> str:
    """The coming weeks as a bar chart in text, one line a week, in a code block so the bars
    line up in every Slack client: `week of Mon 30 Nov │██████████ 10`."""
    if not weeks:
        return ""
    largest = max(n for _, n in weeks)
    label_width = max(len(label) for label, _ in weeks)
    lines = [f"{label:<{label_width}} │{human.bar(n, largest, width):<{width}} {n:,}"
             for label, n in weeks]
    return "```" + "\n".join(lines) + "```"


def app_home(*, approvals: Sequence[ApprovalView], jobs: Sequence[JobLineView],
             fleet: FleetView | None, can_approve: bool) -> dict[str, Any]:
    """The Home tab: approvals waiting for me, jobs running, the fleet at a glance."""
    blocks: list[Block] = [header("Approvals waiting for you")]
    if not approvals:
        blocks.append(context("Nothing to approve." if can_approve else
                              "You are not an approver; nothing waits for you."))
    for view in approvals[:10]:
        blocks += [*_approval_head(view)[:1],
                   *_decision_buttons(view, block_id=f"home-approval-{view.approval_id}")]
    blocks += [divider(), header("Jobs running")]
    blocks += jobs_list(jobs).blocks[1:] if jobs else [context("No job is running.")]
    blocks += [divider(), header("Fleet at a glance"), *_fleet_blocks(fleet)]
    return {"type": "home", "blocks": fit(blocks, MAX_HOME_BLOCKS)}


def _fleet_blocks(fleet: FleetView | None) -> list[Block]:
    if fleet is None:
        return [context("Fleet figures appear after the first fleet scan (`/sigfox scan`).")]
    states = ", ".join(f"{name.replace('_', ' ')}: {n:,}"
                       for name, n in sorted(fleet.by_token_state.items())) or "—"
    blocks = [fields_section([
        ("Devices", f"{fleet.devices:,}"), ("By token state", states),
        ("Tokens ending in 7 days", f"{fleet.ending_7_days:,}"),
        ("Tokens ending in 30 days", f"{fleet.ending_30_days:,}"),
        ("Open alerts", f"{fleet.open_alerts:,}"),
    ])]
    if fleet.weeks:
        blocks.append(section("*Tokens ending, week by week*\n" + week_chart(fleet.weeks)))
    if fleet.scanned_at:
        blocks.append(context(f"As of the fleet scan of {slack_date(fleet.scanned_at)}."))
    if fleet.schedule:
        blocks.append(context(fleet.schedule))
    return blocks


# --------------------------------------------------------------------------- modals

REJECT_MODAL = "sigfox_reject_reason"
SNOOZE_MODAL = "sigfox_snooze_reason"
REQUEST_REASON_MODAL = "sigfox_request_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
DURATION_BLOCK = "duration"
DURATION_INPUT = "duration_input"
MAX_REASON_INPUT = 500
MAX_METADATA = 3000


def _reason_input(label: str, hint: str) -> Block:
    return {"type": "input", "block_id": REASON_BLOCK, "label": plain(label, 2000),
            "hint": plain(hint, 2000),
            "element": {"type": "plain_text_input", "action_id": REASON_INPUT,
                        "multiline": True, "min_length": 3, "max_length": MAX_REASON_INPUT}}


def _modal(callback_id: str, title: str, submit: str, metadata: str,
           blocks: list[Block]) -> dict[str, Any]:
    if len(metadata) > MAX_METADATA:
        raise ValueError(f"private_metadata holds at most {MAX_METADATA} characters")
    return {"type": "modal", "callback_id": callback_id, "title": plain(title, 24),
            "submit": plain(submit, 24), "close": plain("Cancel", 24),
            "private_metadata": metadata, "blocks": fit(blocks, MAX_HOME_BLOCKS)}


def reject_modal(view: ApprovalView, metadata: str) -> dict[str, Any]:
    """Reject asks why: the reason goes to the thread, `/sigfox history` and the audit log."""
    return _modal(REJECT_MODAL, "Reject the request", "Reject", metadata, [
        section(f"*{view.job}: {view.operation} {devices_text(view.devices)}* requested by "
                f"<@{view.requester}>"),
        context(clip(view.summary, MAX_CONTEXT_TEXT)),
        _reason_input("Why do you reject it?", "The requester and the team see it in the "
                                               "job's thread."),
    ])


def request_reason_modal(prompt: str, metadata: str) -> dict[str, Any]:
    """A large renewal or delete: the requester says why before approvers are asked."""
    return _modal(REQUEST_REASON_MODAL, "Why this large job?", "Ask for approval", metadata, [
        section(prompt),
        _reason_input("Reason", "Approvers see it on the request; it stays in the history."),
    ])


def snooze_modal(device_id: str, choices: Sequence[tuple[str, str]], chosen: str,
                 metadata: str) -> dict[str, Any]:
    """How long to silence a device's alert, and why (`choices`: value, label)."""
    options = [{"text": plain(label, 75), "value": value} for value, label in choices]
    initial = [o for o in options if o["value"] == chosen]
    select: Block = {"type": "static_select", "action_id": DURATION_INPUT, "options": options}
    if initial:
        select["initial_option"] = initial[0]
    return _modal(SNOOZE_MODAL, "Snooze an alert", "Snooze", metadata, [
        section(f"Silence the alerts of `{device_id}` for the team."),
        {"type": "input", "block_id": DURATION_BLOCK, "label": plain("For how long", 2000),
         "element": select},
        _reason_input("Why", "Shown with the snooze in `/sigfox alerts`."),
    ])


def approval_reminder(view: ApprovalView, *, text: str, link: str = "",
                      escalated: bool = False) -> Message:
    """A direct message to someone who may decide: what waits, where, and the buttons."""
    lead = (":arrow_up: *Escalated to you*" if escalated else ":bell: *Reminder*")
    where = f" (<{link}|the request in its channel>)" if link else ""
    blocks = [
        section(f"{lead}: {view.job} waits for a decision{where}. {text}"),
        *_approval_head(view),
        section(approval_progress(view)),
        *_decision_buttons(view, block_id=f"dm-approval-{view.approval_id}"),
    ]
    return Message(f"{view.job} waits for your decision: {view.operation} "
                   f"{', '.join(view.devices[:5])}", fit(blocks))
