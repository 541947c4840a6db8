"""`polysync worker` processes beside the process under test, and a slow emulator.

For the one-submitter tests (decision 0012): a worker must be really running, claiming
and adopting, on the same store as the CLI or server under test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from batch_emulator.server import EmulatorServer
from tests.support import wait_until

# Batch takes its time over a create call (a real account too: hundreds of ms); here long
# enough that a worker's claim pass (every 0.5 s) falls inside each submission at least twice, so a
# second submitter, if the code allowed one, would show in (nearly) every run.
CREATE_LATENCY_MS = 1200


@contextmanager
def slow_creates(emulator: EmulatorServer) -> Iterator[None]:
    """Every ``POST /jobs`` answered after ``CREATE_LATENCY_MS`` (the emulator's faults)."""
    emulator.control.set_faults(
        [{"method": "POST", "path": "/jobs", "latency_ms": CREATE_LATENCY_MS}]
    )
    try:
        yield
    finally:
        emulator.control.clear_faults()


def _started(log: Path, worker_id: str) -> bool:
    return f"worker {worker_id} started" in log.read_text(errors="replace")


@contextmanager
def workers(env: Mapping[str, str], log_dir: Path, *ids: str) -> Iterator[None]:
    """`polysync worker --worker-id ID` per id on the store ``env`` names (POLYSYNC_HOME,
    POLYSYNC_DATABASE_URL), each running before this returns; stopped (SIGTERM) after."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = [log_dir / f"worker-{wid}.log" for wid in ids]
    try:
        for wid, log in zip(ids, logs, strict=True):
            argv = [sys.executable, "-m", "polysync", "worker", "--worker-id", wid]
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        [*argv, "--sweep-interval", "0.2"],
                        env={**env, "POLYSYNC_LOG_LEVEL": "INFO"},
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        for wid, log in zip(ids, logs, strict=True):
            wait_until(partial(_started, log, wid), 60, f"worker {wid} to start")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
