"""What the emulator's request log says about run submissions (one submitter per run).

Counts every create call, whatever its answer: a second submitter of a run shows up as a
second ``POST /jobs`` (answered 409 ``JobExists`` and adopted, D5) even though Batch holds
one job, so counting only the 201s would hide it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Creates:
    job_posts: int  # every POST /jobs, any status
    job_conflicts: int  # POST /jobs answered 409 (JobExists)
    task_posts: int  # every POST /jobs/{id}/tasks, any status
    task_conflicts: int  # POST /jobs/{id}/tasks answered 409 (TaskExists)
    jobs_posted: frozenset[str]  # the job ids of the task creations


def _is_task_post(entry: Mapping[str, Any]) -> bool:
    parts = str(entry["path"]).strip("/").split("/")
    is_tasks = len(parts) == 3 and parts[0] == "jobs" and parts[2] == "tasks"
    return entry["method"] == "POST" and is_tasks


def creates(entries: Iterable[Mapping[str, Any]], job_prefix: str = "") -> Creates:
    """Create calls in a request log; with ``job_prefix``, only task posts under such jobs
    (a template created by the test itself is not a run's)."""
    job_posts = job_conflicts = task_posts = task_conflicts = 0
    posted: set[str] = set()
    for e in entries:
        if e["method"] == "POST" and e["path"] == "/jobs":
            job_posts += 1
            job_conflicts += e["status"] == 409
        elif _is_task_post(e):
            job_id = str(e["path"]).strip("/").split("/")[1]
            if not job_id.lower().startswith(job_prefix.lower()):
                continue
            task_posts += 1
            task_conflicts += e["status"] == 409
            posted.add(job_id)
    return Creates(job_posts, job_conflicts, task_posts, task_conflicts, frozenset(posted))
