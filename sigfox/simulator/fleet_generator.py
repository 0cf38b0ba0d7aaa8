"""A realistic fleet, generated quickly and reproducibly from a seed.

Shape: a customer group with three sub-groups; three orders; five contracts (order A has two,
so same-order transfers exist; order C's contract is nearly full, so renewals can fail);
seven device types, one listing two contracts and one a detached contract. Each type shows its
contracts in `contract`, `contracts[]` or both, as the seed chooses (see backend.py). Off Contract
tokens count as used (`tokensUsed`) on their contract.
Devices spread over them with a mix of token states close to a real fleet's: mostly Valid
with ends spread over the coming year, some ending within 7 and 30 days, some Invalid, some
Off Contract, some never seen (no token).
"""

from __future__ import annotations

import gc
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sigfox.simulator.backend import World
from sigfox.simulator.clock import add_months
from sigfox.simulator.entities import Device, DeviceType, Token

DAY_MS = 86_400_000
MONTH_MS = 30 * DAY_MS + DAY_MS // 2

# (share of the fleet, kind, end offset range in days from now); shares sum to 1.
TOKEN_MIX: tuple[tuple[float, str, tuple[int, int]], ...] = (
    (0.05, "none", (0, 0)),
    (0.04, "off_contract", (-200, -10)),
    (0.06, "invalid", (-60, -1)),
    (0.03, "ok", (1, 7)),
    (0.07, "ok", (8, 30)),
    (0.75, "ok", (31, 365)),
)

# (name, order index, spare tokens or None for unlimited, token duration in months)
CONTRACT_PLAN: tuple[tuple[str, int, int | None, int], ...] = (
    ("Platinum 1y", 0, None, 12),
    ("Platinum 1y extra", 0, None, 12),
    ("Gold 1y", 1, None, 12),
    ("Gold 3y", 1, None, 36),
    ("Starter 1y", 2, 1, 12),
)

CITIES = ((48.8566, 2.3522), (43.6047, 1.4442), (45.764, 4.8357), (1.3521, 103.8198))


@dataclass(frozen=True)
class FleetLayout:
    """Ids of the scaffolding, handy for tests that want a known contract or order."""

    root_group: str
    groups: tuple[str, ...]
    orders: tuple[str, ...]
    contracts: tuple[str, ...]
    device_types: tuple[str, ...]


def build_fleet(world: World, devices: int, seed: int = 1) -> FleetLayout:
    """Fill `world` with groups, contracts, device types and `devices` devices."""
    rng = random.Random(seed)
    with world.lock, _cyclic_gc_paused():
        layout = _scaffold(world)
        _add_devices(world, rng, devices, layout)
        return layout


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the fleet is generated.

    Generation allocates a few objects per device and frees none, so the collector finds
    nothing, yet every full collection it triggers walks all the devices made so far: about
    a third of the time of a 150,000-device build (measured: 1.1 s of GC out of 2.3 s).
    Reference counting still frees everything meanwhile; only cycle detection waits.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _scaffold(world: World) -> FleetLayout:
    now = world.now_ms()
    root = world.add_group("Acme IoT", type=0, level=0)
    groups = [
        world.add_group(name, level=1, parent_id=root.id)
        for name in ("Acme Metering", "Acme Logistics", "Acme Buildings")
    ]
    orders = (("ORDER-A", "Order 2023 Platinum"), ("ORDER-B", "Order 2024 Gold"),
              ("ORDER-C", "Order 2025 Starter"))
    contracts = [
        world.add_contract(
            name, order_id=orders[oi][0], order_name=orders[oi][1], token_duration=months,
            start_ms=add_months(now, -24), end_ms=add_months(now, 48),
        )
        for name, oi, _spare, months in CONTRACT_PLAN
    ]
    plan = (
        ("Water meter v2", 0, 0), ("Gas meter", 0, 0), ("Water meter v3", 1, 0),
        ("Pallet tracker", 2, 1), ("Container tracker", 3, 1), ("Smoke detector", 4, 2),
        ("Door sensor", 2, 2),
    )
    extra = {"Water meter v3": {"more_contract_ids": (contracts[0].id,)},
             "Door sensor": {"detached_contract_ids": (contracts[4].id,)}}
    dtypes = [
        world.add_device_type(name, contracts[ci].id, group_id=groups[gi].id,
                              **extra.get(name, {}))  # type: ignore[arg-type]
        for name, ci, gi in plan
    ]
    return FleetLayout(
        root_group=root.id, groups=tuple(g.id for g in groups),
        orders=tuple(o[0] for o in orders), contracts=tuple(c.id for c in contracts),
        device_types=tuple(d.id for d in dtypes),
    )


def _add_devices(world: World, rng: random.Random, count: int, layout: FleetLayout) -> None:
    dtypes = [world.device_types[i] for i in layout.device_types]
    ids = rng.sample(range(0x100000, 0xFFFFFFF), count)
    now = world.now_ms()
    cumulative = _cumulative_mix()
    generated: list[Device] = []
    for number in ids:
        ident = f"{number:07X}"
        dtype = dtypes[_below(rng, len(dtypes))]
        device = _device(world, rng, ident, dtype, now)
        device.token = _token(world, rng, dtype, _pick(rng, cumulative), now)
        if device.token is not None:
            device.last_com_ms = now - _between(rng, 60_000, 3 * DAY_MS)
            device.sequence_number = _below(rng, 4096)
        generated.append(device)
    world.insert_many(generated)
    _size_contracts(world, layout)


def _device(world: World, rng: random.Random, ident: str, dtype: DeviceType, now: int) -> Device:
    lat, lng = CITIES[_below(rng, len(CITIES))]
    return Device(
        id=ident, name=f"{dtype.name} {ident}", pac=f"{rng.getrandbits(64):016X}",
        device_type_id=dtype.id, group_id=dtype.group_id,
        creation_ms=now - _between(rng, 30 * DAY_MS, 900 * DAY_MS),
        lat=round(lat + rng.random() * 0.4 - 0.2, 5), lng=round(lng + rng.random() * 0.4 - 0.2, 5),
        # A third of the fleet without automatic renewal (from the id: the draws stay the same).
        automatic_renewal=int(ident, 16) % 3 != 0,
    )


def _cumulative_mix() -> list[tuple[float, str, tuple[int, int]]]:
    total, out = 0.0, []
    for share, kind, days in TOKEN_MIX:
        total += share
        out.append((total, kind, days))
    return out


def _pick(
    rng: random.Random, cumulative: list[tuple[float, str, tuple[int, int]]]
) -> tuple[str, tuple[int, int]]:
    draw = rng.random()
    for bound, kind, days in cumulative:
        if draw < bound:
            return kind, days
    return cumulative[-1][1], cumulative[-1][2]


def _token(
    world: World, rng: random.Random, dtype: DeviceType, pick: tuple[str, tuple[int, int]],
    now: int,
) -> Token | None:
    kind, (low, high) = pick
    if kind == "none":
        return None
    contract = world.contracts[dtype.contract_id]
    end = now + _between(rng, low * DAY_MS, high * DAY_MS)
    if kind == "off_contract":
        contract.tokens_used += 1
        return Token(contract.id, end, off_contract=True)
    contract.tokens_in_use += 1
    # Approximate months: exact calendar arithmetic per device would double generation time.
    activation = end - contract.token_duration * MONTH_MS
    return Token(contract.id, end, activation_ms=activation)


def _below(rng: random.Random, n: int) -> int:
    # rng.random() arithmetic: several times faster than randrange, which matters at 150k.
    return int(rng.random() * n)


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low))


def _size_contracts(world: World, layout: FleetLayout) -> None:
    for contract_id, (_name, _order, spare, _months) in zip(
        layout.contracts, CONTRACT_PLAN, strict=True
    ):
        contract = world.contracts[contract_id]
        # None is unlimited (the API's 0); a small spare makes a nearly full contract. Used
        # tokens count against the maximum, as the bot reads it (docs/sigfox-semantics.md).
        taken = contract.tokens_in_use + contract.tokens_used
        contract.max_tokens = 0 if spare is None else taken + spare
