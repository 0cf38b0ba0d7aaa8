"""A device at a glance (`/sigfox status`): read from Sigfox, PAC masked before it leaves."""

from __future__ import annotations

from dataclasses import dataclass

from commands.ports import SigfoxApi
from commands.preflight import Refusal, contract_of, day, token_label
from sigfox.errors import SigfoxError


class BackendUnavailable(Exception):
    """Sigfox could not answer a read; the message is safe to show."""


@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    name: str
    state: str
    token: str
    token_end: str
    last_message_at: float | None  # epoch seconds; None: never communicated
    device_type: str
    contract: str
    contract_end: str
    pac_masked: str
    note: str = ""


def mask_pac(pac: str | None) -> str:
    """`••••••••••••1A2B`: enough to compare with a label, never enough to re-register."""
    if not pac:
        return "—"
    return "•" * 12 + pac[-4:] if len(pac) > 4 else "•" * 12


def read_device_status(api: SigfoxApi, device_id: str) -> DeviceStatus | None:
    """Read one device (through the list endpoint, never GET /devices/{id}), its type and
    contract; None when the account has no such device."""
    try:
        device = api.find_device(device_id)
    except SigfoxError as error:
        raise BackendUnavailable(f"Sigfox could not answer ({error})") from error
    if device is None:
        return None
    type_name, contract_name, contract_end, note = "—", "—", "—", ""
    type_id = device.device_type.id if device.device_type and device.device_type.id else ""
    if type_id:
        try:
            device_type = api.get_device_type(type_id)
            type_name = device_type.name or device_type.id
            contract = contract_of(api, device_type)
            contract_name = contract.name or contract.id
            contract_end = day(contract.end_time)
        except (SigfoxError, Refusal) as error:  # a partial card beats none; say what is missing
            note = f"Contract details unavailable: {error}"
    state = device.state.name.replace("_", " ").capitalize() if device.state is not None else "—"
    return DeviceStatus(
        device_id=device.id,
        name=device.name or "",
        state=state,
        token=token_label(device),
        token_end=day(device.token.end) if device.token else "—",
        last_message_at=device.last_com / 1000 if device.last_com else None,
        device_type=type_name,
        contract=contract_name,
        contract_end=contract_end,
        pac_masked=mask_pac(device.pac),
        note=note,
    )
