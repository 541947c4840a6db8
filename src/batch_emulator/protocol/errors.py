"""Batch error codes, their HTTP statuses and standard messages, and the error envelope.

Usage::

    raise BatchError.of("JobNotFound")
    raise BatchError.of("InvalidPropertyValue",
                        values=[("PropertyName", "id"), ("PropertyValue", "a b")])
    raise condition_not_met(read=True)          # 304 for GET, 412 for writes
    raise BatchError.of("ServerBusy", retry_after_s=2.0)

``BatchError.of(code)`` looks the status and the standard message up in :data:`CATALOGUE`
(NOTES.md §9.2; messages quoted there are verbatim from the service, the others follow the
wording of the "Batch Status and Error Codes" page). ``message=`` overrides the text,
``status=`` the status. An unknown code is a programming error (``KeyError``).

:func:`error_body` renders the exact §9.1 JSON envelope (no ``{"error": ...}`` wrapper,
``message`` is ``{lang, value}`` with the ``RequestId``/``Time`` suffix, ``values`` only
when non-empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from batch_emulator.protocol.formats import format_timestamp

__all__ = [
    "CATALOGUE",
    "ERROR_METADATA_SUFFIX",
    "BatchError",
    "condition_not_met",
    "error_body",
    "invalid_query_parameter",
    "missing_required_query_parameter",
]

ERROR_METADATA_SUFFIX = (
    "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
)

_COND = "The condition specified using HTTP conditional header(s) is not met."

#: code -> (HTTP status, standard message)
CATALOGUE: dict[str, tuple[int, str]] = {
    # --- not found (404)
    "JobNotFound": (404, "The specified job does not exist."),
    "TaskNotFound": (404, "The specified task does not exist."),
    "PoolNotFound": (404, "The specified pool does not exist."),
    "NodeNotFound": (404, "The specified node does not exist."),
    "FileNotFound": (404, "The specified file does not exist."),
    "ResourceNotFound": (404, "The specified resource does not exist."),
    # --- conflicts (409)
    "JobExists": (409, "The specified job already exists."),
    "TaskExists": (409, "The specified task already exists."),
    "PoolExists": (409, "The specified pool already exists."),
    "PoolBeingDeleted": (
        409,
        "The specified pool has been marked for deletion and is being deleted.",
    ),
    "JobCompleted": (409, "The specified job is already in a completed state."),
    "JobBeingTerminated": (409, "The specified job is being terminated."),
    "JobBeingDeleted": (
        409,
        "The specified job has been marked for deletion and is being deleted.",
    ),
    "JobDisabled": (409, "The specified job is disabled."),
    "JobNotActive": (409, "The specified job is not in the active state."),
    "TaskCompleted": (409, "The specified task is already in a completed state."),
    "TaskNotCompleted": (409, "The specified task is not in a completed state."),
    "TaskSucceeded": (409, "The specified task completed successfully and cannot be reactivated."),
    "OperationInvalidForCurrentState": (
        409,
        "The specified operation is not valid for the current state of the resource.",
    ),
    "ActiveJobAndScheduleQuotaReached": (
        409,
        "Active job and schedule quota for the account has been reached.",
    ),
    # --- validation (400)
    "InvalidPropertyValue": (
        400,
        "The value provided for one of the properties in the request body is invalid.",
    ),
    "MissingRequiredProperty": (400, "A required property was not specified in the request body."),
    "UnsupportedProperty": (
        400,
        "One of the properties specified in the request body is not supported.",
    ),
    "InvalidRequestBody": (400, "The specified Request Body is not syntactically valid."),
    "InvalidInput": (400, "One of the request inputs is not valid."),
    "OutOfRangeInput": (400, "One of the request inputs is out of range."),
    "InvalidQueryParameterValue": (
        400,
        "Value for one of the query parameters specified in the request URI is invalid.",
    ),
    "OutOfRangeQueryParameterValue": (
        400,
        "One of the query parameters specified in the request URI is outside the permissible "
        "range.",
    ),
    "MissingRequiredQueryParameter": (
        400,
        "A query parameter that's mandatory for this request is not specified.",
    ),
    "UnsupportedQueryParameter": (
        400,
        "One of the query parameters specified in the request URI is not supported.",
    ),
    "MissingRequiredHeader": (
        400,
        "An HTTP header that's mandatory for this request is not specified.",
    ),
    "UnsupportedHeader": (
        400,
        "One of the HTTP headers specified in the request is not supported.",
    ),
    "InvalidHeaderValue": (
        400,
        "The value for one of the HTTP headers is not in the correct format.",
    ),
    "UnsupportedRequestVersion": (400, "The specified request version is not supported."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
    "RequestUrlFailedToParse": (400, "The url in the request could not be parsed."),
    "InvalidHttpVerb": (400, "The HTTP verb specified was not recognized by the server."),
    "MultipleConditionHeadersNotSupported": (400, "Multiple condition headers are not supported."),
    "InvalidAuthenticationInfo": (
        400,
        "The authentication information was not provided in the correct format. "
        "Verify the value of Authorization header.",
    ),
    # --- authentication / authorisation (403)
    "AuthenticationFailed": (
        403,
        "Server failed to authenticate the request. Make sure the value of Authorization "
        "header is formed correctly including the signature.",
    ),
    "InsufficientAccountPermissions": (
        403,
        "The account being accessed does not have sufficient permissions to execute this "
        "operation.",
    ),
    "Forbidden": (403, "The request is not allowed."),
    # --- other 4xx
    "UnsupportedHttpVerb": (405, "The resource doesn't support the specified HTTP verb."),
    "MissingContentLengthHeader": (411, "The Content-Length header was not specified."),
    "ConditionNotMet": (412, _COND),  # 304 for reads: use condition_not_met(read=True)
    "RequestBodyTooLarge": (
        413,
        "The request body is too large and exceeds the maximum permissible limit.",
    ),
    "InvalidRange": (416, "The range specified is invalid for the current size of the resource."),
    "TooManyRequests": (
        429,
        "The server is currently receiving too many requests. Please retry your request.",
    ),
    # --- server side
    "InternalError": (500, "The server encountered an internal error. Please retry the request."),
    "OperationTimedOut": (500, "The operation could not be completed within the permitted time."),
    "ServerBusy": (
        503,
        "The server is currently unable to receive requests. Please retry your request.",
    ),
}


class BatchError(Exception):
    """An error the emulator answers with: Batch ``code``, HTTP ``status``, standard text.

    ``message`` is the text without the ``RequestId``/``Time`` suffix (added by
    :func:`error_body`); ``values`` are the ``{key, value}`` details in order;
    ``retry_after_s`` asks the HTTP layer for a ``Retry-After`` header (only for
    429/503 throttling — the SDK retries any error that carries one, NOTES.md §9.4).
    """

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        values: Iterable[tuple[str, str]] = (),
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.values: list[tuple[str, str]] = list(values)
        self.retry_after_s = retry_after_s

    @classmethod
    def of(
        cls,
        code: str,
        *,
        values: Iterable[tuple[str, str]] = (),
        message: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> BatchError:
        """Build the error for a catalogued ``code`` (``KeyError`` if it is not catalogued)."""
        std_status, std_message = CATALOGUE[code]
        return cls(
            code,
            std_status if status is None else status,
            std_message if message is None else message,
            values,
            retry_after_s=retry_after_s,
        )

    def __repr__(self) -> str:
        return f"BatchError(code={self.code!r}, status={self.status}, values={self.values!r})"


def condition_not_met(*, read: bool) -> BatchError:
    """``ConditionNotMet``: 304 for a read (GET/HEAD), 412 for a write (NOTES.md §7)."""
    return BatchError.of("ConditionNotMet", status=304 if read else 412)


def invalid_query_parameter(name: str, value: str, reason: str) -> BatchError:
    """400 ``InvalidQueryParameterValue`` with the standard three detail values."""
    return BatchError.of(
        "InvalidQueryParameterValue",
        values=[("QueryParameterName", name), ("QueryParameterValue", value), ("Reason", reason)],
    )


def missing_required_query_parameter(name: str) -> BatchError:
    """400 ``MissingRequiredQueryParameter`` (e.g. no ``api-version``, NOTES.md §2.2)."""
    return BatchError.of("MissingRequiredQueryParameter", values=[("QueryParameterName", name)])


def error_body(err: BatchError, *, base_url: str, request_id: str, now: datetime) -> dict[str, Any]:
    """The JSON error envelope exactly as the service writes it (NOTES.md §9.1)."""
    body: dict[str, Any] = {
        "odata.metadata": base_url.rstrip("/") + ERROR_METADATA_SUFFIX,
        "code": err.code,
        "message": {
            "lang": "en-US",
            "value": f"{err.message}\nRequestId:{request_id}\nTime:{format_timestamp(now)}",
        },
    }
    if err.values:
        body["values"] = [{"key": k, "value": v} for k, v in err.values]
    return body
