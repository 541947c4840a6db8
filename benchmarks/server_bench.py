"""Server time of GET /api/runs with 10,000 runs in the store (issue 5, acceptance 3).

    .venv/bin/python benchmarks/server_bench.py [--runs 10000] [--requests 200]

Fills a fresh SQLite store with runs (each with a short history, a third of them Failed
with a failure record), then times the app in-process (ASGI, no network) for the plain
list, a page deep in the list, and the filtered lists. Prints p50/p95 per query against
the 300 ms target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from polysync.api import tokens
from polysync.api.app import create_app
from polysync.config import load_settings
from polysync.domain.models import (
    AuthMode,
    Failure,
    Job,
    Platform,
    PlatformAuth,
    RunState,
    SecretRef,
    Task,
    Trigger,
)
from polysync.services.context import Services

TARGET_MS = 300.0


def fill(svc: Services, runs: int) -> None:
    store = svc.store
    platform = store.add_platform(
        Platform(
            name="bench",
            account_url="https://bench.westeurope.batch.azure.com",
            account_name="bench",
            subscription_id="11111111-2222-3333-4444-555555555555",
            resource_group="rg",
            auth=PlatformAuth(AuthMode.SHARED_KEY, secret=SecretRef("env", "BENCH_KEY")),
        )
    )
    job = store.upsert_job(Job(name="etl", platform="bench", external_id="tpl-etl"))
    tasks = [store.add_task(Task(name=f"task-{i}", job="etl")) for i in range(10)]
    start = datetime.now(UTC) - timedelta(days=1)
    for i in range(runs):
        task = tasks[i % len(tasks)]
        run = store.create_run(
            task, job, platform, trigger=Trigger.MANUAL, priority=0, param_overrides={}
        )
        if i % 10 == 9:
            continue  # some stay Queued
        at = start + timedelta(seconds=i)
        store.assign_batch_ids(run.id, f"ps-bench-r{run.id}-a1", task.name, None, {"N": str(i)})
        store.transition(run.id, RunState.STARTING, reason="Batch job created", at=at)
        store.transition(run.id, RunState.RUNNING, reason="running on node n1", at=at)
        if i % 3 == 0:
            store.transition(
                run.id,
                RunState.FAILED,
                reason="exit code 1",
                at=at,
                exit_code=1,
                failure=Failure("usererror", "FailureExitCode", "exit code 1"),
                ended_at=at,
            )
        else:
            store.transition(
                run.id, RunState.SUCCEEDED, reason="exit code 0", at=at, exit_code=0, ended_at=at
            )


async def measure(app: object, token: str, url: str, requests: int) -> list[float]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # a FastAPI app
    headers = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(5):  # warm-up
            (await client.get(url, headers=headers)).raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get(url, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    # On tmpfs when there is one: filling pays an fsync per transaction (synchronous=FULL,
    # decision D5), which would take minutes; reads are served from the page cache anyway.
    shm = Path("/dev/shm")  # noqa: S108 — a private TemporaryDirectory inside it, not a fixed name
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as home:
        settings = load_settings({"home": Path(home)}, environ={})
        app = create_app(settings, start_worker=False)
        svc: Services = app.state.services
        started = time.perf_counter()
        fill(svc, args.runs)
        print(f"filled {args.runs} runs in {time.perf_counter() - started:.1f}s")
        _, token = tokens.create_token(svc, "bench", tokens.Role.VIEWER)
        queries = {
            "list (newest 50)": "/api/runs",
            "list page 100 (offset 5000)": "/api/runs?offset=5000&limit=50",
            "filter state=Failed": "/api/runs?state=Failed",
            "filter task=task-3": "/api/runs?task=task-3",
            "filter task + state": "/api/runs?task=task-3&state=Succeeded&offset=200",
            "list 200 per page": "/api/runs?limit=200",
        }
        worst = 0.0
        print(f"{'query':32} {'p50 ms':>8} {'p95 ms':>8}")
        for label, url in queries.items():
            times = asyncio.run(measure(app, token, url, args.requests))
            p50, p95 = statistics.median(times), pct(times, 0.95)
            worst = max(worst, p95)
            print(f"{label:32} {p50:8.1f} {p95:8.1f}")
        svc.close()
    verdict = "OK" if worst < TARGET_MS else "OVER TARGET"
    print(f"worst p95 {worst:.1f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
