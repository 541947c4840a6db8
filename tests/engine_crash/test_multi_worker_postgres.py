"""Issue 4, acceptance 3: three workers share one PostgreSQL store; one is killed midway.

Three ``polysync worker`` subprocesses (ids w1, w2, w3; short leases) work through 510
queued runs against one emulator. Once w2 holds claimed, unfinished runs and about a third
of all runs are done, w2 gets SIGKILL. The other two must take w2's runs over after its
lease expires and finish everything:

* every run ends Succeeded (all tasks exit 0, no retries), so nothing is lost;
* each run was submitted exactly once: one Batch job per run in the emulator's job list,
  as many ``POST /jobs`` 201 as runs in the request log, one task creation per job;
* w2 had claimed runs that were still in flight when it died, and each of them was
  finished after its death (their terminal write is later than the kill).

Needs ``POLYSYNC_TEST_POSTGRES_URL`` (CI and ``scripts/test.sh`` set it); its ``public``
schema is dropped and recreated first, so point it at a throwaway database.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
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
    read_runs,
    setup_polysync,
    start_worker,
)
from tests.store.conftest import reset_postgres
from tests.support import wait_until

PG_URL = os.environ.get("POLYSYNC_TEST_POSTGRES_URL", "")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not PG_URL, reason="POLYSYNC_TEST_POSTGRES_URL is not set"),
]

RUNS = 510
WORKERS = ("w1", "w2", "w3")
VICTIM = "w2"
LEASE_S = "3"
POOL = "multi"
TEMPLATE = "multi-template"
COMMAND = "/bin/sh -c 'sleep $SECS'"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with EmulatorProcess(tmp_path / "emu", [f"{POOL}=2x128"]) as emu:
        yield emu


def test_three_workers_share_runs_and_survive_one_killed(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    reset_postgres(PG_URL)
    rng = random.Random(7)
    make_template(emulator.endpoint, TEMPLATE, COMMAND, pool_id=POOL, env={"SECS": "1"})
    svc = setup_polysync(
        tmp_path / "home-setup", PG_URL, emulator.endpoint, TEMPLATE, [TaskSetup("t")]
    )
    try:
        queue_runs(svc, [("t", {"SECS": f"{rng.uniform(0.5, 3.0):.1f}"}) for _ in range(RUNS)])
        prefix = installation_prefix(svc)
    finally:
        svc.close()
    emulator.control.clear_requests()

    workers: dict[str, Child] = {}
    try:
        for wid in WORKERS:
            args = ["--worker-id", wid, "--lease", LEASE_S]
            if wid != VICTIM:
                args.append("--exit-when-idle")
            # Each worker has its own home (as on separate machines); the store is shared.
            workers[wid] = start_worker(
                tmp_path / f"home-{wid}", PG_URL, tmp_path / f"{wid}.log", *args
            )

        def victim_busy_midway() -> bool:
            runs = read_runs(PG_URL)
            done = sum(1 for r in runs if r.state not in NONTERMINAL)
            mine = [r for r in runs if r.claimed_by == VICTIM and r.state in NONTERMINAL]
            return done >= RUNS // 3 and len(mine) > 0

        wait_until(
            victim_busy_midway,
            90,
            f"{VICTIM} to hold runs with a third of them done",
            interval_s=0.1,
        )
        workers[VICTIM].kill()
        killed_at = datetime.now(UTC)
        orphans = {
            r.id for r in read_runs(PG_URL) if r.claimed_by == VICTIM and r.state in NONTERMINAL
        }
        assert orphans, f"{VICTIM} held no unfinished run when it was killed"

        for wid in WORKERS:
            if wid == VICTIM:
                continue
            usage = workers[wid].wait(120)
            if usage is None:
                pytest.fail(f"worker {wid} did not finish in time:\n{workers[wid].log_tail()}")
            assert usage.returncode == 0, workers[wid].log_tail()
    finally:
        for child in workers.values():
            if child.usage is None:
                child.kill()

    runs = read_runs(PG_URL)
    assert len(runs) == RUNS
    not_ok = [(r.id, r.state) for r in runs if r.state != "Succeeded"]
    assert not_ok == [], f"runs not Succeeded: {not_ok[:20]}"
    assert all(r.attempt == 1 for r in runs)
    # The victim's unfinished runs were finished by the others, after it died.
    late = {r.id for r in runs if r.id in orphans and r.updated_at > killed_at}
    assert late == orphans

    job_ids = {r.batch_job_id for r in runs}
    assert None not in job_ids
    assert len(job_ids) == RUNS
    listed = asyncio.run(list_job_ids(emulator.endpoint, prefix))
    assert sorted(listed) == sorted(str(j) for j in job_ids), "Batch jobs and runs differ"
    log = emulator.control.requests()
    assert created_jobs(log) == RUNS, "a run was submitted more than once"
    assert created_tasks_by_job(log) == dict.fromkeys(listed, 1)
