"""List paging the way Key Vault does it: ``maxresults`` and an opaque ``$skiptoken``.

The service pages lists at most 25 items at a time and answers ``nextLink`` =
``{vault}/secrets?api-version=...&$skiptoken=<opaque>&maxresults=N`` while more remain.
The SDK follows ``nextLink`` as given, replacing only ``api-version``; it re-quotes query
values after ``parse_qs`` (which turns ``+`` into a space), so the token here is URL-safe
base64 without padding. It carries the sort key of the last item served — a marker, so a
page boundary stays right when items are added or removed between pages.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 25  # the service's page size when maxresults is absent
MAX_PAGE_SIZE = 25  # and its upper bound for maxresults


class PagingError(ValueError):
    """A malformed ``maxresults`` or ``$skiptoken`` (answered with 400 BadParameter)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_marker: str | None  # sort key of the last item served, when more remain


def parse_maxresults(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        raise PagingError(
            f"maxresults must be a whole number between 1 and {MAX_PAGE_SIZE}."
        ) from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise PagingError(f"maxresults must be between 1 and {MAX_PAGE_SIZE}.")
    return size


def encode_marker(marker: str) -> str:
    raw = json.dumps({"NextMarker": marker}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_marker(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        raise PagingError("The $skiptoken is not one this vault issued.") from None
    marker = data.get("NextMarker") if isinstance(data, dict) else None
    if not isinstance(marker, str):
        raise PagingError("The $skiptoken is not one this vault issued.")
    return marker


def take_page(items: Sequence[T], key: Callable[[T], str], after: str | None, size: int) -> Page[T]:
    """Up to ``size`` of ``items`` (sorted by ``key``) whose key sorts after ``after``."""
    keys = [key(item) for item in items]
    start = 0 if after is None else bisect.bisect_right(keys, after)
    chunk = list(items[start : start + size])
    more = start + size < len(items)
    return Page(chunk, key(chunk[-1]) if more and chunk else None)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Page",
    "PagingError",
    "decode_marker",
    "encode_marker",
    "parse_maxresults",
    "take_page",
]
