"""Runs: creation, reads, bulk writes (decision 0008), claims and leases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from polysync.domain.models import (
    HistoryEntry,
    Job,
    Platform,
    RunState,
    Task,
    TaskRun,
    Trigger,
)
from polysync.errors import (
    InputError,
    PolysyncError,
    StoreError,
)
from polysync.store import schema as s
from polysync.store.base import RunAttempt
from polysync.store.sql.base import SqlBase
from polysync.store.sql.rows import (
    _IN_CHUNK,
    _NONTERMINAL,
    _chunks,
    _failure_from_json,
    _job,
    _key,
    _lease_free,
    _refuse_clear_secrets,
    _run,
    _states,
    utc_now,
)
from polysync.store.writes import (
    WRITTEN_COLUMNS,
    AssignIds,
    Retry,
    RunOp,
    Transition,
    Update,
    plan,
)


class RunQueries(SqlBase):
    """Runs: creation, reads, bulk writes (decision 0008), claims and leases."""

    # --- runs -----------------------------------------------------------------------

    def create_run(
        self,
        task: Task,
        job: Job,
        platform: Platform,
        *,
        trigger: Trigger,
        priority: int,
        param_overrides: dict[str, str],
        not_before: datetime | None = None,
        claimed_by: str | None = None,
        lease_expires_at: datetime | None = None,
    ) -> TaskRun:
        """A Queued run; with ``claimed_by``, already held by that owner until
        ``lease_expires_at`` (in the same INSERT, so no worker can claim it in between:
        the process that starts a run is its only submitter, docs/engine.md)."""
        if (claimed_by is None) != (lease_expires_at is None):
            raise ValueError("claimed_by and lease_expires_at go together")
        now = utc_now()
        with self._write(f"creating a run of task {task.name}") as conn:
            task_row = self._task_row(conn, task.name)
            job_row = conn.execute(self._job_select().where(s.jobs.c.id == task_row.job_id)).one()
            # The stored task decides its job and platform; a caller holding stale objects
            # is told rather than silently obeyed.
            if _key(job.name) != job_row.name_key or _key(platform.name) != _key(
                job_row.platform_name
            ):
                raise InputError(
                    f"task {task_row.name} belongs to job {job_row.name} on platform "
                    f"{job_row.platform_name}, not {job.name} on {platform.name}; reload them."
                )
            _refuse_clear_secrets(
                _job(job_row, job_row.platform_name), param_overrides, f"run of task {task.name}"
            )
            run_id = conn.execute(
                insert(s.task_runs)
                .values(
                    task_id=task_row.id,
                    job_id=job_row.id,
                    platform_id=job_row.platform_id,
                    task_name=task_row.name,
                    job_name=job_row.name,
                    platform_name=job_row.platform_name,
                    state=RunState.QUEUED.value,
                    trigger=Trigger(trigger).value,
                    attempt=1,
                    priority=priority,
                    params_sent={},
                    param_overrides=dict(param_overrides),
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                    not_before=not_before,
                    claimed_by=claimed_by,
                    lease_expires_at=lease_expires_at,
                )
                .returning(s.task_runs.c.id)
            ).scalar_one()
            self._add_history(conn, run_id, 1, now, None, RunState.QUEUED, "run requested")
            return self._load_run(conn, run_id)

    def get_run(self, run_id: int) -> TaskRun:
        with self._read(f"reading run {run_id}") as conn:
            return self._load_run(conn, run_id)

    def find_run_by_batch_ids(self, batch_job_id: str, batch_task_id: str) -> TaskRun | None:
        with self._read(f"looking up Batch job {batch_job_id}") as conn:
            run_id = conn.execute(
                select(s.run_attempts.c.run_id).where(
                    s.run_attempts.c.batch_job_key == batch_job_id.lower(),
                    func.lower(s.run_attempts.c.batch_task_id) == batch_task_id.lower(),
                )
            ).scalar_one_or_none()
            if run_id is None:
                run_id = conn.execute(
                    select(s.task_runs.c.id).where(
                        s.task_runs.c.batch_job_id == batch_job_id,
                        s.task_runs.c.batch_task_id == batch_task_id,
                    )
                ).scalar_one_or_none()
            return None if run_id is None else self._load_run(conn, run_id)

    def _filtered(
        self,
        conn: Connection,
        query: Select[Any],
        task: str | None,
        state: RunState | None,
        states: Collection[RunState] | None,
    ) -> Select[Any]:
        if task is not None:
            query = query.where(s.task_runs.c.task_id == self._task_row(conn, task).id)
        wanted = _states(state, states)
        if wanted is not None:
            query = query.where(s.task_runs.c.state.in_(wanted))
        return query

    def list_runs(
        self,
        *,
        task: str | None = None,
        state: RunState | None = None,
        states: Collection[RunState] | None = None,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
        with_history: bool = True,
    ) -> list[TaskRun]:
        if limit < 0 or offset < 0:
            raise InputError(f"limit ({limit}) and offset ({offset}) must not be negative.")
        with self._read("listing runs") as conn:
            order = s.task_runs.c.id.desc() if newest_first else s.task_runs.c.id.asc()
            query = self._filtered(conn, select(s.task_runs), task, state, states)
            rows = conn.execute(query.order_by(order).limit(limit).offset(offset)).all()
            return self._runs(conn, rows, with_history)

    def count_runs(
        self,
        *,
        task: str | None = None,
        state: RunState | None = None,
        states: Collection[RunState] | None = None,
    ) -> int:
        with self._read("counting runs") as conn:
            query = self._filtered(
                conn, select(func.count()).select_from(s.task_runs), task, state, states
            )
            return int(conn.execute(query).scalar_one())

    # --- run writes: ops applied in bulk (store/writes.py, decision 0008) -------------

    def write_runs(self, ops: Sequence[RunOp]) -> list[TaskRun | PolysyncError]:
        """Apply ``ops`` in order, in ONE transaction; per op the run after it, or its error.

        The rows the ops touch are read (and locked) once, the ops are applied to them in
        memory (``writes.plan``: compare-and-set guards, the state machine, attempts), and
        each table gets one executemany. An op that cannot apply is that op's error; the
        others still apply. A database failure raises ``StoreError`` and applies nothing.
        """
        if not ops:
            return []
        c = s.task_runs.c
        run_ids = sorted({op.run_id for op in ops})
        keys = sorted({op.batch_job_id.lower() for op in ops if isinstance(op, AssignIds)})
        now = utc_now()
        what = f"writing run {run_ids[0]}" if len(run_ids) == 1 else f"writing {len(ops)} runs"
        with self._write(what) as conn:
            rows: dict[int, dict[str, Any]] = {}
            for chunk in _chunks(run_ids):
                # Ordered by id: workers lock rows in one order and never deadlock (PG).
                query = select(s.task_runs).where(c.id.in_(chunk)).order_by(c.id)
                for r in conn.execute(query.with_for_update()):
                    rows[r.id] = dict(r._mapping)
            taken: dict[str, tuple[int, int]] = {}
            a = s.run_attempts.c
            for i in range(0, len(keys), _IN_CHUNK):
                query = select(a.batch_job_key, a.run_id, a.attempt).where(
                    a.batch_job_key.in_(keys[i : i + _IN_CHUNK])
                )
                taken.update({r.batch_job_key: (r.run_id, r.attempt) for r in conn.execute(query)})
            result = plan(rows, taken, list(ops), now)
            hist = self._histories(conn, [i for i in run_ids if i in rows])
            # Only the columns that changed, one executemany per set of them: binding
            # every column of every row (JSON, times) would cost more than the writes.
            changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for run_id, row in result.rows.items():
                before = rows[run_id]
                names = tuple(k for k in WRITTEN_COLUMNS if row[k] != before[k])
                changed.setdefault(names, []).append({"_id": run_id, **{k: row[k] for k in names}})
            for names, params in changed.items():
                if names:
                    conn.execute(update(s.task_runs).where(c.id == bindparam("_id")), params)
            if result.history:
                conn.execute(insert(s.run_history), result.history)
            if result.new_attempts:
                conn.execute(insert(s.run_attempts), list(result.new_attempts.values()))
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for (run_id, attempt), values in result.attempt_updates.items():
                row_params = {"_run": run_id, "_attempt": attempt, **values}
                by_columns.setdefault(tuple(sorted(values)), []).append(row_params)
            for params in by_columns.values():
                conn.execute(
                    update(s.run_attempts).where(
                        a.run_id == bindparam("_run"), a.attempt == bindparam("_attempt")
                    ),
                    params,
                )
        out: list[TaskRun | PolysyncError] = []
        for op, outcome in zip(ops, result.outcomes, strict=True):
            if outcome.error is not None or outcome.row is None:
                out.append(outcome.error or StoreError(f"run {op.run_id}: nothing was written."))
            else:
                out.append(_run(outcome.row, [*hist.get(op.run_id, ()), *outcome.added]))
        return out

    def _write_one(self, op: RunOp) -> TaskRun:
        (result,) = self.write_runs([op])
        if isinstance(result, PolysyncError):
            raise result
        return result

    def assign_batch_ids(
        self,
        run_id: int,
        batch_job_id: str,
        batch_task_id: str,
        monitor_url: str | None,
        params_sent: dict[str, str],
    ) -> TaskRun:
        """D5: record the attempt's Batch ids before anything is created in Batch.

        Calling it again with the same ids (a restart before the create call) is fine;
        different ids for an attempt that already has some are refused.
        """
        return self._write_one(
            AssignIds(run_id, batch_job_id, batch_task_id, monitor_url, params_sent)
        )

    def transition(
        self,
        run_id: int,
        to_state: RunState,
        *,
        reason: str,
        expected_from: RunState | Collection[RunState] | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> TaskRun:
        """Move a run to ``to_state`` atomically, with a history row, and set ``fields``.

        Compare-and-set: with ``expected_from``, a run whose current state is not one of
        those is returned unchanged (someone else moved it first: compare ``.state`` with
        ``to_state`` to know). Without it, the move must still be legal by the run state
        table (``polysync.domain.states.check_transition``), which raises otherwise.

        Giving ``attempt=n`` (a retry, issue 4) starts a clean attempt: the previous
        attempt's Batch ids, exit code, failure and times are cleared on the run (they
        stay in ``attempts()``) unless given too. Reaching a terminal state releases any
        claim and records the attempt's outcome.
        """
        return self._write_one(
            Transition(
                run_id,
                to_state,
                reason,
                expected_from=Transition.states(expected_from),
                at=at,
                fields=fields,
            )
        )

    def fail_and_retry(
        self,
        run_id: int,
        *,
        reason: str,
        retry_reason: str,
        next_attempt: int,
        not_before: datetime,
        expected_from: RunState | Collection[RunState] | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> TaskRun:
        """End the current attempt Failed and queue ``next_attempt``, in ONE transaction.

        Two separate transitions would leave a window where a crash loses the retry (the
        run would stay Failed for good). The history gets both rows; the Failed attempt
        keeps its outcome in ``attempts()``.
        """
        return self._write_one(
            Transition(
                run_id,
                RunState.FAILED,
                reason,
                expected_from=Transition.states(expected_from),
                at=at,
                fields=fields,
                retry=Retry(next_attempt, not_before, retry_reason),
            )
        )

    def update_run(self, run_id: int, **fields: Any) -> TaskRun:
        """Set non-state fields (diagnosis, waiting_reason, polling times, …)."""
        return self._write_one(Update(run_id, fields))

    def request_cancel(self, run_id: int) -> TaskRun:
        """Mark a run for cancellation (idempotent; a no-op once it has ended)."""
        with self._write(f"requesting cancel of run {run_id}") as conn:
            self._run_row(conn, run_id)
            conn.execute(
                update(s.task_runs)
                .where(s.task_runs.c.id == run_id, s.task_runs.c.state.in_(_NONTERMINAL))
                .values(cancel_requested=True, updated_at=utc_now())
            )
            return self._load_run(conn, run_id)

    def history(self, run_id: int) -> list[HistoryEntry]:
        with self._read(f"reading the history of run {run_id}") as conn:
            self._run_row(conn, run_id)
            return self._histories(conn, [run_id])[run_id]

    def attempts(self, run_id: int) -> list[RunAttempt]:
        with self._read(f"reading the attempts of run {run_id}") as conn:
            self._run_row(conn, run_id)
            rows = conn.execute(
                select(s.run_attempts)
                .where(s.run_attempts.c.run_id == run_id)
                .order_by(s.run_attempts.c.attempt)
            ).all()
        return [
            RunAttempt(
                run_id=r.run_id,
                attempt=r.attempt,
                batch_job_id=r.batch_job_id,
                batch_task_id=r.batch_task_id,
                monitor_url=r.monitor_url,
                params_sent=dict(r.params_sent),
                state=RunState(r.state) if r.state is not None else None,
                exit_code=r.exit_code,
                failure=_failure_from_json(r.failure),
                created_at=r.created_at,
                started_at=r.started_at,
                ended_at=r.ended_at,
            )
            for r in rows
        ]

    def list_nonterminal_runs(
        self,
        platform: str | None = None,
        *,
        job: str | None = None,
        task: str | None = None,
        with_history: bool = False,
    ) -> list[TaskRun]:
        c = s.task_runs.c
        with self._read("listing runs in progress") as conn:
            query = select(s.task_runs).where(c.state.in_(_NONTERMINAL))
            if platform is not None:
                query = query.where(c.platform_id == self._platform_row(conn, platform).id)
            if job is not None:
                query = query.where(c.job_id == self._job_row(conn, job).id)
            if task is not None:
                query = query.where(c.task_id == self._task_row(conn, task).id)
            rows = conn.execute(query.order_by(c.id)).all()
            return self._runs(conn, rows, with_history)

    # --- engine: claims and leases (issue 4) ----------------------------------------

    def claim_queued(
        self, worker_id: str, now: datetime, limit: int, lease_s: float
    ) -> list[TaskRun]:
        """Claim up to ``limit`` Queued runs that are due, highest priority first.

        A run is claimable when it is not claimed or its lease has expired (a dead
        worker's runs come back). PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent
        workers never wait on or double-claim a row; SQLite: the whole claim runs under
        the database write lock. Returned without history (``get_run`` has it).
        """
        if limit <= 0:
            return []
        c = s.task_runs.c
        return self._claim_where(
            f"claiming runs for worker {worker_id}",
            and_(
                c.state == RunState.QUEUED.value,
                or_(c.not_before.is_(None), c.not_before <= now),
                _lease_free(now),
            ),
            worker_id,
            now,
            limit,
            lease_s,
        )

    def renew_leases(self, worker_id: str, now: datetime, lease_s: float) -> int:
        """Heartbeat: extend every lease ``worker_id`` still holds; returns how many."""
        c = s.task_runs.c
        with self._write(f"renewing leases of worker {worker_id}") as conn:
            result = conn.execute(
                update(s.task_runs)
                .where(c.claimed_by == worker_id, c.state.in_(_NONTERMINAL))
                .values(lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return int(result.rowcount)

    def release(self, run_id: int, owner: str | None = None) -> bool:
        """Give a claimed run back so a worker takes it; True when a claim was dropped.

        With ``owner``, only that owner's claim: a follower whose lease ran out and was
        taken over must not free the new holder's run for a third process.
        """
        c = s.task_runs.c
        with self._write(f"releasing run {run_id}") as conn:
            self._run_row(conn, run_id)
            query = update(s.task_runs).where(c.id == run_id, c.claimed_by.is_not(None))
            if owner is not None:
                query = query.where(c.claimed_by == owner)
            result = conn.execute(query.values(claimed_by=None, lease_expires_at=None))
            return int(result.rowcount) == 1

    def adopt_runs(
        self, worker_id: str, now: datetime, limit: int, lease_s: float, *, own: bool = True
    ) -> list[TaskRun]:
        """Claim runs already in Batch whose tracker is gone, and this worker's own runs.

        Takes (a) Starting/Running runs nobody holds or whose lease expired (a dead
        worker's, or ones a `task run --no-wait` left behind) and (b) every non-terminal
        run still claimed by ``worker_id`` itself (a restart under the same id need not
        wait for its own leases to expire), Queued ones only once due — (b) only with
        ``own``: a running worker already tracks its own runs, so it asks for them once,
        on start. Queued runs otherwise go through ``claim_queued`` (priority order).
        PostgreSQL: ``SKIP LOCKED``. Returned without history.
        """
        if limit <= 0:
            return []
        c = s.task_runs.c
        in_batch = (RunState.STARTING.value, RunState.RUNNING.value)
        condition = and_(c.state.in_(in_batch), _lease_free(now))
        if own:
            mine = and_(
                c.claimed_by == worker_id,
                c.state.in_(_NONTERMINAL),
                or_(
                    c.state != RunState.QUEUED.value,
                    c.not_before.is_(None),
                    c.not_before <= now,
                ),
            )
            condition = or_(condition, mine)
        return self._claim_where(
            f"adopting runs for worker {worker_id}",
            condition,
            worker_id,
            now,
            limit,
            lease_s,
        )

    def _claim_where(
        self,
        action: str,
        condition: ColumnElement[bool],
        worker_id: str,
        now: datetime,
        limit: int,
        lease_s: float,
    ) -> list[TaskRun]:
        """Claim up to ``limit`` runs matching ``condition``, highest priority first.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait on or
        double-claim a row; SQLite: the whole claim runs under the database write lock.
        """
        c = s.task_runs.c
        order = (c.priority.desc(), c.id.asc())
        with self._write(action) as conn:
            ids = (
                conn.execute(
                    select(c.id)
                    .where(condition)
                    .order_by(*order)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(
                update(s.task_runs)
                .where(c.id.in_(ids))
                .values(
                    claimed_by=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    updated_at=utc_now(),
                )
            )
            rows = conn.execute(select(s.task_runs).where(c.id.in_(ids)).order_by(*order)).all()
            return [_run(r) for r in rows]

    def claim_run(self, run_id: int, worker_id: str, now: datetime, lease_s: float) -> bool:
        """Claim one non-terminal run if free (or already ours); True when we hold it."""
        c = s.task_runs.c
        with self._write(f"claiming run {run_id} for {worker_id}") as conn:
            self._run_row(conn, run_id, for_update=True)
            result = conn.execute(
                update(s.task_runs)
                .where(
                    c.id == run_id,
                    c.state.in_(_NONTERMINAL),
                    or_(c.claimed_by == worker_id, _lease_free(now)),
                )
                .values(claimed_by=worker_id, lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return int(result.rowcount) == 1

    def release_all(self, worker_id: str) -> int:
        """Give back every run ``worker_id`` holds (graceful shutdown); returns how many."""
        c = s.task_runs.c
        with self._write(f"releasing the runs of worker {worker_id}") as conn:
            result = conn.execute(
                update(s.task_runs)
                .where(c.claimed_by == worker_id)
                .values(claimed_by=None, lease_expires_at=None)
            )
            return int(result.rowcount)

    # --- server (issue 5) -----------------------------------------------------------

    def runs_changed_since(
        self, since: datetime, *, limit: int = 1000
    ) -> list[tuple[TaskRun, datetime]]:
        c = s.task_runs.c
        with self._read("reading recently changed runs") as conn:
            rows = conn.execute(
                select(s.task_runs)
                .where(c.updated_at >= since)
                .order_by(c.updated_at, c.id)
                .limit(limit)
            ).all()
            runs = self._runs(conn, rows, with_history=True)
        return [(run, row.updated_at) for run, row in zip(runs, rows, strict=True)]
