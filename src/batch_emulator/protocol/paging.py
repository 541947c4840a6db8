"""Opaque ``$skiptoken`` values and ``odata.nextLink`` URLs of list operations (NOTES.md §6).

Tokens are keyset cursors: they carry the sort key of the last item returned (``after``),
so items inserted or deleted between two page requests neither repeat nor get skipped.
A token also carries a fingerprint of ``$filter``/``$select``/``$expand``; reusing it with
different parameters is rejected, as is any token that was altered.

Token format: URL-safe base64 (no padding) of ``8-byte check || compact JSON``. The check
is a keyed SHA-256 prefix with a fixed, public key: it detects edited or truncated tokens,
it is not a secret (the emulator has nothing to protect behind a page cursor). The
alphabet ``A-Z a-z 0-9 - _`` needs no URL escaping, so the token survives the SDK's
re-quoting of nextLink parameters unchanged.

Errors are 400 ``InvalidQueryParameterValue`` with ``QueryParameterName=$skiptoken``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import quote

from batch_emulator.protocol.errors import invalid_query_parameter

__all__ = [
    "decode_skiptoken",
    "encode_skiptoken",
    "make_skiptoken",
    "next_link",
    "query_fingerprint",
    "read_skiptoken",
]

_CHECK_KEY = b"batch-emulator skiptoken v1"
_CHECK_LEN = 8


def _check(payload: bytes) -> bytes:
    return hmac.new(_CHECK_KEY, payload, hashlib.sha256).digest()[:_CHECK_LEN]


def encode_skiptoken(state: dict[str, Any]) -> str:
    """Encode a JSON-serialisable ``state`` into an opaque, tamper-evident token."""
    payload = json.dumps(state, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return base64.urlsafe_b64encode(_check(payload) + payload).decode("ascii").rstrip("=")


def decode_skiptoken(token: str) -> dict[str, Any]:
    """Decode a token from :func:`encode_skiptoken`; 400 if it is malformed or altered."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _bad(token, "The value is not a token issued by this server.") from exc
    check, payload = raw[:_CHECK_LEN], raw[_CHECK_LEN:]
    if len(check) != _CHECK_LEN or not hmac.compare_digest(check, _check(payload)):
        raise _bad(token, "The value is not a token issued by this server.")
    try:
        state = json.loads(payload)
    except ValueError as exc:  # cannot happen for an intact token; kept for robustness
        raise _bad(token, "The token is corrupt.") from exc
    if not isinstance(state, dict):
        raise _bad(token, "The token is corrupt.")
    return state


def _bad(token: str, reason: str) -> Exception:
    return invalid_query_parameter("$skiptoken", token, reason)


def query_fingerprint(filter: str | None, select: str | None, expand: str | None = None) -> str:
    """A short hash of the query options a token is bound to."""
    blob = json.dumps([filter or "", select or "", expand or ""]).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def make_skiptoken(
    after: str | int,
    *,
    filter: str | None,
    select: str | None,
    expand: str | None = None,
) -> str:
    """A token for the page that starts after sort key ``after`` of this query."""
    return encode_skiptoken({"a": after, "q": query_fingerprint(filter, select, expand)})


def read_skiptoken(
    token: str,
    *,
    filter: str | None,
    select: str | None,
    expand: str | None = None,
) -> str | int:
    """The ``after`` key of a token from :func:`make_skiptoken`, checked against the query."""
    state = decode_skiptoken(token)
    after = state.get("a")
    if not isinstance(after, str | int) or isinstance(after, bool):
        raise _bad(token, "The token is corrupt.")
    if state.get("q") != query_fingerprint(filter, select, expand):
        raise _bad(
            token,
            "The token was issued for a different $filter, $select or $expand; "
            "request the first page again.",
        )
    return after


def next_link(
    base_url: str,
    path: str,
    api_version: str,
    maxresults: int | None,
    filter: str | None,
    select: str | None,
    token: str,
    expand: str | None = None,
) -> str:
    """Absolute ``odata.nextLink``: ``{base}{path}?api-version=..&maxresults=..&$skiptoken=..``.

    Values are percent-encoded; the ``$`` of ``$filter``/``$select``/``$expand``/
    ``$skiptoken`` stays literal, as the SDK writes it.
    """
    params: list[tuple[str, str]] = [("api-version", api_version)]
    if maxresults is not None:
        params.append(("maxresults", str(maxresults)))
    if filter:
        params.append(("$filter", filter))
    if select:
        params.append(("$select", select))
    if expand:
        params.append(("$expand", expand))
    params.append(("$skiptoken", token))
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}?{query}"
