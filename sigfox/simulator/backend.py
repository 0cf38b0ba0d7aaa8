"""The state of the simulated backend and the Sigfox rules that change it.

Everything here is plain Python under one re-entrant lock: the HTTP layer (`server.py`) parses
requests, calls one `World` method, and renders what it returns. Tests reach the same object
through `SimulatorServer.world` to set up exactly the devices they need.

Rules implemented (tests/specs/sigfox-api-v2/SOURCE.md; the reading is docs/sigfox-semantics.md):
- a device has no `token` until its first uplink, which takes one from the first of its device
  type's contracts able to give one (started, not ended, open to activations, not full; end =
  now + tokenDuration months) or turns it Off Contract when none can; a device that is not
  activable takes no token;
- what the API description allows, the simulator varies, so the bot meets every shape: a device
  type lists its contracts in `contract`, `contracts[]` or both (chosen per type from the seed),
  may have several and `detachedContracts`; contracts may not have started, or close to
  activations before communications end; a device without a token may come without
  `contract` (by seed); `hide_pacs` plays an API user whose profile may not read PACs;
- a token past its end is Invalid until the next uplink, which renews it (automatic renewal
  allowed on device, device type and contract, a token free, not unsubscribed) or turns it
  Off Contract;
- only a device Off Contract or without a token can be deleted; its id stays held for
  `delete_hold` virtual seconds (creation answers 409 meanwhile);
- registering a device gives it a new PAC; the current PAC of every id ever known is kept, and
  re-registering needs it;
- transfers follow Sigfox's token lifecycle (no token / same contract / same order / other
  order), judged from the device's own contract (docs/sigfox-semantics.md).
"""

from __future__ import annotations

import calendar
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeGuard

from sigfox.simulator.api_errors import ApiError, field_error, not_found
from sigfox.simulator.clock import SimClock
from sigfox.simulator.index import ALL_IDS, IdRange, SortedIds, select
from sigfox.simulator.model import (
    ALL_TYPE_SHAPES,
    TYPE_SHAPES,
    Callback,
    Contract,
    DeletedDevice,
    Device,
    DeviceState,
    DeviceType,
    Group,
    Job,
    Message,
    Token,
    TokenState,
)

HEX_ID = re.compile(r"^[0-9A-Fa-f]{1,8}$")
HEX_PAC = re.compile(r"^[0-9A-Fa-f]{16}$")
HEX_DATA = re.compile(r"^(?:[0-9A-Fa-f]{2}){0,12}$")
MAX_NAME = 100

CREATE_FIELDS = {
    "id", "name", "deviceTypeId", "pac", "prototype", "automaticRenewal", "activable",
    "lat", "lng", "productCertificate",
}
UPDATE_FIELDS = {
    "name", "lat", "lng", "prototype", "automaticRenewal", "activable", "productCertificate",
}


def add_months(ms: int, months: int) -> int:
    """`ms` plus calendar months (day clamped to the month's length), as token ends are."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    total = when.month - 1 + months
    year, month = when.year + total // 12, total % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return int(when.replace(year=year, month=month, day=day).timestamp() * 1000)


class World:
    def __init__(
        self,
        clock: SimClock | None = None,
        *,
        delete_hold: float = 1800.0,
        job_delay: float = 0.2,
        seed: int = 0,
        hide_pacs: bool = False,
    ) -> None:
        self.clock = clock or SimClock()
        self.delete_hold = delete_hold
        self.job_delay = job_delay
        self.hide_pacs = hide_pacs
        self.hold_status = 409  # the answer to re-creating a held id (409, or 400)
        self.lock = threading.RLock()
        self.rng = random.Random(seed ^ 0x5EED)
        # Shapes of optional fields come from their own generator, so ids stay what they were.
        self.shape_rng = random.Random(seed ^ 0x5A4E)
        self.tokenless_devices_show_contract = bool(self.shape_rng.getrandbits(1))
        self.groups: dict[str, Group] = {}
        self.contracts: dict[str, Contract] = {}
        self.device_types: dict[str, DeviceType] = {}
        self.devices: dict[str, Device] = {}
        self.deleted: dict[str, DeletedDevice] = {}
        self.pacs: dict[str, str] = {}
        self.jobs: dict[str, Job] = {}
        self.all_ids = SortedIds()
        self.by_type: dict[str, SortedIds] = {}
        self.by_group: dict[str, SortedIds] = {}
        self._timers: list[threading.Timer] = []
        self.clock.on_advance(lambda: self.run_due_jobs(force=True))

    # ------------------------------------------------------------------ ids and time

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def new_object_id(self) -> str:
        """A 24-hex id like the backend's Mongo object ids."""
        return f"{self.rng.getrandbits(96):024x}"

    def new_pac(self) -> str:
        return f"{self.rng.getrandbits(64):016X}"

    # ------------------------------------------------------------------ setup helpers

    def add_group(
        self, name: str, *, id: str | None = None, type: int = 2, level: int = 1,
        parent_id: str | None = None,
    ) -> Group:
        with self.lock:
            group = Group(
                id or self.new_object_id(), name, type=type, level=level,
                parent_id=parent_id, creation_ms=self.now_ms(),
            )
            self.groups[group.id] = group
            self.by_group.setdefault(group.id, SortedIds())
            return group

    def add_contract(
        self, name: str, *, order_id: str, order_name: str, group_id: str | None = None,
        max_tokens: int = 0, token_duration: int = 12, start_ms: int | None = None,
        end_ms: int | None = None, automatic_renewal: bool = True, id: str | None = None,
        activation_end_ms: int | None = None, tokens_used: int = 0,
    ) -> Contract:
        """A contract of an order. By default it started a year ago and ends in five years;
        it takes activations until it ends unless `activation_end_ms` says otherwise."""
        with self.lock:
            now = self.now_ms()
            contract = Contract(
                id=id or self.new_object_id(), name=name, order_id=order_id,
                order_name=order_name, group_id=group_id or self._root_group_id(),
                max_tokens=max_tokens, token_duration=token_duration,
                start_ms=add_months(now, -12) if start_ms is None else start_ms,
                end_ms=add_months(now, 60) if end_ms is None else end_ms,
                automatic_renewal=automatic_renewal, activation_end_ms=activation_end_ms,
                tokens_used=tokens_used,
                external_id=f"C-{self.rng.getrandbits(24):06X}", creation_ms=now,
            )
            self.contracts[contract.id] = contract
            return contract

    def add_device_type(
        self, name: str, contract_id: str, *, group_id: str | None = None,
        automatic_renewal: bool = True, id: str | None = None, description: str = "",
        more_contract_ids: tuple[str, ...] = (), detached_contract_ids: tuple[str, ...] = (),
        shape: str | None = None,
    ) -> DeviceType:
        """`shape` says how its contracts are shown (TYPE_SHAPES); None: chosen from the seed."""
        with self.lock:
            for known in (contract_id, *more_contract_ids, *detached_contract_ids):
                if known not in self.contracts:
                    raise KeyError(f"unknown contract {known}")
            if shape is not None and shape not in ALL_TYPE_SHAPES:
                raise ValueError(f"shape must be one of {ALL_TYPE_SHAPES}")
            dtype = DeviceType(
                id=id or self.new_object_id(), name=name, contract_id=contract_id,
                group_id=group_id or self.contracts[contract_id].group_id,
                description=description, automatic_renewal=automatic_renewal,
                creation_ms=self.now_ms(), more_contract_ids=list(more_contract_ids),
                detached_contract_ids=list(detached_contract_ids),
                shape=shape or self.shape_rng.choice(TYPE_SHAPES),
            )
            self.device_types[dtype.id] = dtype
            self.by_type.setdefault(dtype.id, SortedIds())
            return dtype

    def add_device(
        self, id: str | None = None, *, device_type_id: str | None = None,
        name: str | None = None, pac: str | None = None, token: str = "none",
        token_end_ms: int | None = None, last_com_ms: int | None = None,
        sequence_number: int | None = None, activable: bool = True,
        automatic_renewal: bool = True, lat: float = 0.0, lng: float = 0.0,
        creation_ms: int | None = None,
    ) -> Device:
        """Put a device straight into the backend (no API call, no rate limit).

        `token` is one of "none", "ok", "invalid", "off_contract". An "ok" or "invalid" token
        holds a slot of the device type's contract (tokensInUse + 1).
        """
        with self.lock:
            ident = (id or self._free_device_id()).upper()
            if ident in self.devices:
                raise ValueError(f"device {ident} already exists")
            dtype = self.device_types[device_type_id or next(iter(self.device_types))]
            now = self.now_ms()
            device = Device(
                id=ident, name=name or f"Device {ident}", pac=(pac or self.new_pac()).upper(),
                device_type_id=dtype.id, group_id=dtype.group_id,
                creation_ms=now if creation_ms is None else creation_ms, lat=lat, lng=lng,
                activable=activable, automatic_renewal=automatic_renewal,
                last_com_ms=last_com_ms, sequence_number=sequence_number,
            )
            device.token = self._initial_token(dtype, token, token_end_ms, now)
            self._insert(device)
            return device

    def _initial_token(
        self, dtype: DeviceType, kind: str, end_ms: int | None, now: int
    ) -> Token | None:
        contract = self.contracts[dtype.contract_id]
        if kind == "none":
            return None
        if kind == "off_contract":
            return Token(contract.id, end_ms, off_contract=True)
        if kind not in ("ok", "invalid"):
            raise ValueError(f"unknown token kind {kind!r}")
        default_end = add_months(now, 6) if kind == "ok" else now - 86_400_000
        contract.tokens_in_use += 1
        return Token(contract.id, default_end if end_ms is None else end_ms, activation_ms=now)

    def _free_device_id(self) -> str:
        while True:
            ident = f"{self.rng.randrange(0x100000, 0xFFFFFFF):X}"
            if ident not in self.pacs:
                return ident

    def _root_group_id(self) -> str:
        if not self.groups:
            self.add_group("Simulated customer", level=0)
        return next(iter(self.groups))

    def _insert(self, device: Device) -> None:
        self.devices[device.id] = device
        self.pacs[device.id] = device.pac
        self.all_ids.add(device.id)
        self.by_type.setdefault(device.device_type_id, SortedIds()).add(device.id)
        self.by_group.setdefault(device.group_id, SortedIds()).add(device.id)

    def insert_many(self, devices: list[Device]) -> None:
        """Insert generated devices in one go (indexes sorted once)."""
        with self.lock:
            per_type: dict[str, list[str]] = {}
            per_group: dict[str, list[str]] = {}
            for device in devices:
                self.devices[device.id] = device
                self.pacs[device.id] = device.pac
                per_type.setdefault(device.device_type_id, []).append(device.id)
                per_group.setdefault(device.group_id, []).append(device.id)
            self.all_ids.extend([d.id for d in devices])
            for key, ids in per_type.items():
                self.by_type.setdefault(key, SortedIds()).extend(ids)
            for key, ids in per_group.items():
                self.by_group.setdefault(key, SortedIds()).extend(ids)

    def _remove(self, device: Device) -> None:
        del self.devices[device.id]
        self.all_ids.remove(device.id)
        self.by_type[device.device_type_id].remove(device.id)
        self.by_group[device.group_id].remove(device.id)

    # ------------------------------------------------------------------ lookups

    def pac_of(self, device_id: str) -> str | None:
        """The PAC that registers `device_id` now (kept after a delete), None if never known."""
        with self.lock:
            return self.pacs.get(device_id.upper())

    def device(self, device_id: str) -> Device:
        with self.lock:
            device = self.devices.get(device_id.upper())
            if device is None:
                raise not_found("Device", device_id)
            return device

    def device_type(self, dtype_id: str) -> DeviceType:
        with self.lock:
            if dtype_id not in self.device_types:
                raise not_found("Device type", dtype_id)
            return self.device_types[dtype_id]

    def contract(self, contract_id: str) -> Contract:
        with self.lock:
            if contract_id not in self.contracts:
                raise not_found("Contract", contract_id)
            return self.contracts[contract_id]

    def group(self, group_id: str) -> Group:
        with self.lock:
            if group_id not in self.groups:
                raise not_found("Group", group_id)
            return self.groups[group_id]

    def contract_of(self, device: Device) -> Contract:
        """The token's contract, else the device type's (where the first token will come from)."""
        if device.token is not None:
            return self.contracts[device.token.contract_id]
        return self.contracts[self.device_types[device.device_type_id].contract_id]

    def token_state(self, device: Device) -> TokenState | None:
        return None if device.token is None else device.token.state(self.now_ms())

    def device_state(self, device: Device) -> DeviceState:
        state = self.token_state(device)
        if state is TokenState.OFF_CONTRACT:
            return DeviceState.OFF_CONTRACT
        if state is None and not device.activable:
            return DeviceState.NOT_ACTIVABLE
        return DeviceState.OK

    def find_device_types(
        self, *, contract_id: str | None = None, order_id: str | None = None
    ) -> list[DeviceType]:
        with self.lock:
            found = []
            for dtype in self.device_types.values():
                contracts = [self.contracts[c] for c in dtype.contract_ids]
                if contract_id is not None and contract_id not in dtype.contract_ids:
                    continue
                if order_id is not None and all(c.order_id != order_id for c in contracts):
                    continue
                found.append(dtype)
            return found

    # ------------------------------------------------------------------ device lists

    def query_devices(
        self, *, device_id: str | None = None, device_type_id: str | None = None,
        group_ids: list[str] | None = None, contract_id: str | None = None,
        after: str | None = None, offset: int = 0, limit: int = 100, span: IdRange = ALL_IDS,
    ) -> tuple[list[Device], bool]:
        """One page of devices sorted by id within `span`, and whether more follow (keyset
        after `after`)."""
        with self.lock:
            index, keep = self._plan(device_id, device_type_id, group_ids, contract_id)
            ids, more = select(index, keep, after, offset, limit, span)
            return [self.devices[i] for i in ids], more

    def _plan(
        self, device_id: str | None, device_type_id: str | None,
        group_ids: list[str] | None, contract_id: str | None,
    ) -> tuple[SortedIds, Callable[[str], bool] | None]:
        """Pick the narrowest index, and a filter for whatever that index does not imply."""
        checks: list[Callable[[Device], bool]] = []
        if device_id is not None:
            wanted = device_id.upper()
            index = SortedIds([wanted] if wanted in self.devices else [])
        elif device_type_id is not None:
            index = self.by_type.get(device_type_id, SortedIds())
            device_type_id = None
        elif group_ids is not None and len(group_ids) == 1:
            index = self.by_group.get(group_ids[0], SortedIds())
            group_ids = None
        else:
            index = self.all_ids
        if device_type_id is not None:
            checks.append(lambda d: d.device_type_id == device_type_id)
        if group_ids is not None:
            groups = set(group_ids)
            checks.append(lambda d: d.group_id in groups)
        if contract_id is not None:
            # The spec: "devices having a token on the specified contract". A device without a
            # token only points at its device type's contract and is not listed; an Off
            # Contract token still names the contract it was taken on, so it is.
            checks.append(lambda d: d.token is not None and d.token.contract_id == contract_id)
        if not checks:
            return index, None
        return index, lambda ident: all(check(self.devices[ident]) for check in checks)

    def messages(
        self, device_id: str, *, since: int | None, before: int | None, offset: int, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages newest first, within [since, before)."""
        with self.lock:
            device = self.device(device_id)
            chosen = [
                m for m in reversed(device.messages)
                if (since is None or m.time_ms >= since) and (before is None or m.time_ms < before)
            ]
            page = chosen[offset : offset + limit]
            return page, offset + limit < len(chosen)

    # ------------------------------------------------------------------ token rules

    def _take_token(self, device: Device, now: int, contract_ids: list[str] | None = None) -> None:
        """Take a fresh token from the first contract able to give one (the device type's, in
        order, unless told which), or go Off Contract."""
        dtype = self.device_types[device.device_type_id]
        candidates = [self.contracts[c] for c in (contract_ids or dtype.contract_ids)]
        for contract in candidates:
            if contract.can_activate(now):
                contract.tokens_in_use += 1
                months = contract.token_duration
                end = None if months == 0 else add_months(now, months)
                device.token = Token(contract.id, end, activation_ms=now)
                return
        self._go_off_contract(device, candidates[0].id)

    def _go_off_contract(self, device: Device, contract_id: str) -> None:
        previous_end = device.token.end_ms if device.token is not None else None
        device.token = Token(contract_id, previous_end, off_contract=True)

    def _release_token(self, device: Device) -> None:
        """The token is used up: it stops counting in use on its contract."""
        token = device.token
        if token is not None and not token.off_contract:
            contract = self.contracts[token.contract_id]
            contract.tokens_in_use = max(0, contract.tokens_in_use - 1)
            contract.tokens_used += 1

    def renewal_allowed(self, device: Device) -> bool:
        """Device, device type and the device's contract all allow automatic renewal."""
        dtype = self.device_types[device.device_type_id]
        contract = self.contract_of(device)
        return device.automatic_renewal and dtype.automatic_renewal and contract.automatic_renewal

    def _may_renew(self, device: Device, now: int) -> bool:
        dtype = self.device_types[device.device_type_id]
        contract = self.contract_of(device)
        unsubscribed = device.unsubscription_ms is not None and device.unsubscription_ms <= now
        return (
            device.automatic_renewal and dtype.automatic_renewal
            and contract.automatic_renewal and not unsubscribed
        )

    def _apply_uplink_token_rules(self, device: Device, now: int) -> None:
        state = self.token_state(device)
        if state is None and device.activable:
            self._take_token(device, now)
        elif state is TokenState.INVALID_TOKEN:
            old_contract = device.token.contract_id if device.token else ""
            self._release_token(device)
            if self._may_renew(device, now):
                self._take_token(device, now)
            else:
                self._go_off_contract(device, old_contract)

    def uplink(self, device_id: str, data: str | None = None) -> tuple[Device, Message, bool]:
        """The device sends a message; returns it and whether it is delivered to callbacks
        (only with a valid token: Off Contract messages are not forwarded)."""
        payload = (data or "").upper()
        if not HEX_DATA.match(payload):
            raise field_error("data", "data must be 0 to 12 bytes of hex")
        with self.lock:
            device = self.device(device_id)
            now = self.now_ms()
            self._apply_uplink_token_rules(device, now)
            seq = 0 if device.sequence_number is None else (device.sequence_number + 1) % 4096
            message = Message(time_ms=now, data=payload, seq_number=seq)
            device.sequence_number = seq
            device.last_com_ms = now
            device.messages.append(message)
            return device, message, self.token_state(device) is TokenState.OK

    # ------------------------------------------------------------------ single-device API

    def create_device(self, body: Any) -> Device:
        with self.lock:
            fields = self._validate_creation(body)
            ident = fields["id"]
            self._check_registrable(ident, fields["pac"])
            dtype = self.device_types[fields["deviceTypeId"]]
            now = self.now_ms()
            self.deleted.pop(ident, None)
            device = Device(
                id=ident, name=fields["name"], pac=self.new_pac(), device_type_id=dtype.id,
                group_id=dtype.group_id, creation_ms=now,
                lat=float(fields.get("lat", 0.0)), lng=float(fields.get("lng", 0.0)),
                activable=fields.get("activable", True),
                automatic_renewal=fields.get("automaticRenewal", True),
                prototype=fields.get("prototype", False),
                product_certificate=(fields.get("productCertificate") or {}).get("key", ""),
            )
            # Registration consumes the PAC: the device gets a new one (portal rule).
            self._insert(device)
            return device

    def _check_registrable(self, ident: str, pac: str) -> None:
        if ident in self.devices:
            raise ApiError(409, f"Device {ident} already exists")
        expected = self.pacs.get(ident)
        if expected is not None and pac.upper() != expected:
            raise field_error("pac", f"The PAC is not valid for device {ident}")
        held = self.deleted.get(ident)
        if held is not None and self.now_ms() < held.release_ms:
            # What the real backend answers during the hold is not documented: 409 by default,
            # or a 400 naming the id as still existing (`hold_status = 400`).
            if self.hold_status == 400:
                raise field_error("id", f"Device {ident} still exists: it is being deleted")
            raise ApiError(
                409, f"Device {ident} is still being deleted; it can be registered again later"
            )

    def _validate_creation(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        _reject_unknown(body, CREATE_FIELDS)
        for required in ("id", "name", "deviceTypeId", "pac"):
            if required not in body:
                raise field_error(required, f"{required} is required")
        ident = body["id"]
        if not isinstance(ident, str) or not HEX_ID.match(ident):
            raise field_error("id", "The device id must be 1 to 8 hexadecimal digits")
        if not isinstance(body["pac"], str) or not HEX_PAC.match(body["pac"]):
            raise field_error("pac", "The PAC must be 16 hexadecimal characters")
        if body["deviceTypeId"] not in self.device_types:
            raise field_error("deviceTypeId", "Unknown device type")
        _check_common_fields(body)
        return {**body, "id": ident.upper()}

    def update_device(self, device_id: str, body: Any) -> Device:
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        with self.lock:
            device = self.device(device_id)
            _reject_unknown(body, UPDATE_FIELDS)
            _check_common_fields(body)
            _apply_update(device, body)
            device.last_edition_ms = self.now_ms()
            return device

    def delete_device(self, device_id: str) -> None:
        """Delete when Off Contract or without token (403 otherwise); the id is then held."""
        with self.lock:
            device = self.device(device_id)
            state = self.token_state(device)
            if state not in (None, TokenState.OFF_CONTRACT):
                raise ApiError(
                    403,
                    f"Device {device.id} cannot be deleted: its token is {state.name}; only "
                    "devices Off Contract or without a token can be deleted",
                )
            self._remove(device)
            now = self.now_ms()
            self.deleted[device.id] = DeletedDevice(
                device.id, now, now + int(self.delete_hold * 1000)
            )

    def unsubscribe(self, device_id: str, body: Any) -> None:
        if not isinstance(body, dict) or not _is_int(body.get("unsubscriptionTime")):
            raise field_error("unsubscriptionTime", "unsubscriptionTime (ms) is required")
        with self.lock:
            self.device(device_id).unsubscription_ms = int(body["unsubscriptionTime"])

    # ------------------------------------------------------------------ callbacks

    def add_callback(self, dtype_id: str, body: Any) -> Callback:
        dtype = self.device_type(dtype_id)
        fields = _validate_callback(body)
        with self.lock:
            callback = Callback(id=self.new_object_id(), **fields)
            dtype.callbacks.append(callback)
            return callback

    def enable_callback(self, dtype_id: str, callback_id: str, enabled: bool) -> None:
        with self.lock:
            for callback in self.device_type(dtype_id).callbacks:
                if callback.id == callback_id:
                    callback.enabled = enabled
                    return
            raise not_found("Callback", callback_id)

    def data_callbacks(self, device: Device) -> list[Callback]:
        """The enabled URL DATA callbacks the device's messages go to."""
        with self.lock:
            return [
                cb for cb in self.device_types[device.device_type_id].callbacks
                if cb.enabled and cb.channel == "URL" and cb.callback_type == 0
            ]

    # ------------------------------------------------------------------ bulk jobs

    def start_job(self, kind: str, payload: Any) -> Job:
        """Validate a bulk request and queue it; it runs after `job_delay` real seconds or at
        the next clock advance, whichever comes first."""
        total = self._validate_job(kind, payload)
        with self.lock:
            job = Job(
                id=self.new_object_id(), kind=kind, payload=payload, total=total,
                created_real=time.monotonic(), created_virtual_ms=self.now_ms(),
            )
            self.jobs[job.id] = job
        timer = threading.Timer(self.job_delay, self.run_due_jobs)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()
        return job

    def job(self, job_id: str, kind: str) -> Job:
        self.run_due_jobs()
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or not _same_job_family(job.kind, kind):
                raise not_found("Job", job_id)
            return job

    def run_due_jobs(self, force: bool = False) -> None:
        with self.lock:
            due_before = time.monotonic() - self.job_delay
            for job in self.jobs.values():
                if not job.done and (force or job.created_real <= due_before):
                    self._run_job(job)

    def stop(self) -> None:
        """Cancel job timers (the server is shutting down)."""
        for timer in self._timers:
            timer.cancel()

    def _validate_job(self, kind: str, payload: Any) -> int:
        if not isinstance(payload, dict):
            raise ApiError(400, "The request body must be a JSON object")
        data = payload.get("data")
        if not isinstance(data, list):
            raise field_error("data", "data must be a list")
        if kind in ("create", "transfer"):
            if payload.get("deviceTypeId") not in self.device_types:
                raise field_error("deviceTypeId", "Unknown device type")
            if not all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in data):
                raise field_error("data", "every item needs an id")
        elif kind == "restart" and not all(isinstance(item, str) for item in data):
            raise field_error("data", "data must be a list of device ids")
        elif kind == "unsubscribe" and not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in data
        ):
            raise field_error("data", "every item needs an id")
        return len(data)

    def _run_job(self, job: Job) -> None:
        handlers: dict[str, Callable[[dict[str, Any], Any], str]] = {
            "create": self._job_create_one,
            "transfer": self._job_transfer_one,
            "restart": self._job_restart_one,
            "unsubscribe": self._job_unsubscribe_one,
        }
        handler = handlers[job.kind]
        for item in job.payload["data"]:
            entity = item if isinstance(item, str) else item["id"]
            try:
                outcome = handler(job.payload, item)
            except ApiError as exc:
                job.errors.append({"entity": entity.upper(), "message": exc.message, "type": 0})
                job.results.append({"id": entity.upper(), "error": exc.message})
            else:
                job.success += 1
                job.results.append({"id": entity.upper(), "outcome": outcome})
        job.done = True

    def _job_create_one(self, payload: dict[str, Any], item: dict[str, Any]) -> str:
        body = {k: v for k, v in item.items() if k in CREATE_FIELDS}
        body["deviceTypeId"] = payload["deviceTypeId"]
        body.setdefault("name", f"{payload.get('prefix', '')}{item['id']}")
        body.setdefault("pac", "")
        for shared in ("prototype", "productCertificate"):
            if shared in payload:
                body.setdefault(shared, payload[shared])
        self.create_device(body)
        return "created"

    def _job_transfer_one(self, payload: dict[str, Any], item: dict[str, Any]) -> str:
        device = self.device(item["id"])
        return self.transfer(device, self.device_types[payload["deviceTypeId"]], item)

    def _job_restart_one(self, payload: dict[str, Any], item: str) -> str:
        device = self.device(item)
        if self.token_state(device) is not TokenState.OFF_CONTRACT:
            return "unchanged"
        contract = self.contract_of(device)  # back on its own contract, the one it came from
        if not contract.can_activate(self.now_ms()):
            raise ApiError(400, f"No token available on contract {contract.name}")
        self._take_token(device, self.now_ms(), [contract.id])
        return "restarted"

    def _job_unsubscribe_one(self, payload: dict[str, Any], item: dict[str, Any]) -> str:
        device = self.device(item["id"])
        when = item.get("unsubscriptionTime")
        device.unsubscription_ms = int(when) if _is_int(when) else self.now_ms()
        return "unsubscribed"

    # ------------------------------------------------------------------ transfer

    def transfer(self, device: Device, target: DeviceType, item: dict[str, Any]) -> str:
        """Move `device` to `target` and apply the token consequences; returns the outcome:
        no_token, same_contract, token_moved or token_lost."""
        with self.lock:
            old = self.contract_of(device)  # the device's own contract
            new = self.contracts[target.contract_id]
            outcome = self._transfer_token(device, old, new)
            if outcome in ("no_token", "token_lost"):
                device.activable = bool(item.get("activable", True))
            if not item.get("keepHistory", False):
                device.messages.clear()
            self._move(device, target)
            return outcome

    def _transfer_token(self, device: Device, old: Contract, new: Contract) -> str:
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
        self._release_token(device)
        device.token = None
        return "token_lost"

    def _move(self, device: Device, target: DeviceType) -> None:
        self.by_type[device.device_type_id].remove(device.id)
        self.by_group[device.group_id].remove(device.id)
        device.device_type_id = target.id
        device.group_id = target.group_id
        self.by_type.setdefault(target.id, SortedIds()).add(device.id)
        self.by_group.setdefault(target.group_id, SortedIds()).add(device.id)


# ---------------------------------------------------------------------- validation helpers


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise field_error(key, "extra fields not permitted")


def _check_common_fields(body: dict[str, Any]) -> None:
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise field_error("name", f"name must be a string of at most {MAX_NAME} characters")
    for key, low, high in (("lat", -90, 90), ("lng", -180, 180)):
        if key in body and not (_is_number(body[key]) and low <= body[key] <= high):
            raise field_error(key, f"{key} must be a number between {low} and {high}")
    for key in ("prototype", "automaticRenewal", "activable"):
        if key in body and not isinstance(body[key], bool):
            raise field_error(key, f"{key} must be a boolean")
    cert = body.get("productCertificate")
    if cert is not None and not (isinstance(cert, dict) and isinstance(cert.get("key", ""), str)):
        raise field_error("productCertificate", "productCertificate must be {\"key\": ...}")


def _apply_update(device: Device, body: dict[str, Any]) -> None:
    simple = {
        "name": "name", "lat": "lat", "lng": "lng", "prototype": "prototype",
        "automaticRenewal": "automatic_renewal", "activable": "activable",
    }
    for key, attr in simple.items():
        if key in body:
            setattr(device, attr, body[key])
    if isinstance(body.get("productCertificate"), dict):
        device.product_certificate = body["productCertificate"].get("key", "")


CALLBACK_FIELDS = {
    "channel": "channel", "callbackType": "callback_type", "callbackSubtype": "callback_subtype",
    "url": "url", "httpMethod": "http_method", "headers": "headers",
    "bodyTemplate": "body_template", "contentType": "content_type",
    "payloadConfig": "payload_config", "sendSni": "send_sni", "enabled": "enabled",
}


def _validate_callback(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object")
    _reject_unknown(body, set(CALLBACK_FIELDS))
    for required in ("channel", "callbackType", "callbackSubtype", "enabled"):
        if required not in body:
            raise field_error(required, f"{required} is required")
    if body["channel"] != "URL":
        raise field_error("channel", "only URL callbacks are simulated")
    if not isinstance(body.get("url"), str) or not body["url"].startswith(("http://", "https://")):
        raise field_error("url", "url must be an http(s) URL")
    if body.get("httpMethod") not in ("GET", "PUT", "POST"):
        raise field_error("httpMethod", "httpMethod must be GET, PUT or POST")
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise field_error("headers", "headers must map names to strings")
    return {CALLBACK_FIELDS[k]: v for k, v in body.items()}


def _same_job_family(job_kind: str, asked: str) -> bool:
    """Creation and transfer status both live at /devices/bulk/{jobId} (registrationJobStatus)."""
    if asked == "registration":
        return job_kind in ("create", "transfer")
    return job_kind == asked
