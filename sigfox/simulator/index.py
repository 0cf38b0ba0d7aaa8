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
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
