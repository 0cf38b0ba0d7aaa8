"""What a request would do, worked out before anything changes: the pre-flight of each kind.

`plan_request` reads Sigfox (never writes), refuses with a `Refusal` that says why and what to
do instead, and otherwise returns a `Plan`: the devices as they are now (their snapshot is taken
from these), the summary people approve, the parameters the workflow keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

from commands.policy import Actor
from commands.ports import SigfoxApi, Target
from commands.preflight import (
    Refusal,
    TransferImpact,
    contracts_of,
    day,
    require_activable,
    require_deletable,
    require_devices,
    require_pac,
    require_tokens_available,
    resolve_device_type,
    token_label,
    transfer_impact,
)
from commands.states import Kind
from sigfox.device_reads import ReadCount
from sigfox.errors import SigfoxForbidden, SigfoxNotFound
from sigfox.models import ContractInfo, Device, DeviceType, TokenState


@dataclass(frozen=True)
class Request:
    kind: Kind
    actor: Actor
    device_ids: tuple[str, ...]
    target: Target = field(default_factory=Target)
    device_type: str | None = None
    unsubscribe_at_ms: int | None = None
    reason: str = ""  # why the requester asks (required for a large renewal or delete)
    by_delete: bool = False  # renew: the requester asked for delete and re-register


@dataclass(frozen=True)
class Plan:
    devices: list[Device]
    summary: str
    params: dict[str, Any]
    needs_approval: bool
    restart_advice: tuple[str, ...] = ()


def plan_request(api: SigfoxApi, now: float, request: Request,
                 on_read: ReadCount | None = None) -> Plan:
    """`on_read(read, wanted)` is told as the devices are read (a big request takes a few
    answer times; the caller coalesces what it shows)."""
    # A thousand devices of one type share one device type and one contract: read each once
    # per request, not once per device (each read is an answer time, hundreds of ms).
    api = cast(SigfoxApi, _ReadOnce(api))
    devices = require_devices(api, request.device_ids, on_read)
    planners: dict[Kind, Callable[[SigfoxApi, float, Request, list[Device]], Plan]] = {
        Kind.RENEW: _plan_renew,
        Kind.DELETE: _plan_delete,
        Kind.TRANSFER: _plan_transfer,
        Kind.RESTART: _plan_restart,
        Kind.UNSUBSCRIBE: _plan_unsubscribe,
    }
    return planners[request.kind](api, now, request, devices)


def _plan_renew(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    """The least destructive renewal that can end with a working device (docs/sigfox-semantics.md):
    restart, then transfer, then automatic renewal; delete and re-register only when none can
    work, or when asked for with `by delete`. Every device of one request goes the same way."""
    target_type = resolve_device_type(api, request.device_type) if request.device_type else None
    choices = [choose_renewal(api, now, d, target_type, request.by_delete) for d in devices]
    methods = {c.method for c in choices}
    if len(methods) > 1:
        listed = "; ".join(f"{c.device_id} by {c.method.value}" for c in choices)
        raise Refusal(f"These devices need different renewals ({listed}): ask for each kind "
                      "separately.")
    method = choices[0].method
    params: dict[str, Any] = {
        "method": method.value,
        "targets": {c.device_id: c.device_type_id for c in choices},
        "device_type": request.device_type,
    }
    if method is RenewMethod.TRANSFER and target_type is not None:
        params.update(device_type_id=target_type.id, device_type_name=target_type.name)
    why = "\n".join(f"• {c.device_id}: {c.why}" for c in choices)
    summary = f"Renew {describe(devices)} {RENEW_HOW[method]}\n{why}"
    needs_approval = any(c.needs_approval for c in choices)
    advice = tuple(c.device_id for c in choices if c.restart_would_do)
    return Plan(devices, summary, params, needs_approval, advice)


class RenewMethod(StrEnum):
    RESTART = "restart"
    TRANSFER = "transfer"
    AUTOMATIC_RENEWAL = "automatic renewal"
    DELETE = "delete"


RENEW_HOW = {
    RenewMethod.RESTART: "by a restart: it comes back on its own contract, history kept.",
    RenewMethod.TRANSFER: "by a transfer to the requested device type: the device and its "
                          "history are kept, then the bot waits for its first message.",
    RenewMethod.AUTOMATIC_RENEWAL: "by switching on automatic renewal: its token, still "
                                   "valid, is renewed at its end by its next message.",
    RenewMethod.DELETE: "by deleting it, waiting for Sigfox to release the id, registering it "
                        "again with the recorded PAC, then waiting for its first message. "
                        "Message history is lost and the current token with it; the PAC is "
                        "recorded before the delete.",
}


@dataclass(frozen=True)
class RenewChoice:
    device_id: str
    method: RenewMethod
    device_type_id: str
    why: str
    needs_approval: bool
    restart_would_do: bool = False  # `by delete` was asked where a restart would do


def choose_renewal(
    api: SigfoxApi, now: float, device: Device, target_type: DeviceType | None, by_delete: bool
) -> RenewChoice:
    """The first of restart, transfer, automatic renewal that can end with a token OK, else
    delete and re-register (refused here when that could not end with a working device)."""
    require_activable(device)
    own_type_id = type_id_of(device)
    moving = target_type is not None and target_type.id != own_type_id
    rejected: list[str] = []
    if not by_delete:
        for attempt in (_try_restart, _try_transfer, _try_automatic_renewal):
            choice = attempt(api, now, device, target_type if moving else None, rejected)
            if choice is not None:
                return choice
    return _plan_delete_renewal(api, now, device, target_type, by_delete, rejected)


def _try_restart(api: SigfoxApi, now: float, device: Device, target: DeviceType | None,
                 rejected: list[str]) -> RenewChoice | None:
    if target is not None or device.token_state != TokenState.OFF_CONTRACT:
        return None
    contracts = _own_contracts(api, device)
    reasons = [r for r in (c.why_no_token(now * 1000) for c in contracts) if r]
    if not contracts or reasons:
        rejected.append("a restart would not work: " + ("; ".join(reasons) or
                                                       "its contract can't be read"))
        return None
    return RenewChoice(device.id, RenewMethod.RESTART, type_id_of(device),
                       "Off Contract, and its own contract still has tokens: a restart brings "
                       "it back without deleting anything.", False)


def _try_transfer(api: SigfoxApi, now: float, device: Device, target: DeviceType | None,
                  rejected: list[str]) -> RenewChoice | None:
    if target is None or device.token_state not in (None, TokenState.OFF_CONTRACT):
        return None
    targets = contracts_of(api, target)
    reasons = [r for r in (c.why_no_token(now * 1000) for c in targets) if r]
    if reasons:
        rejected.append("a transfer would not work: " + "; ".join(reasons))
        return None
    impact = transfer_impact(device, _source_contract(api, device), targets)
    if impact in (TransferImpact.SEAMLESS, TransferImpact.TOKEN_MOVED):
        # An Off Contract token that stays (or moves with its dates) stays Off Contract.
        rejected.append(f"a transfer would not work: {impact.explanation}, still Off Contract")
        return None
    return RenewChoice(device.id, RenewMethod.TRANSFER, target.id,
                       f"a transfer to {target.name or target.id} keeps the device and its "
                       f"history; {impact.explanation}.", impact.needs_approval)


def _try_automatic_renewal(api: SigfoxApi, now: float, device: Device, target: DeviceType | None,
                           rejected: list[str]) -> RenewChoice | None:
    token = device.token
    if target is not None or token is None or token.state != TokenState.OK:
        return None
    if token.end is not None and token.end <= now * 1000:
        return None
    device_type = api.get_device_type(type_id_of(device))
    contracts = _own_contracts(api, device)
    allowed = device_type.automatic_renewal is not False and contracts and all(
        c.automatic_renewal for c in contracts
    )
    if not allowed:
        return None
    if device.automatic_renewal:
        raise Refusal(
            f"Device {device.id} has a valid token ({token_label(device)}) and already renews "
            "automatically (device, device type and contract allow it): its next message after "
            "the end takes a new token. There is nothing to renew."
        )
    return RenewChoice(device.id, RenewMethod.AUTOMATIC_RENEWAL, type_id_of(device),
                       f"its token is valid ({token_label(device)}) and its contract and device "
                       "type allow automatic renewal: switching it on for the device renews the "
                       "token at its end, nothing deleted.", False)


def _plan_delete_renewal(api: SigfoxApi, now: float, device: Device, target_type: DeviceType | None,
                         by_delete: bool, rejected: list[str]) -> RenewChoice:
    require_deletable(device, "renew")
    require_pac(device)
    device_type = target_type or api.get_device_type(type_id_of(device))
    require_tokens_available(contracts_of(api, device_type), now)
    restart = None
    if by_delete and (target_type is None or target_type.id == type_id_of(device)):
        restart = _try_restart(api, now, device, None, [])
    if by_delete:
        why = "delete and re-register, as asked (`by delete`)."
    else:
        why = "nothing less destructive can work" + (
            f" ({'; '.join(rejected)})." if rejected else
            " (no restart, transfer or automatic renewal applies to it)."
        )
    return RenewChoice(device.id, RenewMethod.DELETE, device_type.id, why, True,
                       restart is not None)


def _own_contracts(api: SigfoxApi, device: Device) -> list[ContractInfo]:
    """The contract the device's token came from; without one, its device type's."""
    if device.contract_id:
        return [api.get_contract_info(device.contract_id)]
    return contracts_of(api, api.get_device_type(type_id_of(device)))


def _source_contract(api: SigfoxApi, device: Device) -> ContractInfo | None:
    """The device's own contract as Sigfox describes it; None when it can't be read."""
    if not device.contract_id:
        return None
    try:
        return api.get_contract_info(device.contract_id)
    except (SigfoxNotFound, SigfoxForbidden):
        return None


def _plan_delete(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    for device in devices:
        require_deletable(device, "delete")
    summary = (
        f"Delete {describe(devices)} from Sigfox. Message history is lost; the PAC is "
        "recorded so the device can be registered again."
    )
    return Plan(devices, summary, {}, True)


def _plan_transfer(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    if not request.device_type:
        raise Refusal("Say where to: `/sigfox transfer <id> to <device-type>`.")
    target_type = resolve_device_type(api, request.device_type)
    target_contracts = contracts_of(api, target_type)
    impacts: dict[str, str] = {}
    for device in devices:
        if type_id_of(device) == target_type.id:
            raise Refusal(f"Device {device.id} is already on {target_type.name}.")
        impact = transfer_impact(device, _source_contract(api, device), target_contracts)
        impacts[device.id] = impact.value
    lines = [f"• {d}: {TransferImpact(i).explanation}" for d, i in impacts.items()]
    head = f"Transfer {describe(devices)} to device type {target_type.name}."
    summary = "\n".join([head, *lines])
    params = {
        "device_type_id": target_type.id,
        "device_type_name": target_type.name,
        "impacts": impacts,
    }
    loses_a_token = any(TransferImpact(i).needs_approval for i in impacts.values())
    return Plan(devices, summary, params, loses_a_token)


def _plan_restart(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    for device in devices:
        if device.token is None or device.token.state != TokenState.OFF_CONTRACT:
            raise Refusal(
                f"Device {device.id} is not Off Contract: a restart only brings back an "
                "Off Contract device."
            )
        require_tokens_available(_own_contracts(api, device), now)
    return Plan(devices, f"Restart {describe(devices)} on their contracts.", {}, False)


def _plan_unsubscribe(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    if request.unsubscribe_at_ms is None:
        raise Refusal("Say when: `/sigfox unsubscribe <id> 2027-01-31`.")
    summary = (
        f"Unsubscribe {describe(devices)} on {day(request.unsubscribe_at_ms)}: the device stops "
        "communicating and its subscription is not renewed after that date."
    )
    return Plan(devices, summary, {"unsubscribe_at_ms": request.unsubscribe_at_ms}, True)


class _ReadOnce:
    """The API with device types and contracts read once (one request's plan reads them
    consistently); every other call goes straight through."""

    def __init__(self, api: SigfoxApi) -> None:
        self._api = api
        self._types: dict[str, DeviceType] = {}
        self._contracts: dict[str, ContractInfo] = {}

    def get_device_type(self, device_type_id: str) -> DeviceType:
        if device_type_id not in self._types:
            self._types[device_type_id] = self._api.get_device_type(device_type_id)
        return self._types[device_type_id]

    def get_contract_info(self, contract_id: str) -> ContractInfo:
        if contract_id not in self._contracts:
            self._contracts[contract_id] = self._api.get_contract_info(contract_id)
        return self._contracts[contract_id]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


def type_id_of(device: Device) -> str:
    return device.device_type.id if device.device_type and device.device_type.id else ""


def describe(devices: Sequence[Device]) -> str:
    if len(devices) == 1:
        return f"device {devices[0].id}"
    shown = ", ".join(d.id for d in devices[:5])
    return f"{len(devices)} devices ({shown}" + (", …)" if len(devices) > 5 else ")")
