"""`polysync worker` as a subprocess: --exit-when-idle, /metrics, SIGTERM, `worker stats`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.domain.models import RunState
from polysync.domain.secrets import Writer
from polysync.services import runs as run_service
from tests.engine.conftest import KEY_ENV, make_task, open_svc


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"POLYSYNC_HOME": str(home), KEY_ENV: DEFAULT_KEY})
    env.pop("POLYSYNC_DATABASE_URL", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _polysync(*args: str) -> list[str]:
    return [sys.executable, "-m", "polysync", *args]


async def test_worker_process_runs_everything_then_exits_and_reports(
    tmp_path: Path, emulator: EmulatorServer, batch: BatchClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    home = tmp_path / "home"
    svc = await open_svc(home, emulator, fake_clock=False)
    try:
        await make_task(svc, batch, "cli")
        created = [
            run_service.start_run(svc, "cli", {"CODE": str(c)}, writer=Writer.HOST)
            for c in (0, 0, 5)
        ]
    finally:
        await svc.aclose()
        svc.close()
    port = _free_port()
    proc = subprocess.Popen(
        _polysync(
            "worker", "--exit-when-idle", "--worker-id", "cli-w", "--metrics-port", str(port)
        ),
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    scraped = ""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                scraped = r.read().decode()
        except OSError:
            pass
        time.sleep(0.1)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "polysync_batch_calls_total" in scraped or "polysync_runs" in scraped

    stats = subprocess.run(
        _polysync("worker", "stats", "--output", "json"),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(stats.stdout)
    assert data["runs_by_state"]["Succeeded"] == 2
    assert data["runs_by_state"]["Failed"] == 1
    assert data["worker"]["worker_id"] == "cli-w"
    assert data["worker"]["calls_by_operation"]["POST /jobs"] == len(created)
    table = subprocess.run(
        _polysync("worker", "stats"), env=_env(home), capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0
    assert "detection latency" in table.stdout


async def test_sigterm_stops_the_worker_gracefully_and_releases_its_claims(
    tmp_path: Path, emulator: EmulatorServer, batch: BatchClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    home = tmp_path / "home"
    svc = await open_svc(home, emulator, fake_clock=False)
    try:
        await make_task(svc, batch, "long", "/bin/sh -c 'sleep 30'")
        run = run_service.start_run(svc, "long", writer=Writer.HOST)
        proc = subprocess.Popen(
            _polysync("worker", "--worker-id", "term-w"),
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while svc.store.get_run(run.id).state is RunState.QUEUED:
            assert time.monotonic() < deadline, "the worker never submitted the run"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        # Left for a restart (or another worker) to resume, claim released at once.
        assert svc.store.adopt_runs("next", svc.clock(), 10, 30)[0].id == run.id
        await run_service.cancel_run(svc, run.id)
    finally:
        await svc.aclose()
        svc.close()
