"""Sorted id indexes behind the device lists.

Pages are cut by keyset (the last id a page showed), so a cursor keeps working at any depth and
under concurrent inserts and deletes, with a bisect instead of a scan.

Ids are ordered by their value as hexadecimal numbers (a Sigfox id is a number: "FF" comes
before "100"), which is also the order `minId` / `maxId` ranges are cut in.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from sigfox.simulator.entities import Device

# Where an id that is not hexadecimal sorts: after every real one. Sigfox ids are hexadecimal,
# but tests and hand-made worlds name devices "U1"; the index must not fall over them.
_NOT_HEX = 1 << 128


def id_key(ident: str) -> tuple[int, str]:
    """Sort key of a device id: its hexadecimal value (the text breaks ties like "0A"/"A")."""
    try:
        return int(ident, 16), ident
    except ValueError:
        return _NOT_HEX, ident


@dataclass(frozen=True)
class IdRange:
    """`minId` / `maxId` of a list request (inclusive hexadecimal values) and its direction."""

    low: int | None = None
    high: int | None = None
    descending: bool = False

    def holds(self, ident: str) -> bool:
        value = id_key(ident)[0]
        return (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high)


ALL_IDS = IdRange()


class SortedIds:
    """A sorted list of ids with O(log n) lookups (inserts and removals move memory, which is
    fine at the fleet sizes the project cares about)."""

    def __init__(self, ids: list[str] | None = None) -> None:
        self._ids: list[str] = sorted(ids or [], key=id_key)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ident: str) -> None:
        pos = bisect.bisect_left(self._ids, id_key(ident), key=id_key)
        if pos == len(self._ids) or self._ids[pos] != ident:
            self._ids.insert(pos, ident)

    def extend(self, idents: list[str]) -> None:
        """Add many ids at once: one sort instead of many shifting inserts (fleet generation)."""
        self._ids = sorted(set(self._ids).union(idents), key=id_key)

    def remove(self, ident: str) -> None:
        pos = bisect.bisect_left(self._ids, id_key(ident), key=id_key)
        if pos < len(self._ids) and self._ids[pos] == ident:
            del self._ids[pos]

    def iter_from(
        self, after: str | None, skip: int = 0, span: IdRange = ALL_IDS
    ) -> Iterator[str]:
        """Ids past the cursor `after` (all when None) within `span`, in its direction,
        skipping the first `skip`."""
        if span.descending:
            yield from self._iter_down(after, skip, span)
            return
        ids = self._ids
        start = 0 if after is None else bisect.bisect_right(ids, id_key(after), key=id_key)
        if span.low is not None:
            start = max(start, bisect.bisect_left(ids, (span.low, ""), key=id_key))
        stop = len(ids)
        if span.high is not None:
            stop = bisect.bisect_left(ids, (span.high + 1, ""), key=id_key)
        for pos in range(start + skip, stop):
            yield ids[pos]

    def _iter_down(self, before: str | None, skip: int, span: IdRange) -> Iterator[str]:
        ids = self._ids
        end = len(ids) if before is None else bisect.bisect_left(ids, id_key(before), key=id_key)
        if span.high is not None:
            end = min(end, bisect.bisect_left(ids, (span.high + 1, ""), key=id_key))
        stop = 0
        if span.low is not None:
            stop = bisect.bisect_left(ids, (span.low, ""), key=id_key)
        for pos in range(end - 1 - skip, stop - 1, -1):
            yield ids[pos]


class DeviceIndexes:
    """A world's devices by id: all of them, per device type and per group."""

    def __init__(self) -> None:
        self.all_ids = SortedIds()
        self.by_type: dict[str, SortedIds] = {}
        self.by_group: dict[str, SortedIds] = {}

    def add(self, device: Device) -> None:
        self.all_ids.add(device.id)
        self.by_type.setdefault(device.device_type_id, SortedIds()).add(device.id)
        self.by_group.setdefault(device.group_id, SortedIds()).add(device.id)

    def extend(self, devices: list[Device]) -> None:
        """Index many devices in one go (each index sorted once)."""
        per_type: dict[str, list[str]] = {}
        per_group: dict[str, list[str]] = {}
        for device in devices:
            per_type.setdefault(device.device_type_id, []).append(device.id)
            per_group.setdefault(device.group_id, []).append(device.id)
        self.all_ids.extend([d.id for d in devices])
        for key, ids in per_type.items():
            self.by_type.setdefault(key, SortedIds()).extend(ids)
        for key, ids in per_group.items():
            self.by_group.setdefault(key, SortedIds()).extend(ids)

    def remove(self, device: Device) -> None:
        self.all_ids.remove(device.id)
        self.by_type[device.device_type_id].remove(device.id)
        self.by_group[device.group_id].remove(device.id)

    def plan(
        self, devices: Mapping[str, Device], device_id: str | None, device_type_id: str | None,
        group_ids: list[str] | None, contract_id: str | None,
    ) -> tuple[SortedIds, Callable[[str], bool] | None]:
        """Pick the narrowest index, and a filter for whatever that index does not imply."""
        checks: list[Callable[[Device], bool]] = []
        if device_id is not None:
            wanted = device_id.upper()
            index = SortedIds([wanted] if wanted in devices else [])
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
        return index, lambda ident: all(check(devices[ident]) for check in checks)


def select(
    index: SortedIds,
    keep: Callable[[str], bool] | None,
    after: str | None,
    offset: int,
    limit: int,
    span: IdRange = ALL_IDS,
) -> tuple[list[str], bool]:
    """One page of ids from `index` within `span`, filtered by `keep`; also says whether more
    follow. `after` is the cursor: the last id of the previous page, in `span`'s direction.

    Without a filter the offset is a direct jump; with one it skips matching ids only.
    """
    page: list[str] = []
    skip_direct = offset if keep is None else 0
    to_skip = 0 if keep is None else offset
    for ident in index.iter_from(after, skip_direct, span):
        if keep is not None and not keep(ident):
            continue
        if to_skip:
            to_skip -= 1
            continue
        if len(page) == limit:
            return page, True
        page.append(ident)
    return page, False


def encode_cursor(last_id: str) -> str:
    """An opaque page token; clients must follow `paging.next` verbatim, never build it."""
    raw = f"v1:{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> str | None:
    """The last id of the previous page, or None when the token is not one of ours."""
    padded = token + "=" * (-len(token) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text.startswith("v1:") or len(text) <= 3:
        return None
    return text[3:]
