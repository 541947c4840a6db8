"""Host references: ``env:NAME`` and ``file:PATH``, read by the process that resolves them.

Two messages per failure (decision 0010 §4): the precise one (unset, missing file, not
UTF-8, …) is for the log of this process, which only the host sees; the one raised says
only that the reference could not be read, because it may end up in a run's failure that
any viewer reads — naming a variable or telling which files exist would be an oracle on
the server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from polysync.domain.models import SecretRef
from polysync.errors import SecretError

log = logging.getLogger(__name__)

UNREADABLE = (
    "its host reference could not be read; the log of the Polysync process that resolved "
    "it (on its host) says why"
)


class HostReferenceError(SecretError):
    """A host reference could not be read; ``detail`` says why (for the local log only)."""

    def __init__(self, ref: SecretRef, detail: str) -> None:
        super().__init__(UNREADABLE)
        self.ref = ref
        self.detail = detail


def read(ref: SecretRef, *, environ: Mapping[str, str] | None = None) -> str:
    """The secret ``ref`` points at; :class:`HostReferenceError` when it cannot be read."""
    if ref.kind == "env":
        return _read_env(ref, os.environ if environ is None else environ)
    if ref.kind == "file":
        return _read_file(ref)
    raise ValueError(f"{ref.kind!r} is not a host reference")


def _fail(ref: SecretRef, detail: str) -> HostReferenceError:
    log.warning("secret reference %s cannot be read: %s", ref, detail)
    return HostReferenceError(ref, detail)


def _read_env(ref: SecretRef, environ: Mapping[str, str]) -> str:
    value = environ.get(ref.target)
    if value is None:
        raise _fail(
            ref,
            f"environment variable {ref.target} is not set; export it in the environment of "
            "the Polysync process that submits the run",
        )
    if value == "":
        raise _fail(ref, f"environment variable {ref.target} is empty; set it to the secret")
    return value


def _read_file(ref: SecretRef) -> str:
    path = Path(ref.target).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(ref, f"file {path} does not exist; create it or fix the path") from None
    except IsADirectoryError:
        raise _fail(ref, f"{path} is a directory; point file: at the file") from None
    except PermissionError:
        raise _fail(ref, f"file {path} is not readable by this user; fix its mode") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _fail(ref, f"file {path} cannot be read ({reason}); check the path") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(ref, f"file {path} is not UTF-8 text; store the secret as text") from None
    # Editors and `echo` add one newline: it is not part of the secret.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if text == "":
        raise _fail(ref, f"file {path} is empty; write the secret into it")
    return text
