"""Sorted id indexes behind the device lists.

Pages are cut by keyset (the last id a page showed), so a cursor keeps working at any depth and
under concurrent inserts and deletes, with a bisect instead of a scan.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Iterator


class SortedIds:
    """A sorted list of ids with O(log n) lookups (inserts and removals move memory, which is
    fine at the fleet sizes the project cares about)."""

    def __init__(self, ids: list[str] | None = None) -> None:
        self._ids: list[str] = sorted(ids or [])

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ident: str) -> None:
        pos = bisect.bisect_left(self._ids, ident)
        if pos == len(self._ids) or self._ids[pos] != ident:
            self._ids.insert(pos, ident)

    def extend(self, idents: list[str]) -> None:
        """Add many ids at once: one sort instead of many shifting inserts (fleet generation)."""
        self._ids = sorted(set(self._ids).union(idents))

    def remove(self, ident: str) -> None:
        pos = bisect.bisect_left(self._ids, ident)
        if pos < len(self._ids) and self._ids[pos] == ident:
            del self._ids[pos]

    def iter_from(self, after: str | None, skip: int = 0) -> Iterator[str]:
        """Ids strictly greater than `after` (all when None), skipping the first `skip`."""
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        ids = self._ids
        for pos in range(start + skip, len(ids)):
            yield ids[pos]


def select(
    index: SortedIds,
    keep: Callable[[str], bool] | None,
    after: str | None,
    offset: int,
    limit: int,
) -> tuple[list[str], bool]:
    """One page of ids from `index`, filtered by `keep`; also says whether more follow.

    Without a filter the offset is a direct jump; with one it skips matching ids only.
    """
    page: list[str] = []
    skip_direct = offset if keep is None else 0
    to_skip = 0 if keep is None else offset
    for ident in index.iter_from(after, skip_direct):
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
