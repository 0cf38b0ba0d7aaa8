"""Delivering alert digests: group the changed alerts per channel, hand them to the sink, and
remember the channels a digest did not reach, so their changes are told at the next scan."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from commands.alerting.digests import ChannelDigest, Router, remove_file
from commands.alerting.model import AlertDigest, AlertItem, AlertSink
from commands.alerting.rows import alert_item
from commands.config import AlertsConfig
from storage.fleet import FleetStore

log = logging.getLogger(__name__)

# Digests a sink failed to deliver, as {channel or "": [scan ids]}: their changes are told again
# at the next scan, so a Slack outage during a scan delays announcements instead of losing them.
UNDELIVERED_KEY = "alerts.undelivered"
UNDELIVERED_SCANS_KEPT = 100  # per channel: a long outage must not grow the record forever


class DigestDelivery:
    def __init__(self, fleet: FleetStore, settings: Callable[[], AlertsConfig],
                 sink: Callable[[], AlertSink]) -> None:
        self.fleet = fleet
        self._settings = settings
        self._sink = sink

    def alert_items(self, scan_id: int) -> Iterator[tuple[str | None, AlertItem]]:
        """Every open alert, and every one scan `scan_id` changed, with its channel."""
        router = Router(self._settings())
        for row in self.fleet.iter_alerts(open_only=True, changed_in={scan_id}):
            changed = row["change_scan"] == scan_id and bool(row["change"])
            yield router.channel(row["details"]), alert_item(row, changed=changed)

    def build(self, scan_id: int, now: float, *, everything: bool = False
              ) -> tuple[AlertDigest, ...]:
        """Stream the open and changed alerts once, aggregating per channel (flat memory).

        Changes of earlier scans whose digest did not reach a channel count as this scan's.
        With `everything`, channels without a change get their digest too.
        """
        settings = self._settings()
        router = Router(settings)
        pending = {} if everything else self._undelivered()
        scans = {scan_id}.union(*pending.values())
        groups: dict[str | None, ChannelDigest] = {}
        try:
            for row in self.fleet.iter_alerts(open_only=True, changed_in=scans):
                channel = router.channel(row["details"])
                changed = row["change_scan"] == scan_id or (
                    row["change_scan"] in pending.get(channel or "", ()) and bool(row["change"]))
                if not changed and row["state"] != "open":
                    continue  # told in its own scan's digest, to another channel
                item = alert_item(row, changed=changed)
                if channel not in groups:
                    groups[channel] = ChannelDigest(channel, scan_id, settings.tz, now)
                groups[channel].add(item)
            return tuple(g.finish(settings.timezone) for g in groups.values()
                         if g.changed or everything)
        finally:
            for group in groups.values():
                group.discard_unless(group.changed or everything)

    def deliver(self, scan_id: int, digests: Iterable[AlertDigest]) -> None:
        """Deliver each digest; remember the channels it failed for, to tell them next scan."""
        pending = self._undelivered()
        failed: dict[str, list[int]] = {}
        for digest in digests:
            try:
                self._sink().deliver_digest(digest)
            except Exception:  # Slack down: the scan's state stands, the telling waits
                log.exception("alert digest of scan %d for %s not delivered; retried at the "
                              "next scan", scan_id, digest.channel or "the default channel")
                key = digest.channel or ""
                scans = sorted({*pending.get(key, ()), scan_id})
                failed[key] = scans[-UNDELIVERED_SCANS_KEPT:]
            finally:
                remove_file(digest.csv_path)
        # Delivered channels were told everything pending for them; the others had nothing left.
        self._set_undelivered(failed)

    def _undelivered(self) -> dict[str, set[int]]:
        raw = self.fleet.get_kv(UNDELIVERED_KEY) or {}
        return {channel: set(scans) for channel, scans in raw.items()}

    def _set_undelivered(self, failed: dict[str, list[int]]) -> None:
        if failed:
            self.fleet.set_kv(UNDELIVERED_KEY, failed)
        else:
            self.fleet.delete_kv(UNDELIVERED_KEY)
