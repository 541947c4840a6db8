"""GroupCommitWriter (decision 0008): many waiters, one ``write_runs``, each its own result.

A real SqlStore on a SQLite file, wrapped only to record (or fail) its ``write_runs``
calls. Windows are either tiny (the timer flushes while the test awaits the results)
or an hour long (the test flushes by hand), so nothing depends on wall-clock timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine

from polysync.dispatcher.groupcommit import GroupCommitWriter
from polysync.domain.models import RunState, TaskRun
from polysync.domain.states import InvalidTransition
from polysync.errors import NotFoundError, PolysyncError, StoreError
from polysync.services.writer import DirectWriter, RunWriter
from polysync.store.sql import SqlStore
from polysync.store.writes import AssignIds, RunOp, Transition, Update
from tests.store.conftest import new_run, seed

Q, ST, RU = RunState.QUEUED, RunState.STARTING, RunState.RUNNING
HOUR = 3600.0  # a window that never closes by itself during a test
TINY = 0.001
T = TypeVar("T")


class RecordingStore(SqlStore):
    """The real store; remembers each ``write_runs`` batch size and can fail the next ones."""

    def __init__(self, engine: Engine, *, display_url: str) -> None:
        super().__init__(engine, display_url=display_url)
        self.calls: list[int] = []
        self.fail_next = 0

    def write_runs(self, ops: Sequence[RunOp]) -> list[TaskRun | PolysyncError]:
        self.calls.append(len(ops))
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("the database sql:///x is locked by another process; try again.")
        return super().write_runs(ops)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordingStore]:
    st = RecordingStore.open(f"sqlite:///{tmp_path / 'polysync.db'}")
    assert isinstance(st, RecordingStore)
    try:
        yield st
    finally:
        st.close()


def runs(store: SqlStore, n: int) -> list[int]:
    objs = seed(store)
    return [new_run(store, objs).id for _ in range(n)]


async def until_pending(writer: GroupCommitWriter, n: int) -> None:
    """Let the just-created tasks run up to their ``await`` (event-loop turns, no time)."""
    for _ in range(100):
        if writer.pending >= n:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{writer.pending} ops pending, expected {n}")


async def settle(results: Awaitable[T]) -> T:
    """Await the waiters; a bug that never resolves them fails here instead of hanging."""
    return await asyncio.wait_for(results, timeout=10)


def job_id(run_id: int) -> str:
    return f"ps-abcdefgh-r{run_id}-a1"


def op_for(i: int, run_id: int) -> RunOp:
    """Three kinds of op, spread over the runs."""
    if i % 3 == 0:
        return AssignIds(run_id, job_id(run_id), "task1", None, {"N": str(i)})
    if i % 3 == 1:
        return Transition(run_id, ST, f"created {i}", expected_from=frozenset({Q}))
    return Update(run_id, {"diagnosis": f"note {i}"})


async def test_fifty_concurrent_writes_share_one_transaction(store: RecordingStore) -> None:
    ids = runs(store, 50)
    writer = GroupCommitWriter(store, window_s=TINY)
    results = await settle(asyncio.gather(*(writer.write(op_for(i, r)) for i, r in enumerate(ids))))
    assert (writer.batches, writer.ops, writer.pending) == (1, 50, 0)
    assert store.calls == [50]
    for i, (run_id, got) in enumerate(zip(ids, results, strict=True)):
        assert got.id == run_id
        assert got == store.get_run(run_id)
        if i % 3 == 0:
            assert (got.state, got.batch_job_id, got.params_sent) == (
                Q,
                job_id(run_id),
                {"N": str(i)},
            )
        elif i % 3 == 1:
            assert (got.state, [h.to_state for h in got.history]) == (ST, [Q, ST])
        else:
            assert (got.state, got.diagnosis) == (Q, f"note {i}")


@pytest.mark.parametrize("window", [TINY, HOUR])
async def test_an_op_s_error_is_raised_only_to_its_own_waiter(
    store: RecordingStore, window: float
) -> None:
    a, b, c = runs(store, 3)
    writer = GroupCommitWriter(store, window_s=window)
    ops: list[RunOp] = [
        Transition(a, ST, "created"),
        Transition(b, RU, "skips Starting"),
        Update(c + 100, {"diagnosis": "ghost"}),
        Update(c, {"diagnosis": "fine"}),
    ]
    gathered = asyncio.gather(*(writer.write(op) for op in ops), return_exceptions=True)
    if window == HOUR:
        await until_pending(writer, 4)
        writer.flush()
    results = await settle(gathered)
    assert [type(r) for r in results] == [TaskRun, InvalidTransition, NotFoundError, TaskRun]
    assert f"run {b} cannot go from Queued to Running" in str(results[1])
    assert store.calls == [4]
    assert store.get_run(a).state is ST
    assert store.get_run(b).state is Q
    assert store.get_run(c).diagnosis == "fine"


async def test_a_store_failure_reaches_every_waiter_and_writes_nothing(
    store: RecordingStore,
) -> None:
    ids = runs(store, 3)
    writer = GroupCommitWriter(store, window_s=TINY)
    store.fail_next = 1
    results = await settle(
        asyncio.gather(
            *(writer.write(Transition(r, ST, "created")) for r in ids), return_exceptions=True
        )
    )
    assert [type(r) for r in results] == [StoreError] * 3
    assert all("locked by another process" in str(r) for r in results)
    assert [store.get_run(r).state for r in ids] == [Q, Q, Q]
    # The writer is still usable: the next group goes through.
    again = await settle(asyncio.gather(*(writer.write(Transition(r, ST, "created")) for r in ids)))
    assert [r.state for r in again] == [ST, ST, ST]
    assert store.calls == [3, 3]
    assert (writer.batches, writer.ops) == (2, 6)


async def test_a_cancelled_waiter_s_op_is_still_written(store: RecordingStore) -> None:
    a, b = runs(store, 2)
    writer = GroupCommitWriter(store, window_s=HOUR)
    cancelled = asyncio.create_task(writer.write(Transition(a, ST, "created")))
    kept = asyncio.create_task(writer.write(Transition(b, ST, "created")))
    await until_pending(writer, 2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert writer.pending == 2  # the op stays in the group
    assert store.calls == []
    writer.flush()
    assert (await settle(kept)).state is ST
    assert store.calls == [2]
    assert store.get_run(a).state is ST
    assert [h.to_state for h in store.history(a)] == [Q, ST]


async def test_max_batch_flushes_at_once(store: RecordingStore) -> None:
    ids = runs(store, 4)
    writer = GroupCommitWriter(store, window_s=HOUR, max_batch=3)
    first = [writer.write(Update(r, {"diagnosis": "first"})) for r in ids[:3]]
    # No timer will fire within the hour: only max_batch can complete these.
    results = await settle(asyncio.gather(*first))
    assert [r.diagnosis for r in results] == ["first"] * 3
    assert store.calls == [3]
    assert writer.pending == 0
    last = asyncio.create_task(writer.write(Update(ids[3], {"diagnosis": "last"})))
    await until_pending(writer, 1)
    assert store.calls == [3]  # one op under max_batch waits for its window
    await writer.aclose()
    assert (await settle(last)).diagnosis == "last"
    assert store.calls == [3, 1]


async def test_aclose_flushes_pending_ops(store: RecordingStore) -> None:
    ids = runs(store, 2)
    writer = GroupCommitWriter(store, window_s=HOUR)
    tasks = [asyncio.create_task(writer.write(Transition(r, ST, "created"))) for r in ids]
    await until_pending(writer, 2)
    assert [store.get_run(r).state for r in ids] == [Q, Q]
    await writer.aclose()
    assert writer.pending == 0
    assert [(await settle(t)).state for t in tasks] == [ST, ST]
    assert [store.get_run(r).state for r in ids] == [ST, ST]
    assert store.calls == [2]
    await writer.aclose()  # nothing left: no empty transaction
    assert store.calls == [2]


@pytest.mark.parametrize("kind", ["direct", "group"])
async def test_both_writers_give_the_same_answers(store: RecordingStore, kind: str) -> None:
    a, b = runs(store, 2)
    writer: RunWriter = (
        DirectWriter(store) if kind == "direct" else GroupCommitWriter(store, window_s=TINY)
    )
    got = await settle(writer.write(Transition(a, ST, "created")))
    assert got == store.get_run(a)
    unchanged = await settle(writer.write(Transition(a, RU, "late", expected_from=frozenset({Q}))))
    assert unchanged == got
    with pytest.raises(InvalidTransition):
        await settle(writer.write(Transition(b, RU, "skips Starting")))
    await writer.aclose()
    assert store.calls == [1, 1, 1]
