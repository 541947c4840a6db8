"""Shared Key and bearer authentication of Batch requests (NOTES.md §3).

The signature is recomputed from the request *as received*: ``path`` must be the raw,
percent-encoded path (ASGI ``raw_path``) and ``query`` the raw query string, because the
SDK signs ``urlparse(url).path`` unchanged and parses the query itself.

Two string-to-sign variants are accepted (NOTES.md §3.2):

* ``lowercase_query_names=False`` — what azure-batch 15.1.0 does: query names as sent
  (it signs ``timeOut`` with a capital O), only the first value of each name, blank values
  dropped, names in ``sorted()`` order;
* ``lowercase_query_names=True`` — the documented algorithm: names lower-cased, multiple
  values sorted and comma-joined.

For each variant the Content-Length slot is also tried as empty and as ``"0"`` when the
request has no body: the SDK signs ``0`` for body-less POST/DELETE and empty for GET/HEAD,
and transports differ on whether they then send ``Content-Length: 0``.

Error split of :func:`check_request_auth`:

* 400 ``InvalidAuthenticationInfo`` — the Authorization header is malformed
  (no ``scheme credentials`` shape, SharedKey without ``account:signature``, signature
  not base64, empty bearer token);
* 400 ``InvalidHeaderValue`` — the ``ocp-date``/``Date`` header is not an HTTP date
  (only checked when ``max_skew`` is set);
* 403 ``AuthenticationFailed`` — no Authorization header, unknown scheme, wrong account,
  wrong signature, bearer token not accepted (or bearer not configured), shared key
  disabled, request date missing or outside ``max_skew``. ``values`` carries an
  ``AuthenticationErrorDetail`` sentence (never the key or a valid signature).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from batch_emulator.protocol.errors import BatchError
from batch_emulator.protocol.formats import parse_http_date

__all__ = [
    "DEFAULT_MAX_SKEW",
    "SIGNED_HEADERS",
    "check_request_auth",
    "parse_authorization",
    "sign",
    "string_to_sign",
    "verify_bearer",
    "verify_shared_key",
]

#: The 11 standard header slots, in order (NOTES.md §3.1).
SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)

#: Requests must reach the service within 15 minutes of their date (NOTES.md §2.3).
DEFAULT_MAX_SKEW = timedelta(minutes=15)


def _lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names, first value wins, empty values dropped (as the SDK does)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if value and key not in out:
            out[key] = value
    return out


def _canonical_query(query: str, *, lowercase_query_names: bool) -> str:
    parsed = parse_qs(query)  # URL-decodes, '+' -> space, drops blank values (like the SDK)
    if not lowercase_query_names:
        return "".join(f"\n{name}:{parsed[name][0]}" for name in sorted(parsed))
    merged: dict[str, list[str]] = {}
    for name, values in parsed.items():
        merged.setdefault(name.lower(), []).extend(values)
    return "".join(f"\n{name}:{','.join(sorted(merged[name]))}" for name in sorted(merged))


def _string_to_sign(
    method: str,
    path: str,
    query: str,
    lowered: Mapping[str, str],
    *,
    account: str,
    lowercase_query_names: bool,
    content_length: str,
) -> str:
    slots = [
        content_length if h == "content-length" else lowered.get(h, "") for h in SIGNED_HEADERS
    ]
    # The SDK takes every header whose name *contains* "ocp-" (NOTES.md §3.2 step 4).
    ocp = sorted((name, value) for name, value in lowered.items() if "ocp-" in name)
    return (
        method.upper()
        + "\n"
        + "\n".join(slots)
        + "\n"
        + "".join(f"{name}:{value}\n" for name, value in ocp)
        + f"/{account}{path}"
        + _canonical_query(query, lowercase_query_names=lowercase_query_names)
    )


def string_to_sign(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    account: str,
    lowercase_query_names: bool,
) -> str:
    """The Shared Key string-to-sign of a request, the way azure-batch 15.1.0 builds it.

    ``headers`` is matched case-insensitively. For methods other than GET/HEAD a missing
    Content-Length is signed as ``0`` (the SDK's rule).
    """
    lowered = _lower_headers(headers)
    content_length = lowered.get("content-length", "")
    if not content_length and method.upper() not in ("GET", "HEAD"):
        content_length = "0"
    return _string_to_sign(
        method,
        path,
        query,
        lowered,
        account=account,
        lowercase_query_names=lowercase_query_names,
        content_length=content_length,
    )


def sign(key_b64: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA256 of the UTF-8 string with the base64-decoded account key."""
    key = base64.b64decode(key_b64)
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_authorization(value: str) -> tuple[str, str]:
    """Split an Authorization header into ``(scheme, credentials)``.

    Raises 400 ``InvalidAuthenticationInfo`` when it has no ``scheme credentials`` shape.
    """
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if not scheme or not rest:
        raise BatchError.of(
            "InvalidAuthenticationInfo",
            values=[
                (
                    "AuthenticationErrorDetail",
                    "The Authorization header must be "
                    "'SharedKey <account>:<signature>' or 'Bearer <token>'.",
                )
            ],
        )
    return scheme, rest


def _split_shared_key(credentials: str) -> tuple[str, bytes]:
    account, sep, signature = credentials.partition(":")
    try:
        if not sep or not account or not signature:
            raise ValueError("missing part")
        sig_bytes = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise BatchError.of(
            "InvalidAuthenticationInfo",
            values=[
                (
                    "AuthenticationErrorDetail",
                    "A SharedKey Authorization header must be "
                    "'SharedKey <account>:<base64 signature>'.",
                )
            ],
        ) from exc
    return account, sig_bytes


def _candidate_strings(
    method: str, path: str, query: str, headers: Mapping[str, str], account: str
) -> Iterator[str]:
    """The strings a legitimate client may have signed, SDK 15.x's variant first (lazily)."""
    lowered = _lower_headers(headers)
    sent_length = lowered.get("content-length", "")
    lengths = [sent_length] if sent_length not in ("", "0") else ["", "0"]
    return (
        _string_to_sign(
            method,
            path,
            query,
            lowered,
            account=account,
            lowercase_query_names=lower,
            content_length=length,
        )
        for lower in (False, True)
        for length in lengths
    )


def _shared_key_matches(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    account: str,
    key_b64: str,
    given: bytes,
) -> bool:
    key = base64.b64decode(key_b64)
    for candidate in _candidate_strings(method, path, query, headers, account):
        expected = hmac.new(key, candidate.encode("utf-8"), hashlib.sha256).digest()
        # Constant-time comparison per candidate. Stopping at the first match is safe: the
        # candidates differ only in public canonicalisation choices, so which one matched
        # reveals nothing about the key. The SDK's variant comes first, so the common case
        # costs one HMAC (this was ~40% of the server's CPU per GET with all five).
        if hmac.compare_digest(expected, given):
            return True
    return False


def verify_shared_key(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    account: str,
    key_b64: str,
) -> bool:
    """True if the request's ``Authorization: SharedKey account:sig`` is valid.

    Accepts either query-name variant (see the module docstring); a different account
    name, a missing or malformed header give False.
    """
    auth = _lower_headers(headers).get("authorization", "")
    scheme, _, credentials = auth.strip().partition(" ")
    if scheme.lower() != "sharedkey":
        return False
    try:
        sig_account, given = _split_shared_key(credentials.strip())
    except BatchError:
        return False
    if sig_account != account:
        return False
    return _shared_key_matches(
        method, path, query, headers, account=account, key_b64=key_b64, given=given
    )


def verify_bearer(headers: Mapping[str, str], accepted_tokens: Collection[str]) -> bool:
    """True if ``Authorization: Bearer <token>`` carries one of ``accepted_tokens``."""
    auth = _lower_headers(headers).get("authorization", "")
    scheme, _, token = auth.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    ok = False
    for accepted in accepted_tokens:
        ok = hmac.compare_digest(accepted.encode("utf-8"), token.encode("utf-8")) | ok
    return ok


def _auth_failed(detail: str) -> BatchError:
    return BatchError.of("AuthenticationFailed", values=[("AuthenticationErrorDetail", detail)])


def _check_skew(lowered: Mapping[str, str], max_skew: timedelta, now: datetime) -> None:
    name = "ocp-date" if "ocp-date" in lowered else "date"
    raw = lowered.get(name)
    if raw is None:
        raise _auth_failed("The request has neither an ocp-date nor a Date header.")
    try:
        sent = parse_http_date(raw)
    except ValueError as exc:
        raise BatchError.of(
            "InvalidHeaderValue", values=[("HeaderName", name), ("HeaderValue", raw)]
        ) from exc
    if abs(now - sent) > max_skew:
        raise _auth_failed(
            f"The request date {raw!r} is more than {int(max_skew.total_seconds())} seconds "
            "away from the server time; check the client's clock."
        )


def check_request_auth(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    account: str,
    key_b64: str,
    bearer_tokens: Collection[str] = (),
    allow_shared_key: bool = True,
    max_skew: timedelta | None = None,
    now: datetime | None = None,
) -> None:
    """Authenticate a request or raise :class:`BatchError` (split in the module docstring).

    ``bearer_tokens`` empty means bearer authentication is not configured. ``max_skew``
    (e.g. :data:`DEFAULT_MAX_SKEW`) enables the replay-window check of the shared-key
    request date against ``now`` (default: the current time).
    """
    lowered = _lower_headers(headers)
    auth = lowered.get("authorization")
    if auth is None:
        raise _auth_failed("The request has no Authorization header.")
    scheme, credentials = parse_authorization(auth)
    kind = scheme.lower()
    if kind == "sharedkey":
        sig_account, given = _split_shared_key(credentials)
        if not allow_shared_key:
            raise _auth_failed("Shared Key authentication is disabled for this account.")
        if sig_account != account:
            raise _auth_failed(
                f"The Authorization header names account {sig_account!r}, "
                f"but this endpoint serves account {account!r}."
            )
        if not _shared_key_matches(
            method, path, query, headers, account=account, key_b64=key_b64, given=given
        ):
            expected = string_to_sign(
                method, path, query, headers, account=account, lowercase_query_names=False
            )
            raise _auth_failed(
                "The MAC signature found in the HTTP request is not the same as any computed "
                f"signature. Server used following string to sign: {expected!r}."
            )
        if max_skew is not None:
            _check_skew(lowered, max_skew, now if now is not None else datetime.now(UTC))
        return
    if kind == "bearer":
        if not bearer_tokens:
            raise _auth_failed("Bearer tokens are not accepted: none are configured.")
        if not verify_bearer(lowered, bearer_tokens):
            raise _auth_failed("The bearer token is not one of the accepted tokens.")
        return
    raise _auth_failed(f"The authentication scheme {scheme!r} is not supported.")
