"""Secret references, who may write them, and masking of live secret values.

A value that stands for a secret is stored as a *reference*, never as the secret
(docs/decisions/0010-secret-model.md):

* ``vault://VAULT/SECRET`` / ``vault://VAULT/SECRET/VERSION`` — a secret of a declared
  Secret Vault (Azure Key Vault), its current or a pinned version;
* ``env:NAME`` — the environment variable ``NAME`` of the process that resolves it;
* ``file:PATH`` — the contents of a UTF-8 text file on that host.

References are read only in *Secret slots* (platform and vault credentials, Secret
parameters); anywhere else text is a literal. One leading ``literal:`` is removed from a
literal (``literal:env:x`` is sent as ``env:x``), as before decision 0010, so values
saved then keep their meaning.

Who may write which reference is :func:`check_ref`: the host (the CLI) any; API and
console admins vault references and host references on the deployment's allow-list,
operators only vault references their vault admits for Task parameters.

This module is pure: reading a reference is ``polysync.secrets``. Every value read is
registered with the process-wide :data:`REDACTOR`, so it is masked as ``***`` in log lines
(:class:`RedactingFilter`) and in task output before it is stored or served.

Secrets shorter than :data:`MIN_SECRET_LEN` characters are *not* masked: masking ``1`` or
``yes`` would turn every log line into noise and hide the ids users need, and a value that
short is guessable anyway. The value itself is still never stored or printed on purpose:
records of sent parameters mask secret parameters by their flag, not by their text.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from urllib.parse import quote

from polysync.domain.models import PlatformAuth, SecretRef
from polysync.errors import ReferenceNotAllowed, SecretError

ENV_PREFIX = "env:"
FILE_PREFIX = "file:"
LITERAL_PREFIX = "literal:"
VAULT_PREFIX = "vault://"

MIN_SECRET_LEN = 4
MASK = "***"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Vault names follow platform names; secret names and versions are Key Vault's own rules.
_VAULT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_VERSION = re.compile(r"[0-9A-Fa-f]{32}")
FORMS = "vault://VAULT/SECRET, env:NAME or file:PATH"


# -- parsing -----------------------------------------------------------------------------


def parse_ref(text: str) -> SecretRef | None:
    """``vault://…`` / ``env:NAME`` / ``file:PATH`` → :class:`SecretRef`; other text → None.

    A malformed reference raises :class:`SecretError` at once (the caller is saving or
    running a Task, and a typo is better reported now than at run time).
    """
    if text.startswith(ENV_PREFIX):
        name = text[len(ENV_PREFIX) :]
        if _ENV_NAME.fullmatch(name) is None:
            raise SecretError(
                f"reference {text!r} does not name a valid environment variable: write "
                "env:NAME (letters, digits and _, not starting with a digit)."
            )
        return SecretRef("env", name)
    if text.startswith(FILE_PREFIX):
        path = text[len(FILE_PREFIX) :]
        if not path.strip() or "\x00" in path:
            raise SecretError(f"reference {text!r} has no usable path: write file:PATH.")
        return SecretRef("file", path)
    if text.startswith(VAULT_PREFIX):
        return _parse_vault(text)
    return None


def _parse_vault(text: str) -> SecretRef:
    parts = text[len(VAULT_PREFIX) :].split("/")
    shape = "write vault://VAULT/SECRET or vault://VAULT/SECRET/VERSION"
    if len(parts) not in (2, 3) or not all(parts):
        raise SecretError(f"reference {text!r} is not a vault reference: {shape}.")
    vault, secret = parts[0], parts[1]
    if _VAULT_NAME.fullmatch(vault) is None:
        raise SecretError(
            f"reference {text!r}: {vault!r} is not a vault name (1-64 letters, digits, '.', "
            f"'_' or '-'); {shape}."
        )
    if _SECRET_NAME.fullmatch(secret) is None:
        raise SecretError(
            f"reference {text!r}: {secret!r} is not a Key Vault secret name (1-127 letters, "
            f"digits and '-'); {shape}."
        )
    if len(parts) == 3 and _VERSION.fullmatch(parts[2]) is None:
        raise SecretError(
            f"reference {text!r}: {parts[2]!r} is not a secret version (32 hexadecimal "
            "characters, as Key Vault shows them); leave it out to use the current version."
        )
    return SecretRef("vault", "/".join(p.lower() if i == 2 else p for i, p in enumerate(parts)))


def is_ref(text: str) -> bool:
    """True for a well-formed reference (malformed ones raise)."""
    return parse_ref(text) is not None


def require_ref(text: str, what: str) -> SecretRef:
    """The reference a Secret slot holds; a literal is refused (never store a secret)."""
    ref = parse_ref(text)
    if ref is None:
        raise SecretError(
            f"{what} is a secret, so it takes a reference ({FORMS}), never the value itself: "
            "that keeps it out of the database, shell history and process lists."
        )
    return ref


def unescape_literal(text: str) -> str:
    """The value a literal stands for: one leading ``literal:`` removed, if present."""
    return text[len(LITERAL_PREFIX) :] if text.startswith(LITERAL_PREFIX) else text


def escape_literal(value: str) -> str:
    """The stored form of a literal ``value``: :func:`unescape_literal` gives it back."""
    return LITERAL_PREFIX + value if value.startswith(LITERAL_PREFIX) else value


def looks_like_ref(text: str) -> bool:
    """Text that would be a reference in a Secret slot (a hint for literal values)."""
    return text.startswith((ENV_PREFIX, FILE_PREFIX, VAULT_PREFIX))


def auth_references(auth: PlatformAuth) -> list[SecretRef]:
    """Every reference a credential reads: its secret and a vault-held certificate."""
    refs = [auth.secret] if auth.secret is not None else []
    if auth.certificate_path and auth.certificate_path.startswith(VAULT_PREFIX):
        ref = parse_ref(auth.certificate_path)
        if ref is not None:
            refs.append(ref)
    return refs


def describe(ref: SecretRef) -> str:
    """How messages seen by other users name a reference: vaults yes, host places never."""
    return str(ref) if ref.kind == "vault" else "its host reference"


# -- who may write which reference (decision 0010) ----------------------------------------


class Writer(enum.StrEnum):
    """Who is saving a reference: the host (CLI) or a role of the server."""

    HOST = "host"
    ADMIN = "admin"
    OPERATOR = "operator"

    @classmethod
    def for_role(cls, role: str) -> Writer:
        """The writer a server role is (viewers write nothing: the least, operator)."""
        return cls.ADMIN if str(role) == "admin" else cls.OPERATOR


class Slot(enum.StrEnum):
    CREDENTIAL = "credential"  # platform and vault credentials, certificates, CA bundles
    PARAMETER = "parameter"  # Secret parameter values, defaults and run overrides


@dataclass(frozen=True, slots=True)
class RefRules:
    """What a deployment declared, that references are checked against.

    ``vaults``: lower-cased vault name → its ``task_secrets`` patterns; ``host_allow``:
    the host's ``[server] host_references`` globs (``env:AZURE_BATCH_*``); and
    ``credential_secrets``: the (vault, secret) pairs platform and vault credentials use,
    lower-cased, which Task parameters may never read.
    """

    vaults: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    host_allow: tuple[str, ...] = ()
    credential_secrets: frozenset[tuple[str, str]] = frozenset()


def host_allowed(ref: SecretRef, patterns: Iterable[str]) -> bool:
    """Whether a host reference (or file path, as ``file:PATH``) matches the allow-list."""
    text = str(ref)
    return any(fnmatchcase(text, pattern) for pattern in patterns)


def check_ref(ref: SecretRef, *, writer: Writer, slot: Slot, rules: RefRules, what: str) -> None:
    """Refuse a reference ``writer`` may not put in ``slot`` (one sentence, names ``what``)."""
    if ref.is_host:
        if writer is Writer.HOST:
            return
        if writer is Writer.ADMIN and slot is Slot.CREDENTIAL:
            if host_allowed(ref, rules.host_allow):
                return
            raise ReferenceNotAllowed(
                f"{what}: {ref.kind}: references are not accepted from the server unless the "
                "host allows them ([server] host_references in its config.toml); use a "
                "vault://VAULT/SECRET reference, or register it with the polysync CLI on the "
                "host."
            )
        raise ReferenceNotAllowed(
            f"{what}: {ref.kind}: references are not accepted from the API or the console "
            "(they would read the server's own environment or files); use a "
            "vault://VAULT/SECRET reference to a Secret Vault an admin declared."
        )
    check_vault_ref(ref, rules=rules, slot=slot, what=what)


def check_vault_ref(ref: SecretRef, *, rules: RefRules, slot: Slot, what: str) -> None:
    """A vault reference must name a declared vault; in a parameter, one it lends to tasks.

    Also run when a run resolves its parameters, so a narrowed ``task_secrets`` or a
    secret that became a platform credential is refused from then on.
    """
    vault, secret = (ref.vault or "").lower(), (ref.secret or "").lower()
    patterns = rules.vaults.get(vault)
    if patterns is None:
        raise ReferenceNotAllowed(
            f"{what}: there is no Secret Vault named {ref.vault!r}; see `polysync vault list`, "
            "or ask an admin to add it with `polysync vault add`."
        )
    if slot is not Slot.PARAMETER:
        return
    if (vault, secret) in rules.credential_secrets:
        raise ReferenceNotAllowed(
            f"{what}: secret {ref.secret!r} of vault {ref.vault!r} is a platform or vault "
            "credential, and Task parameters may not read credentials; store the task's "
            "secret under another name."
        )
    if not any(fnmatchcase(secret, p.lower()) for p in patterns):
        shown = ", ".join(patterns) or "none"
        raise ReferenceNotAllowed(
            f"{what}: vault {ref.vault!r} does not lend secret {ref.secret!r} to Task "
            f"parameters (its task secrets: {shown}); ask an admin to widen them with "
            f"`polysync vault add {ref.vault} ... --task-secrets PATTERN --replace`."
        )


# -- masking -----------------------------------------------------------------------------


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
        # bytes_rule()'s answer for the current values, built on first use (a served log
        # asks for it on every read); None: not built since the values last changed.
        self._bytes: tuple[tuple[re.Pattern[bytes], int] | None] | None = None
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
                self._bytes = None
        return True

    def extended(self, secrets: Iterable[str]) -> Redactor:
        """A copy that also masks ``secrets`` (this one is left as it is)."""
        copy = Redactor(min_len=self._min_len)
        with self._lock:
            copy._values, copy._pattern = set(self._values), self._pattern
            copy._bytes = self._bytes
        for secret in secrets:
            copy.add(secret)
        return copy

    def clear(self) -> None:
        with self._lock:
            self._values = set()
            self._pattern = None
            self._bytes = None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(MASK, text)

    def bytes_rule(self) -> tuple[re.Pattern[bytes], int] | None:
        """The same masking for raw task files: a bytes pattern and the longest match.

        Task files are bytes (they may not even be text); a secret in them is its UTF-8
        encoding, in any of the spellings :func:`_variants` gives.
        """
        with self._lock:
            if self._bytes is None:
                encoded = sorted({v.encode() for v in self._values}, key=lambda v: (-len(v), v))
                rule = (
                    (re.compile(b"|".join(re.escape(v) for v in encoded)), len(encoded[0]))
                    if encoded
                    else None
                )
                self._bytes = (rule,)
            return self._bytes[0]


def mask_window(
    rule: tuple[re.Pattern[bytes], int] | None, data: bytes, lo: int, hi: int
) -> tuple[bytes, int]:
    """Mask ``data[lo:hi]``; returns it and where it now ends (a secret that straddles
    ``hi`` is masked whole, so the window grows to its end; one straddling ``lo`` is
    masked from ``lo``). ``data`` must hold the context on both sides: at least the
    longest secret's length before ``lo`` and after ``hi``, where the file has it.
    """
    if rule is None:
        return data[lo:hi], hi
    out: list[bytes] = []
    pos = lo
    for match in rule[0].finditer(data):
        if match.end() <= lo:
            continue
        if match.start() >= hi:
            break
        out.append(data[pos : max(match.start(), lo)])
        out.append(MASK.encode())
        pos = match.end()
        hi = max(hi, pos)
    out.append(data[pos:hi])
    return b"".join(out), hi


class StreamMasker:
    """Masks secrets in a byte stream read in chunks (a log followed as it grows).

    The last ``longest - 1`` bytes of what was fed are held back until more arrives (or
    :meth:`flush`), so a secret split across two reads is still masked whole.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._rule = redactor.bytes_rule()
        self._keep = self._rule[1] - 1 if self._rule else 0
        self._buffer = b""

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        if self._rule is None:
            out, self._buffer = self._buffer, b""
            return out
        cut = max(len(self._buffer) - self._keep, 0)
        out, end = mask_window(self._rule, self._buffer, 0, cut)
        self._buffer = self._buffer[end:]
        return out

    def flush(self) -> bytes:
        out, _ = mask_window(self._rule, self._buffer, 0, len(self._buffer))
        self._buffer = b""
        return out


REDACTOR = Redactor()
"""The process-wide redactor: ``polysync.secrets`` registers every value it reads here."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """Mask ``secrets`` in ``text`` (same rules as :class:`Redactor`)."""
    return Redactor(secrets).redact(text)


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
