"""Exactly one submitter per run: `task run` beside running `polysync worker`s.

The CLI and the workers are real processes on one store (SQLite, or PostgreSQL with two
workers) and the emulator; the emulator's request log counts every create call and every
409, so a run submitted by two processes shows even though Batch keeps one job for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from polysync.config import load_settings
from polysync.domain.ids import job_id_prefix
from polysync.domain.models import RunState
from polysync.services.context import open_services
from tests.cli.conftest import KEY_ENV, SUBSCRIPTION, Cli, make_template
from tests.cli.test_cli_flow import unique
from tests.requestlog import creates
from tests.store.conftest import reset_postgres
from tests.support import wait_until
from tests.workers import slow_creates, workers

QUICK = "/bin/sh -c 'echo done'"
RUNS = 10
PG_URL = os.environ.get("POLYSYNC_TEST_POSTGRES_URL", "")

pytestmark = pytest.mark.slow


def _setup_task(cli: Cli, platform: str, batch: BatchClient, name: str) -> None:
    template = unique("one")
    make_template(batch, template, QUICK)
    assert cli("job", "import", "-p", platform, template).code == 0
    assert cli("task", "create", name, "--job", template).code == 0


def _cli_all(cli: Cli, argvs: list[list[str]]) -> list[tuple[int, str]]:
    """Run the CLI commands side by side (as users and scripts do), each to its end."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "polysync", *argv],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out + err))
    return results


def _runs(env: Mapping[str, str]) -> tuple[list[RunState], str]:
    """The runs' states in the CLI's store, and its Batch job id prefix."""
    settings = load_settings(
        {"home": env["POLYSYNC_HOME"], "database_url": env.get("POLYSYNC_DATABASE_URL")},
        environ={},
    )
    svc = open_services(settings)
    try:
        prefix = job_id_prefix(svc.store.installation_id())
        return [r.state for r in svc.store.list_runs(limit=1000)], prefix
    finally:
        svc.close()


def _all_ended(env: Mapping[str, str], count: int) -> bool:
    states, _ = _runs(env)
    return len(states) == count and all(s.is_terminal for s in states)


def _no_wait_beside_workers(
    cli: Cli, platform: str, batch: BatchClient, emulator: EmulatorServer, tmp_path: Path,
    worker_ids: tuple[str, ...],
) -> None:  # fmt: skip
    _setup_task(cli, platform, batch, "quick")
    with workers(cli.env, tmp_path, *worker_ids), slow_creates(emulator):
        emulator.control.clear_requests()
        # One after the other, so the workers are never starved of CPU and claim as often
        # as they do in production (every 0.5 s): each submission meets a claim pass.
        results = [cli("task", "run", "quick", "--no-wait") for _ in range(RUNS)]
        assert [r.code for r in results] == [0] * RUNS, results
        wait_until(lambda: _all_ended(cli.env, RUNS), 90, "the workers to finish every run")
    # Read once the workers have stopped: they let their submissions in flight finish, and
    # the log records a call when it is answered — a late duplicate is counted too.
    log = emulator.control.requests()
    states, prefix = _runs(cli.env)
    assert states == [RunState.SUCCEEDED] * RUNS
    seen = creates(log, prefix)
    assert (seen.job_posts, seen.job_conflicts) == (RUNS, 0), seen
    assert (seen.task_posts, seen.task_conflicts) == (RUNS, 0), seen
    assert len(seen.jobs_posted) == RUNS
    # The user is told who tracks the run from here.
    assert all("a worker tracks it" in r.stdout for r in results), results[0].stdout


def test_no_wait_runs_beside_a_worker_are_submitted_once(
    cli: Cli, local_platform: str, batch: BatchClient, emulator: EmulatorServer, tmp_path: Path
) -> None:
    _no_wait_beside_workers(cli, local_platform, batch, emulator, tmp_path, ("w1",))


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="POLYSYNC_TEST_POSTGRES_URL is not set")
def test_no_wait_runs_beside_two_workers_on_postgres_are_submitted_once(
    cli: Cli, batch: BatchClient, emulator: EmulatorServer, tmp_path: Path
) -> None:
    reset_postgres(PG_URL)
    cli.env["POLYSYNC_DATABASE_URL"] = PG_URL
    added = cli(
        "platform", "add", "local", "--account-url", emulator.endpoint,
        "--account-name", emulator.account, "--subscription-id", SUBSCRIPTION,
        "--resource-group", "rg", "--key-env", KEY_ENV,
    )  # fmt: skip
    assert added.code == 0, added.stderr
    _no_wait_beside_workers(cli, "local", batch, emulator, tmp_path, ("w1", "w2"))


def test_waiting_task_run_beside_a_worker_submits_once(
    cli: Cli, local_platform: str, batch: BatchClient, emulator: EmulatorServer, tmp_path: Path
) -> None:
    _setup_task(cli, local_platform, batch, "follow")
    runs = 4
    with workers(cli.env, tmp_path, "w1"), slow_creates(emulator):
        emulator.control.clear_requests()
        results = _cli_all(cli, [["task", "run", "follow"]] * runs)
    log = emulator.control.requests()  # once the worker has stopped (see above)
    assert [code for code, _ in results] == [0] * runs, results
    # The user still sees the RunId and the monitor link before the live status.
    assert all("portal.azure.com" in text for _, text in results), results[0][1]
    states, prefix = _runs(cli.env)
    assert states == [RunState.SUCCEEDED] * runs
    seen = creates(log, prefix)
    assert (seen.job_posts, seen.job_conflicts) == (runs, 0), seen
    assert (seen.task_posts, seen.task_conflicts) == (runs, 0), seen
