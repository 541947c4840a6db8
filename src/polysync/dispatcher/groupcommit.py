"""Group commit: the run changes of many concurrent operations in one transaction.

The worker finishes hundreds of Batch calls a second, each ending in a run change. One
transaction per change costs about a millisecond of CPU, nearly all of it per-statement
overhead; the same changes written together cost a tenth of that (decision 0008). So an
op waits at most ``window_s`` for company, then the whole group is written with
``Store.write_runs`` and every waiter gets its own result or error.

Nothing is lost by waiting: the run changes recorded here follow Batch calls that have
already happened, and every one of them can be re-derived from Batch after a crash
(D5 ids, adoption, reconciliation — docs/engine.md). The one write that must precede a
Batch call, the D5 ids, is awaited before the call is made, like every other op.
"""

from __future__ import annotations

import asyncio
import logging

from polysync.domain.models import TaskRun
from polysync.errors import PolysyncError, StoreError
from polysync.store.base import Store
from polysync.store.writes import RunOp

log = logging.getLogger(__name__)


class GroupCommitWriter:
    """A ``RunWriter`` that writes the ops of one short window together."""

    def __init__(self, store: Store, *, window_s: float = 0.005, max_batch: int = 1000) -> None:
        self.store = store
        self.window_s = window_s
        self.max_batch = max_batch
        self._pending: list[tuple[RunOp, asyncio.Future[TaskRun]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0
        self.ops = 0

    async def write(self, op: RunOp) -> TaskRun:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskRun] = loop.create_future()
        self._pending.append((op, future))
        if len(self._pending) >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self.flush)
        # A waiter cancelled meanwhile (worker shutdown) cancels only its future: the op
        # stays in the group and is written, since it records something Batch already did.
        return await future

    def flush(self) -> None:
        """Write every pending op now, in one transaction."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._pending = self._pending, []
        if not group:
            return
        self.batches += 1
        self.ops += len(group)
        try:
            results = self.store.write_runs([op for op, _ in group])
            if len(results) != len(group):
                raise StoreError(f"the store answered {len(results)} of {len(group)} run writes")
        except Exception as exc:  # noqa: BLE001 - every waiter gets the database's failure
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if future.done():
                continue
            if isinstance(result, PolysyncError):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def aclose(self) -> None:
        self.flush()

    @property
    def pending(self) -> int:
        return len(self._pending)
