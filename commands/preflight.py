"""Checks made before anything changes, and what a transfer costs (seed 001).

Every refusal says why and what to do instead; nothing here writes to Sigfox.
"""

from __future__ import annotations

from enum import StrEnum

from commands import human
from commands.ports import SigfoxApi
from sigfox.models import ContractInfo, Device, DeviceType, TokenState


class Refusal(Exception):
    """A request refused before anything changed. The message is for the requester."""


def day(ms: int | None) -> str:
    """A Sigfox time (ms) as a day, for the refusals and plans written here."""
    return human.day_ms(ms, none="no end date")


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


def require_device(api: SigfoxApi, device_id: str) -> Device:
    device = api.find_device(device_id)
    if device is None:
        raise Refusal(
            f"Device {device_id} is not in this Sigfox account: check the id with "
            f"`/sigfox status {device_id}`, or register it in the Sigfox portal first."
        )
    return device


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
    left = contract.tokens_left
    if left is not None and left <= 0:
        raise Refusal(
            f"Contract {contract.name or contract.id} has no tokens left "
            f"({contract.tokens_in_use}/{contract.max_tokens} in use): a renewed device could "
            "not take a token. Ask for more tokens, or renew to a device type on another "
            "contract with `renew <id> to <device-type>`."
        )
    end = contract.end_time
    if end is not None and end / 1000 <= now:
        raise Refusal(
            f"Contract {contract.name or contract.id} ended on {day(end)}: a renewed device "
            "could not take a token. Renew to a device type on a running contract with "
            "`renew <id> to <device-type>`."
        )


def contract_of(api: SigfoxApi, device_type: DeviceType) -> ContractInfo:
    if device_type.contract is None or not device_type.contract.id:
        raise Refusal(
            f"Device type {device_type.name or device_type.id} is bound to no contract: "
            "devices registered on it cannot take a token."
        )
    return api.get_contract_info(device_type.contract.id)


class TransferImpact(StrEnum):
    """What seed 001 says a transfer does to a device's token."""

    NO_TOKEN = "no_token"
    SEAMLESS = "seamless"
    TOKEN_MOVED = "token_moved"
    TOKEN_LOST = "token_lost"

    @property
    def needs_approval(self) -> bool:
        return self is TransferImpact.TOKEN_LOST

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
        }[self]


def transfer_impact(
    device: Device, source_contract: ContractInfo | None, target_contract: ContractInfo
) -> TransferImpact:
    if device.token is None:
        return TransferImpact.NO_TOKEN
    if source_contract is None or source_contract.id == target_contract.id:
        return TransferImpact.SEAMLESS
    same_order = (
        source_contract.order is not None
        and target_contract.order is not None
        and source_contract.order.id == target_contract.order.id
    )
    return TransferImpact.TOKEN_MOVED if same_order else TransferImpact.TOKEN_LOST
