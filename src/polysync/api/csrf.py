"""Cross-site request forgery rules for requests authenticated by the console's cookie.

A browser attaches the session cookie to any request for our origin, whoever's page
sends it; SameSite=Strict does not stop a page of the same *site* (another port on the
same host, a sibling subdomain). So every state-changing request that relies on the
cookie must pass two independent checks:

1. **Where it came from.** ``Sec-Fetch-Site`` must not be ``cross-site`` or ``same-site``
   and ``Origin``, when sent, must be the request's own origin. Browsers set both and
   pages cannot forge them; they catch a forged request even before any token is read.
2. **What it knows.** A token only our own pages can read: the HMAC of the session id
   keyed by the session id itself. It needs no server secret (nothing to store, share
   between servers or rotate), cannot be derived from what the database holds (the
   SHA-256 of the session id), and ends with the session.

Requests with ``Authorization: Bearer`` are not ambient (a page cannot make a browser
add that header to someone else's origin), so they are exempt. Pure functions only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HEADER = "X-CSRF-Token"
FORM_FIELD = "csrf_token"
_PURPOSE = b"polysync console csrf v1"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN = 100  # an Origin is the sender's text: show at most this much of it

API_REFUSAL = (
    "this request uses the console's session cookie without a valid X-CSRF-Token header; "
    "send the token from the page's csrf-token meta tag, or call the API with "
    "`Authorization: Bearer psk_…`."
)
FORM_REFUSAL = (
    "This form did not carry the console's security token (it was sent from another page, "
    "or from a page of an earlier sign-in); reload the page and submit the form again."
)


def is_unsafe(method: str) -> bool:
    return method.upper() not in SAFE_METHODS


def csrf_token(session_id: str) -> str:
    """The token the console's pages carry for this session (43 URL-safe characters)."""
    mac = hmac.new(session_id.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def token_matches(session_id: str, given: str | None) -> bool:
    if not given:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII text with a TypeError.
    return hmac.compare_digest(csrf_token(session_id).encode(), given.encode("utf-8"))


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def same_origin(a: str, b: str) -> bool:
    """``http://h`` and ``http://h:80`` are one origin; anything unparsable is no match."""
    key = _origin_key(a)
    return key is not None and key == _origin_key(b)


def origin_refusal(*, own_origin: str, origin: str | None, fetch_site: str | None) -> str | None:
    """Why a state-changing request with the cookie must be refused (one sentence), or None.

    ``own_origin`` is the origin the request was sent to (``scheme://host[:port]``).
    Missing headers pass: non-browser clients send neither, and they still need the token.
    """
    how = "call the API with `Authorization: Bearer psk_…` from scripts"
    site = (fetch_site or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return (
            f"this request was sent by a page of another site (Sec-Fetch-Site: {site}) and "
            f"was refused; use the console's own pages at {own_origin}, or {how}."
        )
    if origin is not None and not same_origin(origin, own_origin):
        shown = origin.strip()[:_SHOWN] or "(empty)"
        return (
            f"this request was sent by a page of {shown} and was refused: only the "
            f"console's own pages ({own_origin}) may send it; {how}."
        )
    return None
