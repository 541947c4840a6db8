"""`polysync task|job|platform remove --force` stop their runs' Batch work first."""

from __future__ import annotations

from typing import Any

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from tests.cli.conftest import Cli, make_template
from tests.cli.test_cli_flow import unique
from tests.support import wait_until

# The template's own task ends at once; the runs' tasks sleep (SECS=120 on the Task).
SLEEP = "/bin/sh -c 'sleep $SECS'"


def _running(cli: Cli, platform: str, batch: BatchClient, task: str) -> dict[str, Any]:
    template = unique("rm")
    make_template(batch, template, SLEEP, env={"SECS": "0"})
    assert cli("job", "import", "-p", platform, template).code == 0
    assert cli("task", "create", task, "--job", template, "--param", "SECS=120").code == 0
    submitted = cli("task", "run", task, "--no-wait", "-o", "json")
    assert submitted.code == 0, submitted.stderr
    run: dict[str, Any] = submitted.json()
    wait_until(
        lambda: batch.get_task(run["batch_job_id"], run["batch_task_id"]).state == "running",
        30,
        "the run's Batch task to start",
    )
    return run


@pytest.mark.parametrize("kind", ["task", "job", "platform"])
def test_forced_remove_terminates_the_batch_job_of_a_running_run(
    cli: Cli, local_platform: str, batch: BatchClient, kind: str
) -> None:
    run = _running(cli, local_platform, batch, "sleeper")
    name = {"task": run["task"], "job": run["job"], "platform": run["platform"]}[kind]

    removed = cli(kind, "remove", name, "--force")

    assert removed.code == 0, removed.stderr
    assert batch.get_task(run["batch_job_id"], run["batch_task_id"]).state == "completed"
    assert batch.get_job(run["batch_job_id"]).state in ("terminating", "completed")
    assert f"run(s) {run['id']} was stopped first" in removed.stdout
    gone = cli("run", "show", str(run["id"]))
    assert gone.code == 2


def test_forced_remove_that_batch_refuses_removes_nothing(
    cli: Cli, local_platform: str, batch: BatchClient, emulator: EmulatorServer
) -> None:
    run = _running(cli, local_platform, batch, "sleeper")
    emulator.control.set_faults(
        [
            {"method": "POST", "path": "/jobs/*/terminate", "status": 403},
            {"method": "POST", "path": "/jobs/*/tasks/*/terminate", "status": 403},
        ]
    )
    try:
        refused = cli("task", "remove", "sleeper", "--force")
    finally:
        emulator.control.clear_faults()
    assert refused.code == 3
    # One sentence (the rest of stderr is the test's DEBUG log of the SDK), no traceback.
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    assert f"task sleeper was not removed: the Batch work of run(s) {run['id']}" in lines[0]
    assert "polysync platform test local" in lines[0]
    shown = cli("run", "show", str(run["id"]), "-o", "json")
    assert shown.code == 0
    assert shown.json()["state"] == "Running"
    assert cli("task", "show", "sleeper").code == 0
    assert batch.get_task(run["batch_job_id"], run["batch_task_id"]).state == "running"
