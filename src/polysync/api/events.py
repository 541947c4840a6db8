"""Run state changes as a stream: an in-process broadcaster fed by a store watcher.

Why a watcher that reads the store rather than hooks in the services: runs change in
other processes too (`polysync worker` beside a `--no-worker` server, `polysync task
run`), and the store is the one place that sees them all. Twice a second it reads the
runs whose row changed since the last look (indexed on ``updated_at``) and publishes the
ones whose visible state moved. Changes closer together than that arrive as one event;
each event carries the run's whole history, so no transition is lost.

``StreamAccess`` re-checks the callers of the open streams once a second, so a stream
ends soon after its token is revoked or its console session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool

from polysync.domain.models import TaskRun
from polysync.services.views import run_view
from polysync.store.base import Store

log = logging.getLogger(__name__)

_QUEUE_SIZE = 1000
K = TypeVar("K", bound=Hashable)


class RunEvents:
    """Fan-out of run views to every subscriber; a slow subscriber loses its oldest."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, run: dict[str, Any]) -> None:
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(run)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Run views as they are published, until :meth:`close`."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(_QUEUE_SIZE)
        self._queues.add(queue)
        try:
            while not self._closed:
                item = await queue.get()
                if item is None:
                    return
                yield item
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        self._closed = True
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(None)


def _signature(run: TaskRun) -> tuple[object, ...]:
    """What a subscriber can see change (leases and poll times are not news)."""
    return (
        run.state,
        run.attempt,
        len(run.history),
        run.batch_job_id,
        run.exit_code,
        run.waiting_reason,
        run.diagnosis,
        run.cancel_requested,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RunWatcher:
    """Polls ``store.runs_changed_since`` and publishes changed runs to ``events``."""

    def __init__(
        self,
        store: Store,
        events: RunEvents,
        *,
        interval_s: float = 0.5,
        # Re-read this far back: a transaction stamped earlier may commit later.
        overlap_s: float = 3.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.events = events
        self.interval_s = interval_s
        self.overlap = timedelta(seconds=overlap_s)
        self.clock = clock
        self._since = clock()
        self._seen: dict[int, tuple[datetime, tuple[object, ...]]] = {}

    def poll_once(self) -> list[dict[str, Any]]:
        """One look at the store; returns (and publishes) the changed runs' views."""
        now = self.clock()
        changed = self.store.runs_changed_since(self._since - self.overlap)
        out: list[dict[str, Any]] = []
        for run, updated_at in changed:
            sig = _signature(run)
            seen = self._seen.get(run.id)
            if seen is not None and seen[1] == sig:
                self._seen[run.id] = (updated_at, sig)
                continue
            self._seen[run.id] = (updated_at, sig)
            out.append(run_view(run))
        if changed:
            self._since = max(self._since, max(u for _, u in changed))
        else:
            self._since = max(self._since, now - self.overlap)
        horizon = self._since - self.overlap
        for run_id in [i for i, (u, _) in self._seen.items() if u < horizon]:
            del self._seen[run_id]
        for view in out:
            self.events.publish(view)
        return out

    async def run(self) -> None:
        while True:
            if self.events.subscribers:
                try:
                    await run_in_threadpool(self.poll_once)
                except Exception:  # a database hiccup must not end the stream for good
                    log.exception("run event watcher: reading changed runs failed")
            else:
                # Nobody listens: skip the query but keep the cursor current.
                self._since = max(self._since, self.clock() - self.overlap)
                self._seen.clear()
            await asyncio.sleep(self.interval_s)


class StreamAccess(Generic[K]):
    """The callers of open event streams, re-checked together on an interval.

    A stream is authorised once, when it opens; without this, revoking its token or
    ending its session would leave it flowing for as long as the client keeps it open.
    One ``check`` of every caller per interval (two small queries in ``auth.still_live``),
    however many streams and events there are, rather than a query per stream per event.
    """

    def __init__(self, check: Callable[[Collection[K]], set[K]], *, interval_s: float = 1.0):
        self.check = check
        self.interval_s = interval_s
        self._watched: dict[int, tuple[K, Callable[[], None]]] = {}
        self._next = 0

    @property
    def watched(self) -> int:
        return len(self._watched)

    @contextlib.contextmanager
    def watch(self, caller: K, on_revoked: Callable[[], None]) -> Iterator[None]:
        """Call ``on_revoked`` (once, on the event loop) when ``caller`` may read no more."""
        key = self._next
        self._next += 1
        self._watched[key] = (caller, on_revoked)
        try:
            yield
        finally:
            self._watched.pop(key, None)

    def revoke(self, checked: Collection[K], live: Collection[K]) -> int:
        """End the streams of callers ``checked`` and found not ``live``; how many ended.

        Only callers that were checked: a stream opened while the check ran waits for the
        next one rather than being ended unchecked.
        """
        gone = set(checked) - set(live)
        ended = [key for key, (caller, _) in self._watched.items() if caller in gone]
        for key in ended:
            _, on_revoked = self._watched.pop(key)
            on_revoked()
        return len(ended)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            callers = {caller for caller, _ in self._watched.values()}
            if not callers:
                continue
            try:
                live = await run_in_threadpool(self.check, callers)
            except Exception:  # a database hiccup must not end every stream
                log.exception("event streams: re-checking their callers failed")
                continue
            self.revoke(callers, live)
