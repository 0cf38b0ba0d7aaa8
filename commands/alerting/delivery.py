"""Delivery of alert digests: every alert streams once through the named stages of
`commands.alerting.stages` (inhibit, silence, dedup, route, group, notify), over the
notification log of `storage.notifications`.

- `announce` after a scan: what changed, one digest per route, each with a pending notification;
- `redeliver`: the routes whose digest is still pending (Slack was down, the bot restarted) get
  it built again from what is true now and what was told, and delivered once;
- `picture`: the whole picture after a scan, every route, changed or not, nothing recorded (what
  the one-off `sigfox-bot scan` prints).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import replace
from itertools import groupby

from commands.alerting.digests import Router
from commands.alerting.model import AlertDigest, AlertItem, AlertSink, Change, Condition
from commands.alerting.rows import alert_item
from commands.alerting.rules import thresholds
from commands.alerting.stages import (
    Group,
    Inhibit,
    Notify,
    Outgoing,
    Silence,
    dedup,
    last_told,
)
from commands.config import AlertsConfig
from storage.fleet import FleetStore
from storage.notifications import NotificationLog

ALL_SNOOZES = -1  # SQLite's LIMIT -1: every snooze in force, however many


class DigestDelivery:
    def __init__(self, fleet: FleetStore, settings: Callable[[], AlertsConfig],
                 sink: Callable[[], AlertSink], now: Callable[[], float]) -> None:
        self.fleet = fleet
        self.log = NotificationLog(fleet.database)
        self._settings = settings
        self.inhibit = Inhibit()
        self.notify = Notify(self.log, sink, now)

    def announce(self, scan_id: int, now: float, routes: Collection[str] | None = None
                 ) -> list[Outgoing]:
        """What changed, grouped per route (only `routes` when given, "" being the default
        channel), each digest with its pending notification; routes left with nothing to tell
        have their pending notification closed."""
        settings = self._settings()
        group = Group(scan_id, now, settings.tz, settings.timezone, log=self.log)
        try:
            for channel, item in self._announced(scan_id, now, settings):
                if routes is None or (channel or "") in routes:
                    group.add(channel, item)
            outgoing = group.finish()
        except BaseException:
            group.abandon()
            raise
        told = {each.notification_id for each in outgoing}
        for waiting in self.log.pending():
            if waiting.id not in told and (routes is None or waiting.route in routes):
                self.log.obsolete(waiting.id, now)
        return outgoing

    def redeliver(self, now: float) -> list[AlertDigest]:
        """Stage 'retry': build again and deliver the digests still pending in the log."""
        pending = self.log.pending()
        if not pending:
            return []
        scan_id = max(n.scan_id for n in pending)
        return self.notify(self.announce(scan_id, now, {n.route for n in pending}))

    def picture(self, scan_id: int, now: float) -> tuple[AlertDigest, ...]:
        """Every route's digest after scan `scan_id`, its changes being what that scan told.
        The caller owns the CSV files: remove them when done."""
        settings = self._settings()
        group = Group(scan_id, now, settings.tz, settings.timezone, log=None)
        try:
            for channel, item in self.alert_items(scan_id):
                group.add(channel, item)
        except BaseException:
            group.abandon()
            raise
        return tuple(each.digest for each in group.finish())

    def alert_items(self, scan_id: int) -> Iterator[tuple[str | None, AlertItem]]:
        """Every open alert, and every one scan `scan_id` told (its change), with its channel."""
        router = Router(self._settings())
        for row in self.fleet.iter_digest_rows(scan_id):
            last = last_told(row)
            change = Change(last.change) if last and last.scan_id == scan_id else None
            item = alert_item(row)
            if item.state == "open" or change is not None:
                yield router.channel(row["details"]), replace(item, change=change)

    def _announced(self, scan_id: int, now: float, settings: AlertsConfig
                   ) -> Iterator[tuple[str | None, AlertItem]]:
        """Each alert, by device, through inhibit, silence, dedup and route."""
        router = Router(settings)
        silence = Silence(self.fleet.active_snoozes(now, ALL_SNOOZES), now)
        repeat_before = thresholds(settings, now).repeat_before
        for _, rows in groupby(self.fleet.iter_digest_rows(scan_id), lambda r: r["device_id"]):
            device = list(rows)
            muted = self.inhibit.muted(Condition(r["condition"]) for r in device
                                       if r["state"] == "open")
            for row in device:
                item = alert_item(row)
                quiet = item.state == "open" and (item.condition in muted
                                                  or silence.silenced(item))
                change = None if quiet else dedup(item, last_told(row), repeat_before)
                if item.state == "open" or change is not None:
                    yield router.channel(row["details"]), replace(item, change=change)
