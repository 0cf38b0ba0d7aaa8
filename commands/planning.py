"""What a request would do, worked out before anything changes: the pre-flight of each kind.

`plan_request` reads Sigfox (never writes), refuses with a `Refusal` that says why and what to
do instead, and otherwise returns a `Plan`: the devices as they are now (their snapshot is taken
from these), the summary people approve, the parameters the workflow keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from commands.policy import Actor
from commands.ports import SigfoxApi, Target
from commands.preflight import (
    Refusal,
    TransferImpact,
    contract_of,
    day,
    require_contract_usable,
    require_deletable,
    require_device,
    resolve_device_type,
    transfer_impact,
)
from commands.states import Kind
from sigfox.models import ContractInfo, Device, TokenState


@dataclass(frozen=True)
class Request:
    kind: Kind
    actor: Actor
    device_ids: tuple[str, ...]
    target: Target = field(default_factory=Target)
    device_type: str | None = None
    unsubscribe_at_ms: int | None = None
    reason: str = ""  # why the requester asks (required for a large renewal or delete)


@dataclass(frozen=True)
class Plan:
    devices: list[Device]
    summary: str
    params: dict[str, Any]
    needs_approval: bool
    restart_advice: tuple[str, ...] = ()


def plan_request(api: SigfoxApi, now: float, request: Request) -> Plan:
    devices = [require_device(api, device_id) for device_id in request.device_ids]
    planners: dict[Kind, Callable[[SigfoxApi, float, Request, list[Device]], Plan]] = {
        Kind.RENEW: _plan_renew,
        Kind.DELETE: _plan_delete,
        Kind.TRANSFER: _plan_transfer,
        Kind.RESTART: _plan_restart,
        Kind.UNSUBSCRIBE: _plan_unsubscribe,
    }
    return planners[request.kind](api, now, request, devices)


def _plan_renew(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    for device in devices:
        require_deletable(device, "renew")
    target_type = resolve_device_type(api, request.device_type) if request.device_type else None
    advice: list[str] = []
    targets: dict[str, str] = {}
    for device in devices:
        device_type = target_type or api.get_device_type(type_id_of(device))
        contract = contract_of(api, device_type)
        require_contract_usable(contract, now)
        targets[device.id] = device_type.id
        if _restart_would_do(device, device_type.id, contract):
            advice.append(device.id)
    summary = (
        f"Renew {describe(devices)}: delete, wait for Sigfox to release the id, register "
        "again with the recorded PAC, then wait for the first message. Message history is "
        "lost and the current token with it; the PAC is recorded before the delete."
    )
    params = {"targets": targets, "device_type": request.device_type}
    return Plan(devices, summary, params, True, tuple(advice))


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
    target_contract = contract_of(api, target_type)
    sources: dict[str, ContractInfo | None] = {}
    impacts: dict[str, str] = {}
    for device in devices:
        source_type_id = type_id_of(device)
        if source_type_id == target_type.id:
            raise Refusal(f"Device {device.id} is already on {target_type.name}.")
        if source_type_id not in sources:
            source_type = api.get_device_type(source_type_id)
            has_contract = source_type.contract is not None
            sources[source_type_id] = contract_of(api, source_type) if has_contract else None
        impact = transfer_impact(device, sources[source_type_id], target_contract)
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
        require_contract_usable(contract_of(api, api.get_device_type(type_id_of(device))), now)
    return Plan(devices, f"Restart {describe(devices)} on their contracts.", {}, False)


def _plan_unsubscribe(api: SigfoxApi, now: float, request: Request, devices: list[Device]) -> Plan:
    if request.unsubscribe_at_ms is None:
        raise Refusal("Say when: `/sigfox unsubscribe <id> 2027-01-31`.")
    summary = (
        f"Unsubscribe {describe(devices)} on {day(request.unsubscribe_at_ms)}: the device stops "
        "communicating and its subscription is not renewed after that date."
    )
    return Plan(devices, summary, {"unsubscribe_at_ms": request.unsubscribe_at_ms}, True)


def type_id_of(device: Device) -> str:
    return device.device_type.id if device.device_type and device.device_type.id else ""


def _restart_would_do(device: Device, type_id: str, contract: ContractInfo) -> bool:
    """Off Contract on its own type whose contract has tokens: a restart brings it back."""
    off = device.token is not None and device.token.state == TokenState.OFF_CONTRACT
    left = contract.tokens_left
    return off and type_id == type_id_of(device) and (left is None or left > 0)


def describe(devices: Sequence[Device]) -> str:
    if len(devices) == 1:
        return f"device {devices[0].id}"
    shown = ", ".join(d.id for d in devices[:5])
    return f"{len(devices)} devices ({shown}" + (", …)" if len(devices) > 5 else ")")
