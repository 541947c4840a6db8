"""Errors as RFC 9457 ``application/problem+json``.

Every :class:`~polysync.errors.PolysyncError` keeps its ``code`` and its sentence (the
one the CLI prints) as ``detail``; the HTTP status comes from its class:

    NotFoundError                     404
    AlreadyExistsError, Conflict      409   (a name taken; a refused delete; a finished run)
    InputError, ParameterError,
    SecretError, RequestValidation    422   (the request was understood but is not valid)
    TemplateError, PoolNotFoundError  422   (the named Batch template/pool is not usable)
    Unauthorized                      401
    Forbidden, PermissionDeniedError  403   (role too low; code-bearing change, decision 0011)
    ThrottledError, QuotaError        503   (with Retry-After when Batch gave one)
    PlatformError (others)            502   (Azure Batch refused or could not be reached)
    StoreError                        503   (the database failed; try again)
    ConfigError, PolysyncError        500
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from polysync.errors import (
    AlreadyExistsError,
    ConfigError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    PlatformError,
    PolysyncError,
    PoolNotFoundError,
    QuotaError,
    SecretError,
    StoreError,
    TemplateError,
    ThrottledError,
)

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://polysync.dev/problems/"


class Conflict(InputError):
    """The request clashes with the current state (a refused delete, a finished run)."""

    code = "Conflict"


class Unauthorized(PolysyncError):
    code = "Unauthorized"


class Forbidden(PolysyncError):
    code = "Forbidden"


_STATUS: tuple[tuple[type[PolysyncError], int], ...] = (
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (Conflict, 409),
    (InputError, 422),
    (SecretError, 422),
    (TemplateError, 422),
    (PoolNotFoundError, 422),
    (ThrottledError, 503),
    (QuotaError, 503),
    (PlatformError, 502),
    (StoreError, 503),
    (Unauthorized, 401),
    (Forbidden, 403),
    (PermissionDeniedError, 403),
    (ConfigError, 500),
)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid request",
    500: "Internal error",
    502: "Azure Batch error",
    503: "Service unavailable",
}


def status_of(exc: PolysyncError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": TYPE_BASE + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _polysync_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PolysyncError)
    status = status_of(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="polysync"'
    retry_after = getattr(exc, "retry_after_s", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    if status >= 500:
        log.warning("request failed with %s: %s", exc.code, exc)
    return problem(status, exc.code, str(exc), headers=headers or None)


def _is_api(request: Request) -> bool:
    # The web console's pages keep FastAPI's own error pages; the API speaks problems.
    return request.url.path.startswith("/api")


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    errors = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "request"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    detail = f"{where}: {first['msg']}{more}; see `errors` and the API docs at /docs."
    return problem(422, "ValidationError", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
    detail = str(exc.detail)
    if exc.status_code == 404:
        detail = "no such API resource; see /docs for the endpoints."
    return problem(exc.status_code, code, detail, headers=dict(exc.headers or {}) or None)


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=exc)
    return problem(
        500,
        "InternalError",
        f"unexpected {type(exc).__name__}; the server log has the details.",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(PolysyncError, _polysync_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
