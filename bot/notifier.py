"""The core's `Notifier` for Slack: one thread per job, its parent message kept current.

- The parent message is posted in the job's channel at its first event and updated in place
  (`chat.update`) when the job's state changes. Its channel and ts are the notifier's own
  records (`storage.edge.EdgeRecords`), so after a restart the same job goes on in the same
  thread.
- Steps, waits, decisions and the final summary are replies in that thread. A wait repeated with
  nothing said in between edits its line in place ("waiting for the release, 25 min") instead of
  adding one line every five minutes.
- Approval requests are replies with Approve/Reject, referenced from the parent; once decided,
  expired or cancelled they are redrawn from the core's read model without buttons
  (`refresh_approval`).
- A big job (more devices than `device_lines_up_to`) gets no line per device: the first device
  to reach each step gets a line for that phase, every failure gets its own, and the card counts
  the devices where they stand, edited at most every `progress_interval` seconds. A thousand
  devices make a handful of thread lines and a bounded number of edits, not thousands of posts.
- Writes to one channel are paced (`min_interval`, Slack accepts about one message per second per
  channel; bot/posting.py); a 429 is retried after its Retry-After by the WebClient's retry
  handler.
- Slack failing never reaches the core: every delivery problem is logged (error code only) and
  the job goes on. No PAC ever comes here: `Progress` never carries one.
- It carries ids (`Progress.workflow_id`, the approval id in its details) and reads the core
  only through `commands.read_models.ReadModels`, never its store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import blocks
from bot.blocks import ApprovalView, JobView, Message
from bot.posting import DEFAULT_POST_INTERVAL, ChannelPacer, SlackPoster, describe
from commands import human
from commands.ports import Progress, ProgressKind
from commands.read_models import ApprovalRequest, ReadModels
from commands.states import CANCELLABLE, Kind
from storage import buttons as carrying
from storage.buttons import ButtonMessages
from storage.edge import EdgeRecords
from storage.records import job_label

log = logging.getLogger(__name__)

KV_PREFIX = "slack.job."
DM_PREFIX = "slack.approval-dms."  # the direct messages sent about one approval request
_MARKS = {
    ProgressKind.REQUESTED: ":inbox_tray:",
    ProgressKind.DECIDED: ":ballot_box_with_check:",
    ProgressKind.VOTE: ":ballot_box_with_check:",
    ProgressKind.ESCALATED: ":arrow_up:",
    ProgressKind.STEP_DONE: ":small_blue_diamond:",
    ProgressKind.WAITING: ":hourglass:",
    ProgressKind.FAILED: ":x:",
}
_PAC_KINDS = {Kind.RENEW.value, Kind.DELETE.value}


DEFAULT_PROGRESS_INTERVAL = 5.0  # seconds between two edits of a big job's card
DEFAULT_DEVICE_LINES = 10  # jobs of more devices get counts on their card instead


class SlackNotifier:
    """Implements `commands.ports.Notifier` with Slack messages."""

    def __init__(self, client: WebClient, reads: ReadModels, records: EdgeRecords, *,
                 min_interval: float = DEFAULT_POST_INTERVAL,
                 pacer: ChannelPacer | None = None,
                 progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
                 device_lines_up_to: int = DEFAULT_DEVICE_LINES,
                 clock: Callable[[], float] = time.monotonic,
                 buttons: ButtonMessages | None = None) -> None:
        self.client = client
        self.reads = reads
        self.records = records
        # Every message posted with a job's buttons, where the click listeners look it up.
        self.buttons = buttons or ButtonMessages(records.database)
        self.poster = SlackPoster(client, pacer or ChannelPacer(min_interval))
        self.progress_interval = progress_interval
        self.device_lines_up_to = device_lines_up_to
        self._clock = clock
        self._card_at: dict[int, float] = {}  # when each big job's card was last edited
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- the Notifier protocol ------------------------------------------------------------

    def notify(self, progress: Progress) -> None:
        if not progress.target.channel:
            return  # a job started outside Slack (CLI, demo) has no thread to keep
        try:
            with self._lock_for(progress.workflow_id):
                self._deliver(progress)
        except Exception as error:  # never let a chat outage stop a renewal half-way
            log.warning("could not post progress of %s to Slack (%s)", progress.job,
                        describe(error))

    def _lock_for(self, workflow_id: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(workflow_id, threading.Lock())

    def _deliver(self, progress: Progress) -> None:
        ref = self._thread(progress)
        if ref is None:
            return
        if self._counted_on_card(progress, ref):
            self.records.set_value(_key(progress.workflow_id), ref)
            return
        handler = {
            ProgressKind.APPROVAL_NEEDED: self._approval_needed,
            ProgressKind.DECIDED: self._decided,
            ProgressKind.VOTE: self._vote,
            ProgressKind.REMINDER: self._reminder,
            ProgressKind.ESCALATED: self._escalated,
            ProgressKind.WAITING: self._waiting,
            ProgressKind.FINISHED: self._finished,
            ProgressKind.FAILED: self._failed,
        }.get(progress.kind, self._line)
        handler(progress, ref)
        self._refresh_parent(progress, ref)
        self.records.set_value(_key(progress.workflow_id), ref)

    # -- big jobs --------------------------------------------------------------------------

    def _counted_on_card(self, progress: Progress, ref: dict[str, Any]) -> bool:
        """A device's step or wait in a big job: a line only for the first device of its
        phase, else only the card's counts (at a bounded rate). True when handled so."""
        if progress.kind not in (ProgressKind.STEP_DONE, ProgressKind.WAITING):
            return False
        if len(progress.devices) != 1:
            return False
        counts = self.reads.step_counts(progress.workflow_id)
        total = sum(counts.values())
        if total <= self.device_lines_up_to:
            return False
        detail = progress.details.get("step") or progress.details.get("wait") or ""
        phase = f"{progress.kind.value}:{detail}"
        phases: list[str] = ref.setdefault("phases", [])
        if phase not in phases:
            phases.append(phase)
            text = f"{progress.text} (the first of {total:,} devices; the card counts the others)"
            self._reply(ref, blocks.job_line(text, mark=_MARKS[progress.kind]))
        self._count_on_card(progress, ref, counts)
        return True

    def _count_on_card(self, progress: Progress, ref: dict[str, Any],
                       counts: dict[str, int]) -> None:
        now = self._clock()
        if now - self._card_at.get(progress.workflow_id, -1e12) < self.progress_interval:
            return
        self._card_at[progress.workflow_id] = now
        state = self._state(progress)
        view = replace(self._job_view(progress, state=state, note=ref.get("approval_note", "")),
                       latest=step_counts_text(counts))
        if self.poster.update(ref["channel"], ref["ts"], blocks.job_parent(view)):
            ref["state"] = state

    # -- the thread ------------------------------------------------------------------------

    def thread_of(self, workflow_id: int) -> dict[str, Any] | None:
        """`{"channel", "ts", "thread", ...}` of a job's parent message, once posted."""
        return self.records.get_value(_key(workflow_id))

    def _thread(self, progress: Progress) -> dict[str, Any] | None:
        ref = self.thread_of(progress.workflow_id)
        if ref:
            return ref
        view = self._job_view(progress, state=self._state(progress))
        message = blocks.job_parent(view)
        answer = self.poster.post(progress.target.channel, message, thread=progress.target.thread)
        if answer is None:
            return None
        ts = str(answer["ts"])
        self._carries(progress.workflow_id, answer, carrying.CARD)
        ref = {"channel": str(answer["channel"]), "ts": ts,
               "thread": progress.target.thread or ts, "state": view.state, "last": "",
               "waiting": {}, "approval_note": ""}
        self.records.set_value(_key(progress.workflow_id), ref)
        return ref

    def _reply(self, ref: dict[str, Any], message: Message) -> str | None:
        answer = self.poster.post(ref["channel"], message, thread=ref["thread"])
        if answer is None:
            return None
        ref["last"] = str(answer["ts"])
        return ref["last"]

    def _line(self, progress: Progress, ref: dict[str, Any]) -> None:
        mark = _MARKS.get(progress.kind, "·")
        text = progress.text
        advice = progress.details.get("restart_advice")
        if progress.kind == ProgressKind.REQUESTED:
            who = f"Requested by <@{progress.details.get('requester', '')}>"
            if self._state(progress) == "awaiting_approval" and not advice:
                return  # the approval request posted next says who asked and the plan
            # The parent says who asked; the thread's first line says what will be done.
            text = f"{who}." if self._state(progress) == "awaiting_approval" else text
            if advice:
                text += (f"\nA restart would bring {', '.join(advice)} back without losing its "
                         f"history: `/sigfox restart {' '.join(advice)}`.")
        self._reply(ref, blocks.job_line(text, mark=mark))

    def _waiting(self, progress: Progress, ref: dict[str, Any]) -> None:
        """The same wait, with nothing said since: edit its line instead of adding one."""
        workflow_id = progress.workflow_id
        if progress.details.get("release_overdue") and workflow_id and progress.devices:
            ts = self._reply(ref, blocks.release_overdue(progress.text, workflow_id,
                                                         progress.devices[0]))
            if ts:
                self._carries(workflow_id, {"channel": ref["channel"], "ts": ts},
                              carrying.RELEASE)
            return
        key = f"{progress.details.get('wait', '')}:{','.join(progress.devices)}"
        message = blocks.job_line(progress.text, mark=_MARKS[ProgressKind.WAITING])
        ts = ref["waiting"].get(key)
        if ts and ts == ref.get("last") and self.poster.update(ref["channel"], ts, message):
            return
        new_ts = self._reply(ref, message)
        if new_ts:
            ref["waiting"][key] = new_ts

    # -- approvals ------------------------------------------------------------------------

    def _approval_needed(self, progress: Progress, ref: dict[str, Any]) -> None:
        approval_id = int(progress.details["approval_id"])
        request = self.reads.approval_request(approval_id)
        if request is None:
            return
        ts = self._reply(ref, blocks.approval_request(self._approval_view(request)))
        if ts is None:
            return
        self.records.note_approval_posted(approval_id, {"channel": ref["channel"], "ts": ts})
        self._carries(request.workflow_id, {"channel": ref["channel"], "ts": ts},
                      carrying.APPROVAL)
        link = self.poster.permalink(ref["channel"], ts)
        where = f"<{link}|the request in the thread>" if link else "the request in the thread"
        ref["approval_note"] = f":raised_hand: Waiting for an approver: see {where}."

    def _vote(self, progress: Progress, ref: dict[str, Any]) -> None:
        """One approval of several: the request shows who approved and who may still."""
        self.refresh_approval(int(progress.details["approval_id"]))
        self._line(progress, ref)

    def _reminder(self, progress: Progress, ref: dict[str, Any]) -> None:
        """Privately to each person who may decide; the thread keeps one waiting line."""
        reminded = self._ask_privately(progress, ref, progress.details.get("deciders") or [])
        if reminded:
            names = ", ".join(f"<@{u}>" for u in reminded)
            progress = replace(progress, text=f"{progress.text} Reminded {names} by direct "
                                              "message.")
        self._waiting(progress, ref)

    def _escalated(self, progress: Progress, ref: dict[str, Any]) -> None:
        """The second list is asked in the channel (the thread line is broadcast) and by DM."""
        self.refresh_approval(int(progress.details["approval_id"]))
        at = float(progress.details.get("at") or 0)
        when = f" ({blocks.slack_date(at)})" if at else ""
        message = blocks.job_line(progress.text + when, mark=_MARKS[ProgressKind.ESCALATED])
        answer = self.poster.post(ref["channel"], message, thread=ref["thread"], broadcast=True)
        if answer is not None:
            ref["last"] = answer["ts"]
        self._ask_privately(progress, ref, progress.details.get("asked") or [], escalated=True)

    def _ask_privately(self, progress: Progress, ref: dict[str, Any], principals: list[str],
                       *, escalated: bool = False) -> list[str]:
        """DM every user among `principals` (user groups expanded) who may decide; returns
        those reached."""
        request = self.reads.approval_request(int(progress.details["approval_id"]))
        if request is None or request.state != "pending":
            return []
        view = self._approval_view(request)
        excluded = set(self._users(progress.details.get("excluded") or []))
        link = ""
        if request.posted:
            link = self.poster.permalink(request.posted["channel"], request.posted["ts"])
        message = blocks.approval_reminder(view, text=progress.text, link=link,
                                           escalated=escalated)
        reached: list[str] = []
        for user in self._users(principals):
            if user in excluded:
                continue
            answer = self.poster.post(user, message)  # a user id: the app's Messages tab
            if answer is not None:
                reached.append(user)
                self._note_dm(request.approval_id, answer)
                self._carries(request.workflow_id, answer, carrying.REMINDER)
        return reached

    def _note_dm(self, approval_id: int, answer: dict[str, Any]) -> None:
        sent = self.records.get_value(f"{DM_PREFIX}{approval_id}") or []
        self.records.set_value(f"{DM_PREFIX}{approval_id}", [*sent, answer])

    def _decided(self, progress: Progress, ref: dict[str, Any]) -> None:
        approval_id = progress.details.get("approval_id")
        request = (self.reads.approval_request(int(approval_id)) if approval_id is not None
                   else None)
        if request is not None:
            self.refresh_approval(request.approval_id)
        ref["approval_note"] = ""
        if request is None or not request.posted or request.state != "approved":
            # An approval shows on the redrawn request; a refusal is also said on its own line,
            # with its reason, for whoever follows the thread.
            self._line(progress, ref)

    def refresh_approval(self, approval_id: int) -> None:
        """Redraw an approval message as the request stands: buttons only while pending."""
        request = self.reads.approval_request(approval_id)
        if request is None or not request.posted:
            return
        view = self._approval_view(request)
        if request.state == "pending":
            message = blocks.approval_request(view)
        elif request.state == "expired":
            message = blocks.approval_expired(view, at=request.decided_at or request.expires_at)
        else:
            message = blocks.approval_decided(view, decision=request.state,
                                              by=request.decided_by, at=request.decided_at,
                                              reason=request.decision_reason)
        self.poster.update(request.posted["channel"], request.posted["ts"], message)
        if request.state != "pending":  # the reminders sent lose their buttons too
            for dm in self.records.get_value(f"{DM_PREFIX}{approval_id}") or []:
                self.poster.update(dm["channel"], dm["ts"], message)

    def _approval_view(self, request: ApprovalRequest) -> ApprovalView:
        """The request as the core has it now: who approved, who may still decide."""
        return blocks.approval_view(
            request, waiting_for=self._who_may_decide(request.deciders, request.excluded))

    def _who_may_decide(self, principals: Sequence[str], excluded: AbstractSet[str]
                        ) -> tuple[str, ...]:
        """Mentions of the users who may still decide: groups expanded where the bot can read
        them, else named as the group."""
        names: list[str] = []
        for principal in principals:
            members = self._members(principal) if principal.startswith("S") else [principal]
            if members is None:
                names.append(human.slack_person(principal))
                continue
            names += [f"<@{u}>" for u in members
                      if u not in excluded and f"<@{u}>" not in names]
        return tuple(names)

    def _users(self, principals: list[str]) -> list[str]:
        users: list[str] = []
        for principal in principals:
            members = self._members(principal) if principal.startswith("S") else [principal]
            users += [u for u in members or [] if u not in users]
        return users

    def _members(self, group_id: str) -> list[str] | None:
        """A user group's members, or None when the bot cannot read them."""
        try:
            answer = self.client.usergroups_users_list(usergroup=group_id)
        except (SlackApiError, SlackClientError) as error:
            log.warning("usergroups.users.list %s failed (%s)", group_id, describe(error))
            return None
        return [str(u) for u in answer.get("users") or []]

    # -- the end ---------------------------------------------------------------------------

    def _finished(self, progress: Progress, ref: dict[str, Any]) -> None:
        outcome = str(progress.details.get("outcome", "done"))
        request = self.reads.approval_of_job(progress.workflow_id)
        if request is not None:
            self.refresh_approval(request.approval_id)
        ref["approval_note"] = ""
        self._summary(progress, ref, ok=outcome == "done", outcome=outcome)

    def _failed(self, progress: Progress, ref: dict[str, Any]) -> None:
        if "outcome" not in progress.details:  # one device failed; the job may go on
            pac = [d for d in progress.devices if progress.details.get("pac_recorded")]
            self._summary(progress, ref, ok=False, outcome="device_failed", pac=pac)
            return
        self._summary(progress, ref, ok=False, outcome="failed")

    def _deleted(self, progress: Progress) -> bool:
        """Whether the job deletes: a renewal by restart, transfer or automatic renewal keeps
        the device, so it has no PAC to show (nothing was recorded for a re-registration)."""
        job = self.reads.job(progress.workflow_id)
        return job.deletes if job else True

    def _summary(self, progress: Progress, ref: dict[str, Any], *, ok: bool, outcome: str,
                 pac: list[str] | None = None) -> None:
        if pac is None:
            pac = _pac_devices(progress, outcome) if self._deleted(progress) else []
        message = blocks.job_summary(
            job=progress.job, workflow_id=progress.workflow_id,
            ok=ok, text=progress.text, next_steps=next_steps(progress, outcome),
            pac_devices=pac, copy_devices=_copy_devices(progress))
        ts = self._reply(ref, message)
        if ts and (pac or _copy_devices(progress)):
            self._carries(progress.workflow_id, {"channel": ref["channel"], "ts": ts},
                          carrying.SUMMARY)

    # -- the parent ------------------------------------------------------------------------

    def _refresh_parent(self, progress: Progress, ref: dict[str, Any]) -> None:
        state = self._state(progress)
        countdown = progress.details.get("wait") == "wait_timer"
        # A wait on Sigfox (a limit, a 429, a 5xx) shows on the card too, with its time.
        sigfox_wait = (progress.kind == ProgressKind.WAITING
                       and progress.details.get("wait") == "sigfox")
        stop = bool(progress.details.get("stop"))  # the card loses its Stop the rest button
        important = countdown or sigfox_wait or stop or progress.kind in (
            ProgressKind.APPROVAL_NEEDED, ProgressKind.DECIDED, ProgressKind.FINISHED)
        if state == ref.get("state") and not important:
            return  # one edit per state change, not one per step: fewer writes to pace
        if state in _ENDED and progress.kind not in (ProgressKind.FINISHED,
                                                                 ProgressKind.FAILED):
            return  # the summary that follows redraws it once, with the outcome
        view = self._job_view(progress, state=state, note=ref.get("approval_note", ""))
        if countdown:
            view = replace(view, starts_at=float(progress.details.get("starts_at") or 0))
        if self.poster.update(ref["channel"], ref["ts"], blocks.job_parent(view)):
            ref["state"] = state

    def _job_view(self, progress: Progress, *, state: str, note: str = "") -> JobView:
        workflow_id = progress.workflow_id
        job = self.reads.job(workflow_id)
        devices = self.reads.job_devices(workflow_id) if job else progress.devices
        requester = job.requester if job else str(progress.details.get("requester"))
        return JobView(progress.job, workflow_id, progress.operation, devices, state,
                       requester, latest=_latest(progress),
                       approval_note=note, cancellable=state in {s.value for s in CANCELLABLE},
                       stoppable=len(devices) > 1 and job is not None and not job.stopped_by)

    def _state(self, progress: Progress) -> str:
        job = self.reads.job(progress.workflow_id)
        return job.state if job else progress.state

    def _carries(self, workflow_id: int, posted: dict[str, Any], kind: str) -> None:
        """Record that the message just posted carries the job's buttons: only a click made
        on it (or on another recorded one) counts (bot/listeners/binding.py)."""
        self.buttons.record(workflow_id, str(posted["channel"]), str(posted["ts"]), kind,
                            time.time())

def step_counts_text(counts: dict[str, int]) -> str:
    """"412 of 1,000 devices done, 3 failed, 20 stopped untouched, 565 under way"."""
    total = sum(counts.values())
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    stopped = counts.get("stopped", 0)
    parts = [f"{done:,} of {total:,} devices done"]
    if failed:
        parts.append(f"{failed:,} failed")
    if stopped:
        parts.append(f"{stopped:,} stopped untouched")
    if total - done - failed - stopped:
        parts.append(f"{total - done - failed - stopped:,} under way")
    return ", ".join(parts)


def next_steps(progress: Progress, outcome: str) -> str:
    """What the people following the job should do now."""
    ids = " ".join(progress.devices[:3])
    if outcome in ("rejected", "cancelled", "expired"):
        return "Nothing was changed. Ask again if it is still needed."
    if outcome == "stopped":
        return ("The devices stopped were not changed at Sigfox: they are as they were, free "
                "for a new job; ask again for those still needed. The others ended as said "
                "above.")
    if outcome == "done":
        if progress.operation == Kind.DELETE:
            return ("The device is gone from Sigfox. To use it again, register it with its PAC "
                    "(approvers: Show PAC) or run `/sigfox renew` next time instead.")
        return ""  # nothing to do: the summary says it is done
    pac = (" The PAC is recorded: an approver can see it with Show PAC and register the device "
           "in the Sigfox portal." if progress.operation in _PAC_KINDS else "")
    return (f"See the failure above. `/sigfox status {ids}` shows the device now, "
            f"`/sigfox history {ids}` what the bot did.{pac}")


def _pac_devices(progress: Progress, outcome: str) -> list[str]:
    """Devices of a finished renew/delete that went past their delete: their PAC was kept."""
    if progress.operation not in _PAC_KINDS or outcome not in ("done", "failed", "stopped"):
        return []
    results = progress.details.get("results") or {}
    return [d for d, r in results.items()
            if isinstance(r, dict) and r.get("state") not in ("pending", "stopped")]


def _copy_devices(progress: Progress) -> list[str]:
    """Devices renewed onto a device type lacking callbacks their previous type had."""
    results = progress.details.get("results") or {}
    return [d for d, r in results.items()
            if isinstance(r, dict) and r.get("state") == "done" and r.get("copy_callbacks_from")]


def _latest(progress: Progress) -> str:
    """The parent's "Latest" line: progress only; the plan is in the thread's first lines."""
    if progress.kind in (ProgressKind.REQUESTED, ProgressKind.APPROVAL_NEEDED) or not progress.text:
        return ""
    if progress.kind == ProgressKind.FINISHED and progress.details.get("outcome") == "done":
        return ""  # "Done" says it; the summary in the thread has the details
    return progress.text.splitlines()[0]


_ENDED = ("done", "failed", "stopped")  # a summary follows that redraws the card once


def _key(workflow_id: int) -> str:
    # Keyed by the label since the first release: threads posted then go on after an upgrade.
    return f"{KV_PREFIX}{job_label(workflow_id)}"
