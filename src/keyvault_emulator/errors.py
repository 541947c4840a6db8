"""Every error the emulator answers with, in Key Vault's envelope.

The service's error body is ``{"error": {"code", "message", "innererror"?: {"code"}}}``;
the SDK deserialises it into ``HttpResponseError.error`` (``KeyVaultErrorError``, whose
``inner_error`` comes from ``innererror``). Messages reuse the service's wording where it
is known (quoted from real responses in the comments); the rest say plainly what went
wrong. No message ever includes a secret value or a token.
"""

from __future__ import annotations

from typing import Any

# The link the service appends to its "not found" messages.
_NOT_FOUND_HELP = "https://go.microsoft.com/fwlink/?linkid=2125182"


class VaultError(Exception):
    """An HTTP error answer: status, Key Vault error code, message, optional inner code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner_code: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner_code = inner_code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code is not None:
            error["innererror"] = {"code": self.inner_code}
        return {"error": error}

    def __repr__(self) -> str:
        return f"VaultError({self.status}, {self.code!r}, inner={self.inner_code!r})"


# -- 400 -----------------------------------------------------------------------------


def bad_parameter(message: str) -> VaultError:
    return VaultError(400, "BadParameter", message)


def invalid_name(name: str) -> VaultError:
    # Service: "The request URI contains an invalid name: <name>".
    return bad_parameter(f"The request URI contains an invalid name: {name}")


def missing_api_version() -> VaultError:
    return bad_parameter("The 'api-version' query parameter is required.")


def unknown_api_version(version: str, latest: str) -> VaultError:
    # Service: "The specified version (7.3) is not recognized. Consider using the latest
    # supported version (7.1)."
    return bad_parameter(
        f"The specified version ({version}) is not recognized. "
        f"Consider using the latest supported version ({latest})."
    )


def bad_host() -> VaultError:
    return VaultError(400, "BadRequest", "The request has no Host header.")


# -- 401 / 403 -------------------------------------------------------------------------


def missing_token(challenge: str) -> VaultError:
    # Service body for a request without Authorization, alongside the challenge header.
    return VaultError(
        401,
        "Unauthorized",
        "AKV10000: Request is missing a Bearer or PoP token.",
        headers=(("www-authenticate", challenge),),
    )


def invalid_token(challenge: str) -> VaultError:
    return VaultError(
        401,
        "Unauthorized",
        "The bearer token is not one this vault accepts.",
        headers=(("www-authenticate", challenge),),
    )


def forbidden_by_rbac(*, role: str, action: str, resource: str, vault: str) -> VaultError:
    """A caller whose role lacks the data action (the service's RBAC denial, line by line).

    Real denials read ``Caller is not authorized to perform action on resource.\\r\\n...
    Action: '<data action>'\\r\\nResource: '<scope>'\\r\\nAssignment: (not found)\\r\\n
    DenyAssignmentId: null\\r\\nDecisionReason: 'DeniedWithNoValidRBAC' \\r\\nVault: ...``
    with ``innererror.code`` ``ForbiddenByRbac``. The caller line names the emulator role.
    """
    lines = [
        "Caller is not authorized to perform action on resource.",
        "If role assignments, deny assignments or role definitions were changed recently, "
        "please observe propagation time.",
        f"Caller: emulator role '{role}'",
        f"Action: '{action}'",
        f"Resource: '{resource}'",
        "Assignment: (not found)",
        "DenyAssignmentId: null",
        "DecisionReason: 'DeniedWithNoValidRBAC' ",
        f"Vault: {vault};location=local",
    ]
    return VaultError(403, "Forbidden", "\r\n".join(lines) + "\r\n", inner_code="ForbiddenByRbac")


def admin_unauthorized() -> VaultError:
    return VaultError(401, "Unauthorized", "The emulator controls need the admin bearer token.")


# -- 403 / 404 / 409 for secrets --------------------------------------------------------


def secret_not_found(name: str, version: str | None = None) -> VaultError:
    ident = f"{name}/{version}" if version else name
    return VaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {ident} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery "
        f"command. For help resolving this issue, please see {_NOT_FOUND_HELP}",
    )


def deleted_secret_not_found(name: str) -> VaultError:
    return VaultError(
        404,
        "SecretNotFound",
        f"A deleted secret with (name/id) {name} was not found in this key vault. For help "
        f"resolving this issue, please see {_NOT_FOUND_HELP}",
    )


def secret_disabled() -> VaultError:
    # Service: 403 Forbidden, "Operation get is not allowed on a disabled secret.",
    # innererror SecretDisabled.
    return VaultError(
        403,
        "Forbidden",
        "Operation get is not allowed on a disabled secret.",
        inner_code="SecretDisabled",
    )


def deleted_but_recoverable(name: str) -> VaultError:
    # A soft-deleted name cannot be reused until it is purged or recovered.
    return VaultError(
        409,
        "Conflict",
        f"Secret {name} is currently in a deleted but recoverable state, and its name "
        "cannot be reused; in this state, the secret can only be recovered or purged.",
        inner_code="ObjectIsDeletedButRecoverable",
    )


def secret_not_deleted(name: str) -> VaultError:
    return VaultError(
        409,
        "Conflict",
        f"Secret {name} is not in a deleted state; it cannot be recovered or purged.",
    )


# -- routing ---------------------------------------------------------------------------


def no_such_path() -> VaultError:
    return VaultError(404, "NotFound", "The requested path is not part of the secrets API.")


def method_not_allowed(method: str) -> VaultError:
    return VaultError(405, "MethodNotAllowed", f"The method {method} is not allowed here.")


def not_implemented(operation: str) -> VaultError:
    return VaultError(501, "NotImplemented", f"The emulator does not implement {operation}.")


def internal_error() -> VaultError:
    return VaultError(
        500, "InternalServerError", "The emulator failed to handle the request; see its log."
    )


def body_too_large(limit: int) -> VaultError:
    return VaultError(413, "RequestTooLarge", f"The request body exceeds {limit} bytes.")


def misdirected(port: int) -> VaultError:
    # DNS-rebinding defence: a page on another origin may reach the loopback port, but its
    # requests carry that origin's Host, so they are refused before anything else.
    return VaultError(
        421,
        "MisdirectedRequest",
        f"This emulator only answers requests addressed to a loopback host on port {port}.",
    )


# -- injected faults -------------------------------------------------------------------


def injected(status: int, retry_after_s: int | None) -> VaultError:
    headers = (("retry-after", str(retry_after_s)),) if retry_after_s is not None else ()
    if status == 429:
        return VaultError(
            429,
            "Throttled",
            "Request was not processed because too many requests were received "
            "(fault injected by the emulator).",
            headers=headers,
        )
    if status == 503:
        return VaultError(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable (fault injected by the emulator).",
            headers=headers,
        )
    return VaultError(
        status, "InjectedFault", f"Fault injected by the emulator ({status}).", headers=headers
    )


__all__ = [
    "VaultError",
    "admin_unauthorized",
    "bad_host",
    "bad_parameter",
    "body_too_large",
    "deleted_but_recoverable",
    "deleted_secret_not_found",
    "forbidden_by_rbac",
    "injected",
    "internal_error",
    "invalid_name",
    "invalid_token",
    "method_not_allowed",
    "misdirected",
    "missing_api_version",
    "missing_token",
    "no_such_path",
    "not_implemented",
    "secret_disabled",
    "secret_not_deleted",
    "secret_not_found",
    "unknown_api_version",
]
