"""/docs and /openapi.json: Swagger UI from the installed package, behind the API's auth.

FastAPI's own /docs loads a floating version of Swagger UI from a CDN, with an inline
script, on the console's origin: a third party's code could act as any signed-in user.
Here the bundle comes from the ``swagger-ui-bundle`` package (served under
``/docs/assets/``, a fixed list of files), started by our own ``assets/swagger-init.js``
(the CSP forbids inline scripts). That Swagger UI (4.x) reads OpenAPI 3.0 only, so the
page loads ``/docs/openapi-3.0.json``, the API's 3.1 document respelled by
``openapi30.py``. The page and both documents need what the API needs (a viewer's
bearer token or console session); an anonymous browser is sent to sign in.
"""

from __future__ import annotations

import functools
import html
import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from polysync.api import csrf, openapi30
from polysync.api.auth import bearer_of, identify
from polysync.api.deps import get_services
from polysync.api.problems import Unauthorized
from polysync.api.routes.common import Viewer
from polysync.api.sessions import SESSION_COOKIE
from polysync.errors import ConfigError, NotFoundError

router = APIRouter(include_in_schema=False)

_OWN_ASSETS = Path(__file__).resolve().parent / "assets"
# name -> (where, media type): nothing else of the package (its index.html has an inline
# script, its source maps are large) is served.
_BUNDLE_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
_OWN_FILES = {"swagger-init.js": "text/javascript"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Polysync API</title>
<meta name="csrf-token" content="{csrf}">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/swagger-init.js"></script>
</body>
</html>
"""


@functools.cache
def swagger_ui_dir() -> Path:
    """The installed ``swagger_ui_bundle/vendor/swagger-ui-X.Y.Z`` directory."""
    spec = importlib.util.find_spec("swagger_ui_bundle")
    found = []
    if spec is not None and spec.origin is not None:
        found = sorted((Path(spec.origin).parent / "vendor").glob("swagger-ui-*"))
    if not found:
        raise ConfigError(
            "the swagger-ui-bundle package is missing, so /docs cannot be served; "
            "reinstall Polysync with its dependencies."
        )
    return found[-1]


@router.get("/openapi.json")
async def openapi(request: Request, _: Viewer) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/docs/openapi-3.0.json")
async def openapi_for_docs(request: Request, _: Viewer) -> JSONResponse:
    """The same document in OpenAPI 3.0 spelling: the bundled Swagger UI 4 reads no 3.1."""
    return JSONResponse(openapi30.document_30(request.app.openapi()))


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> Response:
    bearer = await bearer_of(request)
    session_id = request.cookies.get(SESSION_COOKIE)
    try:
        await identify(request, get_services(request), bearer, session_id)
    except Unauthorized:
        if bearer is not None:
            raise  # a script with a bad token gets the API's 401
        return RedirectResponse("/signin?" + urlencode({"next": "/docs"}), status_code=303)
    # "Try it out" with the session cookie sends this as X-CSRF-Token (swagger-init.js).
    token = csrf.csrf_token(session_id) if bearer is None and session_id else ""
    return HTMLResponse(_PAGE.format(csrf=html.escape(token)))


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    if name in _OWN_FILES:
        return FileResponse(_OWN_ASSETS / name, media_type=_OWN_FILES[name])
    if name in _BUNDLE_FILES:
        return FileResponse(swagger_ui_dir() / name, media_type=_BUNDLE_FILES[name])
    raise NotFoundError(f"/docs/assets/{name} does not exist; /docs loads what it needs.")
