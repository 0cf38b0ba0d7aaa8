"""JSON bodies of the simulated API, following openapi.json's definitions.

A field with no value is left out, never sent as null (tests/specs/sigfox-api-v2/SOURCE.md); a
device without a token has no `token` key at all. Names of linked entities appear only when
asked with `fields=`, as the real API does (`deviceType(name)`, `group(name,...)`,
`contract(name)`, `order(name)`).
"""

from __future__ import annotations

from typing import Any

from sigfox.simulator.backend import World
from sigfox.simulator.entities import (
    TOKEN_DETAIL,
    Callback,
    ComState,
    Contract,
    Device,
    DeviceType,
    Group,
    Job,
    Message,
)

DAY_MS = 86_400_000


def compact(body: dict[str, Any]) -> dict[str, Any]:
    """Drop absent values (None, empty strings) so no field is ever null."""
    return {k: v for k, v in body.items() if v is not None and v != ""}


def _ref(ident: str, name: str, with_name: bool) -> dict[str, Any]:
    return {"id": ident, "name": name} if with_name else {"id": ident}


def com_state(last_com_ms: int | None, now_ms: int) -> ComState:
    if last_com_ms is None:
        return ComState.NOT_SEEN
    age = now_ms - last_com_ms
    if age <= DAY_MS:
        return ComState.OK
    return ComState.WARN if age <= 3 * DAY_MS else ComState.KO


def device(world: World, dev: Device, fields: str = "") -> dict[str, Any]:
    now = world.now_ms()
    dtype = world.device_types[dev.device_type_id]
    group = world.groups[dev.group_id]
    contract = world.contract_of(dev)
    # Without a token a device has no contract of its own: some fleets (by seed) leave it out.
    show_contract = dev.token is not None or world.tokenless_devices_show_contract
    body = {
        "id": dev.id,
        "name": dev.name,
        "deviceType": _ref(dtype.id, dtype.name, "deviceType(" in fields),
        "group": _ref(group.id, group.name, "group(" in fields),
        "contract": _ref(contract.id, contract.name, "contract(" in fields)
        if show_contract else None,
        # An API user whose profile may not read PACs gets devices without `pac`.
        "pac": None if world.hide_pacs else dev.pac,
        "state": int(world.device_state(dev)),
        "comState": int(com_state(dev.last_com_ms, now)),
        "sequenceNumber": dev.sequence_number,
        "lastCom": dev.last_com_ms,
        "creationTime": dev.creation_ms,
        "activationTime": (dev.token.activation_ms or None) if dev.token else None,
        "location": {"lat": dev.lat, "lng": dev.lng},
        "prototype": dev.prototype,
        "automaticRenewal": dev.automatic_renewal,
        # Computed as Sigfox describes it: 0 ALLOWED when device, type and contract allow it.
        "automaticRenewalStatus": 0 if world.renewal_allowed(dev) else 1,
        "activable": dev.activable,
        "unsubscriptionTime": dev.unsubscription_ms,
        "lastEditionTime": dev.last_edition_ms,
        "productCertificate": {"key": dev.product_certificate} if dev.product_certificate else None,
        "token": token(world, dev),
    }
    return compact(body)


def token(world: World, dev: Device) -> dict[str, Any] | None:
    if dev.token is None:
        return None
    state = dev.token.state(world.now_ms())
    return compact({"state": int(state), "detailMessage": TOKEN_DETAIL[state],
                    "end": dev.token.end_ms})


def device_type(world: World, dtype: DeviceType, fields: str = "") -> dict[str, Any]:
    group = world.groups[dtype.group_id]
    named = "contract(" in fields or "contracts(" in fields

    def refs(ids: list[str]) -> list[dict[str, Any]] | None:
        return [_ref(c, world.contracts[c].name, named) for c in ids] or None

    contracts = refs(dtype.contract_ids)
    return compact({
        "id": dtype.id,
        "name": dtype.name,
        "description": dtype.description,
        "keepAlive": dtype.keep_alive,
        "payloadType": dtype.payload_type,
        "downlinkMode": dtype.downlink_mode,
        "group": _ref(group.id, group.name, "group(" in fields),
        "contract": contracts[0] if contracts and dtype.shape in ("both", "contract") else None,
        "contracts": contracts if dtype.shape in ("both", "contracts") else None,
        "detachedContracts": refs(dtype.detached_contract_ids),
        "automaticRenewal": dtype.automatic_renewal,
        "creationTime": dtype.creation_ms,
    })


def contract(world: World, con: Contract, fields: str = "") -> dict[str, Any]:
    group = world.groups[con.group_id]
    return compact({
        "id": con.id,
        "contractId": con.external_id,
        "name": con.name,
        "group": _ref(group.id, group.name, "group(" in fields),
        "order": _ref(con.order_id, con.order_name, "order(" in fields),
        "startTime": con.start_ms,
        "communicationEndTime": con.end_ms,
        "activationEndTime": con.activation_end,
        "maxTokens": con.max_tokens,
        "tokenDuration": con.token_duration,
        "tokensInUse": con.tokens_in_use,
        "tokensUsed": con.tokens_used,
        "automaticRenewal": con.automatic_renewal,
        "renewalDuration": con.token_duration,
        "pricingModel": 2,
        "subscriptionPlan": 2,
        "timezone": "UTC",
        "creationTime": con.creation_ms,
    })


def group(world: World, grp: Group) -> dict[str, Any]:
    path = []
    parent_id = grp.parent_id
    while parent_id is not None:
        parent = world.groups[parent_id]
        path.append({"id": parent.id, "name": parent.name, "type": parent.type,
                     "level": parent.level})
        parent_id = parent.parent_id
    leaf = not any(g.parent_id == grp.id for g in world.groups.values())
    return compact({
        "id": grp.id,
        "name": grp.name,
        "nameCI": grp.name.lower(),
        "type": grp.type,
        "timezone": grp.timezone,
        "path": path or None,
        "leaf": leaf,
        "creationTime": grp.creation_ms,
    })


def callback(cb: Callback) -> dict[str, Any]:
    return compact({
        "id": cb.id,
        "channel": cb.channel,
        "callbackType": cb.callback_type,
        "callbackSubtype": cb.callback_subtype,
        "payloadConfig": cb.payload_config,
        "enabled": cb.enabled,
        "dead": cb.dead,
        "url": cb.url,
        "httpMethod": cb.http_method,
        "headers": cb.headers,
        "sendSni": cb.send_sni,
        "bodyTemplate": cb.body_template,
        "contentType": cb.content_type,
        "downlinkHook": False,
    })


def message(dev: Device, msg: Message) -> dict[str, Any]:
    return compact({
        "device": {"id": dev.id, "name": dev.name},
        "time": msg.time_ms,
        "data": msg.data,
        "seqNumber": msg.seq_number,
        "lqi": msg.lqi,
        "nbFrames": msg.nb_frames,
    })


def registration_job(job: Job) -> dict[str, Any]:
    """`registrationJobStatus`: creation and transfer jobs (GET /devices/bulk/{jobId})."""
    return {"jobDone": job.done, "total": job.total,
            "status": {"success": job.success, "errors": list(job.errors)}}


def action_job(job: Job) -> dict[str, Any]:
    """`actionJob`: restart and unsubscribe jobs."""
    return {"jobDone": job.done,
            "status": {"total": job.total, "nbSuccess": job.success,
                       "nbErrors": len(job.errors), "errors": list(job.errors)}}
