"""Checks made before anything changes, and what a transfer costs (docs/sigfox-semantics.md).

Every refusal says why and what to do instead; nothing here writes to Sigfox. The fields read
here, and the reading taken where openapi.json is ambiguous, are in docs/sigfox-semantics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from commands import human
from commands.ports import SigfoxApi
from sigfox.device_reads import ReadCount, read_devices
from sigfox.models import (
    ContractInfo,
    Device,
    DeviceState,
    DeviceType,
    TokenState,
    normalize_device_id,
)


class Refusal(Exception):
    """A request refused before anything changed. The message is for the requester."""


def day(ms: int | None) -> str:
    """A Sigfox time (ms) as a day, for the refusals and plans written here."""
    try:
        return human.day_ms(ms, none="no end date")
    except (OverflowError, ValueError, OSError):  # an int64 Sigfox may send, a date can't hold
        return f"{ms} ms after 1970"


def token_label(device: Device) -> str:
    if device.token is None or device.token.state is None:
        return "no token (not consumed yet)"
    names = {
        TokenState.OK: f"OK until {day(device.token.end)}",
        TokenState.OFF_CONTRACT: "Off Contract",
        TokenState.NA_FOR_API: "not available through the API",
        TokenState.INVALID: f"Invalid (ended {day(device.token.end)})",
    }
    return names.get(device.token.state, str(device.token.state))


def require_devices(api: SigfoxApi, device_ids: Sequence[str],
                    on_read: ReadCount | None = None) -> list[Device]:
    """Every device, in the order asked, read in pages of 100 (`sigfox.device_reads`); the
    first one Sigfox does not list is refused."""
    found = read_devices(api, device_ids, on_read=on_read)
    devices = []
    for device_id in device_ids:
        device = found.get(normalize_device_id(device_id))
        if device is None:
            raise _not_in_account(device_id)
        devices.append(device)
    return devices


def _not_in_account(device_id: str) -> Refusal:
    return Refusal(
        f"Device {device_id} is not in this Sigfox account: check the id with "
        f"`/sigfox status {device_id}`, or register it in the Sigfox portal first."
    )


def is_deletable(device: Device) -> bool:
    """Sigfox deletes only a device that is Off Contract or holds no token."""
    return device.token is None or device.token.state == TokenState.OFF_CONTRACT


def require_deletable(device: Device, operation: str) -> None:
    if is_deletable(device):
        return
    state = device.token.state if device.token else None
    if state == TokenState.OK:
        raise Refusal(
            f"Device {device.id} has a valid token ({token_label(device)}): there is nothing to "
            f"{operation}, and Sigfox refuses to delete a device whose token is valid. "
            f"Wait until it ends, or use `/sigfox unsubscribe {device.id} <date>`."
        )
    if state == TokenState.INVALID:
        raise Refusal(
            f"Device {device.id}'s token is Invalid (ended {day(device.token.end if device.token else None)}): "  # noqa: E501
            "its next message will either renew the token automatically or turn it Off Contract. "
            f"Make it send a message, then run `/sigfox {operation} {device.id}` again if it "
            "is Off Contract."
        )
    raise Refusal(
        f"Device {device.id}'s token is {token_label(device)}: only Off Contract devices or "
        "devices without a token can be deleted."
    )


def resolve_device_type(api: SigfoxApi, wanted: str) -> DeviceType:
    """Find a device type by id or by name (case-insensitive), or say what exists."""
    types = list(api.iter_device_types())
    for device_type in types:
        if device_type.id == wanted:
            return device_type
    lowered = wanted.strip().lower()
    named = [t for t in types if (t.name or "").lower() == lowered]
    if len(named) == 1:
        return named[0]
    known = ", ".join(f"`{t.name}`" for t in types[:10] if t.name)
    if len(named) > 1:
        raise Refusal(f"Several device types are named `{wanted}`: give its id instead.")
    raise Refusal(f"There is no device type `{wanted}`. Known device types: {known}.")


def require_contract_usable(contract: ContractInfo, now: float) -> None:
    """Refuse when a device could not take a new token on `contract` now."""
    reason = contract.why_no_token(now * 1000)
    if reason:
        raise Refusal(
            f"{reason[0].upper()}{reason[1:]}: a renewed device could not take a token. "
            f"{INSTEAD_OF_AN_EMPTY_CONTRACT}"
        )


INSTEAD_OF_AN_EMPTY_CONTRACT = (
    "Ask Sigfox (or your reseller) to extend or refill the contract, or renew onto a device type "
    "on another contract with `renew <id> to <device-type>`."
)


def contract_ids_of(device_type: DeviceType) -> list[str]:
    ids = device_type.contract_ids
    if not ids:
        raise Refusal(
            f"Device type {device_type.name or device_type.id} lists no contract, neither in "
            "`contracts` nor in `contract`: devices registered on it cannot take a token. "
            "Attach a contract to it in the Sigfox portal, or renew onto another device type "
            "with `renew <id> to <device-type>`."
        )
    return ids


def contracts_of(api: SigfoxApi, device_type: DeviceType) -> list[ContractInfo]:
    """Every contract the device type lists (`contracts[]`, else the older `contract`)."""
    return [api.get_contract_info(contract_id) for contract_id in contract_ids_of(device_type)]


def contract_of(api: SigfoxApi, device_type: DeviceType) -> ContractInfo:
    """The device type's first contract, for reports (end date, tokens left)."""
    return api.get_contract_info(contract_ids_of(device_type)[0])


def require_tokens_available(contracts: list[ContractInfo], now: float) -> None:
    """Every listed contract must be able to give a token: which one Sigfox picks for a device
    type with several is not described, so the bot does not bet on the good one."""
    for contract in contracts:
        require_contract_usable(contract, now)


def require_pac(device: Device) -> None:
    if device.pac:
        return
    raise Refusal(
        f"Sigfox did not show device {device.id}'s PAC to the bot: its API user's profile "
        "lacks the right to read device PACs. Without the PAC, a deleted device could not be "
        "registered again. Give the API user that right in the Sigfox portal (its profile "
        "must let it see PACs), or renew the device by hand in the portal."
    )


def require_activable(device: Device) -> None:
    if device.activable is not False and device.state != DeviceState.NOT_ACTIVABLE:
        return
    raise Refusal(
        f"Device {device.id} is not activable (`activable` false, state NOT_ACTIVABLE): it "
        "cannot take a token whatever the bot does, so nothing destructive is offered. Make "
        "it activable in the Sigfox portal, then ask again."
    )


class TransferImpact(StrEnum):
    """What a transfer does to a device's token (docs/sigfox-semantics.md, Transfers)."""

    NO_TOKEN = "no_token"
    SEAMLESS = "seamless"
    TOKEN_MOVED = "token_moved"
    TOKEN_LOST = "token_lost"
    UNKNOWN_SOURCE = "unknown_source"  # the device's own contract can't be read: costly case

    @property
    def needs_approval(self) -> bool:
        return self in (TransferImpact.TOKEN_LOST, TransferImpact.UNKNOWN_SOURCE)

    @property
    def explanation(self) -> str:
        return {
            TransferImpact.NO_TOKEN: "no token: no impact",
            TransferImpact.SEAMLESS: "same contract: seamless, nothing invoiced",
            TransferImpact.TOKEN_MOVED: (
                "same order, other contract: the token moves with its dates, nothing invoiced"
            ),
            TransferImpact.TOKEN_LOST: (
                "other order: the token is lost for good, a new one is taken at the next "
                "message and its subscription fee invoiced"
            ),
            TransferImpact.UNKNOWN_SOURCE: (
                "the contract its token came from (or that contract's order) can't be read, so "
                "the bot counts the token as lost for good, a new one taken at the next message "
                "and invoiced: the costly case"
            ),
        }[self]


_SEVERITY = [
    TransferImpact.NO_TOKEN, TransferImpact.SEAMLESS, TransferImpact.TOKEN_MOVED,
    TransferImpact.TOKEN_LOST, TransferImpact.UNKNOWN_SOURCE,
]


def transfer_impact(
    device: Device, source_contract: ContractInfo | None, target_contracts: list[ContractInfo]
) -> TransferImpact:
    """The token's fate, judged from the device's OWN contract (`device.contract`, the one its
    token came from), against every contract the target type lists; the worst case wins.
    Seamless only when both contract ids are known and equal."""
    if device.token is None:
        return TransferImpact.NO_TOKEN
    source_id = device.contract_id
    if source_id is None or not target_contracts:
        return TransferImpact.UNKNOWN_SOURCE
    impacts = [_impact_onto(source_id, source_contract, t) for t in target_contracts]
    return max(impacts, key=_SEVERITY.index)


def _impact_onto(
    source_id: str, source: ContractInfo | None, target: ContractInfo
) -> TransferImpact:
    if target.id == source_id:
        return TransferImpact.SEAMLESS
    if source is None or source.id != source_id:
        return TransferImpact.UNKNOWN_SOURCE
    source_order = source.order.id if source.order else None
    target_order = target.order.id if target.order else None
    if source_order is None or target_order is None:
        return TransferImpact.UNKNOWN_SOURCE
    return TransferImpact.TOKEN_MOVED if source_order == target_order else TransferImpact.TOKEN_LOST
