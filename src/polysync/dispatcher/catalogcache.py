"""The worker's cache of Platform, Job and Task reads.

Every run step needs its Task (retry policy, timeout), Job (parameter schema) and
Platform (account, credential reference); thousands of runs share a handful of them. A
read is kept for ``max_age_s`` — the same window as the template cache of decision 0006 —
so an edit (`task update`, `platform update`) reaches a running worker within that time.
Failures (an unknown name) are never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from polysync.domain.models import Job, Platform, Task
from polysync.services.context import Catalog

T = TypeVar("T")


class CatalogCache:
    """A ``Catalog`` in front of another one (the store)."""

    def __init__(
        self,
        source: Catalog,
        max_age_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.max_age_s = max_age_s
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def _get(self, kind: str, name: str, read: Callable[[str], T]) -> T:
        now = self.clock()
        hit = self._entries.get((kind, name))
        if hit is not None and now - hit[0] < self.max_age_s:
            value: T = hit[1]
            return value
        fresh = read(name)
        self._entries[(kind, name)] = (now, fresh)
        return fresh

    def get_platform(self, name: str) -> Platform:
        return self._get("platform", name, self.source.get_platform)

    def get_job(self, name: str) -> Job:
        return self._get("job", name, self.source.get_job)

    def get_task(self, name: str) -> Task:
        return self._get("task", name, self.source.get_task)

    def clear(self) -> None:
        self._entries.clear()
