"""The data directory's vault file: one JSON document, replaced atomically.

It holds secret *values* in clear text — this is a local test vault — so it is created
with mode 0600 and written to a temporary file that then replaces the old one, so a crash
mid-write leaves the previous state rather than half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

VAULT_FILE = "vault.json"


def load(path: Path) -> dict[str, Any] | None:
    """The stored snapshot, or None if there is none yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a vault file")
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


__all__ = ["VAULT_FILE", "load", "save"]
