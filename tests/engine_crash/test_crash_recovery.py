"""Issue 4, acceptance 2: SIGKILL the worker at random points, restart it, lose nothing.

`polysync worker` runs as a subprocess on a SQLite store against an emulator (its own
process). Runs are queued in batches while the worker is killed with SIGKILL at seeded
random moments and restarted each time; one kill is placed deterministically between the
create-job and create-task calls: a fault rule delays ``POST /jobs/*/tasks`` by a few
seconds, the test waits for a new ``POST /jobs`` 201 in the request log and kills the
worker while its task creation is still pending.

At the end:
* every run is terminal, in the state its exit codes and retry policy call for (tasks exit
  with CODE1 on attempt 1 and CODE2 on later attempts; "retry" allows 2 attempts);
* nothing is lost (no run left Queued/Starting/Running);
* no Batch job was created twice: the emulator's job list holds exactly one job per
  attempt the store recorded, the request log shows as many ``POST /jobs`` 201 as there
  are jobs, and every job got exactly one ``POST /jobs/{id}/tasks`` 201.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from _workload import (
    NONTERMINAL,
    Child,
    EmulatorProcess,
    TaskSetup,
    created_jobs,
    created_tasks_by_job,
    installation_prefix,
    list_job_ids,
    make_template,
    queue_runs,
    read_attempts,
    read_runs,
    setup_polysync,
    start_worker,
)
from polysync.domain.models import BackoffStrategy, RetryPolicy
from tests.support import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
]

SEED = 20240604
RUNS = 220
BATCHES = 11  # one batch of runs queued before each kill
KILLS = 11
DETERMINISTIC_KILL = 2  # the kill placed between create-job and create-task
TASK_LATENCY_MS = 4000
POOL = "crash"
TEMPLATE = "crash-template"
# Exit with CODE1 on the first attempt, CODE2 on any later one (attempt is in the job id).
COMMAND = (
    '/bin/sh -c \'sleep $SECS; case "$AZ_BATCH_JOB_ID" in *-a1) exit $CODE1;; '
    "*) exit $CODE2;; esac'"
)
RETRY = RetryPolicy(
    enabled=True,
    max_attempts=2,
    backoff=BackoffStrategy.FIXED,
    initial_delay_s=0.2,
    max_delay_s=1.0,
)


@dataclass(frozen=True)
class Plan:
    task: str  # "plain" (no retry) or "retry"
    secs: float
    code1: int
    code2: int

    @property
    def overrides(self) -> dict[str, str]:
        return {"SECS": f"{self.secs:g}", "CODE1": str(self.code1), "CODE2": str(self.code2)}

    def expected(self) -> tuple[str, int, int]:
        """(final state, final exit code, number of attempts)."""
        if self.code1 == 0:
            return "Succeeded", 0, 1
        if self.task == "plain":
            return "Failed", self.code1, 1
        return ("Succeeded" if self.code2 == 0 else "Failed"), self.code2, 2


def make_plans(rng: random.Random) -> list[Plan]:
    return [
        Plan(
            task=rng.choice(("plain", "retry")),
            secs=round(rng.uniform(0.1, 1.5), 1),
            code1=rng.choice((0, 0, 0, 3, 7)),
            code2=rng.choice((0, 4)),
        )
        for _ in range(RUNS)
    ]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(tmp_path / "emu", [f"{POOL}=2x24"]) as emu:
        yield emu


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    plans = make_plans(rng)
    make_template(
        emulator.endpoint,
        TEMPLATE,
        COMMAND,
        pool_id=POOL,
        env={"SECS": "0.1", "CODE1": "0", "CODE2": "0"},
    )
    home = tmp_path / "home"
    db_url = f"sqlite:///{home / 'polysync.db'}"
    svc = setup_polysync(
        home,
        db_url,
        emulator.endpoint,
        TEMPLATE,
        [TaskSetup("plain"), TaskSetup("retry", RETRY)],
    )
    emulator.control.clear_requests()
    worker_args = ("--lease", "3", "--sweep-interval", "0.5")
    run_plans: dict[int, Plan] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    batch = RUNS // BATCHES
    between_job_and_task = False
    try:
        for kill in range(KILLS):
            chunk = plans[kill * batch : (kill + 1) * batch]
            ids = queue_runs(svc, [(p.task, p.overrides) for p in chunk])
            run_plans.update(zip(ids, chunk, strict=True))
            if kill == DETERMINISTIC_KILL:
                between_job_and_task = _kill_between_create_calls(
                    emulator, home, db_url, logs / f"worker-{kill}.log", worker_args
                )
                continue
            worker = start_worker(home, db_url, logs / f"worker-{kill}.log", *worker_args)
            # The kill point itself (not a wait for a condition): a random moment of the
            # worker's life — start-up and recovery, claiming, submitting, polling.
            time.sleep(rng.uniform(0.3, 3.5))
            usage = worker.kill()
            assert usage.returncode == -9, worker.log_tail()
        assert len(run_plans) == RUNS
        prefix = installation_prefix(svc)
    finally:
        svc.close()

    assert between_job_and_task, "the deterministic kill did not land between the create calls"
    final = start_worker(home, db_url, logs / "worker-final.log", "--exit-when-idle", *worker_args)
    ended = final.wait(90)
    if ended is None:
        final.kill()
        pytest.fail(f"the last worker did not finish within 90 s:\n{final.log_tail()}")
    assert ended.returncode == 0, final.log_tail()

    runs = read_runs(db_url)
    lost = [r.id for r in runs if r.state in NONTERMINAL]
    assert lost == [], f"runs left unfinished: {lost}"
    attempts = read_attempts(db_url)
    by_run: dict[int, list[str]] = {}
    for a in attempts:
        by_run.setdefault(a.run_id, []).append(a.batch_job_id)
    wrong = []
    for run in runs:
        want = run_plans[run.id].expected()
        got = (run.state, run.exit_code, len(by_run.get(run.id, [])))
        if got != want:
            wrong.append((run.id, run_plans[run.id], got))
    assert wrong == [], f"{len(wrong)} runs ended wrong (run, plan, (state, exit, attempts)):\n" + (
        "\n".join(map(str, wrong[:20]))
    )
    assert sorted({r.state for r in runs}) == ["Failed", "Succeeded"]
    assert any(len(jobs) == 2 for jobs in by_run.values()), "no retry happened"

    recorded = [a.batch_job_id for a in attempts]
    assert len(recorded) == len(set(recorded)), "two attempts recorded the same Batch job"
    listed = asyncio.run(list_job_ids(emulator.endpoint, prefix))
    assert sorted(listed) == sorted(recorded), "Batch jobs and recorded attempts differ"
    log = emulator.control.requests()
    assert created_jobs(log) == len(listed), "a Batch job was created more than once"
    assert created_tasks_by_job(log) == dict.fromkeys(listed, 1)


def _kill_between_create_calls(
    emulator: EmulatorProcess, home: Path, db_url: str, log: Path, worker_args: tuple[str, ...]
) -> bool:
    """Kill a worker after its ``POST /jobs`` and before its ``POST /jobs/{id}/tasks`` got
    through: the fault rule holds task creations for a few seconds in the emulator."""
    seen = len(emulator.control.requests())
    emulator.control.set_faults(
        [{"method": "POST", "path": "/jobs/*/tasks", "latency_ms": TASK_LATENCY_MS}]
    )
    worker: Child | None = None
    try:
        worker = start_worker(home, db_url, log, *worker_args)
        wait_until(
            lambda: created_jobs(emulator.control.requests()[seen:]) > 0,
            30,
            "the worker's first POST /jobs",
            interval_s=0.02,
        )
        worker.kill()
        # The request log records a call when it is answered: the held task creations are
        # not in it yet, so more jobs than task creations means a job is waiting for its task.
        new = emulator.control.requests()[seen:]
        tasks_posted = sum(1 for e in new if e["method"] == "POST" and e["path"].endswith("/tasks"))
        return created_jobs(new) > tasks_posted
    finally:
        if worker is not None and worker.usage is None:
            worker.kill()
        emulator.control.clear_faults()
