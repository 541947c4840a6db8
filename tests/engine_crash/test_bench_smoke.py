"""Smoke test of the engine benchmark's harness: the reference strategies' core, in-process.

The benchmark itself (``benchmarks/engine_bench.py``) runs for minutes; this checks in a few
seconds that its reference pollers submit each run once, see every run end, and that the
figures it derives (calls, detection latency, created jobs) come out sane.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _workload import (
    GET_TASK,
    LIST_TASKS,
    RefRun,
    created_jobs,
    created_tasks_by_job,
    fetch_end_times,
    list_job_ids,
    percentile,
    reference_strategy,
)
from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed

N = 5
INTERVAL_S = 1.0  # the real strategies poll every 15 s / 10 s; the logic is the same


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        data_dir=tmp_path_factory.mktemp("emulator"), pools=(PoolSeed("bench", 1, 8),)
    )
    with EmulatorServer(config) as emu:
        yield emu


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([3.0], 99, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 100, 100.0),
        ([5.0, 1.0, 3.0], 0, 1.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def _entry(method: str, path: str, status: int | None) -> dict[str, Any]:
    return {"method": method, "path": path, "status": status, "query": "", "time": ""}


@pytest.mark.parametrize(
    ("entries", "jobs", "tasks"),
    [
        ([], 0, {}),
        ([_entry("POST", "/jobs", 201), _entry("POST", "/jobs", 409)], 1, {}),
        ([_entry("POST", "/jobs", None), _entry("GET", "/jobs", 200)], 0, {}),
        (
            [
                _entry("POST", "/jobs/j1/tasks", 201),
                _entry("POST", "/jobs/j1/tasks", 409),
                _entry("POST", "/jobs/j2/tasks", 201),
                _entry("POST", "/jobs/j2/tasks/t/terminate", 204),
                _entry("GET", "/jobs/j3/tasks", 200),
            ],
            0,
            {"j1": 1, "j2": 1},
        ),
    ],
)
def test_request_log_counts(
    entries: list[dict[str, Any]], jobs: int, tasks: dict[str, int]
) -> None:
    assert created_jobs(entries) == jobs
    assert created_tasks_by_job(entries) == tasks


@pytest.mark.parametrize("mode", [LIST_TASKS, GET_TASK])
async def test_reference_strategy_detects_every_run_once(
    emulator: EmulatorServer, mode: str, tmp_path: Path
) -> None:
    emulator.control.clear_requests()
    prefix = f"smoke-{mode[:4]}-"
    runs = [RefRun(f"{prefix}{i}", "task", 1.0) for i in range(N)]
    result = await reference_strategy(
        emulator.endpoint,
        "bench",
        runs,
        mode=mode,
        interval_s=INTERVAL_S,
        deadline_s=15.0,
        account=emulator.account,
        key=emulator.key,
    )
    log = emulator.control.requests()
    assert result.submit_errors == {}
    assert sorted(result.detected) == sorted(r.job_id for r in runs)
    assert all(code == 0 for code in result.exit_codes.values())
    # Each run: one job, one task, then at least one poll; never a second job.
    assert created_jobs(log) == N
    assert created_tasks_by_job(log) == {r.job_id: 1 for r in runs}
    polls = [e for e in log if e["method"] == "GET"]
    assert N <= len(polls) <= 4 * N
    if mode == LIST_TASKS:
        assert all(e["path"].endswith("/tasks") for e in polls)
    else:
        assert all(e["path"].endswith("/tasks/task") for e in polls)
    ends = await fetch_end_times(
        emulator.endpoint,
        [(r.job_id, r.task_id) for r in runs],
        account=emulator.account,
        key=emulator.key,
    )
    lags = [result.detected[job] - end for (job, _), end in ends.items() if end is not None]
    assert len(lags) == N
    # A fixed-interval poller sees the end within one interval (plus scheduling slack).
    assert all(-0.05 <= lag <= INTERVAL_S + 1.0 for lag in lags), lags
    listed = await list_job_ids(
        emulator.endpoint, prefix, account=emulator.account, key=emulator.key
    )
    assert sorted(listed) == sorted(r.job_id for r in runs)
