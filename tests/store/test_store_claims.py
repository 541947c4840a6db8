"""Engine support (issue 4): claims by priority, leases, heartbeats, release."""

from __future__ import annotations

import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polysync.domain.models import RunState
from polysync.store.sql import SqlStore
from tests.store.conftest import new_run, seed

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


def test_claims_take_highest_priority_first_then_oldest(store: SqlStore) -> None:
    objs = seed(store)
    ids: dict[int, list[int]] = {p: [] for p in (0, 1, 5)}
    for prio in (0, 5, 1, 5, 0):
        ids[prio].append(new_run(store, objs, priority=prio).id)
    first = store.claim_queued("w1", NOW, 3, 30)
    assert [r.id for r in first] == [*ids[5], *ids[1]]
    assert all(r.state is RunState.QUEUED for r in first)
    rest = store.claim_queued("w2", NOW, 10, 30)
    assert [r.id for r in rest] == ids[0]
    assert store.claim_queued("w3", NOW, 10, 30) == []


def test_a_claim_excludes_runs_not_yet_due_and_non_queued(store: SqlStore) -> None:
    objs = seed(store)
    later = new_run(store, objs, not_before=NOW + timedelta(seconds=30))
    started = new_run(store, objs)
    store.transition(started.id, RunState.STARTING, reason="created")
    assert store.claim_queued("w1", NOW, 10, 30) == []
    due = store.claim_queued("w1", NOW + timedelta(seconds=30), 10, 30)
    assert [r.id for r in due] == [later.id]


def test_expired_lease_lets_another_worker_take_over(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    assert [r.id for r in store.claim_queued("w1", NOW, 1, 30)] == [run.id]
    assert store.claim_queued("w2", NOW + timedelta(seconds=29), 1, 30) == []
    assert [r.id for r in store.claim_queued("w2", NOW + timedelta(seconds=30), 1, 30)] == [run.id]
    # w1's heartbeat no longer finds it: the run is w2's now.
    assert store.renew_leases("w1", NOW + timedelta(seconds=31), 30) == 0


def test_heartbeat_extends_leases(store: SqlStore) -> None:
    objs = seed(store)
    for _ in range(3):
        new_run(store, objs)
    store.claim_queued("w1", NOW, 2, 30)
    assert store.renew_leases("w1", NOW + timedelta(seconds=25), 30) == 2
    assert store.claim_queued("w2", NOW + timedelta(seconds=40), 10, 30) != []
    # Only the unclaimed run was free; the renewed two stay w1's until 55 s.
    assert store.claim_queued("w2", NOW + timedelta(seconds=54), 10, 30) == []
    assert len(store.claim_queued("w2", NOW + timedelta(seconds=55), 10, 30)) == 2


def test_release_and_terminal_state_free_the_claim(store: SqlStore) -> None:
    objs = seed(store)
    a, b = new_run(store, objs), new_run(store, objs)
    store.claim_queued("w1", NOW, 2, 300)
    store.release(a.id)
    assert [r.id for r in store.claim_queued("w2", NOW, 10, 300)] == [a.id]
    store.transition(b.id, RunState.CANCELLED, reason="cancelled")
    assert store.renew_leases("w1", NOW, 300) == 0


def test_a_run_created_claimed_is_nobody_elses_until_its_lease_runs_out(store: SqlStore) -> None:
    # `task run` / the server: the run is born claimed, so no worker claims it first.
    objs = seed(store)
    run = new_run(store, objs, claimed_by="cli-1", lease_expires_at=NOW + timedelta(seconds=30))
    assert (run.claimed_by, run.lease_expires_at) == ("cli-1", NOW + timedelta(seconds=30))
    assert store.claim_queued("w1", NOW, 10, 30) == []
    assert not store.claim_run(run.id, "w1", NOW + timedelta(seconds=29), 30)
    assert store.claim_run(run.id, "cli-1", NOW + timedelta(seconds=29), 30)  # renewal
    # Its holder died: after the (renewed) lease, a worker takes it.
    later = NOW + timedelta(seconds=59)
    assert [r.id for r in store.claim_queued("w1", later, 10, 30)] == [run.id]
    with pytest.raises(ValueError, match="together"):
        new_run(store, objs, claimed_by="cli-1")


def test_release_by_owner_frees_only_that_owners_claim(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    assert store.claim_run(run.id, "w2", NOW, 30)
    # A follower taken over (its lease ran out) must not free the new holder's run.
    assert store.release(run.id, "cli-1") is False
    assert store.get_run(run.id).claimed_by == "w2"
    assert store.release(run.id, "w2") is True
    assert store.get_run(run.id).claimed_by is None
    assert store.release(run.id) is False  # nothing left to drop


def test_zero_limit_claims_nothing(store: SqlStore) -> None:
    new_run(store, seed(store))
    assert store.claim_queued("w1", NOW, 0, 30) == []


def _claimer(url: str, worker: str, start: mp.synchronize.Barrier, out: mp.Queue[object]) -> None:
    store = SqlStore.open(url)
    try:
        start.wait(timeout=60)
        got: list[int] = []
        while batch := store.claim_queued(worker, NOW, 3, 600):
            got.extend(r.id for r in batch)
        out.put((worker, got))
    except BaseException as exc:  # noqa: BLE001 - sent back to the test process
        out.put((worker, repr(exc)))
    finally:
        store.close()


@pytest.mark.slow
def test_concurrent_processes_never_claim_a_run_twice(db_url: str, tmp_path: Path) -> None:
    store = SqlStore.open(db_url)
    try:
        objs = seed(store)
        ids = {new_run(store, objs, priority=i % 3).id for i in range(60)}
    finally:
        store.close()
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(3)
    out: mp.Queue[object] = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(db_url, f"w{i}", start, out)) for i in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    claimed: list[int] = []
    for result in results:
        assert isinstance(result, tuple)
        worker, got = result
        assert isinstance(got, list), f"{worker} failed: {got}"
        claimed.extend(got)
    assert sorted(claimed) == sorted(ids)  # every run claimed, none twice
