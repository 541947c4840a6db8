"""Tests for batch_emulator.runner with real processes (and pure helpers)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from batch_emulator.runner import (
    LaunchError,
    ProcessRunner,
    ProcessSpec,
    build_container_argv,
    build_env,
    exit_code_from_returncode,
    probe_container_engine,
)


def _spec(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None) -> ProcessSpec:
    return ProcessSpec(
        argv=argv,
        env=env or {},
        cwd=tmp_path,
        stdout_path=tmp_path / "stdout.txt",
        stderr_path=tmp_path / "stderr.txt",
    )


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (an init that does not reap leaves those)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


async def _wait_for_file(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was not written within {timeout_s} s")


@pytest.fixture
def runner() -> ProcessRunner:
    return ProcessRunner(kill_grace_s=2.0)


# ------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize(("rc", "code"), [(0, 0), (3, 3), (255, 255), (-15, 143), (-9, 137)])
def test_exit_code_mapping(rc: int, code: int) -> None:
    assert exit_code_from_returncode(rc) == code


@pytest.mark.parametrize(
    ("spec_env", "base", "expected"),
    [
        (
            {},
            {"PATH": "/p", "HOME": "/h", "LANG": "C", "SECRET": "x"},
            {"PATH": "/p", "HOME": "/h", "LANG": "C"},
        ),
        ({"PATH": "/mine", "A": "1"}, {"PATH": "/p"}, {"PATH": "/mine", "A": "1"}),
        ({"A": "1"}, {}, {"A": "1", "PATH": os.defpath}),
    ],
)
def test_build_env(
    spec_env: dict[str, str], base: dict[str, str], expected: dict[str, str]
) -> None:
    assert build_env(spec_env, base) == expected


def test_build_container_argv(tmp_path: Path) -> None:
    spec = _spec(tmp_path, ["python3", "-c", "print(1)"], {"B": "secret-value", "A": "1"})
    spec.image = "python:3.11-slim"
    spec.container_run_options = "--cpus 1 --label 'a b'"
    argv = build_container_argv("docker", spec, "batch-emulator-x")
    cwd = str(tmp_path)
    assert argv == [
        "docker",
        "run",
        "--rm",
        "--name",
        "batch-emulator-x",
        "-v",
        f"{cwd}:{cwd}",
        "-w",
        cwd,
        "-e",
        "A",
        "-e",
        "B",
        "--cpus",
        "1",
        "--label",
        "a b",
        "python:3.11-slim",
        "python3",
        "-c",
        "print(1)",
    ]
    assert "secret-value" not in " ".join(argv)
    with pytest.raises(ValueError, match="image"):
        build_container_argv("docker", _spec(tmp_path, ["x"]), "n")


def _engine_really_works() -> bool:
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if (
            path
            and subprocess.run(
                [path, "info"], capture_output=True, check=False, timeout=20
            ).returncode
            == 0
        ):
            return True
    return False


def test_container_probe_matches_reality() -> None:
    # On the project machine only the docker client exists (no daemon): False here.
    assert (probe_container_engine() is not None) is _engine_really_works()
    assert ProcessRunner(use_containers=False).container_engine_available() is False


# ------------------------------------------------------------------ real processes


async def test_stdout_stderr_env_and_cwd(runner: ProcessRunner, tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        ["/bin/sh", "-c", 'echo "out:$GREETING"; echo "err:$GREETING" >&2; pwd'],
        {"GREETING": "hello world"},
    )
    proc = await runner.start(spec)
    assert await proc.wait() == 0
    assert proc.returncode == 0
    assert not proc.in_container
    assert (tmp_path / "stdout.txt").read_text() == f"out:hello world\n{tmp_path}\n"
    assert (tmp_path / "stderr.txt").read_text() == "err:hello world\n"


async def test_environment_is_exactly_spec_plus_inherited(
    runner: ProcessRunner, tmp_path: Path
) -> None:
    proc = await runner.start(_spec(tmp_path, ["env"], {"AZ_BATCH_TASK_ID": "t1"}))
    assert await proc.wait() == 0
    lines = (tmp_path / "stdout.txt").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines}
    expected = {"AZ_BATCH_TASK_ID", "PATH"} | {n for n in ("HOME", "LANG") if n in os.environ}
    assert names == expected
    assert "AZ_BATCH_TASK_ID=t1" in lines


@pytest.mark.parametrize(("script", "code"), [("exit 0", 0), ("exit 3", 3), ("kill -9 $$", 137)])
async def test_exit_codes(runner: ProcessRunner, tmp_path: Path, script: str, code: int) -> None:
    proc = await runner.start(_spec(tmp_path, ["/bin/sh", "-c", script]))
    assert await proc.wait() == code
    assert proc.returncode == code


async def test_output_readable_while_running(runner: ProcessRunner, tmp_path: Path) -> None:
    proc = await runner.start(_spec(tmp_path, ["/bin/sh", "-c", "echo first; exec sleep 30"]))
    assert proc.returncode is None
    assert await _wait_for_file(tmp_path / "stdout.txt") == "first\n"
    await proc.kill()
    assert proc.returncode == 143


async def test_kill_removes_whole_tree(runner: ProcessRunner, tmp_path: Path) -> None:
    script = "sleep 30 & echo $! > bg.pid; echo $$ > sh.pid; sleep 30"
    proc = await runner.start(_spec(tmp_path, ["/bin/sh", "-c", script]))
    bg = int(await _wait_for_file(tmp_path / "bg.pid"))
    sh = int(await _wait_for_file(tmp_path / "sh.pid"))
    assert sh == proc.pid
    assert _alive(bg)
    started = time.monotonic()
    await proc.kill()
    assert time.monotonic() - started < 2.0  # SIGTERM was enough, no grace wait
    assert await proc.wait() == 143
    assert not _alive(bg)
    assert not _alive(sh)
    assert proc not in runner.live


async def test_kill_escalates_to_sigkill(tmp_path: Path) -> None:
    runner = ProcessRunner(kill_grace_s=0.3)
    # An ignored SIGTERM is inherited across exec, so neither sh nor sleep stops on it.
    script = "trap '' TERM; sleep 30 & echo $! > bg.pid; sleep 30"
    proc = await runner.start(_spec(tmp_path, ["/bin/sh", "-c", script]))
    bg = int(await _wait_for_file(tmp_path / "bg.pid"))
    await proc.kill()
    assert await proc.wait() == 137
    assert not _alive(bg)


async def test_kill_after_exit_removes_leftovers(runner: ProcessRunner, tmp_path: Path) -> None:
    proc = await runner.start(_spec(tmp_path, ["/bin/sh", "-c", "sleep 30 & echo $! > bg.pid"]))
    assert await proc.wait() == 0
    bg = int(await _wait_for_file(tmp_path / "bg.pid"))
    assert _alive(bg)
    await proc.kill()
    assert not _alive(bg)
    assert proc.returncode == 0


async def test_shutdown_kills_all_live(runner: ProcessRunner, tmp_path: Path) -> None:
    procs = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        procs.append(await runner.start(_spec(d, ["sleep", "30"])))
    assert set(procs) <= runner.live
    await runner.shutdown()
    assert [p.returncode for p in procs] == [143, 143]
    assert not runner.live
    assert not any(_alive(p.pid) for p in procs)


async def test_image_without_engine_runs_on_host(tmp_path: Path) -> None:
    runner = ProcessRunner(use_containers=False)
    spec = _spec(tmp_path, ["/bin/sh", "-c", "echo host"])
    spec.image = "ubuntu:22.04"
    proc = await runner.start(spec)
    assert await proc.wait() == 0
    assert not proc.in_container
    assert (tmp_path / "stdout.txt").read_text() == "host\n"


async def test_append_output(runner: ProcessRunner, tmp_path: Path) -> None:
    (tmp_path / "stdout.txt").write_text("previous\n")
    spec = _spec(tmp_path, ["echo", "next"])
    spec.append_output = True
    assert await (await runner.start(spec)).wait() == 0
    assert (tmp_path / "stdout.txt").read_text() == "previous\nnext\n"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["no-such-program-polysync"], "CommandProgramNotFound"),
        (["./missing.sh"], "CommandProgramNotFound"),
        (["./not-executable.sh"], "CommandLaunchFailed"),
        ([], "CommandLaunchFailed"),
    ],
)
async def test_launch_errors(
    runner: ProcessRunner, tmp_path: Path, argv: list[str], code: str
) -> None:
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(LaunchError) as info:
        await runner.start(_spec(tmp_path, argv))
    assert info.value.code == code
    assert not runner.live


async def test_missing_cwd_is_launch_failure(runner: ProcessRunner, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ["echo"])
    spec.cwd = tmp_path / "gone"
    with pytest.raises(LaunchError, match="working directory") as info:
        await runner.start(spec)
    assert info.value.code == "CommandLaunchFailed"


async def test_relative_program_resolves_in_cwd(runner: ProcessRunner, tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho from-script\nexit 4\n")
    script.chmod(0o755)
    proc = await runner.start(_spec(tmp_path, ["./run.sh"]))
    assert await proc.wait() == 4
    assert (tmp_path / "stdout.txt").read_text() == "from-script\n"
