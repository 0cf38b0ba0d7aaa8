"""Walking the Sigfox API's lists: `paging.next` followed verbatim, one page in memory at a
time; `offset` is never used to walk (the service caps it at 40,000)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel

from sigfox.errors import SigfoxError
from sigfox.transport import PacedTransport

MAX_PAGE_SIZE = 100

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the link to the page after it (None on the last page)."""

    items: list[T]
    next_url: str | None


def page_limit(size: int) -> int:
    """`size` as the `limit` of a list call, refused when the service would not take it."""
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    return size


def iter_items(
    calls: PacedTransport,
    endpoint: str,
    path: str,
    params: dict[str, Any],
    model: type[M],
    *,
    device_id: str | None = None,
) -> Iterator[M]:
    """Yield items page by page, following `paging.next` verbatim until it is absent."""
    for page in iter_pages(calls, endpoint, path, params, device_id=device_id):
        for item in page:
            yield model.model_validate(item)


def read_page(
    calls: PacedTransport,
    endpoint: str,
    url: str,
    params: dict[str, Any] | None = None,
    *,
    device_id: str | None = None,
) -> Page[Any]:
    """One list call: the raw `data` and the checked `paging.next`."""
    page = calls.json("GET", endpoint, url, params=params, device_id=device_id)
    return Page(list(page.get("data") or []), _next_url(calls.base_url, page, url))


def iter_pages(
    calls: PacedTransport,
    endpoint: str,
    path: str,
    params: dict[str, Any] | None,
    *,
    device_id: str | None = None,
) -> Iterator[list[Any]]:
    """The raw `data` of each page, following `paging.next` verbatim until it is absent.
    `path` may be a `paging.next` link already (then `params` is None)."""
    url: str | None = path
    query = params
    while url is not None:
        page = read_page(calls, endpoint, url, query, device_id=device_id)
        yield page.items
        url, query = page.next_url, None


def _next_url(base_url: str, page: dict[str, Any], current: str) -> str | None:
    paging = page.get("paging")
    nxt = paging.get("next") if isinstance(paging, dict) else None
    if not nxt:
        return None
    absolute = urljoin(base_url + "/", nxt)
    # Basic credentials go with every request: never follow a link to another origin.
    if urlsplit(absolute)[:2] != urlsplit(base_url)[:2]:
        raise SigfoxError(
            "Refusing to follow paging.next to another host than SIGFOX_API_URL",
            method="GET",
            path=urlsplit(absolute).path,
        )
    if absolute == current:
        raise SigfoxError("paging.next points at the page just read", path=urlsplit(nxt).path)
    return absolute
