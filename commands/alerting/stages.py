"""The named stages alerts go through on their way to a channel, in the spirit of
Alertmanager's notify pipeline; `commands.alerting.delivery` runs them in this order:

1. `Inhibit`: an alert another open alert of the same device makes needless
   (`rules.INHIBITIONS`: a device Off Contract needs no "token ends soon") is not announced;
2. `Silence`: an alert a snooze covers is not announced;
3. `dedup`: compared with the notification log, an alert is announced when it is new, worse
   than last told, or not told for `repeat_after`; a resolution only when the alert was told;
4. `Router` (`digests.py`): the channel of the device ([alerts] channel and routes);
5. `Group`: one digest per route, however many alerts change at once, each with its pending
   notification in the log recording what it tells;
6. `Notify`: each digest to the sink, the outcome in the log; one not delivered stays pending
   there and is built again and retried (`AlertService.redeliver`, the next scan), restarts
   included.

Inhibited and silenced alerts stay open and counted: they are only not announced. An outage
inhibits per-device news at the source: a scan that fails (Sigfox unreachable) runs no rule, so
no alert opens or resolves on a partial fleet, and one scan-failure message is told instead
(`commands.alerting.scan.ScanProblems`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from commands.alerting.digests import ChannelDigest, remove_file
from commands.alerting.model import AlertDigest, AlertItem, AlertSink, Change, Condition
from commands.alerting.rules import INHIBITIONS
from storage.notifications import NotificationLog, Told

log = logging.getLogger(__name__)

STAGE_BATCH = 1000  # told alerts written to the log per transaction while grouping


@dataclass(frozen=True)
class LastTold:
    """What a delivered notification last said of an alert."""

    level: int
    change: str
    at: float
    scan_id: int


def last_told(row: dict[str, Any]) -> LastTold | None:
    """From a digest row of `storage.fleet` (its `told_*` columns); None: never told."""
    if row.get("told_change") is None:
        return None
    return LastTold(row["told_level"], row["told_change"], row["told_at"], row["told_scan"])


class Inhibit:
    """Stage 'inhibit': which of a device's alerts its other open alerts make needless."""

    def __init__(self, inhibitions: Iterable[tuple[Condition, Condition]] = INHIBITIONS) -> None:
        self.inhibitions = tuple(inhibitions)

    def muted(self, open_conditions: Iterable[Condition]) -> frozenset[Condition]:
        present = set(open_conditions)
        return frozenset(muted for source, muted in self.inhibitions if source in present)


class Silence:
    """Stage 'silence': the snoozes in force at `now`, by device ("" = every condition)."""

    def __init__(self, snoozes: Iterable[dict[str, Any]], now: float) -> None:
        self.by_device: dict[str, set[str]] = {}
        for snooze in snoozes:
            if not snooze.get("ended_at") and (snooze["until"] is None or snooze["until"] > now):
                self.by_device.setdefault(snooze["device_id"], set()).add(snooze["condition"])

    def silenced(self, item: AlertItem) -> bool:
        covered = self.by_device.get(item.device_id)
        return covered is not None and ("" in covered or item.condition.value in covered)


def dedup(item: AlertItem, last: LastTold | None, repeat_before: float) -> Change | None:
    """Stage 'dedup': what to announce of an alert given what was last told of it, if
    anything: new, worse (a higher level), repeat (told before `repeat_before`), resolved."""
    told = last is not None and last.change != Change.RESOLVED
    if item.state != "open":
        return Change.RESOLVED if told else None
    if last is None or not told:
        return Change.NEW
    if last.level < item.level:
        return Change.WORSE
    if last.at <= repeat_before:
        return Change.REPEAT
    return None


@dataclass(frozen=True)
class Outgoing:
    """A digest and the notification of the log it delivers (0: a picture, not a delivery)."""

    notification_id: int
    digest: AlertDigest


class Group:
    """Stage 'group': one digest per route. While announcing, a route's first change opens its
    notification in the log, and every change is written there as the digest grows."""

    def __init__(self, scan_id: int, now: float, tz: ZoneInfo, timezone: str, *,
                 log: NotificationLog | None) -> None:
        self.scan_id = scan_id
        self.now = now
        self.tz = tz
        self.timezone = timezone
        self.log = log  # None: the whole picture, every route, nothing recorded
        self.digests: dict[str | None, ChannelDigest] = {}
        self.notifications: dict[str | None, int] = {}
        self._told: dict[str | None, list[Told]] = {}

    def add(self, channel: str | None, item: AlertItem) -> None:
        if channel not in self.digests:
            self.digests[channel] = ChannelDigest(channel, self.scan_id, self.tz, self.now)
        self.digests[channel].add(item)
        if self.log is not None and item.change is not None:
            self._record(channel, item, item.change)

    def _record(self, channel: str | None, item: AlertItem, change: Change) -> None:
        if channel not in self.notifications:
            assert self.log is not None
            self.notifications[channel] = self.log.open(channel or "", self.scan_id, self.now)
        told = self._told.setdefault(channel, [])
        told.append(Told(item.device_id, item.condition.value, int(item.level), change.value))
        if len(told) >= STAGE_BATCH:
            self._flush(channel)

    def _flush(self, channel: str | None) -> None:
        told = self._told.pop(channel, [])
        if told and self.log is not None:
            self.log.stage(self.notifications[channel], told)

    def finish(self) -> list[Outgoing]:
        """The digests to send (announcing: the routes with a change; else all); the CSV files
        of the others are removed."""
        everything = self.log is None
        out = []
        try:
            for channel, group in self.digests.items():
                if group.changed or everything:
                    self._flush(channel)
                    out.append(Outgoing(self.notifications.get(channel, 0),
                                        group.finish(self.timezone)))
            return out
        finally:
            for group in self.digests.values():
                group.discard_unless(group.changed or everything)

    def abandon(self) -> None:
        for group in self.digests.values():
            group.discard_unless(False)


class Notify:
    """Stage 'notify', with its retry: each digest to the sink; delivered or not, the log says
    so (a failed one stays pending, for `AlertService.redeliver` or the next scan)."""

    def __init__(self, log: NotificationLog, sink: Callable[[], AlertSink],
                 now: Callable[[], float]) -> None:
        self.log = log
        self._sink = sink
        self._now = now

    def __call__(self, outgoing: Collection[Outgoing]) -> list[AlertDigest]:
        """Deliver each; returns the digests delivered."""
        delivered = []
        for each in outgoing:
            digest = each.digest
            try:
                self._sink().deliver_digest(digest)
            except Exception as error:  # Slack down: the scan's state stands, the telling waits
                log.exception("alert digest of scan %d for %s not delivered; retried later",
                              digest.scan_id, digest.channel or "the default channel")
                self.log.failed(each.notification_id, self._now(), _reason(error))
            else:
                self.log.delivered(each.notification_id, self._now())
                delivered.append(digest)
            finally:
                remove_file(digest.csv_path)
        return delivered


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
