"""Security headers on every response of the server, as plain ASGI middleware.

Installed around the whole application (``create_app``), outside Starlette's error
handling, so API JSON, problem+json errors, 404s, 500s, console pages, static files and
/docs all carry them:

- a Content-Security-Policy that allows scripts, styles and connections only from our
  own origin: no inline script or style, no eval, no plugins, no ``<base>``, forms post
  only to us, and no page may frame ours (``frame-ancestors 'none'``; ``X-Frame-Options``
  for older browsers);
- ``nosniff``, ``Referrer-Policy: same-origin`` (not ``no-referrer``: with it Chromium
  sends ``Origin: null`` on our own form posts, which the CSRF check must then refuse),
  ``Cross-Origin-Opener-Policy`` and ``Cross-Origin-Resource-Policy: same-origin`` (no
  other origin, not even another port of this host, may embed our responses), and a
  Permissions-Policy turning off device features the console never uses;
- ``Cache-Control: no-store`` on everything but the public static assets, which are
  revalidated (``no-cache``) so an upgrade is seen at once.

It also clears the ``polysync_token`` cookie of earlier versions (it held the API token
itself) wherever a browser still sends it.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polysync.api.sessions import LEGACY_COOKIE

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
PERMISSIONS = ", ".join(
    f"{feature}=()"
    for feature in (
        "camera",
        "microphone",
        "geolocation",
        "payment",
        "usb",
        "serial",
        "hid",
        "display-capture",
    )
)
# Files anyone may fetch; everything else may carry data of a signed-in caller.
ASSET_PREFIXES = ("/static/", "/docs/assets/")

_ALWAYS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": PERMISSIONS,
}
_CLEAR_LEGACY = f"{LEGACY_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=strict"


def headers_for(path: str) -> dict[str, str]:
    """Pure: the security headers a response to ``path`` gets (set over the app's own)."""
    headers = dict(_ALWAYS)
    if not path.startswith(ASSET_PREFIXES):
        headers["Cache-Control"] = "no-store"
    return headers


def _sends_legacy_cookie(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"cookie" and LEGACY_COOKIE in cookie_parser(value.decode("latin-1")):
            return True
    return False


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope["path"])
        clear_legacy = _sends_legacy_cookie(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-cache"  # assets: revalidate, then reuse
                if clear_legacy:
                    headers.append("Set-Cookie", _CLEAR_LEGACY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
