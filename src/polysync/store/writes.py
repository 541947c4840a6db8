"""Run changes as data, and their application to rows in memory. Pure.

The engine changes thousands of runs a minute, and one transaction per change spends most
of its CPU in per-statement overhead, not in SQLite or PostgreSQL (decision 0008). So a
change is an op — :class:`AssignIds`, :class:`Transition`, :class:`Update` — and
``SqlStore.write_runs`` applies any number of them in one transaction: it reads the rows
they touch once, :func:`plan` applies the ops to those rows here (compare-and-set guards,
the run state machine, per-attempt bookkeeping) and says what to write, and the store
writes it with one executemany per table.

Each op stands alone: it is applied whole or not at all, and an op that cannot apply
(an illegal move, an unknown run) becomes that op's error without touching the others.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from polysync.domain.models import Failure, HistoryEntry, RunState
from polysync.domain.states import check_transition
from polysync.errors import InputError, NotFoundError, PolysyncError, StoreError

RUN_FIELDS = frozenset(
    {
        "attempt",
        "batch_job_id",
        "batch_pool_id",
        "batch_task_id",
        "cancel_requested",
        "claimed_by",
        "diagnosis",
        "ended_at",
        "exit_code",
        "failure",
        "last_polled_at",
        "lease_expires_at",
        "monitor_url",
        "next_poll_at",
        "not_before",
        "params_sent",
        "priority",
        "started_at",
        "waiting_reason",
    }
)
"""Run columns callers may set through transitions and updates, besides ``state``."""

WRITTEN_COLUMNS = (*sorted(RUN_FIELDS), "state", "updated_at")
"""Every column a write may change: what the bulk UPDATE sets on each changed run."""

PER_ATTEMPT_FIELDS: Mapping[str, object] = MappingProxyType(
    {
        "batch_job_id": None,
        "batch_task_id": None,
        "batch_pool_id": None,
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
    }
)
"""What belongs to one attempt: cleared when a transition starts the next attempt."""


def failure_to_json(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "category": f.category,
        "code": f.code,
        "message": f.message,
        "details": [list(pair) for pair in f.details],
        "stderr_tail": f.stderr_tail,
    }


def check_fields(updates: Mapping[str, Any]) -> None:
    """Unknown field names are a caller's bug: TypeError when the op is made."""
    unknown = set(updates) - RUN_FIELDS
    if unknown:
        raise TypeError(f"unknown run field(s) {sorted(unknown)}; allowed: {sorted(RUN_FIELDS)}")


def utc(value: datetime) -> datetime:
    """An aware datetime in UTC, as the store gives it back; a naive one is refused.

    Results are built from the values written, not read back, so they are normalised
    here the way ``schema.UtcDateTime`` normalises what the database returns.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise StoreError(
            f"naive datetime {value.isoformat()} given to the store; give aware UTC times."
        )
    return value.astimezone(UTC)


def run_values(updates: Mapping[str, Any]) -> dict[str, Any]:
    """Caller-given run fields → column values (UTC times, JSON-ready failure)."""
    check_fields(updates)
    values: dict[str, Any] = {
        k: utc(v) if isinstance(v, datetime) else v for k, v in updates.items()
    }
    if "failure" in values:
        values["failure"] = failure_to_json(values["failure"])
    if "params_sent" in values:
        values["params_sent"] = dict(values["params_sent"] or {})
    if "cancel_requested" in values:
        values["cancel_requested"] = bool(values["cancel_requested"])
    return values


# --- the ops --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssignIds:
    """D5: record an attempt's Batch ids before anything is created in Batch.

    Again with the same ids (a restart before the create call) is fine; other ids for an
    attempt that already has some are refused, and so is a job id another attempt holds.
    """

    run_id: int
    batch_job_id: str
    batch_task_id: str
    monitor_url: str | None
    params_sent: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Retry:
    """After a Failed transition: queue ``next_attempt``, not before ``not_before``."""

    next_attempt: int
    not_before: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Transition:
    """Move a run to ``to_state`` with a history row, setting ``fields``.

    Compare-and-set guards: with ``expected_from``, a run in another state is left alone
    (someone moved it first); with ``cancel_requested``, so is a run whose cancel flag is
    not that value (a cancel arrived after the caller decided). Left alone is not an
    error: the result is the run as it is. Without ``expected_from`` the move must be
    legal by the state table (``check_transition``), or the op fails.

    ``retry``: end the attempt Failed and queue the next one in the same op, so a crash
    never leaves a run Failed whose retry was due. ``attempt=n`` in ``fields`` starts a
    clean attempt: the per-attempt fields are cleared unless given.
    """

    run_id: int
    to_state: RunState
    reason: str
    expected_from: frozenset[RunState] | None = None
    cancel_requested: bool | None = None
    at: datetime | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    retry: Retry | None = None

    def __post_init__(self) -> None:
        check_fields(self.fields)

    @staticmethod
    def states(expected: RunState | Collection[RunState] | None) -> frozenset[RunState] | None:
        """``expected_from`` from one state, several, or None."""
        if expected is None:
            return None
        return frozenset({expected} if isinstance(expected, RunState) else expected)


@dataclass(frozen=True, slots=True)
class Update:
    """Set non-state fields (diagnosis, waiting reason, polling times…)."""

    run_id: int
    fields: Mapping[str, Any]

    def __post_init__(self) -> None:
        if "attempt" in self.fields:
            raise TypeError("attempt changes only with a transition (it starts a new attempt)")
        check_fields(self.fields)


RunOp = AssignIds | Transition | Update


# --- the plan -------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """One op's result: the run's row after it (``applied`` False: unchanged), or an error."""

    row: dict[str, Any] | None
    added: tuple[HistoryEntry, ...] = ()  # history rows this batch added to the run so far
    applied: bool = False
    error: PolysyncError | None = None


@dataclass(slots=True)
class WritePlan:
    """What one batch writes: full rows of changed runs, history rows, attempt rows."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    new_attempts: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    attempt_updates: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def set_attempt(self, key: tuple[int, int], values: Mapping[str, Any]) -> None:
        target = self.new_attempts.get(key)
        if target is None:
            target = self.attempt_updates.setdefault(key, {})
        target.update(values)


class _Draft:
    """One op's changes to one row, kept aside until the op has fully applied."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = dict(row)
        self.history: list[dict[str, Any]] = []
        self.attempts: list[tuple[tuple[int, int], dict[str, Any], bool]] = []

    def transition(
        self,
        run_id: int,
        to: RunState,
        reason: str,
        at: datetime,
        values: dict[str, Any],
        now: datetime,
    ) -> None:
        row = self.row
        current = RunState(row["state"])
        attempt = int(values.get("attempt", row["attempt"]))
        # Failed → Queued exists only as a retry: it must start the next attempt.
        check_transition(current, to, retry=attempt == row["attempt"] + 1, run_id=run_id)
        if attempt != row["attempt"]:
            for name, default in PER_ATTEMPT_FIELDS.items():
                values.setdefault(name, dict(default) if isinstance(default, dict) else default)
        if to.is_terminal:
            # The attempt is over: nobody holds or polls it any more.
            values.setdefault("claimed_by", None)
            values.setdefault("lease_expires_at", None)
            values.setdefault("next_poll_at", None)
        row.update(values)
        row["state"] = to.value
        row["updated_at"] = now
        self.history.append(
            {
                "run_id": run_id,
                "attempt": attempt,
                "at": at,
                "from_state": current.value,
                "to_state": to.value,
                "reason": reason,
            }
        )
        outcome = {
            "state": to.value if to.is_terminal else None,
            "exit_code": row["exit_code"],
            "failure": row["failure"],
            "started_at": row["started_at"],
            "ended_at": row["ended_at"],
        }
        self.attempts.append(((run_id, attempt), outcome, False))


def plan(
    rows: Mapping[int, Mapping[str, Any]],
    taken: Mapping[str, tuple[int, int]],
    ops: list[RunOp],
    now: datetime,
) -> WritePlan:
    """Apply ``ops`` in order to ``rows`` (id → current row values).

    ``taken`` maps the lower-cased Batch job ids of the :class:`AssignIds` ops to the
    (run, attempt) that already holds each, if any. ``now`` stamps ``updated_at`` and is
    the default time of history rows.
    """
    out = WritePlan()
    current: dict[int, dict[str, Any]] = {k: dict(v) for k, v in rows.items()}
    holders = dict(taken)
    added: dict[int, list[HistoryEntry]] = {}
    for op in ops:
        row = current.get(op.run_id)
        if row is None:
            out.outcomes.append(
                Outcome(
                    None,
                    error=NotFoundError(
                        f"run {op.run_id} does not exist; run `polysync run list` to see the runs."
                    ),
                )
            )
            continue
        draft = _Draft(row)
        try:
            applied = _apply(op, draft, holders, now)
        except PolysyncError as exc:
            out.outcomes.append(Outcome(None, error=exc))
            continue
        if not applied:
            out.outcomes.append(Outcome(dict(row), tuple(added.get(op.run_id, ()))))
            continue
        current[op.run_id] = draft.row
        out.rows[op.run_id] = draft.row
        out.history.extend(draft.history)
        for key, values, new in draft.attempts:
            if new:
                # An update planned for this attempt before its row existed (the retry
                # that queued it) matched nothing; the row is inserted with fresh values.
                out.attempt_updates.pop(key, None)
                out.new_attempts[key] = values
            else:
                out.set_attempt(key, values)
        so_far = added.setdefault(op.run_id, [])
        so_far.extend(_entry(h) for h in draft.history)
        out.outcomes.append(Outcome(dict(draft.row), tuple(so_far), applied=True))
    return out


def _apply(op: RunOp, draft: _Draft, holders: dict[str, tuple[int, int]], now: datetime) -> bool:
    row = draft.row
    state = RunState(row["state"])
    if isinstance(op, Update):
        row.update(run_values(op.fields))
        row["updated_at"] = now
        return True
    if isinstance(op, AssignIds):
        _assign(op, draft, state, holders, now)
        return True
    if op.expected_from is not None and state not in op.expected_from:
        return False
    if op.cancel_requested is not None and bool(row["cancel_requested"]) != op.cancel_requested:
        return False
    at = utc(op.at) if op.at is not None else now
    draft.transition(op.run_id, op.to_state, op.reason, at, run_values(op.fields), now)
    if op.retry is not None:
        # The Failed half released the claim: whichever worker claims the retry submits it.
        retry = {"attempt": op.retry.next_attempt, "not_before": utc(op.retry.not_before)}
        draft.transition(op.run_id, RunState.QUEUED, op.retry.reason, at, retry, now)
    return True


def _assign(
    op: AssignIds,
    draft: _Draft,
    state: RunState,
    holders: dict[str, tuple[int, int]],
    now: datetime,
) -> None:
    row = draft.row
    run_id, attempt = op.run_id, int(row["attempt"])
    if state.is_terminal:
        raise InputError(f"run {run_id} already ended {state}; it cannot get new Batch ids.")
    ids = (op.batch_job_id, op.batch_task_id)
    if row["batch_job_id"] is not None and (row["batch_job_id"], row["batch_task_id"]) != ids:
        raise InputError(
            f"run {run_id} attempt {attempt} already has Batch ids "
            f"{row['batch_job_id']}/{row['batch_task_id']}; refusing to replace them with "
            f"{op.batch_job_id}/{op.batch_task_id} (one Batch job per attempt, D5)."
        )
    key = op.batch_job_id.lower()
    holder = holders.get(key)
    if holder is not None and holder != (run_id, attempt):
        raise StoreError(
            f"Batch job id {op.batch_job_id} is already recorded for run {holder[0]} "
            f"attempt {holder[1]}; refusing to give it to run {run_id} (D5). "
            "Check that two databases do not share one installation id."
        )
    sent = dict(op.params_sent)
    row.update(
        batch_job_id=op.batch_job_id,
        batch_task_id=op.batch_task_id,
        monitor_url=op.monitor_url,
        params_sent=sent,
        updated_at=now,
    )
    values = {
        "batch_job_id": op.batch_job_id,
        "batch_job_key": key,
        "batch_task_id": op.batch_task_id,
        "monitor_url": op.monitor_url,
        "params_sent": sent,
    }
    if holder is None:
        holders[key] = (run_id, attempt)
        new = {"run_id": run_id, "attempt": attempt, "created_at": now, **values}
        new.update(state=None, exit_code=None, failure=None, started_at=None, ended_at=None)
        draft.attempts.append(((run_id, attempt), new, True))
    else:
        draft.attempts.append(((run_id, attempt), values, False))


def _entry(h: Mapping[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        at=h["at"],
        from_state=RunState(h["from_state"]) if h["from_state"] is not None else None,
        to_state=RunState(h["to_state"]),
        reason=h["reason"],
    )
