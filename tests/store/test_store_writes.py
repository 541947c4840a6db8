"""Run writes as ops (decision 0008): the pure ``plan`` and ``SqlStore.write_runs``.

The first half drives ``writes.plan`` on row dicts (no database): guards, the state
machine, per-attempt bookkeeping, errors per op. The second half runs ``write_runs`` on
both backends and checks that what it returns is what the database then holds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from polysync.domain.models import Failure, HistoryEntry, RunState, TaskRun
from polysync.domain.states import InvalidTransition
from polysync.errors import InputError, NotFoundError, PolysyncError, StoreError
from polysync.store.sql import SqlStore
from polysync.store.writes import (
    RUN_FIELDS,
    AssignIds,
    Outcome,
    Retry,
    RunOp,
    Transition,
    Update,
    WritePlan,
    plan,
)
from tests.store.conftest import new_run, seed

Q, ST, RU = RunState.QUEUED, RunState.STARTING, RunState.RUNNING
OK, KO, CA = RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
BEFORE = datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))
JOB = "ps-abcdefgh-r1-a1"


def row(run_id: int = 1, state: RunState = Q, attempt: int = 1, **kw: Any) -> dict[str, Any]:
    """A task_runs row as ``write_runs`` reads it (every column ``plan`` may touch)."""
    values: dict[str, Any] = dict.fromkeys(RUN_FIELDS)
    values.update(
        id=run_id,
        state=state.value,
        attempt=attempt,
        priority=0,
        params_sent={},
        cancel_requested=False,
        updated_at=BEFORE,
    )
    values.update(kw)
    return values


def held_row(run_id: int = 1, state: RunState = RU, **kw: Any) -> dict[str, Any]:
    """A run in Batch with everything an attempt accumulates, claimed by worker w1."""
    values: dict[str, Any] = {
        "batch_job_id": JOB,
        "batch_task_id": "task1",
        "monitor_url": "https://m/1",
        "params_sent": {"GREETING": "hi"},
        "started_at": T0,
        "diagnosis": "slow pool",
        "waiting_reason": "waiting for quota",
        "next_poll_at": T0 + timedelta(seconds=15),
        "last_polled_at": T0,
        "claimed_by": "w1",
        "lease_expires_at": NOW + timedelta(seconds=30),
    }
    values.update(kw)
    return row(run_id, state, **values)


def one(
    rows: dict[int, dict[str, Any]], op: RunOp, taken: dict[str, tuple[int, int]] | None = None
) -> tuple[WritePlan, Outcome]:
    result = plan(rows, taken or {}, [op], NOW)
    [outcome] = result.outcomes
    return result, outcome


def assert_nothing_written(result: WritePlan) -> None:
    assert result.rows == {}
    assert result.history == []
    assert result.new_attempts == {}
    assert result.attempt_updates == {}


def effective_attempts(result: WritePlan) -> dict[tuple[int, int], dict[str, Any]]:
    """The attempt rows after the store's writes: inserts first, then the updates."""
    out = {key: dict(values) for key, values in result.new_attempts.items()}
    for key, values in result.attempt_updates.items():
        if key in out:
            out[key].update(values)
    return out


# --- plan: AssignIds --------------------------------------------------------------------


def test_assign_ids_first_time_inserts_an_attempt_and_holds_the_job_id() -> None:
    sent = {"GREETING": "hi", "TOKEN": "***"}
    result, outcome = one({1: row()}, AssignIds(1, JOB, "task1", "https://m/1", sent))
    assert (outcome.applied, outcome.error, outcome.added) == (True, None, ())
    assert outcome.row is not None
    assert (outcome.row["batch_job_id"], outcome.row["batch_task_id"]) == (JOB, "task1")
    assert (outcome.row["monitor_url"], outcome.row["params_sent"]) == ("https://m/1", sent)
    assert (outcome.row["state"], outcome.row["updated_at"]) == ("Queued", NOW)
    assert result.rows == {1: outcome.row}
    assert result.history == []
    assert result.attempt_updates == {}
    assert result.new_attempts == {
        (1, 1): {
            "run_id": 1,
            "attempt": 1,
            "created_at": NOW,
            "batch_job_id": JOB,
            "batch_job_key": JOB.lower(),
            "batch_task_id": "task1",
            "monitor_url": "https://m/1",
            "params_sent": sent,
            "state": None,
            "exit_code": None,
            "failure": None,
            "started_at": None,
            "ended_at": None,
        }
    }


def test_assign_ids_marks_the_job_id_held_for_later_ops_of_the_same_plan() -> None:
    result = plan(
        {1: row(1), 2: row(2)},
        {},
        [AssignIds(1, JOB, "task1", None, {}), AssignIds(2, JOB.upper(), "task1", None, {})],
        NOW,
    )
    first, second = result.outcomes
    assert first.applied
    assert isinstance(second.error, StoreError)
    assert "already recorded for run 1 attempt 1" in str(second.error)
    assert set(result.rows) == {1}
    assert set(result.new_attempts) == {(1, 1)}


def test_assign_ids_again_with_the_same_ids_updates_the_attempt() -> None:
    rows = {1: row(batch_job_id=JOB, batch_task_id="task1", monitor_url="https://old")}
    op = AssignIds(1, JOB, "task1", "https://new", {"GREETING": "hi"})
    result, outcome = one(rows, op, {JOB.lower(): (1, 1)})
    assert (outcome.applied, outcome.error) == (True, None)
    assert outcome.row is not None
    assert outcome.row["monitor_url"] == "https://new"
    assert result.new_attempts == {}
    assert result.attempt_updates == {
        (1, 1): {
            "batch_job_id": JOB,
            "batch_job_key": JOB.lower(),
            "batch_task_id": "task1",
            "monitor_url": "https://new",
            "params_sent": {"GREETING": "hi"},
        }
    }


@pytest.mark.parametrize(
    ("current", "taken", "op", "error", "match"),
    [
        pytest.param(
            row(batch_job_id=JOB, batch_task_id="task1"),
            {JOB.lower(): (1, 1)},
            AssignIds(1, "ps-abcdefgh-r1-a9", "task1", None, {}),
            InputError,
            f"already has Batch ids {JOB}/task1",
            id="other-job-id",
        ),
        pytest.param(
            row(batch_job_id=JOB, batch_task_id="task1"),
            {JOB.lower(): (1, 1)},
            AssignIds(1, JOB, "task2", None, {}),
            InputError,
            "refusing to replace them",
            id="other-task-id",
        ),
        pytest.param(
            row(),
            {JOB.lower(): (7, 1)},
            AssignIds(1, JOB, "task1", None, {}),
            StoreError,
            "already recorded for run 7 attempt 1",
            id="held-by-another-run",
        ),
        pytest.param(
            row(attempt=2),
            {JOB.lower(): (1, 1)},
            AssignIds(1, JOB.upper(), "task1", None, {}),
            StoreError,
            "already recorded for run 1 attempt 1",
            id="held-by-another-attempt",
        ),
        pytest.param(
            row(state=CA),
            {},
            AssignIds(1, JOB, "task1", None, {}),
            InputError,
            "already ended Cancelled",
            id="terminal",
        ),
    ],
)
def test_assign_ids_refusals(
    current: dict[str, Any],
    taken: dict[str, tuple[int, int]],
    op: AssignIds,
    error: type[PolysyncError],
    match: str,
) -> None:
    result, outcome = one({1: current}, op, taken)
    assert type(outcome.error) is error
    assert match in str(outcome.error)
    assert (outcome.row, outcome.applied) == (None, False)
    assert_nothing_written(result)


# --- plan: Transition -------------------------------------------------------------------


def test_legal_transition_sets_fields_adds_history_and_records_the_attempt() -> None:
    op = Transition(1, RU, "running", at=T0.astimezone(PLUS2), fields={"started_at": T0})
    result, outcome = one({1: held_row(state=ST, started_at=None)}, op)
    assert (outcome.applied, outcome.error) == (True, None)
    assert outcome.row is not None
    assert (outcome.row["state"], outcome.row["started_at"]) == ("Running", T0)
    assert outcome.row["claimed_by"] == "w1"  # not terminal: the claim stays
    assert outcome.row["updated_at"] == NOW
    assert result.history == [
        {
            "run_id": 1,
            "attempt": 1,
            "at": T0,
            "from_state": "Starting",
            "to_state": "Running",
            "reason": "running",
        }
    ]
    assert result.history[0]["at"].tzinfo is UTC
    assert outcome.added == (HistoryEntry(T0, ST, RU, "running"),)
    assert result.attempt_updates == {
        (1, 1): {
            "state": None,
            "exit_code": None,
            "failure": None,
            "started_at": T0,
            "ended_at": None,
        }
    }


def test_history_time_defaults_to_now() -> None:
    result, _ = one({1: row()}, Transition(1, ST, "created"))
    assert [h["at"] for h in result.history] == [NOW]


@pytest.mark.parametrize(
    ("state", "to"),
    [(Q, RU), (Q, OK), (RU, ST), (CA, RU), (OK, KO), (KO, Q)],
)
def test_illegal_transition_without_expected_from_is_an_error(
    state: RunState, to: RunState
) -> None:
    result, outcome = one({1: row(state=state)}, Transition(1, to, "bad"))
    assert isinstance(outcome.error, InvalidTransition)
    assert f"run 1 cannot go from {state.value} to {to.value}" in str(outcome.error)
    assert (outcome.row, outcome.applied) == (None, False)
    assert_nothing_written(result)


@pytest.mark.parametrize(
    ("state", "cancel", "expected_from", "guard_cancel", "to", "applied"),
    [
        pytest.param(RU, False, {RU}, None, OK, True, id="state-matches"),
        pytest.param(RU, False, {ST, RU}, None, OK, True, id="state-in-set"),
        pytest.param(CA, False, {ST, RU}, None, OK, False, id="state-mismatch"),
        # The guard is checked before legality: a lost race is not an error.
        pytest.param(OK, False, {RU}, None, KO, False, id="mismatch-would-be-illegal"),
        pytest.param(RU, True, None, False, KO, False, id="cancel-arrived"),
        pytest.param(RU, False, None, True, CA, False, id="cancel-withdrawn"),
        pytest.param(RU, True, None, True, CA, True, id="cancel-matches"),
        pytest.param(RU, False, {RU}, False, KO, True, id="both-match"),
        pytest.param(RU, True, {RU}, False, KO, False, id="state-ok-cancel-not"),
        pytest.param(ST, False, {RU}, False, KO, False, id="cancel-ok-state-not"),
    ],
)
def test_compare_and_set_guards(
    state: RunState,
    cancel: bool,
    expected_from: set[RunState] | None,
    guard_cancel: bool | None,
    to: RunState,
    applied: bool,
) -> None:
    current = held_row(state=state, cancel_requested=cancel)
    op = Transition(
        1,
        to,
        "poll",
        expected_from=Transition.states(expected_from),
        cancel_requested=guard_cancel,
        fields={"exit_code": 7},
    )
    result, outcome = one({1: current}, op)
    assert outcome.error is None
    assert outcome.applied is applied
    assert outcome.row is not None
    if applied:
        assert (outcome.row["state"], outcome.row["exit_code"]) == (to.value, 7)
        assert [h["to_state"] for h in result.history] == [to.value]
        assert set(result.rows) == {1}
    else:
        assert outcome.row == current  # the run as it is
        assert outcome.added == ()
        assert_nothing_written(result)


def test_retry_fails_the_attempt_and_queues_a_clean_next_one() -> None:
    failure = Failure("usererror", "FailureExitCode", "exit 1")
    op = Transition(
        1,
        KO,
        "exit code 1",
        expected_from=frozenset({RU}),
        at=T0,
        fields={"exit_code": 1, "failure": failure, "ended_at": T0},
        retry=Retry(2, (T0 + timedelta(seconds=30)).astimezone(PLUS2), "retry 1 of 2 in 30s"),
    )
    current = held_row(not_before=None)
    result, outcome = one({1: current}, op)
    assert (outcome.applied, outcome.error) == (True, None)
    assert [
        (h["attempt"], h["from_state"], h["to_state"], h["reason"]) for h in result.history
    ] == [
        (1, "Running", "Failed", "exit code 1"),
        (2, "Failed", "Queued", "retry 1 of 2 in 30s"),
    ]
    assert [h["at"] for h in result.history] == [T0, T0]
    assert outcome.added == (
        HistoryEntry(T0, RU, KO, "exit code 1"),
        HistoryEntry(T0, KO, Q, "retry 1 of 2 in 30s"),
    )
    after = outcome.row
    assert after is not None
    assert (after["state"], after["attempt"]) == ("Queued", 2)
    assert after["not_before"] == T0 + timedelta(seconds=30)
    assert after["not_before"].tzinfo is UTC
    cleared: dict[str, Any] = {
        "batch_job_id": None,
        "batch_task_id": None,
        "monitor_url": None,
        "exit_code": None,
        "failure": None,
        "started_at": None,
        "ended_at": None,
        "params_sent": {},
        "diagnosis": None,
        "waiting_reason": None,
        "next_poll_at": None,
        "last_polled_at": None,
        "claimed_by": None,
        "lease_expires_at": None,
    }
    assert {k: after[k] for k in cleared} == cleared
    # The failed attempt keeps its outcome.
    assert result.attempt_updates[(1, 1)] == {
        "state": "Failed",
        "exit_code": 1,
        "failure": {
            "category": "usererror",
            "code": "FailureExitCode",
            "message": "exit 1",
            "details": [],
            "stderr_tail": None,
        },
        "started_at": T0,
        "ended_at": T0,
    }
    assert current["batch_job_id"] == JOB  # the input rows are not modified


@pytest.mark.parametrize(
    "retry",
    [
        pytest.param(Retry(1, T0, "same attempt"), id="not-the-next-attempt"),
        pytest.param(Retry(3, T0, "skips one"), id="skips-an-attempt"),
        pytest.param(Retry(2, datetime(2025, 3, 1, 12), "naive"), id="naive-not-before"),
    ],
)
def test_a_retry_that_cannot_apply_leaves_the_run_running(retry: Retry) -> None:
    """All or nothing: the Failed half is not written when the Queued half fails."""
    result, outcome = one({1: held_row()}, Transition(1, KO, "exit code 1", retry=retry))
    assert isinstance(outcome.error, InvalidTransition | StoreError)
    assert outcome.row is None
    assert_nothing_written(result)


@pytest.mark.parametrize("to", [OK, KO, CA])
def test_a_terminal_state_releases_the_claim_and_stops_polling(to: RunState) -> None:
    result, outcome = one({1: held_row()}, Transition(1, to, "ended", fields={"ended_at": T0}))
    assert outcome.row is not None
    assert outcome.row["state"] == to.value
    gone = ("claimed_by", "lease_expires_at", "next_poll_at")
    assert [outcome.row[k] for k in gone] == [None, None, None]
    assert result.attempt_updates[(1, 1)]["state"] == to.value
    assert result.attempt_updates[(1, 1)]["ended_at"] == T0


def test_a_terminal_transition_keeps_fields_it_is_given() -> None:
    later = NOW + timedelta(minutes=1)
    op = Transition(1, CA, "x", fields={"claimed_by": "w2", "next_poll_at": later})
    _, outcome = one({1: held_row()}, op)
    assert outcome.row is not None
    assert (outcome.row["claimed_by"], outcome.row["next_poll_at"]) == ("w2", later)
    assert outcome.row["lease_expires_at"] is None


# --- plan: Update and errors ------------------------------------------------------------


def test_update_sets_fields_without_history_or_attempt_changes() -> None:
    failure = Failure("polysync", "Stuck", "pool has no nodes", (("pool", "p1"),))
    op = Update(
        1, {"diagnosis": "no nodes", "next_poll_at": T0.astimezone(PLUS2), "failure": failure}
    )
    result, outcome = one({1: held_row()}, op)
    assert (outcome.applied, outcome.error, outcome.added) == (True, None, ())
    after = outcome.row
    assert after is not None
    assert (after["diagnosis"], after["state"], after["updated_at"]) == ("no nodes", "Running", NOW)
    assert after["next_poll_at"] == T0
    assert after["next_poll_at"].tzinfo is UTC
    assert after["failure"] == {
        "category": "polysync",
        "code": "Stuck",
        "message": "pool has no nodes",
        "details": [["pool", "p1"]],
        "stderr_tail": None,
    }
    assert after["claimed_by"] == "w1"
    assert result.history == []
    assert result.new_attempts == {}
    assert result.attempt_updates == {}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(
            lambda: Update(1, {"attempt": 2}), "attempt changes only", id="update-attempt"
        ),
        pytest.param(
            lambda: Update(1, {"state": "Running"}), "unknown run field", id="update-state"
        ),
        pytest.param(
            lambda: Update(1, {"colour": "red"}), "unknown run field", id="update-unknown"
        ),
        pytest.param(
            lambda: Transition(1, ST, "x", fields={"colour": "red"}),
            "unknown run field",
            id="transition-unknown",
        ),
    ],
)
def test_bad_field_names_fail_when_the_op_is_made(make: Callable[[], RunOp], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        make()


NAIVE = datetime(2025, 3, 1, 12, 0)


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(Update(1, {"next_poll_at": NAIVE}), id="update-field"),
        pytest.param(Transition(1, OK, "x", at=NAIVE), id="transition-at"),
        pytest.param(Transition(1, OK, "x", fields={"ended_at": NAIVE}), id="transition-field"),
    ],
)
def test_a_naive_datetime_is_that_op_s_store_error(op: RunOp) -> None:
    result, outcome = one({1: held_row()}, op)
    assert isinstance(outcome.error, StoreError)
    assert "naive datetime 2025-03-01T12:00:00" in str(outcome.error)
    assert_nothing_written(result)


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(Update(9, {"diagnosis": "x"}), id="update"),
        pytest.param(Transition(9, ST, "x"), id="transition"),
        pytest.param(AssignIds(9, JOB, "task1", None, {}), id="assign"),
    ],
)
def test_an_unknown_run_is_that_op_s_not_found_error(op: RunOp) -> None:
    result, outcome = one({1: row()}, op)
    assert isinstance(outcome.error, NotFoundError)
    assert "run 9 does not exist" in str(outcome.error)
    assert_nothing_written(result)


def test_a_failing_op_in_the_middle_leaves_the_others_applied() -> None:
    rows = {1: row(1), 2: row(2), 3: row(3)}
    ops: list[RunOp] = [
        Transition(1, ST, "created"),
        Transition(2, RU, "skips Starting"),
        Update(9, {"diagnosis": "ghost"}),
        Update(3, {"diagnosis": "waiting"}),
    ]
    result = plan(rows, {}, ops, NOW)
    errors = [type(o.error) for o in result.outcomes]
    assert errors == [type(None), InvalidTransition, NotFoundError, type(None)]
    assert [o.applied for o in result.outcomes] == [True, False, False, True]
    assert set(result.rows) == {1, 3}
    assert result.rows[1]["state"] == "Starting"
    assert result.rows[3]["diagnosis"] == "waiting"
    assert [(h["run_id"], h["to_state"]) for h in result.history] == [(1, "Starting")]
    assert rows[2]["state"] == "Queued"


def test_ops_on_one_run_see_each_other_and_merge_into_the_new_attempt() -> None:
    ops: list[RunOp] = [
        AssignIds(1, JOB, "task1", "https://m/1", {"GREETING": "hi"}),
        Transition(1, ST, "created", expected_from=frozenset({Q}), at=T0),
        Transition(1, RU, "running", at=T0 + timedelta(seconds=1), fields={"started_at": T0}),
        Transition(1, ST, "stale poll", expected_from=frozenset({ST})),  # guard says no
    ]
    result = plan({1: row()}, {}, ops, NOW)
    assigned, starting, running, stale = result.outcomes
    assert all(o.error is None for o in result.outcomes)
    assert [o.applied for o in result.outcomes] == [True, True, True, False]
    # Each outcome is a snapshot after its own op.
    assert assigned.row is not None
    assert (assigned.row["state"], assigned.added) == ("Queued", ())
    assert starting.row is not None
    assert (starting.row["state"], starting.row["batch_job_id"]) == ("Starting", JOB)
    assert starting.added == (HistoryEntry(T0, Q, ST, "created"),)
    assert running.added == (
        HistoryEntry(T0, Q, ST, "created"),
        HistoryEntry(T0 + timedelta(seconds=1), ST, RU, "running"),
    )
    assert stale.row == running.row
    assert stale.added == running.added
    assert result.rows[1] == running.row
    assert len(result.history) == 2
    # The attempt row the first op inserts carries what the later ops recorded.
    assert result.attempt_updates == {}
    assert set(result.new_attempts) == {(1, 1)}
    attempt = result.new_attempts[(1, 1)]
    assert (attempt["batch_job_id"], attempt["state"], attempt["started_at"]) == (JOB, None, T0)


def test_a_retry_then_the_next_attempt_s_ids_in_one_plan_keep_the_new_attempt_s_values() -> None:
    """The retry's bookkeeping for attempt 2 must not undo what later ops record for it."""
    ops: list[RunOp] = [
        Transition(1, KO, "exit 1", retry=Retry(2, T0, "retry 1 of 2")),
        AssignIds(1, "ps-abcdefgh-r1-a2", "task1", None, {}),
        Transition(1, ST, "created"),
        Transition(1, RU, "running", fields={"started_at": T0}),
    ]
    result = plan({1: held_row()}, {JOB.lower(): (1, 1)}, ops, NOW)
    assert all(o.applied for o in result.outcomes)
    assert result.rows[1]["started_at"] == T0
    assert effective_attempts(result)[(1, 2)]["started_at"] == T0


# --- write_runs on both backends --------------------------------------------------------


def test_write_runs_with_nothing_to_do(store: SqlStore) -> None:
    assert store.write_runs([]) == []


def test_write_runs_mixed_batch_matches_the_database(store: SqlStore) -> None:
    objs = seed(store)
    a, b, c = new_run(store, objs), new_run(store, objs), new_run(store, objs)
    b_before = store.get_run(b.id)
    job = f"ps-abcdefgh-r{a.id}-a1"
    ops: list[RunOp] = [
        AssignIds(a.id, job, "task1", "https://m/a", {"GREETING": "hi"}),
        Transition(a.id, ST, "created", expected_from=frozenset({Q}), at=T0.astimezone(PLUS2)),
        Transition(b.id, RU, "skips Starting"),
        Update(c.id, {"diagnosis": "pool has no nodes", "waiting_reason": "quota"}),
        Transition(c.id, ST, "stale", expected_from=frozenset({RU})),
        Update(a.id + 1000, {"diagnosis": "ghost"}),
    ]
    results = store.write_runs(ops)
    assert [type(r) for r in results] == [
        TaskRun,
        TaskRun,
        InvalidTransition,
        TaskRun,
        TaskRun,
        NotFoundError,
    ]
    assigned, started, _, updated, unchanged, _ = results
    assert isinstance(assigned, TaskRun)
    assert isinstance(started, TaskRun)
    assert isinstance(updated, TaskRun)
    assert isinstance(unchanged, TaskRun)
    assert (assigned.state, assigned.run_id) == (Q, f"{job}/task1")
    assert [h.to_state for h in assigned.history] == [Q]
    # The last op of each run returns exactly what the database now holds.
    assert started == store.get_run(a.id)
    assert updated == store.get_run(c.id)
    assert unchanged == updated
    assert store.get_run(b.id) == b_before
    assert (started.state, started.batch_job_id, started.monitor_url) == (ST, job, "https://m/a")
    assert store.history(a.id) == list(started.history)
    assert [(h.from_state, h.to_state, h.at) for h in started.history[1:]] == [(Q, ST, T0)]
    assert (updated.state, updated.diagnosis, updated.waiting_reason) == (
        Q,
        "pool has no nodes",
        "quota",
    )
    assert store.history(c.id) == list(c.history)
    [attempt] = store.attempts(a.id)
    assert (attempt.attempt, attempt.batch_job_id, attempt.state) == (1, job, None)
    assert attempt.params_sent == {"GREETING": "hi"}
    assert store.attempts(b.id) == []
    found = store.find_run_by_batch_ids(job.upper(), "task1")
    assert found is not None
    assert found.id == a.id


def test_write_runs_results_carry_aware_utc_datetimes(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    west = timezone(timedelta(hours=-10, minutes=-30))
    started_at = datetime(2025, 3, 1, 1, 30, 0, 123456, tzinfo=west)
    results = store.write_runs(
        [
            Transition(run.id, ST, "created", at=T0.astimezone(PLUS2)),
            Transition(run.id, RU, "running", fields={"started_at": started_at}),
            Update(run.id, {"next_poll_at": NOW.astimezone(west)}),
        ]
    )
    last = results[-1]
    assert isinstance(last, TaskRun)
    assert last == store.get_run(run.id)
    assert last.started_at == started_at
    assert last.started_at is not None
    assert last.started_at.tzinfo is UTC
    assert [h.at.tzinfo for h in last.history] == [UTC, UTC, UTC]
    assert last.history[1].at == T0
    assert last.created_at is not None
    assert last.created_at.tzinfo is UTC


def test_write_runs_retry_releases_the_claim(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    assert [r.id for r in store.claim_queued("w1", NOW, 1, 300)] == [run.id]
    (started,) = store.write_runs([Transition(run.id, ST, "created", expected_from=frozenset({Q}))])
    assert isinstance(started, TaskRun)
    due = NOW + timedelta(seconds=30)
    (retried,) = store.write_runs(
        [
            Transition(
                run.id,
                KO,
                "exit code 1",
                expected_from=frozenset({ST}),
                fields={"exit_code": 1},
                retry=Retry(2, due, "retry 1 of 2 in 30s"),
            )
        ]
    )
    assert isinstance(retried, TaskRun)
    assert (retried.state, retried.attempt, retried.not_before) == (Q, 2, due)
    assert retried == store.get_run(run.id)
    assert [h.to_state for h in retried.history] == [Q, ST, KO, Q]
    # w1's lease ran until NOW+300 s: only a released run is free for w2 before that.
    assert store.claim_queued("w2", due - timedelta(seconds=1), 1, 300) == []
    assert [r.id for r in store.claim_queued("w2", due, 1, 300)] == [run.id]
    assert store.renew_leases("w1", due, 300) == 0


def test_store_wrappers_write_through_write_runs(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.assign_batch_ids(run.id, JOB, "task1", None, {})
    store.transition(run.id, ST, reason="created")
    retried = store.fail_and_retry(
        run.id,
        reason="exit code 1",
        retry_reason="retry",
        next_attempt=2,
        not_before=NOW,
        expected_from=ST,
        exit_code=1,
    )
    assert (retried.state, retried.attempt, retried.batch_job_id) == (Q, 2, None)
    [first] = store.attempts(run.id)
    assert (first.state, first.exit_code) == (KO, 1)
    with pytest.raises(InvalidTransition):
        store.transition(run.id, RU, reason="skips Starting")
    assert store.get_run(run.id) == retried


def test_write_runs_retry_and_next_attempt_in_one_batch(store: SqlStore) -> None:
    run = new_run(store, seed(store))
    store.write_runs([AssignIds(run.id, JOB, "task1", None, {}), Transition(run.id, ST, "c")])
    second = f"ps-abcdefgh-r{run.id}-a2"
    results = store.write_runs(
        [
            Transition(run.id, KO, "exit 1", retry=Retry(2, T0, "retry 1 of 2")),
            AssignIds(run.id, second, "task1", None, {}),
            Transition(run.id, ST, "created"),
            Transition(run.id, OK, "exit code 0", fields={"started_at": T0, "exit_code": 0}),
        ]
    )
    assert all(isinstance(r, TaskRun) for r in results)
    assert store.get_run(run.id).started_at == T0
    attempts = store.attempts(run.id)
    assert [(a.attempt, a.batch_job_id) for a in attempts] == [(1, JOB), (2, second)]
    # Attempt 2 ended Succeeded: its row must say so, not look in flight forever.
    assert (attempts[1].state, attempts[1].exit_code, attempts[1].started_at) == (OK, 0, T0)


# --- adoption ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("worker", "own", "after_s", "expected"),
    [
        pytest.param("w1", False, 1, {"free-starting"}, id="w1-not-own"),
        pytest.param("w1", True, 1, {"mine-queued", "mine-starting", "free-starting"}, id="w1-own"),
        pytest.param("w2", True, 1, {"free-starting"}, id="w2-own"),
        # Once w1's lease ran out its Starting run is anyone's; a Queued one never is here.
        pytest.param("w2", False, 60, {"mine-starting", "free-starting"}, id="w2-expired"),
        pytest.param("w1", False, 60, {"mine-starting", "free-starting"}, id="w1-expired"),
    ],
)
def test_adopt_runs_takes_own_runs_only_when_asked(
    store: SqlStore, worker: str, own: bool, after_s: int, expected: set[str]
) -> None:
    objs = seed(store)
    names: dict[int, str] = {}
    mine_queued = new_run(store, objs, priority=9)
    assert [r.id for r in store.claim_queued("w1", NOW, 1, 30)] == [mine_queued.id]
    mine_starting = new_run(store, objs, priority=8)
    assert [r.id for r in store.claim_queued("w1", NOW, 1, 30)] == [mine_starting.id]
    free_starting = new_run(store, objs, priority=7)
    free_queued = new_run(store, objs, priority=6)
    store.write_runs(
        [Transition(mine_starting.id, ST, "created"), Transition(free_starting.id, ST, "created")]
    )
    names.update(
        {
            mine_queued.id: "mine-queued",
            mine_starting.id: "mine-starting",
            free_starting.id: "free-starting",
            free_queued.id: "free-queued",
        }
    )
    now = NOW + timedelta(seconds=after_s)
    got = store.adopt_runs(worker, now, 10, 30, own=own)
    assert {names[r.id] for r in got} == expected
    # What was adopted is now the worker's: another worker cannot adopt it.
    other = "w3"
    assert {r.id for r in store.adopt_runs(other, now, 10, 30, own=False)}.isdisjoint(
        {r.id for r in got}
    )
