"""Rows of the fleet and alert tables to the alerts' values, and devices to fleet rows."""

from __future__ import annotations

from typing import Any

from commands.alerting.model import (
    AlertItem,
    Change,
    Condition,
    ExpiringDevice,
    Level,
    ScanInfo,
    SnoozeInfo,
)
from sigfox.models import Device
from storage.fleet import FleetRow


def fleet_row(
    device: Device,
    type_names: dict[str, str] | None = None,
    group_names: dict[str, str] | None = None,
    *,
    renews: bool = False,
) -> FleetRow:
    """What the fleet table keeps of a device (its PAC is deliberately not among it)."""
    token = device.token
    type_id = (device.device_type.id or "") if device.device_type else ""
    group_id = (device.group.id or "") if device.group else ""
    return FleetRow(
        device_id=device.id.upper(),
        name=device.name or "",
        device_type_id=type_id,
        device_type_name=_ref_name(device.device_type, type_names),
        group_id=group_id,
        group_name=_ref_name(device.group, group_names),
        device_state=int(device.state) if device.state is not None else None,
        token_state=int(token.state) if token and token.state is not None else None,
        token_end=token.end / 1000 if token and token.end else None,
        last_com=device.last_com / 1000 if device.last_com else None,
        renews_automatically=renews,
    )


def _ref_name(ref: Any, names: dict[str, str] | None) -> str:
    if ref is None:
        return ""
    return ref.name or (names or {}).get(ref.id or "", "")


def alert_item(row: dict[str, Any], *, changed: bool = False) -> AlertItem:
    details = row.get("details") or {}
    change = Change(row["change"]) if changed and row.get("change") else None
    return AlertItem(
        device_id=row["device_id"],
        condition=Condition(row["condition"]),
        level=Level(row["level"]),
        name=details.get("name") or "",
        device_type=details.get("device_type") or "",
        group=details.get("group") or "",
        token_end=details.get("token_end"),
        first_seen=row.get("first_seen") or 0.0,
        change=change,
        resolution=row.get("resolution") or "",
        state=row.get("state") or "open",
    )


def expiring_device(row: dict[str, Any]) -> ExpiringDevice:
    return ExpiringDevice(row["device_id"], row["name"], row["device_type_name"],
                          row["group_name"], row["token_end"],
                          bool(row.get("renews_automatically")))


def snooze_info(row: dict[str, Any]) -> SnoozeInfo:
    return SnoozeInfo(row["id"], row["device_id"], row["condition"], row["until"],
                      row["snoozed_by"], row["reason"], row["created_at"])


def scan_info(row: dict[str, Any]) -> ScanInfo:
    return ScanInfo(row["id"], row["started_at"], row["finished_at"], bool(row["ok"]),
                    row["devices"], row["duration"], row["error"], row["started_by"])
