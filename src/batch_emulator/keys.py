"""Account keys: a random one per start, kept in a file only its owner can read.

The public development key (``batch_emulator.DEFAULT_KEY``) is fine for a test that owns
its emulator; anything that stays up for a person (``polysync server --demo``,
``batch-emulator serve --key-file``) uses :func:`generate_key` instead, because whoever
holds the key runs command lines on the emulator's host. Real Batch keys are 64 random
bytes in base64; these are the same shape.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

__all__ = ["generate_key", "is_valid_key", "read_key_file", "write_key_file"]

KEY_BYTES = 64


def generate_key() -> str:
    """A fresh random account key (64 bytes, base64)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def is_valid_key(key: str) -> bool:
    """Shared Key signing needs base64 (the portal shows keys that way)."""
    if not key:
        return False
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def write_key_file(path: Path, key: str) -> None:
    """Write ``key`` to ``path``, mode 0600 from the first byte, replacing any old file.

    The key goes to a temporary file created 0600 and is renamed over ``path``, so no
    other user can read it even for a moment, whatever the umask or the old file's mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_key_file(path: Path) -> str:
    """The key in ``path`` (surrounding whitespace ignored).

    ``OSError`` when it cannot be read, ``ValueError`` when it holds no base64 key.
    """
    key = path.read_text(encoding="ascii", errors="replace").strip()
    if not is_valid_key(key):
        raise ValueError(f"{path} does not hold a base64 account key")
    return key
