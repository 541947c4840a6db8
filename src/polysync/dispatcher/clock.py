"""The engine's clock seam: every "now" of the engine comes from one injected callable.

Retry delays, execution timeouts, leases, poll schedules and the rate limiter all read
it, so tests drive them with :class:`FakeClock` instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to (aware UTC, starts at the real now)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
