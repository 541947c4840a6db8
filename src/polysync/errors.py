"""Every error Polysync raises on purpose.

Messages are one sentence (or two): what was wrong, naming the ids, and what to do next.
They never contain a secret value.

    PolysyncError                 exit code 3 unless a subclass says otherwise
    ├── InputError                exit 2: bad flag, value, name or reference from the user
    │   ├── NotFoundError         a platform / job / task / run that does not exist
    │   ├── AlreadyExistsError    a name that is taken
    │   ├── ParameterError        a parameter value or schema problem (D11)
    │   └── ReferenceNotAllowed   a secret reference this caller may not write (0010)
    ├── SecretError               exit 2: a malformed secret reference, or one that cannot
    │                             be resolved (unset, missing, refused by its vault)
    ├── ConfigError               exit 2: unreadable config file or database URL
    ├── PermissionDeniedError     the caller's role may not make this change (API and
    │                             console: 403; the CLI, run by the host, is never refused)
    ├── PlatformError             exit 3: Azure Batch said no or could not be reached
    │   ├── AuthenticationError   the credential was refused (403/401)
    │   ├── TemplateError         the template job is missing or unusable (D2)
    │   ├── PoolNotFoundError     pre-flight: the template's pool does not exist (D4)
    │   ├── QuotaError            ActiveJobAndScheduleQuotaReached
    │   ├── ThrottledError        429/503 after the SDK's own retries
    │   ├── FingerprintMismatch   JobExists/TaskExists for an object that is not ours (D5)
    │   └── RemovalBlocked        a forced removal could not stop its runs' Batch work
    └── StoreError                exit 3: the database failed
"""

from __future__ import annotations


class PolysyncError(Exception):
    exit_code = 3
    code = "PolysyncError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InputError(PolysyncError):
    exit_code = 2
    code = "InvalidInput"


class NotFoundError(InputError):
    code = "NotFound"


class AlreadyExistsError(InputError):
    code = "AlreadyExists"


class ParameterError(InputError):
    code = "InvalidParameter"


class ReferenceNotAllowed(InputError):
    """A secret reference the caller may not write there (docs/decisions/0010)."""

    code = "ReferenceNotAllowed"


class SecretError(PolysyncError):
    exit_code = 2
    code = "SecretUnavailable"


class ConfigError(PolysyncError):
    exit_code = 2
    code = "InvalidConfig"


class PermissionDeniedError(PolysyncError):
    """A use case refused the caller's role (decision 0011: code-bearing changes)."""

    exit_code = 2
    code = "Forbidden"


class PlatformError(PolysyncError):
    """Azure Batch refused the request or could not be reached."""

    exit_code = 3
    code = "PlatformError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        batch_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.batch_code = batch_code
        self.request_id = request_id


class AuthenticationError(PlatformError):
    code = "AuthenticationFailed"


class TemplateError(PlatformError):
    code = "TemplateUnusable"


class PoolNotFoundError(PlatformError):
    code = "PoolNotFound"


class QuotaError(PlatformError):
    code = "ActiveJobAndScheduleQuotaReached"


class ThrottledError(PlatformError):
    code = "Throttled"

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
        batch_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, batch_code=batch_code, request_id=request_id)
        self.retry_after_s = retry_after_s


class FingerprintMismatch(PlatformError):
    code = "FingerprintMismatch"


class RemovalBlocked(PlatformError):
    """A forced removal could not stop its runs' Batch work, so nothing was deleted."""

    code = "RemovalBlocked"


class StoreError(PolysyncError):
    code = "StoreError"
