"""The server without a worker (`--no-worker`) beside a `polysync worker` on its store.

Runs started through the API are created claimed by the server's follower and followed
by it; the worker must never submit them too — neither the first attempt nor a retry
(the Failed → Queued move frees a run, and both used to race for it). The emulator's
request log counts every create call and every 409.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.domain.ids import job_id_prefix
from tests.api.conftest import KEY_ENV, Api, is_terminal
from tests.requestlog import creates
from tests.support import create_template
from tests.workers import slow_creates, workers

pytestmark = pytest.mark.slow

# Fails on its first attempt, succeeds on the second (the attempt is in the job id).
RETRIED = "/bin/sh -c 'case \"$AZ_BATCH_JOB_ID\" in *-a1) exit 3;; *) exit 0;; esac'"
RUNS = 4


def test_server_follower_beside_a_worker_submits_each_attempt_once(
    api: Api, batch: BatchClient, emulator: EmulatorServer, tmp_path: Path
) -> None:
    api.add_platform()
    template = create_template(batch, RETRIED, prefix="retried")
    r = api.post(
        "/api/jobs/import", role="operator", json={"platform": "local", "external_ids": [template]}
    )
    assert r.status_code == 201, r.text
    retry = {"enabled": True, "max_attempts": 2, "initial_delay_s": 1, "max_delay_s": 1}
    r = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "retried", "job": template, "retry_policy": retry},
    )
    assert r.status_code == 201, r.text
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("POLYSYNC_")},
        "POLYSYNC_HOME": str(tmp_path / "home"),
        KEY_ENV: DEFAULT_KEY,
    }
    with workers(env, tmp_path, "beside"), slow_creates(emulator):
        emulator.control.clear_requests()
        ids = [
            api.post("/api/tasks/retried/runs", role="operator").json()["id"] for _ in range(RUNS)
        ]
        done = [api.wait_run(i, is_terminal, timeout_s=60) for i in ids]
    # Read once the worker has stopped: it lets its submissions in flight finish first, and
    # the log records a call when it is answered — a late duplicate is counted too.
    log = emulator.control.requests()
    assert [(d["state"], d["attempt"]) for d in done] == [("Succeeded", 2)] * RUNS, done
    prefix = job_id_prefix(api.app.state.services.store.installation_id())
    seen = creates(log, prefix)
    # One job and one task per attempt, each created once: nobody else submitted them.
    assert (seen.job_posts, seen.job_conflicts) == (2 * RUNS, 0), seen
    assert (seen.task_posts, seen.task_conflicts) == (2 * RUNS, 0), seen
    assert len(seen.jobs_posted) == 2 * RUNS
