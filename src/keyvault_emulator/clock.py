"""Where the emulator's notion of "now" comes from.

Key Vault stamps ``created``/``updated``/``deletedDate`` as whole epoch seconds. Tests
inject a :class:`ManualClock` so those stamps (and the request log's times) are exact
values they choose, instead of sleeping until the wall clock moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns the current time as epoch seconds."""


def system_clock() -> float:
    return time.time()


class ManualClock:
    """A clock that only moves when told to (thread-safe enough: reads are atomic)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("A ManualClock only moves forward.")
        self._now += seconds
        return self._now

    def set(self, epoch_s: float) -> None:
        self._now = float(epoch_s)


__all__ = ["Clock", "ManualClock", "system_clock"]
