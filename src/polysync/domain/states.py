"""The TaskRun state machine (D7) and the folding of provider statuses into it. Pure.

    (created) → Queued → Starting → Running → Succeeded | Failed | Cancelled

Queued may end without starting (Failed: a pre-flight or secret error; Cancelled: a
cancel before submission), and Starting may end directly: a short task can start and
finish between two polls. Succeeded and Cancelled are final.

Retries: each attempt is its own Batch job (D5), and the run keeps every attempt in its
history. A failed attempt with attempts left goes Failed → Queued with ``attempt + 1`` —
that edge exists only through :func:`retry_transition`, which consults the Task's retry
policy; :func:`can_transition` refuses it unless asked with ``retry=True``. So Failed is
final unless the retry policy reopens the run, and ``RunState.is_terminal`` stays the
test for "this attempt is over".

The provider statuses (the seed's Starting / Running / Success / Failed / Unknown,
``polysync.jobtypes.base.ProviderStatus``) are decoded per poll; :func:`fold` maps one onto
the run's current state. Unknown never changes the state (it is a diagnostic, D7), and no
status ever moves a run backwards (Batch may put a running task back to ``active`` for its
own in-place retries, NOTES.md §10.6; the user already saw it running).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from polysync.domain.durations import format_duration_s
from polysync.domain.models import RetryPolicy, RunState
from polysync.domain.retry import retries_allowed, retry_delay_s
from polysync.errors import PolysyncError

if TYPE_CHECKING:
    # Imported for types only: jobtypes.base imports polysync.domain, so a runtime import
    # here would be circular. ProviderStatus is a StrEnum, compared by value below.
    from polysync.jobtypes.base import ProviderStatus


class InvalidTransition(PolysyncError):
    """A state change the run state machine does not allow (a bug or a lost race)."""

    code = "InvalidTransition"


_Q, _ST, _RU = RunState.QUEUED, RunState.STARTING, RunState.RUNNING
_OK, _KO, _CA = RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED

TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    _Q: frozenset({_ST, _KO, _CA}),
    _ST: frozenset({_RU, _OK, _KO, _CA}),
    _RU: frozenset({_OK, _KO, _CA}),
    _OK: frozenset(),
    _KO: frozenset(),
    _CA: frozenset(),
}
"""Every ordinary edge. The retry edge Failed → Queued is separate: :data:`RETRY_EDGE`."""

RETRY_EDGE = (_KO, _Q)

INITIAL_STATE = _Q
"""A run is created Queued (history row with ``from_state=None``)."""


def can_transition(from_state: RunState | None, to: RunState, *, retry: bool = False) -> bool:
    """True when ``from_state → to`` is allowed. ``None`` means "the run is being created"."""
    if from_state is None:
        return to is INITIAL_STATE
    if retry and (from_state, to) == RETRY_EDGE:
        return True
    return to in TRANSITIONS[from_state]


def check_transition(
    from_state: RunState | None,
    to: RunState,
    *,
    retry: bool = False,
    run_id: int | None = None,
) -> None:
    """Raise :class:`InvalidTransition` when ``from_state → to`` is not allowed."""
    if can_transition(from_state, to, retry=retry):
        return
    who = f"run {run_id}" if run_id is not None else "a run"
    start = from_state.value if from_state is not None else "(new)"
    if from_state is not None and from_state.is_terminal:
        hint = (
            f"{from_state.value} is final; start a new run with `polysync task run`"
            if (from_state, to) != RETRY_EDGE
            else "a failed attempt is re-queued only by the task's retry policy"
        )
    elif from_state is None:
        hint = f"a new run starts {INITIAL_STATE.value}"
    else:
        allowed = ", ".join(s.value for s in RunState if s in TRANSITIONS[from_state])
        hint = f"from {from_state.value} it can go to {allowed}; re-read the run and try again"
    raise InvalidTransition(f"{who} cannot go from {start} to {to.value}: {hint}.")


def fold(
    provider_status: ProviderStatus,
    current: RunState,
    cancel_requested: bool,
) -> RunState | None:
    """The run's next state after a poll, or None for "no change".

    * A terminal or Queued run does not move (Queued has no Batch task yet; submission,
      not polling, takes it to Starting).
    * Unknown → no change (D7).
    * Starting / Running move forward only.
    * Success → Succeeded, even after a cancel request: the task really finished first.
    * Failed → Failed, or Cancelled when a cancel was requested: terminating a task
      completes it with a failure (``TaskEnded``, NOTES.md §10.8), which is the cancel
      taking effect, not a failure of the work.
    """
    if current.is_terminal or current is _Q:
        return None
    status = str(provider_status)
    if status == "Starting":
        return None
    if status == "Running":
        return _RU if current is _ST else None
    if status == "Success":
        return _OK
    if status == "Failed":
        return _CA if cancel_requested else _KO
    return None


@dataclass(frozen=True, slots=True)
class RetryStep:
    """What to do after a failed attempt: re-queue as ``next_attempt`` after ``delay_s``."""

    to: RunState
    next_attempt: int
    delay_s: float
    reason: str  # for the history row, e.g. "retry 1 of 2 in 30s"


def _delay_text(delay_s: float) -> str:
    if delay_s == int(delay_s):
        return format_duration_s(int(delay_s))
    return f"{delay_s:.3g}s"


def retry_transition(
    current: RunState,
    attempt_that_failed: int,
    policy: RetryPolicy,
    *,
    cancel_requested: bool = False,
) -> RetryStep | None:
    """The retry of a Failed attempt, or None when the run stays Failed.

    Only Failed attempts retry: Cancelled means the user asked to stop, Succeeded needs
    nothing. A cancel requested during the attempt also stops the retries.
    """
    if current is not _KO:
        raise InvalidTransition(
            f"only a Failed attempt can be retried, this one is {current.value}; "
            "the retry policy applies after a failure."
        )
    if cancel_requested:
        return None
    delay = retry_delay_s(policy, attempt_that_failed)
    if delay is None:
        return None
    retry_number = attempt_that_failed
    return RetryStep(
        to=_Q,
        next_attempt=attempt_that_failed + 1,
        delay_s=delay,
        reason=f"retry {retry_number} of {retries_allowed(policy)} in {_delay_text(delay)}",
    )
