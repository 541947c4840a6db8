"""One submitter per run: the claim a process holds on a run it follows (decision 0012).

Only the holder of a run's claim submits it or advances it. A worker claims runs in
bulk (``Store.claim_queued`` / ``adopt_runs``, one heartbeat for all of them); a process
that follows single runs — `task run`, `run wait`, the server without a worker — holds
each with a :class:`RunClaim`. A run such a process starts is created already claimed
(``start_run(..., owner=...)``), so no worker can claim it before its first submission.
A follower that does not hold the claim only watches the store, and takes the run over
once the holder's lease has run out (the holder died).
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
from datetime import datetime, timedelta

from polysync.domain.models import TaskRun
from polysync.errors import NotFoundError
from polysync.services.context import Services

RUN_ONCE_LEASE_S = 30.0
"""How long a follower's claim lasts unless renewed (renewed every third of it)."""


def run_once_owner() -> str:
    """The claim owner of the runs this process starts or follows (`task run`, the server)."""
    return f"run-once-{socket.gethostname()}-{os.getpid()}"


def lease_free(run: TaskRun, now: datetime) -> bool:
    """True when nobody holds ``run``: never claimed, released, or its lease ran out.

    The same rule as the store's claim queries, applied to a copy just read, so a watcher
    knows when a take-over can succeed without trying (a write) every time it looks.
    """
    return run.claimed_by is None or run.lease_expires_at is None or run.lease_expires_at <= now


class Step(enum.Enum):
    ADVANCE = "advance"  # this owner holds the run: submit or poll it
    TAKE = "take"  # ask the store (claim, renew or take over), then advance if it agrees
    WATCH = "watch"  # someone else holds it: only read what it records


def step(*, held: bool, mine: bool, free: bool, renew_due: bool, fresh: bool) -> Step:
    """What a follower does with a run, from what it believes and the copy it just read.

    ``held``: this process took the claim and has not lost it as far as it knows;
    ``mine``: the copy names this owner as holder; ``free``: the copy shows nobody holding
    it (:func:`lease_free`); ``renew_due``: a third of the lease has passed since the last
    take; ``fresh``: a submission is next, the step two processes must never both take,
    so the store is asked whatever the copy says.
    """
    if fresh or renew_due:
        return Step.TAKE
    if held and mine:
        return Step.ADVANCE
    if held or mine or free:
        # Held, but the copy names someone else (this process stalled past its lease and
        # was taken over) or nobody (a retry frees the run); or created claimed by this
        # owner; or free (its holder's lease ran out): the store decides.
        return Step.TAKE
    return Step.WATCH


class RunClaim:
    """This process's hold on one run: taken, renewed, taken over, given back."""

    def __init__(
        self, svc: Services, run_id: int, owner: str, lease_s: float = RUN_ONCE_LEASE_S
    ) -> None:
        self.svc = svc
        self.run_id = run_id
        self.owner = owner
        self.lease_s = lease_s
        self.held = False
        self._renew_at: datetime | None = None

    def take(self) -> bool:
        """Claim the run, or renew the claim this owner has; True while it holds it.

        Atomic in the store: it succeeds only if the run is not finished and is free or
        already this owner's, so two processes never both hold it.
        """
        now = self.svc.clock()
        self.held = self.svc.store.claim_run(self.run_id, self.owner, now, self.lease_s)
        self._renew_at = now + timedelta(seconds=self.lease_s / 3) if self.held else None
        return self.held

    def keep(self, run: TaskRun, *, fresh: bool = False) -> bool:
        """Whether this owner may advance ``run`` (a copy just read) now (see :func:`step`)."""
        if run.state.is_terminal:
            self.held = False
            return False
        now = self.svc.clock()
        todo = step(
            held=self.held,
            mine=run.claimed_by == self.owner,
            free=lease_free(run, now),
            renew_due=self._renew_at is not None and now >= self._renew_at,
            fresh=fresh,
        )
        if todo is Step.TAKE:
            return self.take()
        return todo is Step.ADVANCE

    def release(self) -> None:
        """Give the run back (only this owner's claim), so a worker adopts it."""
        self.held = False
        self._renew_at = None
        # Removed meanwhile (a forced `task remove`): nothing to give back.
        with contextlib.suppress(NotFoundError):
            self.svc.store.release(self.run_id, self.owner)
