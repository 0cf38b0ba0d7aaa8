"""Reading the fleet for a scan, and remembering a scan that fails until one completes.

The device list is walked once per scan (the client paces it to Sigfox's limits) and streamed as
fleet rows into SQLite; what a failing scan said, and the message that told it, wait in the
database so a recovery answers in the failure's thread, across restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from commands.alerting.model import ScanProblem
from commands.alerting.rows import fleet_row
from commands.config import AlertsConfig
from commands.ports import SigfoxApi
from sigfox.errors import SigfoxError
from sigfox.models import Device
from storage.fleet import FleetRow, FleetStore

log = logging.getLogger(__name__)

SCAN_PROBLEM_KEY = "alerts.scan_problem"


class SeenCounter:
    """How many devices the walk has read so far (what a failure reports)."""

    def __init__(self) -> None:
        self.count = 0


def fleet_rows(api: SigfoxApi, seen: SeenCounter) -> Iterator[FleetRow]:
    """Every device of the fleet as a fleet row, counted in `seen` as it is read."""
    # The device list names neither type nor group unless asked field by field; two
    # short lists give the names routes may use, for a handful of calls per scan.
    types = list(api.iter_device_types())
    type_names = {t.id: t.name or "" for t in types}
    group_names = {g.id: g.name or "" for g in api.iter_groups()}
    renewal = RenewalAllowed(api, {t.id for t in types if t.automatic_renewal})
    for device in api.iter_all_devices():
        seen.count += 1
        yield fleet_row(device, type_names, group_names, renews=renewal.renews(device))


class RenewalAllowed:
    """Whether a device's token renews by itself: the device, its device type and its own
    contract allow automatic renewal, and `automaticRenewalStatus` does not say it failed.
    Each contract is read once per scan; one that can't be read counts as not renewing (the
    reading that keeps the warning)."""

    def __init__(self, api: SigfoxApi, renewing_types: set[str]) -> None:
        self.api = api
        self.renewing_types = renewing_types
        self.contracts: dict[str, bool] = {}

    def renews(self, device: Device) -> bool:
        type_id = device.device_type.id if device.device_type else None
        if not device.automatic_renewal or device.renewal_refused or not device.contract_id:
            return False
        if type_id not in self.renewing_types:
            return False
        return self._contract_renews(device.contract_id)

    def _contract_renews(self, contract_id: str) -> bool:
        if contract_id not in self.contracts:
            try:
                contract = self.api.get_contract_info(contract_id)
            except SigfoxError:
                return False  # not remembered: the next device tries again
            self.contracts[contract_id] = bool(contract.automatic_renewal)
        return self.contracts[contract_id]


def error_sentence(error: Exception, seen: int) -> str:
    where = f"after {seen:,} devices" if seen else "before any device was read"
    if isinstance(error, SigfoxError):
        return f"Sigfox refused or failed the fleet listing {where}: {error}."
    return f"The scan stopped {where} on an unexpected error ({type(error).__name__})."


class ScanProblems:
    """The failure of the fleet scan, told once when it starts and once when a scan completes.

    Kept in the database (a kv record): since when scans fail, the last error, whether it was
    told and the reference of the message that told it (the recovery's thread).
    """

    def __init__(self, fleet: FleetStore, settings: Callable[[], AlertsConfig],
                 tell: Callable[[ScanProblem], str | None]) -> None:
        self.fleet = fleet
        self._settings = settings
        self._tell = tell

    def failed(self, scan_id: int, now: float, text: str) -> ScanProblem | None:
        """Remember the failure and tell it once: not once a scan, but again if never told."""
        channel = self._settings().channel
        known = self.fleet.get_kv(SCAN_PROBLEM_KEY) or {}
        record = {"since": known.get("since", now), "error": text, "scan_id": scan_id,
                  "delivered": known.get("delivered", False), "thread": known.get("thread", ""),
                  "channel": known.get("channel", channel)}
        problem = None
        if not record["delivered"]:
            problem = ScanProblem(False, channel, record["since"], text, scan_id, now)
            record |= self._told(problem)
        self.fleet.set_kv(SCAN_PROBLEM_KEY, record)
        return problem

    def _told(self, problem: ScanProblem) -> dict[str, Any]:
        try:
            ref = self._tell(problem)
        except Exception:  # Slack down too: the next failing scan tries again
            log.exception("could not deliver the scan failure alert; will retry")
            return {}
        return {"delivered": True, "thread": ref or "", "channel": problem.channel}

    def recovered(self, scan_id: int, now: float) -> ScanProblem | None:
        known = self.fleet.get_kv(SCAN_PROBLEM_KEY)
        if not known:
            return None
        self.fleet.delete_kv(SCAN_PROBLEM_KEY)
        if not known.get("delivered", True):
            return None  # nobody was told it failed: no news that it works again
        # The failure's message is only a thread to answer in the channel it was posted to.
        channel = self._settings().channel
        same = known.get("channel", channel) == channel
        problem = ScanProblem(True, channel, known["since"], known["error"], scan_id, now,
                              thread=known.get("thread", "") if same else "")
        try:  # delivery failing (Slack down) must not undo a scan that completed
            self._tell(problem)
        except Exception:
            log.exception("alert delivery failed")
        return problem

    def current(self) -> ScanProblem | None:
        known = self.fleet.get_kv(SCAN_PROBLEM_KEY)
        if not known:
            return None
        return ScanProblem(False, self._settings().channel, known["since"], known["error"],
                           known["scan_id"], known["since"])

    def failing(self) -> bool:
        return self.fleet.get_kv(SCAN_PROBLEM_KEY) is not None
