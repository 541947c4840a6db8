"""The result of a vault connectivity test (no Azure import: the CLI renders it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VaultCheck:
    """One check of `polysync vault test`: its name, whether it passed, and one sentence."""

    name: str
    ok: bool
    detail: str
