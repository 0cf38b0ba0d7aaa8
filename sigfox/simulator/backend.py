"""The state of the simulated backend and the Sigfox rules that change it.

Everything here is plain Python under one re-entrant lock: the HTTP layer (`server.py`) parses
requests, calls one `World` method, and renders what it returns. Tests reach the same object
through `SimulatorServer.world` to set up exactly the devices they need. Beside it:
`tokens.py` (the token lifecycle the rules below apply), `job_queue.py` (the bulk job queue),
`request_bodies.py` (what a request body may hold), `index.py` (the id indexes of the lists).

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

import random
import threading
from typing import Any, TypeVar

from sigfox.simulator.api_errors import ApiError, field_error, not_found
from sigfox.simulator.clock import SimClock, add_months
from sigfox.simulator.entities import (
    ALL_TYPE_SHAPES,
    TYPE_SHAPES,
    Callback,
    Contract,
    DeletedDevice,
    Device,
    DeviceState,
    DeviceType,
    Group,
    Message,
    Token,
    TokenState,
)
from sigfox.simulator.index import ALL_IDS, DeviceIndexes, IdRange, select
from sigfox.simulator.job_queue import JobQueue
from sigfox.simulator.request_bodies import (
    HEX_DATA,
    apply_update,
    callback_fields,
    creation_fields,
    is_int,
    update_fields,
)
from sigfox.simulator.tokens import go_off_contract, release_token, take_token, transfer_token

Known = TypeVar("Known")  # an entity the backend keeps by id


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
        self.job_queue = JobQueue(self, job_delay)
        self.indexes = DeviceIndexes()
        self.clock.on_advance(lambda: self.job_queue.run_due(force=True))

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
        self.indexes.add(device)

    def insert_many(self, devices: list[Device]) -> None:
        """Insert generated devices in one go (indexes sorted once)."""
        with self.lock:
            for device in devices:
                self.devices[device.id] = device
                self.pacs[device.id] = device.pac
            self.indexes.extend(devices)

    def _remove(self, device: Device) -> None:
        del self.devices[device.id]
        self.indexes.remove(device)

    # ------------------------------------------------------------------ lookups

    def pac_of(self, device_id: str) -> str | None:
        """The PAC that registers `device_id` now (kept after a delete), None if never known."""
        with self.lock:
            return self.pacs.get(device_id.upper())

    def device(self, device_id: str) -> Device:
        return self._known("Device", self.devices, device_id.upper(), asked=device_id)

    def device_type(self, dtype_id: str) -> DeviceType:
        return self._known("Device type", self.device_types, dtype_id)

    def contract(self, contract_id: str) -> Contract:
        return self._known("Contract", self.contracts, contract_id)

    def group(self, group_id: str) -> Group:
        return self._known("Group", self.groups, group_id)

    def _known(self, kind: str, table: dict[str, Known], key: str, asked: str = "") -> Known:
        """`table[key]`, else the API's 404 naming `kind` and the id as it was `asked`."""
        with self.lock:
            found = table.get(key)
        if found is None:
            raise not_found(kind, asked or key)
        return found

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

    # ------------------------------------------------------------------ device lists

    def query_devices(
        self, *, device_id: str | None = None, device_type_id: str | None = None,
        group_ids: list[str] | None = None, contract_id: str | None = None,
        after: str | None = None, offset: int = 0, limit: int = 100, span: IdRange = ALL_IDS,
    ) -> tuple[list[Device], bool]:
        """One page of devices sorted by id within `span`, and whether more follow (keyset
        after `after`)."""
        with self.lock:
            index, keep = self.indexes.plan(self.devices, device_id, device_type_id, group_ids,
                                            contract_id)
            ids, more = select(index, keep, after, offset, limit, span)
            return [self.devices[i] for i in ids], more

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
        """A fresh token from the device type's contracts, in order, unless told which."""
        dtype = self.device_types[device.device_type_id]
        take_token(device, [self.contracts[c] for c in (contract_ids or dtype.contract_ids)], now)

    def renewal_allowed(self, device: Device) -> bool:
        """Device, device type and the device's contract all allow automatic renewal."""
        dtype = self.device_types[device.device_type_id]
        contract = self.contract_of(device)
        return device.automatic_renewal and dtype.automatic_renewal and contract.automatic_renewal

    def _may_renew(self, device: Device, now: int) -> bool:
        unsubscribed = device.unsubscription_ms is not None and device.unsubscription_ms <= now
        return self.renewal_allowed(device) and not unsubscribed

    def _apply_uplink_token_rules(self, device: Device, now: int) -> None:
        state = self.token_state(device)
        if state is None and device.activable:
            self._take_token(device, now)
        elif state is TokenState.INVALID_TOKEN:
            old_contract = device.token.contract_id if device.token else ""
            release_token(device, self.contract_of(device))
            if self._may_renew(device, now):
                self._take_token(device, now)
            else:
                go_off_contract(device, old_contract)

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
            fields = creation_fields(body, self.device_types)
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

    def update_device(self, device_id: str, body: Any) -> Device:
        fields = update_fields(body)
        with self.lock:
            device = self.device(device_id)
            apply_update(device, fields)
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
        if not isinstance(body, dict) or not is_int(body.get("unsubscriptionTime")):
            raise field_error("unsubscriptionTime", "unsubscriptionTime (ms) is required")
        with self.lock:
            self.device(device_id).unsubscription_ms = int(body["unsubscriptionTime"])

    # ------------------------------------------------------------------ callbacks

    def add_callback(self, dtype_id: str, body: Any) -> Callback:
        dtype = self.device_type(dtype_id)
        fields = callback_fields(body)
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

    def stop(self) -> None:
        """Cancel job timers (the server is shutting down)."""
        self.job_queue.stop()

    # ------------------------------------------------------------------ transfer and restart

    def transfer(self, device: Device, target: DeviceType, item: dict[str, Any]) -> str:
        """Move `device` to `target` and apply the token consequences; returns the outcome:
        no_token, same_contract, token_moved or token_lost."""
        with self.lock:
            old = self.contract_of(device)  # the device's own contract
            new = self.contracts[target.contract_id]
            outcome = transfer_token(device, old, new)
            if outcome in ("no_token", "token_lost"):
                device.activable = bool(item.get("activable", True))
            if not item.get("keepHistory", False):
                device.messages.clear()
            self._move(device, target)
            return outcome

    def restart(self, device: Device) -> str:
        """An Off Contract device takes a token again from its own contract, the one it came
        from; returns the outcome: restarted or unchanged."""
        with self.lock:
            if self.token_state(device) is not TokenState.OFF_CONTRACT:
                return "unchanged"
            contract = self.contract_of(device)
            if not contract.can_activate(self.now_ms()):
                raise ApiError(400, f"No token available on contract {contract.name}")
            self._take_token(device, self.now_ms(), [contract.id])
            return "restarted"

    def _move(self, device: Device, target: DeviceType) -> None:
        self.indexes.remove(device)
        device.device_type_id = target.id
        device.group_id = target.group_id
        self.indexes.add(device)


