"""Run one task as a local process tree (no Batch semantics, no state machine).

The emulator's scheduler builds a :class:`ProcessSpec` per task attempt and calls
:meth:`ProcessRunner.start`; it gets a :class:`RunningProcess` to ``wait()`` on or
``kill()``. Decisions:

* **Process tree.** Every task starts in its own session (``start_new_session=True``), so
  its process group id is its pid; :meth:`RunningProcess.kill` signals the whole group
  (SIGTERM, then SIGKILL after ``kill_grace_s``), which also reaches background children
  such as ``sh -c 'sleep 30 & sleep 30'``. A program that calls ``setsid`` itself escapes;
  the real node agent has the same limit for processes that leave the job object/cgroup.
  ``kill()`` after the main process exited still removes leftover group members.
* **Exit codes.** A process ended by signal N reports ``128 + N`` (what ``sh`` reports for
  ``$?``), e.g. 143 after SIGTERM, 137 after SIGKILL — Batch only says the code is
  "operating system-defined" (NOTES.md §10.8), and a positive code keeps
  ``result: failure`` logic simple for callers.
* **Output.** stdout/stderr go straight to the files given in the spec (the runner opens
  them unbuffered and hands the descriptors to the child), so they can be read while the
  task runs. stdin is ``/dev/null``.
* **Environment.** Exactly ``spec.env`` plus ``PATH``, ``HOME`` and ``LANG`` copied from the
  emulator's own environment when the spec does not set them: without ``PATH`` a command
  line such as ``/bin/sh -c "python3 x.py"`` cannot find anything, and ``HOME``/``LANG``
  keep common tools (pip, python's locale) working. Nothing else leaks from the emulator.
  The program itself is looked up in that ``PATH`` (or relative to ``cwd`` if it contains
  a ``/``), like the node agent does.
* **Launch failures** raise :class:`LaunchError` with the Batch failure code
  ``CommandProgramNotFound`` or ``CommandLaunchFailed`` (NOTES.md §10.8) so the backend can
  complete the task with ``failureInfo`` and no ``exitCode``.
* **Containers.** When ``spec.image`` is set and a container engine (``docker`` or
  ``podman``) answers ``<engine> info`` (probed once per process and cached), the task
  runs as ``<engine> run --rm --name <unique> -v cwd:cwd -w cwd -e NAME... <run options>
  <image> <argv>``; variables are passed as ``-e NAME`` with the values in the engine
  client's environment, so they never appear in a process listing. Otherwise the task runs
  on the host and :meth:`RunningProcess.in_container` is False; callers can report that via
  :meth:`ProcessRunner.container_engine_available`.

All coroutines of a :class:`RunningProcess` must run on the event loop that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from batch_emulator.protocol.cmdline import split_command_line

__all__ = [
    "INHERITED_ENV",
    "LaunchError",
    "ProcessRunner",
    "ProcessSpec",
    "RunningProcess",
    "build_container_argv",
    "build_env",
    "exit_code_from_returncode",
    "probe_container_engine",
]

#: Variables copied from the emulator's environment when the spec does not set them.
INHERITED_ENV = ("PATH", "HOME", "LANG")

_PROBE_TIMEOUT_S = 10.0
_ENGINE_KILL_TIMEOUT_S = 10.0
_POLL_S = 0.02
_SIGKILL_SETTLE_S = 2.0


@dataclass
class ProcessSpec:
    """What to run for one task attempt."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdout_path: Path
    stderr_path: Path
    image: str | None = None
    container_run_options: str | None = None
    #: Append to existing stdout/stderr files instead of truncating them.
    append_output: bool = False


class LaunchError(Exception):
    """The task's program could not be started; ``code`` is the Batch failure code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def build_env(spec_env: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``spec_env`` plus :data:`INHERITED_ENV` taken from ``base`` (default ``os.environ``)."""
    source = os.environ if base is None else base
    env = dict(spec_env)
    for name in INHERITED_ENV:
        if name not in env and name in source:
            env[name] = source[name]
    env.setdefault("PATH", os.defpath)
    return env


def exit_code_from_returncode(returncode: int) -> int:
    """Map asyncio's ``-N`` for "killed by signal N" to the shell convention ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


def build_container_argv(engine: str, spec: ProcessSpec, name: str) -> list[str]:
    """The ``docker|podman run`` command line for ``spec`` (pure; values stay out of argv)."""
    if spec.image is None:
        raise ValueError("build_container_argv needs a spec with an image.")
    cwd = str(spec.cwd)
    argv = [engine, "run", "--rm", "--name", name, "-v", f"{cwd}:{cwd}", "-w", cwd]
    for var in sorted(spec.env):
        argv += ["-e", var]
    if spec.container_run_options:
        argv += split_command_line(spec.container_run_options)
    argv.append(spec.image)
    argv += spec.argv
    return argv


@functools.cache
def probe_container_engine() -> str | None:
    """Path of a working ``docker``/``podman`` CLI, or None. Probed once, then cached."""
    for candidate in ("docker", "podman"):
        path = shutil.which(candidate)
        if path is None:
            continue
        try:
            done = subprocess.run(
                [path, "info"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return path
    return None


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) pids in process group ``pgid``.

    Reads /proc so that orphaned zombies — which an init that does not reap would leave
    behind, and which ``killpg(pgid, 0)`` still counts — are not mistaken for live processes.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces and parentheses).
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _open_outputs(spec: ProcessSpec) -> tuple[IO[Any], IO[Any]]:
    """Open stdout/stderr unbuffered (local files: instant, fine on the event loop)."""
    mode = "ab" if spec.append_output else "wb"
    spec.stdout_path.parent.mkdir(parents=True, exist_ok=True)
    spec.stderr_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(spec.stdout_path, mode, buffering=0)  # noqa: SIM115 - closed by the caller
    try:
        err = open(spec.stderr_path, mode, buffering=0)  # noqa: SIM115 - closed by the caller
    except BaseException:
        out.close()
        raise
    return out, err


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class RunningProcess:
    """A started task process (group leader) and, optionally, its container."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        *,
        kill_grace_s: float,
        engine: str | None = None,
        container_name: str | None = None,
    ) -> None:
        self._proc = proc
        self._kill_grace_s = kill_grace_s
        self._engine = engine
        self._container_name = container_name
        self.pid: int = proc.pid
        # Set by ProcessRunner: called once the main process has exited (drops it from the
        # live set), plus a task that does so even if nobody awaits wait().
        self._on_exit: Callable[[RunningProcess], None] | None = None
        self._exit_watch: asyncio.Future[int] | None = None

    @property
    def in_container(self) -> bool:
        """True if the task runs inside a container engine, False if on the host."""
        return self._container_name is not None

    @property
    def container_name(self) -> str | None:
        return self._container_name

    @property
    def returncode(self) -> int | None:
        """The exit code (``128 + N`` for signal N) once the main process ended, else None."""
        rc = self._proc.returncode
        return None if rc is None else exit_code_from_returncode(rc)

    async def wait(self) -> int:
        """Wait for the main process to exit and return its exit code."""
        rc = await self._proc.wait()
        if self._on_exit is not None:
            self._on_exit(self)
        return exit_code_from_returncode(rc)

    async def kill(self) -> None:
        """Kill the whole process tree: SIGTERM, then SIGKILL after the grace period."""
        if self._engine is not None and self._container_name is not None:
            await self._kill_container(self._engine, self._container_name)
        pgid = self.pid
        _signal_group(pgid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._kill_grace_s
        # Group membership has no event to wait on: poll /proc until empty or the deadline.
        while _group_members(pgid) and loop.time() < deadline:  # noqa: ASYNC110 - see above
            await asyncio.sleep(_POLL_S)
        if _group_members(pgid):
            _signal_group(pgid, signal.SIGKILL)
            # SIGKILL is delivered asynchronously: a member may still be scheduled for a
            # moment. Wait (bounded) so "killed" means gone for every caller.
            deadline = loop.time() + _SIGKILL_SETTLE_S
            while _group_members(pgid) and loop.time() < deadline:  # noqa: ASYNC110 - as above
                await asyncio.sleep(_POLL_S)
        await self.wait()

    @staticmethod
    async def _kill_container(engine: str, name: str) -> None:
        try:
            killer = await asyncio.create_subprocess_exec(
                engine,
                "kill",
                name,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError:
            return
        try:
            await asyncio.wait_for(killer.wait(), _ENGINE_KILL_TIMEOUT_S)
        except TimeoutError:
            killer.kill()
            await killer.wait()


class ProcessRunner:
    """Starts task processes and remembers the live ones for :meth:`shutdown`."""

    def __init__(
        self,
        *,
        kill_grace_s: float = 3.0,
        use_containers: bool = True,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self._kill_grace_s = kill_grace_s
        self._use_containers = use_containers
        self._base_env = base_env
        self._live: set[RunningProcess] = set()

    def container_engine_available(self) -> bool:
        """Whether tasks with an image will really run in a container (blocking probe once)."""
        return self._use_containers and probe_container_engine() is not None

    @property
    def live(self) -> frozenset[RunningProcess]:
        """Processes started and not yet seen to exit."""
        return frozenset(self._live)

    async def start(self, spec: ProcessSpec) -> RunningProcess:
        """Start ``spec``; raises :class:`LaunchError` if the program cannot be started."""
        if not spec.argv:
            raise LaunchError("CommandLaunchFailed", "The task's command line is empty.")
        if not spec.cwd.is_dir():
            raise LaunchError(
                "CommandLaunchFailed",
                f"The task working directory {spec.cwd} does not exist.",
            )
        engine: str | None = None
        if spec.image is not None and self._use_containers:
            engine = await asyncio.to_thread(probe_container_engine)
        env = build_env(spec.env, self._base_env)
        container_name: str | None = None
        argv = spec.argv
        if engine is not None:
            container_name = f"batch-emulator-{uuid.uuid4().hex[:16]}"
            argv = build_container_argv(engine, spec, container_name)
            # The engine CLI needs its own settings (DOCKER_HOST, ...); task values ride along
            # for the "-e NAME" flags.
            env = {**(os.environ if self._base_env is None else self._base_env), **env}

        out, err = _open_outputs(spec)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise LaunchError(
                "CommandProgramNotFound",
                f"The program {argv[0]!r} was not found (PATH={env.get('PATH', '')!r}, "
                f"working directory {spec.cwd}).",
            ) from exc
        except PermissionError as exc:
            raise LaunchError(
                "CommandLaunchFailed",
                f"The program {argv[0]!r} could not be started: permission denied "
                "(is it executable?).",
            ) from exc
        except OSError as exc:
            raise LaunchError(
                "CommandLaunchFailed",
                f"The program {argv[0]!r} could not be started: {exc.strerror or exc}.",
            ) from exc
        finally:
            # The child has its own copies of the descriptors.
            out.close()
            err.close()
        running = RunningProcess(
            proc,
            kill_grace_s=self._kill_grace_s,
            engine=engine,
            container_name=container_name,
        )
        self._live.add(running)
        running._on_exit = self._live.discard
        running._exit_watch = asyncio.ensure_future(proc.wait())
        running._exit_watch.add_done_callback(lambda _t: self._live.discard(running))
        return running

    async def shutdown(self) -> None:
        """Kill every live process tree (used when the emulator stops)."""
        live = list(self._live)
        await asyncio.gather(*(p.kill() for p in live), return_exceptions=True)
        self._live.difference_update(live)
