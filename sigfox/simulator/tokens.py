"""Sigfox's token lifecycle on the simulator's entities: a token taken from a contract, used
up, turned Off Contract, or moved by a transfer (the reading is docs/sigfox-semantics.md).

Plain functions over a device and the contracts it names; the `World` calls them under its
lock and decides when each applies."""

from __future__ import annotations

from collections.abc import Sequence

from sigfox.simulator.api_errors import ApiError
from sigfox.simulator.clock import add_months
from sigfox.simulator.entities import Contract, Device, Token


def take_token(device: Device, candidates: Sequence[Contract], now: int) -> None:
    """Take a fresh token from the first contract able to give one, or go Off Contract."""
    for contract in candidates:
        if contract.can_activate(now):
            contract.tokens_in_use += 1
            months = contract.token_duration
            end = None if months == 0 else add_months(now, months)
            device.token = Token(contract.id, end, activation_ms=now)
            return
    go_off_contract(device, candidates[0].id)


def go_off_contract(device: Device, contract_id: str) -> None:
    previous_end = device.token.end_ms if device.token is not None else None
    device.token = Token(contract_id, previous_end, off_contract=True)


def release_token(device: Device, contract: Contract) -> None:
    """The token (taken on `contract`) is used up: it stops counting in use there."""
    token = device.token
    if token is not None and not token.off_contract:
        contract.tokens_in_use = max(0, contract.tokens_in_use - 1)
        contract.tokens_used += 1


def transfer_token(device: Device, old: Contract, new: Contract) -> str:
    """What a transfer from the device's own contract `old` to `new` does to its token;
    returns the outcome: no_token, same_contract, token_moved or token_lost."""
    token = device.token
    if token is None:
        return "no_token"
    if old.id == new.id:
        return "same_contract"
    if old.order_id == new.order_id:
        if not token.off_contract:
            if not new.has_free_token():
                raise ApiError(400, f"No token available on contract {new.name}")
            old.tokens_in_use = max(0, old.tokens_in_use - 1)
            new.tokens_in_use += 1
        token.contract_id = new.id  # same activation and end dates
        return "token_moved"
    release_token(device, old)
    device.token = None
    return "token_lost"
