"""Batch ids derived from Polysync ids, and the metadata fingerprint (D5). Pure.

Batch job and task ids allow ``[A-Za-z0-9_-]``, at most 64 characters, and are
case-insensitive: two ids differing only by case collide (NOTES.md §10.1). Every id made
here is lower-case and built from fixed separators, so distinct (installation, run,
attempt) triples never collide, with or without case.

A Batch job id is ``ps-{installation}-r{run_id}-a{attempt}``. The installation id keeps two
Polysync databases pointed at one account from adopting each other's jobs; run id and
attempt make the id deterministic, so a restart between "persist" and "create" re-derives
the same id and finds the job it already made (``JobExists`` → fingerprint check).
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Iterable, Mapping

BATCH_ID_MAX_LEN = 64
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

INSTALLATION_ID_LEN = 8
_INSTALLATION_ALPHABET = string.ascii_lowercase + string.digits
_INSTALLATION_ID = re.compile(rf"[a-z0-9]{{{INSTALLATION_ID_LEN}}}")

JOB_ID_PREFIX = "ps-"
# Leading zeros are refused so that parsing and formatting are exact inverses.
_JOB_ID = re.compile(r"ps-([a-z0-9]{8})-r([1-9][0-9]*)-a([1-9][0-9]*)", re.IGNORECASE)

DEFAULT_TASK_ID = "task"

META_INSTALLATION = "polysync.installation"
META_RUN = "polysync.run"
META_ATTEMPT = "polysync.attempt"


def new_installation_id() -> str:
    """A fresh random installation id: 8 lower-case letters/digits (~41 bits)."""
    return "".join(secrets.choice(_INSTALLATION_ALPHABET) for _ in range(INSTALLATION_ID_LEN))


def validate_installation_id(installation_id: str) -> None:
    if _INSTALLATION_ID.fullmatch(installation_id) is None:
        raise ValueError(
            f"installation id {installation_id!r} must be {INSTALLATION_ID_LEN} lower-case "
            "letters or digits; the database holds a corrupt value"
        )


def is_valid_batch_id(value: str) -> bool:
    """True when Batch accepts ``value`` as a job or task id (NOTES.md §10.1)."""
    return _BATCH_ID.fullmatch(value) is not None


def job_id_prefix(installation_id: str) -> str:
    """The prefix of every Batch job this installation creates (for sweeps and listings)."""
    validate_installation_id(installation_id)
    return f"{JOB_ID_PREFIX}{installation_id}-"


def batch_job_id(installation_id: str, run_id: int, attempt: int) -> str:
    """``ps-{installation}-r{run_id}-a{attempt}``; deterministic and ≤ 64 characters."""
    if run_id < 1 or attempt < 1:
        raise ValueError(f"run id and attempt start at 1, got run {run_id} attempt {attempt}")
    job_id = f"{job_id_prefix(installation_id)}r{run_id}-a{attempt}"
    if len(job_id) > BATCH_ID_MAX_LEN:
        raise ValueError(f"run {run_id} attempt {attempt} gives a Batch job id over 64 characters")
    return job_id


def parse_batch_job_id(job_id: str) -> tuple[str, int, int] | None:
    """``(installation, run_id, attempt)`` for a Polysync job id, else None (not ours)."""
    match = _JOB_ID.fullmatch(job_id)
    if match is None or len(job_id) > BATCH_ID_MAX_LEN:
        return None
    return match.group(1).lower(), int(match.group(2)), int(match.group(3))


def batch_task_id(task_name: str) -> str:
    """A Batch task id from a Polysync task name: a readable slug in ``[A-Za-z0-9_-]{1,64}``.

    Every run has its own Batch job holding exactly one task, so the task id needs no
    uniqueness of its own; it only has to be valid and recognisable in the portal.
    Disallowed characters become ``-``, runs of ``-`` collapse, ``-`` is trimmed from both
    ends, and the result is cut to 64 characters. Case is kept (Batch preserves it).
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", task_name)
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    slug = slug[:BATCH_ID_MAX_LEN].rstrip("-")
    return slug or DEFAULT_TASK_ID


def fingerprint(installation_id: str, run_id: int, attempt: int) -> list[tuple[str, str]]:
    """Metadata (name, value) pairs that mark a Batch job as this run attempt's (D5)."""
    validate_installation_id(installation_id)
    return [
        (META_INSTALLATION, installation_id),
        (META_RUN, str(run_id)),
        (META_ATTEMPT, str(attempt)),
    ]


def fingerprint_matches(
    metadata: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    installation_id: str,
    run_id: int,
    attempt: int,
) -> bool:
    """True only when ``metadata`` carries exactly this run attempt's fingerprint.

    Extra metadata items (copied from the template, D2) are fine; a missing or different
    fingerprint item is not — that job belongs to someone else and must not be adopted.
    """
    if metadata is None:
        return False
    items = dict(metadata.items() if isinstance(metadata, Mapping) else metadata)
    expected = fingerprint(installation_id, run_id, attempt)
    return all(items.get(name) == value for name, value in expected)
