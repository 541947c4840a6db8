"""When to look at a run next: per-run poll cadence and doubling backoff (pure rules).

Completion is found by the worker's sweeps (docs/engine.md); per-run polls show Starting
→ Running where no node sweep covers the run, are a slow safety net everywhere, and are
the whole detection for `task run` / `run wait`. Their cadence depends only on the state
and on the attempt's age, so it survives a restart without memory:
``delay = clamp(age × ratio, first, cap) × jitter``. Polling at a fixed fraction of the
age is exponential backoff expressed in time: a young run is looked at often, an old one
rarely.

Both the services (``wait_run``) and the dispatcher (the worker) use these, so they live
here, below both: services never import the dispatcher.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from polysync.domain.models import RunState


@dataclass(frozen=True, slots=True)
class Phase:
    first_s: float  # the delay while the attempt is young
    ratio: float  # delay grows as this fraction of the attempt's age ...
    cap_s: float  # ... up to this

    def delay_s(self, age_s: float) -> float:
        return min(max(age_s * self.ratio, self.first_s), self.cap_s)


@dataclass(frozen=True, slots=True)
class Cadence:
    """Per-run poll delays for Starting and Running runs, with ± ``jitter`` spread.

    ``swept_starting`` replaces ``starting`` for a run whose pool the node sweep lists
    (decision 0009): the sweep shows its task start, so its polls are only a safety net.
    """

    starting: Phase
    running: Phase
    jitter: float = 0.1
    swept_starting: Phase | None = None

    def delay_s(
        self, state: RunState, age_s: float, rand: float | None = None, *, swept: bool = False
    ) -> float:
        if state is RunState.RUNNING:
            phase = self.running
        elif swept and self.swept_starting is not None:
            phase = self.swept_starting
        else:
            phase = self.starting
        base = phase.delay_s(max(age_s, 0.0))
        # Jitter spreads runs submitted together, so their polls do not arrive in bursts.
        r = random.random() if rand is None else rand  # noqa: S311 - load spreading, not crypto
        return base * (1.0 + self.jitter * (2.0 * r - 1.0))


WORKER_CADENCE = Cadence(
    # Starting: 1 s, then half the age (2 s at 4 s, 5 s at 10 s), at most 30 s.
    starting=Phase(first_s=1.0, ratio=0.5, cap_s=30.0),
    # Running: the sweep finds the end; this is the safety poll, 30 s → 5 min.
    running=Phase(first_s=30.0, ratio=0.5, cap_s=300.0),
    # Starting in a pool the node sweep lists: it sees the task start within a sweep, so
    # the poll is a safety net (and finds a task still waiting for a node): 10 s → 30 s.
    swept_starting=Phase(first_s=10.0, ratio=0.5, cap_s=30.0),
)
"""The worker's cadence: sweeps see tasks start and end; polls are the safety net."""

RUN_ONCE_CADENCE = Cadence(
    # One run, no sweep: polls are the detection, so they stay brisk (0.25 s → 15 s).
    starting=Phase(first_s=0.25, ratio=0.05, cap_s=15.0),
    running=Phase(first_s=0.25, ratio=0.05, cap_s=15.0),
    jitter=0.0,
)
"""`task run` / `run wait`: one run followed by polls alone."""


class Backoff:
    """Doubling delays ``first_s, 2·first_s, …`` capped at ``cap_s``; ``reset()`` on success."""

    def __init__(self, first_s: float, cap_s: float) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._next = first_s

    def next_s(self) -> float:
        current = self._next
        self._next = min(self._next * 2.0, self.cap_s)
        return current

    def reset(self) -> None:
        self._next = self.first_s
