"""How run changes reach the store: one transaction each, or grouped (the worker).

Use cases describe a run change as an op (``polysync.store.writes``) and ``await
svc.writer.write(op)``. A CLI command or the API writes each op at once
(:class:`DirectWriter`); the worker installs
``polysync.dispatcher.groupcommit.GroupCommitWriter``, which lets the ops of a short
window (100 ms) share one transaction (decision 0008). Either way the caller
gets the run as it is after its op, or the op's error.
"""

from __future__ import annotations

from typing import Protocol

from polysync.domain.models import TaskRun
from polysync.errors import PolysyncError
from polysync.store.base import Store
from polysync.store.writes import RunOp


class RunWriter(Protocol):
    async def write(self, op: RunOp) -> TaskRun:
        """Apply ``op``; the run after it (unchanged when a guard said no), or raise."""
        ...

    async def aclose(self) -> None:
        """Write whatever is still pending."""
        ...


class DirectWriter:
    """One transaction per op, right away."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def write(self, op: RunOp) -> TaskRun:
        (result,) = self.store.write_runs([op])
        if isinstance(result, PolysyncError):
            raise result
        return result

    async def aclose(self) -> None:
        return None
