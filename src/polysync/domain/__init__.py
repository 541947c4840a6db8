"""Pure domain of Polysync: value objects and the rules around them.

Modules (import them by name, e.g. ``from polysync.domain import ids, parameters``):

* ``models``      value objects (Platform, Job, Parameter, Task, TaskRun, …)
* ``parameters``  names, types, directions, value checks, precedence (D11)
* ``secrets``     env:/file: references, resolution, masking of live secrets
* ``states``      the run state machine, folding of provider statuses, retries (D7)
* ``ids``         Batch job/task ids and the metadata fingerprint (D5)
* ``retry``       retry policy validation and delays
* ``durations``   duration text ↔ seconds ↔ ISO 8601
* ``limits``      the bounds on every input, shared by the CLI, the console and the API
* ``cadence``     when to poll a run next (by state and age), doubling backoff

Nothing here does I/O except :func:`polysync.domain.secrets.resolve`.
"""

from __future__ import annotations

from polysync.domain import durations, ids, models, parameters, retry, secrets, states
from polysync.domain.models import (
    BackoffStrategy,
    DataType,
    Direction,
    Job,
    Parameter,
    RetryPolicy,
    RunState,
    SecretRef,
    Task,
    TaskRun,
)
from polysync.domain.parameters import ParamValue
from polysync.domain.secrets import RedactingFilter, Redactor
from polysync.domain.states import InvalidTransition, RetryStep

__all__ = [
    "BackoffStrategy",
    "DataType",
    "Direction",
    "InvalidTransition",
    "Job",
    "ParamValue",
    "Parameter",
    "RedactingFilter",
    "Redactor",
    "RetryPolicy",
    "RetryStep",
    "RunState",
    "SecretRef",
    "Task",
    "TaskRun",
    "durations",
    "ids",
    "models",
    "parameters",
    "retry",
    "secrets",
    "states",
]
