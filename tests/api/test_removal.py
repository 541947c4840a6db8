"""DELETE …?force=true on a Task, Job or Platform with a Running run: its Batch work stops
first; a role too low changes nothing; Batch unreachable is a 502 and removes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from tests.api.conftest import Api
from tests.api.test_api import assert_problem, setup_task

# Who may force-delete what (operators tasks and jobs, admins platforms too).
ALLOWED = {"task": "operator", "job": "operator", "platform": "admin"}
TOO_LOW = {"task": "viewer", "job": "viewer", "platform": "operator"}


def running(api: Api, batch: BatchClient) -> tuple[dict[str, Any], str]:
    """A run of task ``hello`` sleeping in Batch, recorded Running by the server."""
    template = setup_task(api, batch)
    r = api.post("/api/tasks/hello/runs", role="operator", json={"params": {"SLEEP_S": "120"}})
    assert r.status_code == 202, r.text
    run = api.wait_run(r.json()["id"], lambda run: run["state"] == "Running")
    return run, template


def batch_states(batch: BatchClient, run: dict[str, Any]) -> tuple[str | None, str | None]:
    task = batch.get_task(run["batch_job_id"], run["batch_task_id"])
    return task.state, batch.get_job(run["batch_job_id"]).state


@pytest.mark.parametrize("kind", ["task", "job", "platform"])
def test_forced_delete_stops_the_batch_work_and_respects_roles(
    api: Api, batch: BatchClient, kind: str
) -> None:
    run, template = running(api, batch)
    name = {"task": "hello", "job": template, "platform": "local"}[kind]
    url = f"/api/{kind}s/{name}"

    low = api.delete(url, role=TOO_LOW[kind], params={"force": True})
    assert_problem(low, 403, "Forbidden")
    assert batch_states(batch, run) == ("running", "active")  # nothing stopped, nothing gone
    assert api.get(f"/api/runs/{run['id']}").json()["state"] == "Running"

    r = api.delete(url, role=ALLOWED[kind], params={"force": True})
    assert r.status_code == 204, r.text
    task_state, job_state = batch_states(batch, run)
    assert task_state == "completed"
    assert job_state in ("terminating", "completed")
    assert_problem(api.get(f"/api/runs/{run['id']}"), 404, "NotFound")


def test_forced_delete_when_batch_cannot_be_reached_is_502_and_removes_nothing(
    api: Api, batch: BatchClient, emulator: EmulatorServer
) -> None:
    run, _ = running(api, batch)
    emulator.control.set_faults(
        [
            {"method": "POST", "path": "/jobs/*/tasks/*/terminate", "drop": True},
            {"method": "POST", "path": "/jobs/*/terminate", "drop": True},
        ]
    )
    try:
        r = api.delete("/api/tasks/hello", role="operator", params={"force": True})
    finally:
        emulator.control.clear_faults()
    body = assert_problem(r, 502, "RemovalBlocked", f"run(s) {run['id']} could not be stopped")
    assert "nothing was deleted" in body["detail"]
    assert api.get("/api/tasks/hello").status_code == 200
    kept = api.app.state.services.store.get_run(run["id"])
    assert (kept.state.value, kept.cancel_requested) == ("Running", False)
    assert batch_states(batch, run) == ("running", "active")
