"""GET /api/events over a real uvicorn server (TestClient buffers whole responses), with
the worker running in the server; and the store watcher's change detection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from polysync.api.events import RunEvents, RunWatcher
from polysync.config import load_settings
from polysync.services.context import open_services
from tests.api.conftest import KEY_ENV, make_template
from tests.support import SUBSCRIPTION


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "run":
            yield json.loads(line.removeprefix("data: "))


def test_events_stream_a_runs_transitions(
    live_server: tuple[str, str], emulator: EmulatorServer, batch: BatchClient
) -> None:
    base, token = live_server
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        assert client.get("/api/health").json()["worker"] is True
        assert client.get("/api/events", headers={"Authorization": ""}).status_code == 401
        r = client.post(
            "/api/platforms",
            json={
                "name": "local",
                "account_url": emulator.endpoint,
                "account_name": emulator.account,
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg",
                "key_env": KEY_ENV,
            },
        )
        assert r.status_code == 201, r.text
        tpl = make_template(batch)
        assert client.post("/api/jobs/import", json={"platform": "local", "external_ids": [tpl]})
        assert client.post("/api/tasks", json={"name": "sse", "job": tpl}).status_code == 201
        # Pin the Batch task in `running` so each state is seen on its own.
        emulator.control.hold(job_id="ps-*", task_id="sse", state="running")
        try:
            with client.stream("GET", "/api/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                run = client.post("/api/tasks/sse/runs").json()
                seen: list[str] = []
                for event in _events(stream):
                    if event["id"] != run["id"]:
                        continue
                    if not seen or seen[-1] != event["state"]:
                        seen.append(event["state"])
                    if event["state"] == "Running":
                        emulator.control.release(job_id="*", task_id="*")
                    if event["state"] == "Succeeded":
                        assert [h["to"] for h in event["history"]] == [
                            "Queued",
                            "Starting",
                            "Running",
                            "Succeeded",
                        ]
                        break
        finally:
            emulator.control.release(job_id="*", task_id="*")
    assert seen[-2:] == ["Running", "Succeeded"]
    assert seen == sorted(seen, key=["Queued", "Starting", "Running", "Succeeded"].index)


def test_watcher_publishes_changes_once(tmp_path: Path) -> None:
    svc = open_services(load_settings({"home": tmp_path / "home"}, environ={}))
    try:
        from polysync.store.sql import SqlStore
        from tests.store.conftest import new_run, seed

        assert isinstance(svc.store, SqlStore)
        objs = seed(svc.store)
        events = RunEvents()
        watcher = RunWatcher(svc.store, events, overlap_s=3.0)
        assert watcher.poll_once() == []
        run = new_run(svc.store, objs)
        first = watcher.poll_once()
        assert [(v["id"], v["state"]) for v in first] == [(run.id, "Queued")]
        assert watcher.poll_once() == []  # seen, unchanged: not published again
        svc.store.update_run(run.id, last_polled_at=run.created_at)  # not news
        assert watcher.poll_once() == []
        svc.store.update_run(run.id, waiting_reason="waiting for quota")
        assert [v["waiting_reason"] for v in watcher.poll_once()] == ["waiting for quota"]
    finally:
        svc.close()
