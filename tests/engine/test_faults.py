"""Acceptance 1: 500 runs through the worker while ≥ 10 % of Batch calls fail.

Faults: 429 (with and without Retry-After), 503, 500 and dropped connections on every
Batch path. Afterwards every run is in its correct terminal state with its exit code,
none is lost, and no Batch job was created twice (request log and job list).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.dispatcher.worker import Worker, WorkerOptions
from polysync.domain import ids
from polysync.domain.models import RunState
from polysync.domain.secrets import Writer
from polysync.services import runs as run_service
from tests.engine.conftest import KEY_ENV, make_task, open_svc, start_emulator

N_RUNS = 500
FAULTS = [
    {"path": "*", "probability": 0.03, "status": 429},
    {"path": "*", "probability": 0.03, "status": 429, "retry_after_s": 0.05},
    {"path": "*", "probability": 0.03, "status": 503},
    {"path": "*", "probability": 0.03, "status": 500},
    {"path": "*", "probability": 0.02, "drop": True},
]


@pytest.mark.timeout(120)
async def test_500_runs_under_faults_end_right_with_no_loss_and_no_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    emu: EmulatorServer = start_emulator(tmp_path / "emulator", fault_seed=7)
    svc = await open_svc(tmp_path / "home", emu, fake_clock=False)
    batch = BatchClient(emu.endpoint, AzureNamedKeyCredential(emu.account, emu.key))
    try:
        await make_task(svc, batch, "work")
        codes = [0 if i % 5 else (i % 7) + 1 for i in range(N_RUNS)]
        created = [
            run_service.start_run(svc, "work", {"CODE": str(c)}, writer=Writer.HOST) for c in codes
        ]
        emu.control.clear_requests()
        emu.control.set_faults(FAULTS, seed=11)
        worker = Worker(
            svc,
            WorkerOptions(
                worker_id="faulty", submit_rate=3000.0, sweep_interval_s=0.5, error_retry_s=0.5
            ),
        )
        await asyncio.wait_for(worker.run_until_idle(), 100)
        emu.control.clear_faults()

        log = emu.control.requests()
        failed_calls = sum(1 for r in log if r["status"] is None or r["status"] >= 429)
        assert failed_calls / len(log) >= 0.10, (failed_calls, len(log))

        for run, code in zip(created, codes, strict=True):
            final = svc.store.get_run(run.id)
            expected = RunState.SUCCEEDED if code == 0 else RunState.FAILED
            assert final.state is expected, (final.id, final.state, final.failure)
            assert final.exit_code == code
        assert svc.store.count_runs() == N_RUNS

        prefix = ids.job_id_prefix(svc.store.installation_id())
        jobs = [j.id for j in batch.list_jobs(filter=f"startswith(id,'{prefix}')")]
        assert len(jobs) == N_RUNS == len(set(jobs))
        created_ok = [
            r for r in log if r["method"] == "POST" and r["path"] == "/jobs" and r["status"] == 201
        ]
        assert len(created_ok) == N_RUNS  # each job created exactly once
        conflicts = Counter(
            r["status"] for r in log if r["path"] == "/jobs" and r["method"] == "POST"
        )
        assert conflicts[201] == N_RUNS
        snapshot = worker.metrics.snapshot()
        assert snapshot["finished"] == {
            "Failed": codes.count(0) and N_RUNS - codes.count(0),
            "Succeeded": codes.count(0),
        }
    finally:
        batch.close()
        await svc.aclose()
        svc.close()
        emu.stop()
