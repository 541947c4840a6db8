"""``batch-emulator serve`` / ``python -m batch_emulator`` as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_KEY
from batch_emulator.cli import build_parser, main
from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed


def _wait_file(path: Path, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the emulator exited early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail("the emulator did not write its ready file")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


def test_serve_announces_runs_tasks_and_stops_cleanly(tmp_path: Path, h: Any) -> None:
    ready = tmp_path / "ready.json"
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_emulator",
            "serve",
            "--pool",
            "cli-pool=1x2",
            "--data-dir",
            str(data),
            "--ready-file",
            str(ready),
            "--account",
            "cliaccount",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_file(ready, proc)
        info = json.loads(ready.read_text())
        assert info["account"] == "cliaccount"
        assert info["key_source"] == "default"
        assert info["key"] == DEFAULT_KEY  # only the public development key is written
        endpoint = info["endpoint"]
        assert endpoint.startswith("http://127.0.0.1:")
        with BatchClient(endpoint, AzureNamedKeyCredential("cliaccount", DEFAULT_KEY)) as client:
            assert client.get_pool("cli-pool").task_slots_per_node == 2
            client.create_job(
                models.BatchJobCreateOptions(
                    id="j", pool_info=models.BatchPoolInfo(pool_id="cli-pool")
                )
            )
            client.create_task(
                "j",
                models.BatchTaskCreateOptions(
                    id="t", command_line="/bin/sh -c 'echo $$ > pid.txt; sleep 300'"
                ),
            )
            h.wait_task(client, "j", "t", "running")
        pid_file = data / "nodes" / "cli-pool"
        pid_path = h.wait_for(lambda: next(pid_file.glob("*/workitems/j/job-1/t/wd/pid.txt"), None))
        task_pid = int(h.wait_for(lambda: pid_path.read_text().strip()))
        assert _alive(task_pid)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert endpoint in lines[0]
    assert "cliaccount" in lines[0]
    assert not ready.exists()
    assert not _alive(task_pid)


def test_custom_key_is_not_written_to_the_ready_file(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    key = "Y3VzdG9tLWtleS1mb3ItdGVzdHM="
    env = {**os.environ, "BATCH_EMULATOR_KEY": key}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_emulator", "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_file(ready, proc)
        info = json.loads(ready.read_text())
        assert info["key_source"] == "custom"
        assert "key" not in info
        assert key not in ready.read_text()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_help_lists_every_flag() -> None:
    parser: Any = build_parser()
    # argparse keeps sub-parsers in a private action; reach the "serve" one for its help.
    serve = parser._subparsers._group_actions[0].choices["serve"]
    text = serve.format_help()
    for flag in (
        "--host",
        "--port",
        "--account",
        "--key",
        "--key-file",
        "--data-dir",
        "--pool",
        "--tls",
        "--allow-host",
        "--bearer-token",
        "--ready-file",
        "--active-job-quota",
    ):
        assert flag in text


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--pool", "nonsense"],
        ["serve", "--pool", "p=two"],
        ["serve", "--pool", "bad id=1"],
        ["serve", "--key", "not base64!"],
        ["serve", "--active-job-quota", "-1"],
    ],
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert "batch-emulator" in capsys.readouterr().err


def test_stopping_the_in_process_server_kills_task_processes(tmp_path: Path, h: Any) -> None:
    config = EmulatorConfig(data_dir=tmp_path, pools=(PoolSeed("p", 1, 1),))
    with EmulatorServer(config) as emu, h.sdk_client(emu) as client:
        h.new_job(client, "j", pool_id="p")
        h.new_task(client, "j", "t", "/bin/sh -c 'echo $$ > pid.txt; sleep 300'")
        h.wait_task(client, "j", "t", "running")
        pid_path = h.wait_for(
            lambda: next(tmp_path.glob("nodes/p/*/workitems/j/job-1/t/wd/pid.txt"), None)
        )
        pid = int(h.wait_for(lambda: pid_path.read_text().strip()))
        assert _alive(pid)
    assert not _alive(pid)
