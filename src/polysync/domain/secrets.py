"""Secret references, their resolution, and masking of live secret values (D11).

A value that stands for a secret is stored as a *reference*, never as the secret:

* ``env:NAME`` — the environment variable ``NAME`` of the process that submits the run;
* ``file:PATH`` — the contents of a UTF-8 text file (``~`` is expanded, a relative path is
  relative to the working directory; one trailing newline is dropped, because editors and
  ``echo`` add one).

Anything else is a literal. To pass a literal that itself starts with ``env:``, ``file:``
or ``literal:``, prefix it with ``literal:`` — ``literal:env:x`` is sent as ``env:x``. Only
one prefix is removed, so ``literal:literal:x`` is sent as ``literal:x``.

Polysync's ``vault://<vault>/<secret>`` references (POLYSYNC-CONCEPTS.md §Secret Vault) are
not supported by this edition; they are refused rather than sent as text, so a user
copying a Polysync value gets told instead of leaking the reference to the task as data.

Resolving is the only I/O in ``polysync.domain``. Every resolved value is registered with
the process-wide :class:`Redactor`, so it is masked as ``***`` in log lines (through
:class:`RedactingFilter`) and in error text rendered through :func:`redact_known`.

Secrets shorter than :data:`MIN_SECRET_LEN` characters are *not* masked: masking ``1`` or
``yes`` would turn every log line into noise and hide the ids users need, and a value that
short is guessable anyway. The value itself is still never stored or printed on purpose:
records of sent parameters mask secret parameters by their flag, not by their text.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

from polysync.domain.models import SecretRef
from polysync.errors import SecretError

ENV_PREFIX = "env:"
FILE_PREFIX = "file:"
LITERAL_PREFIX = "literal:"
VAULT_PREFIX = "vault://"

MIN_SECRET_LEN = 4
MASK = "***"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMS = "write env:NAME or file:PATH"
_LITERAL_HINT = "to send text that starts with '{prefix}' as it is, write literal:{prefix}..."


def parse_ref(text: str) -> SecretRef | None:
    """``env:NAME`` / ``file:PATH`` → :class:`SecretRef`; a literal → None.

    A malformed reference raises :class:`SecretError` at once (the caller is saving or
    running a Task, and a typo is better reported now than at run time).
    """
    if text.startswith(ENV_PREFIX):
        name = text[len(ENV_PREFIX) :]
        if _ENV_NAME.fullmatch(name) is None:
            raise SecretError(
                f"reference {text!r} does not name a valid environment variable: {_FORMS} "
                f"(letters, digits, _); {_LITERAL_HINT.format(prefix=ENV_PREFIX)}"
            )
        return SecretRef("env", name)
    if text.startswith(FILE_PREFIX):
        path = text[len(FILE_PREFIX) :]
        if not path.strip():
            raise SecretError(
                f"reference {text!r} has no path: {_FORMS}; "
                f"{_LITERAL_HINT.format(prefix=FILE_PREFIX)}"
            )
        return SecretRef("file", path)
    if text.startswith(VAULT_PREFIX):
        raise SecretError(
            f"vault references ({text}) are not supported here: put the secret in an "
            f"environment variable or a file and {_FORMS}; "
            f"{_LITERAL_HINT.format(prefix=VAULT_PREFIX)}"
        )
    return None


def is_ref(text: str) -> bool:
    """True for a well-formed ``env:``/``file:`` reference (malformed ones raise)."""
    return parse_ref(text) is not None


def unescape_literal(text: str) -> str:
    """The value a literal stands for: one leading ``literal:`` removed, if present."""
    return text[len(LITERAL_PREFIX) :] if text.startswith(LITERAL_PREFIX) else text


def escape_literal(value: str) -> str:
    """The stored form of a literal ``value``: :func:`unescape_literal` gives it back."""
    needs = (ENV_PREFIX, FILE_PREFIX, LITERAL_PREFIX, VAULT_PREFIX)
    return LITERAL_PREFIX + value if value.startswith(needs) else value


def resolve(
    ref: SecretRef,
    *,
    environ: Mapping[str, str] | None = None,
    register: bool = True,
) -> str:
    """Read the secret a reference points at. Errors name the reference, never the value.

    ``environ`` defaults to ``os.environ``. With ``register`` (the default) the value is
    added to the process-wide redactor so it never shows up in logs.
    """
    if ref.kind == "env":
        value = _read_env(ref, os.environ if environ is None else environ)
    elif ref.kind == "file":
        value = _read_file(ref)
    else:
        raise SecretError(f"reference {ref} has an unknown kind {ref.kind!r}: {_FORMS}.")
    if register:
        REDACTOR.add(value)
    return value


def _read_env(ref: SecretRef, environ: Mapping[str, str]) -> str:
    value = environ.get(ref.target)
    if value is None:
        raise SecretError(
            f"reference {ref}: environment variable {ref.target} is not set; export it in "
            "the environment of the Polysync process that submits the run."
        )
    if value == "":
        raise SecretError(
            f"reference {ref}: environment variable {ref.target} is empty; set it to the "
            "secret value."
        )
    return value


def _read_file(ref: SecretRef) -> str:
    path = Path(ref.target).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SecretError(
            f"reference {ref}: file {path} does not exist; create it or fix the path."
        ) from None
    except IsADirectoryError:
        raise SecretError(
            f"reference {ref}: {path} is a directory; point file: at the file holding the secret."
        ) from None
    except PermissionError:
        raise SecretError(
            f"reference {ref}: file {path} is not readable by this user; fix its permissions."
        ) from None
    except OSError as exc:
        raise SecretError(
            f"reference {ref}: file {path} cannot be read ({exc.strerror or type(exc).__name__}); "
            "check the path."
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(
            f"reference {ref}: file {path} is not UTF-8 text; store the secret as text."
        ) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if text == "":
        raise SecretError(f"reference {ref}: file {path} is empty; write the secret into it.")
    return text


def _variants(secret: str) -> set[str]:
    """The secret as it may appear in text: raw, JSON-escaped, repr-escaped, URL-encoded."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
    }


class Redactor:
    """Holds the live secret values of a process and masks them in any text.

    Thread-safe: values are added under a lock, and :meth:`redact` uses an immutable
    compiled pattern, replaced as a whole when a value is added.
    """

    def __init__(self, secrets: Iterable[str] = (), *, min_len: int = MIN_SECRET_LEN) -> None:
        self._min_len = min_len
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> bool:
        """Remember a secret; False when it is too short to mask (see module docstring)."""
        if len(secret) < self._min_len:
            return False
        with self._lock:
            new = {v for v in _variants(secret) if len(v) >= self._min_len} - self._values
            if new:
                self._values |= new
                # Longest first, so a secret that contains another is masked whole.
                ordered = sorted(self._values, key=lambda v: (-len(v), v))
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return True

    def clear(self) -> None:
        with self._lock:
            self._values = set()
            self._pattern = None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(MASK, text)


REDACTOR = Redactor()
"""The process-wide redactor; :func:`resolve` registers every value it reads here."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """Mask ``secrets`` in ``text`` (same rules as :class:`Redactor`)."""
    return Redactor(secrets).redact(text)


def redact_known(text: str) -> str:
    """Mask every secret resolved so far in this process (for error rendering)."""
    return REDACTOR.redact(text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks live secrets in the message, its args and tracebacks.

    The message is rendered (``msg % args``) and masked, so a secret passed as an argument
    is caught too; the record then carries the masked text and no args. Attach it to
    handlers, so records from every logger pass through it.
    """

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = REDACTOR if self._redactor is None else self._redactor
        if not redactor:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, not ours
            return True
        record.msg = redactor.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True
