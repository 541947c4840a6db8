"""Removing a Platform, Job or Task; forced, its unfinished runs' Batch work stops first.

A forced removal deletes run records with the rest. A run still Queued, Starting or
Running would otherwise leave its Batch job running with nothing tracking it any more
(its nodes paid for, the account's active-job quota held). So every such run that reached
Batch is cancelled the way `run cancel` does it (terminate the task, then the job, D8),
and only then are the records deleted. If Batch cannot be reached or refuses for any of
them, nothing is deleted: the user is told which runs and what to do (the runs that were
stopped are recorded Cancelled, so no worker retries them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from polysync.domain.models import RunState, TaskRun
from polysync.errors import PolysyncError, RemovalBlocked
from polysync.services.context import Services

MAX_PARALLEL_CANCELS = 16
# Runs that reach Batch while the first ones are being cancelled (a worker submitting a
# Queued run) are caught by listing again; a few rounds settle any realistic race.
MAX_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Removal:
    kind: str  # "platform" | "job" | "task"
    name: str
    stopped: tuple[int, ...] = ()  # runs whose Batch task and job were terminated first

    def message(self) -> str:
        done = f"{self.kind.capitalize()} {self.name} removed"
        if not self.stopped:
            return f"{done}."
        return (
            f"{done}; the Batch work of its unfinished run(s) {_ids(self.stopped)} was stopped "
            "first (task terminated, then job)."
        )


async def remove_task(svc: Services, name: str, *, force: bool = False) -> Removal:
    """Remove a Task (refused while a run is unfinished unless ``force``)."""
    task = svc.store.get_task(name)
    return await _remove(
        svc,
        "task",
        task.name,
        force,
        lambda: svc.store.list_nonterminal_runs(task=task.name),
        lambda: svc.store.remove_task(task.name, force=force),
    )


async def remove_job(svc: Services, name: str, *, force: bool = False) -> Removal:
    """Remove a Job (refused while Tasks use it unless ``force``)."""
    job = svc.store.get_job(name)
    return await _remove(
        svc,
        "job",
        job.name,
        force,
        lambda: svc.store.list_nonterminal_runs(job=job.name),
        lambda: svc.store.remove_job(job.name, force=force),
    )


async def remove_platform(svc: Services, name: str, *, force: bool = False) -> Removal:
    """Remove a Platform (refused while Jobs use it unless ``force``)."""
    platform = svc.store.get_platform(name)
    return await _remove(
        svc,
        "platform",
        platform.name,
        force,
        lambda: svc.store.list_nonterminal_runs(platform.name),
        lambda: svc.store.remove_platform(platform.name, force=force),
    )


async def _remove(
    svc: Services,
    kind: str,
    name: str,
    force: bool,
    unfinished: Callable[[], list[TaskRun]],
    delete: Callable[[], None],
) -> Removal:
    if not force:
        delete()  # the store refuses while something depends on it, with its own sentence
        return Removal(kind, name)
    stopped: dict[int, TaskRun] = {}  # run -> its copy whose Batch job was stopped
    for _ in range(MAX_ROUNDS):
        # A run is (re)cancelled when it has Batch ids this removal has not stopped yet:
        # ids are stored before the create calls (D5), so a submission in flight counts.
        todo = [
            r
            for r in unfinished()
            if r.batch_job_id is not None
            and (r.id not in stopped or stopped[r.id].batch_job_id != r.batch_job_id)
        ]
        if not todo:
            break
        failed = await _cancel_all(svc, todo)
        stopped.update({r.id: r for r in todo if r.id not in failed})
        if failed:
            _record_cancelled(svc, list(stopped.values()), kind, name)
            raise _blocked(kind, name, todo, failed, sorted(stopped))
    delete()
    return Removal(kind, name, tuple(sorted(stopped)))


async def _cancel_all(svc: Services, runs: Sequence[TaskRun]) -> dict[int, PolysyncError]:
    """Terminate each run's Batch task, then its job (D8); the runs that failed, and why."""
    gate = asyncio.Semaphore(MAX_PARALLEL_CANCELS)
    failed: dict[int, PolysyncError] = {}

    async def one(run: TaskRun) -> None:
        async with gate:
            try:
                platform = svc.store.get_platform(run.platform)
                await svc.jobtype.cancel(platform, run)
            except PolysyncError as exc:  # unreachable, refused, credential unreadable
                failed[run.id] = exc

    await asyncio.gather(*(one(r) for r in runs))
    return failed


def _record_cancelled(svc: Services, runs: Sequence[TaskRun], kind: str, name: str) -> None:
    """The removal stopped half-way: the runs whose Batch work did stop end Cancelled (a
    worker would otherwise see a terminated task as a failure and retry it)."""
    for run in runs:
        svc.store.request_cancel(run.id)
        if svc.store.get_run(run.id).state.is_terminal:
            continue  # it ended by itself meanwhile: keep its real outcome
        svc.store.transition(
            run.id,
            RunState.CANCELLED,
            reason=f"cancelled by a forced removal of {kind} {name}: Batch task "
            "terminated, then its job",
            ended_at=svc.clock(),
        )


def _blocked(
    kind: str,
    name: str,
    runs: Sequence[TaskRun],
    failed: dict[int, PolysyncError],
    stopped: Sequence[int],
) -> RemovalBlocked:
    cause = str(failed[min(failed)]).rstrip(".")
    platforms = sorted({r.platform for r in runs if r.id in failed})
    check = ", ".join(f"`polysync platform test {p}`" for p in platforms)
    if "polysync platform test" not in cause:  # Batch errors often say it already
        cause += f"; check the platform with {check}"
    message = (
        f"{kind} {name} was not removed: the Batch work of run(s) {_ids(sorted(failed))} "
        f"could not be stopped ({cause}); nothing was deleted, force the removal again once "
        "Batch answers."
    )
    if stopped:
        message += f" Run(s) {_ids(stopped)} were stopped and are now Cancelled."
    return RemovalBlocked(message)


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
