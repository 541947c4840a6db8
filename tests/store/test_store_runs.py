"""Runs: creation, Batch ids (D5), compare-and-set transitions, history, attempts, lists."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from polysync.domain.models import Failure, RunState, Trigger
from polysync.domain.states import InvalidTransition
from polysync.errors import InputError, NotFoundError, StoreError
from polysync.store.sql import SqlStore
from tests.store.conftest import make_job, make_task, new_run, seed

Q, ST, RU = RunState.QUEUED, RunState.STARTING, RunState.RUNNING
OK, KO, CA = RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_create_run_starts_queued_with_first_history_row(store: SqlStore) -> None:
    objs = seed(store)
    run = store.create_run(
        objs[2],
        objs[1],
        objs[0],
        trigger=Trigger.MANUAL,
        priority=4,
        param_overrides={"GREETING": "override", "TOKEN": "file:/run/token"},
    )
    assert (run.state, run.attempt, run.priority) == (Q, 1, 4)
    assert (run.task, run.job, run.platform) == ("task1", "job1", "local")
    assert run.param_overrides == {"GREETING": "override", "TOKEN": "file:/run/token"}
    assert run.run_id is None
    assert run.params_sent == {}
    assert [(h.from_state, h.to_state, h.reason) for h in run.history] == [
        (None, Q, "run requested")
    ]
    assert store.get_run(run.id) == run


def test_create_run_refuses_objects_that_do_not_belong_together(store: SqlStore) -> None:
    p, _j, t = seed(store)
    other = store.upsert_job(make_job("job2", external_id="tmpl-2"))
    with pytest.raises(InputError, match="task task1 belongs to job job1"):
        store.create_run(t, other, p, trigger=Trigger.MANUAL, priority=0, param_overrides={})


def test_run_ids_are_never_reused(store: SqlStore) -> None:
    """Batch job ids derive from run ids (D5): a deleted run's id must not come back."""
    objs = seed(store)
    last = new_run(store, objs)
    store.remove_task("task1", force=True)
    task = store.add_task(make_task())
    again = new_run(store, (objs[0], objs[1], task))
    assert again.id > last.id


def test_unknown_run(store: SqlStore) -> None:
    for call in (
        lambda: store.get_run(999),
        lambda: store.history(999),
        lambda: store.attempts(999),
        lambda: store.request_cancel(999),
        lambda: store.update_run(999, diagnosis="x"),
        lambda: store.transition(999, ST, reason="x"),
        lambda: store.release(999),
    ):
        with pytest.raises(NotFoundError, match=r"run 999 does not exist.*polysync run list"):
            call()


# --- Batch ids (D5) --------------------------------------------------------------------


def test_assign_batch_ids_persists_run_id_and_attempt(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    sent = {"GREETING": "hi", "TOKEN": "***"}
    got = store.assign_batch_ids(run.id, "ps-abcdefgh-r1-a1", "task1", "https://portal/x", sent)
    assert got.run_id == "ps-abcdefgh-r1-a1/task1"
    assert (got.monitor_url, got.params_sent, got.state) == ("https://portal/x", sent, Q)
    # A restart before the create call records the same ids again: harmless.
    again = store.assign_batch_ids(run.id, "ps-abcdefgh-r1-a1", "task1", "https://portal/x", sent)
    assert again.run_id == got.run_id
    [attempt] = store.attempts(run.id)
    assert (attempt.attempt, attempt.batch_job_id, attempt.state) == (1, "ps-abcdefgh-r1-a1", None)
    found = store.find_run_by_batch_ids("PS-ABCDEFGH-R1-A1", "TASK1")
    assert found is not None
    assert found.id == run.id
    assert store.find_run_by_batch_ids("ps-other", "task1") is None


def test_assign_batch_ids_refuses_other_ids_for_the_same_attempt(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.assign_batch_ids(run.id, "ps-a-r1-a1", "task1", None, {})
    with pytest.raises(InputError, match="already has Batch ids ps-a-r1-a1/task1"):
        store.assign_batch_ids(run.id, "ps-b-r1-a1", "task1", None, {})


def test_a_batch_job_id_belongs_to_one_run(store: SqlStore) -> None:
    objs = seed(store)
    first, second = new_run(store, objs), new_run(store, objs)
    store.assign_batch_ids(first.id, "ps-a-r1-a1", "task1", None, {})
    with pytest.raises(StoreError, match=f"already recorded for run {first.id}"):
        store.assign_batch_ids(second.id, "PS-A-R1-A1", "task1", None, {})


def test_assign_batch_ids_refused_after_the_end(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.transition(run.id, CA, reason="cancelled")
    with pytest.raises(InputError, match="already ended Cancelled"):
        store.assign_batch_ids(run.id, "ps-a-r1-a1", "task1", None, {})


# --- transitions -----------------------------------------------------------------------


def test_full_lifecycle_records_fields_and_history_in_order(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.assign_batch_ids(run.id, "ps-a-r1-a1", "task1", None, {})
    store.transition(run.id, ST, reason="created", expected_from=Q, at=T0)
    store.transition(run.id, RU, reason="running", at=T0 + timedelta(seconds=5), started_at=T0)
    failure = Failure("usererror", "FailureExitCode", "exit 3", (("k", "v"),), "boom\n")
    done = store.transition(
        run.id,
        KO,
        reason="exit code 3",
        at=T0 + timedelta(seconds=9),
        exit_code=3,
        failure=failure,
        ended_at=T0 + timedelta(seconds=9),
    )
    assert (done.state, done.exit_code, done.failure) == (KO, 3, failure)
    assert (done.started_at, done.ended_at) == (T0, T0 + timedelta(seconds=9))
    assert [(h.from_state, h.to_state, h.reason) for h in done.history] == [
        (None, Q, "run requested"),
        (Q, ST, "created"),
        (ST, RU, "running"),
        (RU, KO, "exit code 3"),
    ]
    assert [h.at for h in done.history[1:]] == [
        T0,
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=9),
    ]
    assert store.history(run.id) == list(done.history)
    [attempt] = store.attempts(run.id)
    assert (attempt.state, attempt.exit_code, attempt.failure) == (KO, 3, failure)


def test_history_keeps_insertion_order_even_with_earlier_times(store: SqlStore) -> None:
    """The Running row may carry Batch's (earlier) start time; order is still the story."""
    run = new_run(store, seed(store))
    store.transition(run.id, ST, reason="a", at=T0 + timedelta(hours=1))
    store.transition(run.id, RU, reason="b", at=T0)
    assert [h.reason for h in store.history(run.id)] == ["run requested", "a", "b"]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((), RU),  # Queued cannot skip Starting
        ((), OK),
        ((ST, RU), ST),  # never backwards
        ((CA,), RU),  # terminal is final
        ((ST, OK), KO),
        ((KO,), Q),  # Failed → Queued only as a retry (next attempt)
    ],
)
def test_illegal_transition_is_refused_and_changes_nothing(
    store: SqlStore, path: tuple[RunState, ...], illegal: RunState
) -> None:
    run = new_run(store, seed(store))
    for to in path:
        store.transition(run.id, to, reason="step")
    before = store.get_run(run.id)
    with pytest.raises(InvalidTransition, match=f"run {run.id} cannot go"):
        store.transition(run.id, illegal, reason="bad")
    assert store.get_run(run.id) == before


def test_compare_and_set_returns_the_run_unchanged_on_mismatch(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.transition(run.id, ST, reason="created")
    store.transition(run.id, CA, reason="cancelled by user")
    after = store.transition(run.id, OK, reason="poll", expected_from=(ST, RU), exit_code=0)
    assert after.state is CA
    assert after.exit_code is None
    assert [h.to_state for h in after.history] == [Q, ST, CA]


def test_concurrent_transitions_have_exactly_one_winner(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.transition(run.id, ST, reason="created")
    store.transition(run.id, RU, reason="running")
    barrier = threading.Barrier(6)
    results: list[RunState] = []
    errors: list[BaseException] = []

    def worker(target: RunState) -> None:
        try:
            barrier.wait(timeout=10)
            got = store.transition(run.id, target, reason=f"to {target}", expected_from=RU)
            results.append(got.state)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in (OK, CA, KO) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    final = store.get_run(run.id)
    assert final.state.is_terminal
    assert results == [final.state] * 6  # losers see the winner's state
    assert [h.to_state for h in final.history].count(final.state) == 1
    assert len(final.history) == 4


def test_retry_starts_a_clean_attempt_and_keeps_the_old_one(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.assign_batch_ids(run.id, "ps-a-r1-a1", "task1", "https://m/1", {"GREETING": "hi"})
    store.transition(run.id, ST, reason="created")
    store.transition(
        run.id,
        KO,
        reason="failed",
        exit_code=1,
        failure=Failure("usererror", "X", "m"),
        ended_at=T0,
    )
    retry = store.transition(
        run.id, Q, reason="retry 1 of 2 in 30s", attempt=2, not_before=T0 + timedelta(seconds=30)
    )
    assert (retry.state, retry.attempt) == (Q, 2)
    assert (retry.batch_job_id, retry.exit_code, retry.failure, retry.ended_at) == (
        None,
        None,
        None,
        None,
    )
    store.assign_batch_ids(run.id, "ps-a-r1-a2", "task1", "https://m/2", {"GREETING": "hi"})
    store.transition(run.id, ST, reason="created")
    store.transition(run.id, OK, reason="exit code 0", exit_code=0)
    attempts = store.attempts(run.id)
    assert [(a.attempt, a.batch_job_id, a.state, a.exit_code) for a in attempts] == [
        (1, "ps-a-r1-a1", KO, 1),
        (2, "ps-a-r1-a2", OK, 0),
    ]
    old = store.find_run_by_batch_ids("ps-a-r1-a1", "task1")
    assert old is not None
    assert old.id == run.id
    assert old.attempt == 2


def test_unknown_fields_are_a_programming_error(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    with pytest.raises(TypeError, match="unknown run field"):
        store.transition(run.id, ST, reason="x", colour="red")
    with pytest.raises(TypeError, match="unknown run field"):
        store.update_run(run.id, state="Running")
    with pytest.raises(TypeError, match="attempt changes only with a transition"):
        store.update_run(run.id, attempt=2)


def test_update_run_and_cancel_request(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    got = store.update_run(
        run.id, diagnosis="pool has no nodes", waiting_reason="waiting for quota", next_poll_at=T0
    )
    assert got.diagnosis == "pool has no nodes"
    assert got.state is Q
    assert store.request_cancel(run.id).cancel_requested is True
    assert store.request_cancel(run.id).cancel_requested is True  # idempotent
    assert len(store.history(run.id)) == 1  # not a state change


def test_cancel_request_after_the_end_is_a_no_op(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.transition(run.id, KO, reason="pre-flight")
    assert store.request_cancel(run.id).cancel_requested is False


# --- datetimes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        T0,
        datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=-10, minutes=-30))),
    ],
)
def test_datetimes_round_trip_as_aware_utc(store: SqlStore, given: datetime) -> None:
    run = new_run(store, seed(store))
    got = store.transition(run.id, ST, reason="x", at=given)
    got = store.transition(run.id, RU, reason="y", started_at=given)
    assert got.started_at == given
    assert got.started_at is not None
    assert got.started_at.tzinfo is UTC
    assert got.history[1].at == given
    assert got.history[1].at.tzinfo is UTC
    assert got.created_at is not None
    assert got.created_at.tzinfo is UTC


def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    with pytest.raises(StoreError, match="naive datetime"):
        store.transition(run.id, ST, reason="x", at=datetime(2025, 1, 1))
    assert store.get_run(run.id).state is Q


# --- lists -----------------------------------------------------------------------------


@pytest.fixture
def seven_runs(store: SqlStore) -> list[int]:
    """Runs 1..7 of task1 (4 Queued, 2 Succeeded, 1 Failed) and one run of task2."""
    objs = seed(store)
    ids = [new_run(store, objs).id for _ in range(7)]
    for i in ids[4:6]:
        store.transition(i, ST, reason="s")
        store.transition(i, OK, reason="ok")
    store.transition(ids[6], KO, reason="ko")
    task2 = store.add_task(make_task("task2"))
    new_run(store, (objs[0], objs[1], task2))
    return ids


Query = Callable[[SqlStore, list[int]], tuple[list[int], list[int]]]


@pytest.mark.parametrize(
    "query",
    [
        lambda s, ids: ([r.id for r in s.list_runs(task="task1", limit=3)], ids[::-1][:3]),
        lambda s, ids: (
            [r.id for r in s.list_runs(task="task1", limit=3, offset=3)],
            ids[::-1][3:6],
        ),
        lambda s, ids: (
            [r.id for r in s.list_runs(task="TASK1", newest_first=False, limit=2, offset=5)],
            ids[5:7],
        ),
        lambda s, ids: ([r.id for r in s.list_runs(state=OK)], ids[5:3:-1]),
        lambda s, ids: ([r.id for r in s.list_runs(task="task1", states=[OK, KO])], ids[:3:-1]),
        lambda s, ids: ([r.id for r in s.list_runs(state=KO, states=[OK])], ids[:3:-1]),
        lambda s, ids: ([r.id for r in s.list_runs(states=[])], []),
        lambda s, ids: ([r.id for r in s.list_nonterminal_runs()], [*ids[:4], ids[-1] + 1]),
    ],
    ids=["page1", "page2", "oldest-first", "state", "states", "state+states", "none", "nonterm"],
)
def test_list_runs_filters_and_pages(store: SqlStore, seven_runs: list[int], query: Query) -> None:
    got, expected = query(store, seven_runs)
    assert got == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 8),
        ({"task": "task1"}, 7),
        ({"state": Q}, 5),
        ({"states": [OK, KO]}, 3),
        ({"task": "task2", "state": OK}, 0),
    ],
)
def test_count_runs(
    store: SqlStore, seven_runs: list[int], kwargs: dict[str, object], expected: int
) -> None:
    assert store.count_runs(**kwargs) == expected  # type: ignore[arg-type]  # table-driven


def test_list_runs_history_is_optional(store: SqlStore, seven_runs: list[int]) -> None:
    [with_h] = store.list_runs(state=KO)
    [without] = store.list_runs(state=KO, with_history=False)
    assert [h.to_state for h in with_h.history] == [Q, KO]
    assert without.history == ()
    assert replace(with_h, history=()) == without


def test_list_errors(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="task 'ghost'"):
        store.list_runs(task="ghost")
    with pytest.raises(InputError, match="must not be negative"):
        store.list_runs(limit=-1)
    with pytest.raises(NotFoundError, match="platform 'ghost'"):
        store.list_nonterminal_runs("ghost")


def test_nonterminal_runs_by_platform(store: SqlStore) -> None:
    objs = seed(store)
    run = new_run(store, objs)
    assert [r.id for r in store.list_nonterminal_runs("LOCAL")] == [run.id]
    store.transition(run.id, CA, reason="x")
    assert store.list_nonterminal_runs("local") == []
