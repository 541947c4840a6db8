"""Emulator benchmark: request rates, task start latency and the 10,000-job scale check.

    .venv/bin/python benchmarks/emulator_bench.py            # full mode, under 2 minutes
    .venv/bin/python benchmarks/emulator_bench.py --quick    # smoke mode, under 20 s
    .venv/bin/python benchmarks/emulator_bench.py --json     # one JSON object per line

What is measured (methodology and measured figures in ``benchmarks/README.md``):

1. **Start latency**: a task ``/bin/sh -c 'date +%s.%N > started'`` writes the wall clock
   when its process runs; latency = that stamp - the moment the client got the 201 of its
   ``POST task`` (same machine, same clock). Tasks are posted one at a time, each on an idle
   emulator, and the stamp is read back through the file API; p50/p95 by nearest rank. The
   same command spawned by ``subprocess.run`` here is timed too, as a floor.
2. **Request rates** of ``GET /jobs/{j}/tasks/{t}`` ("GET task") and
   ``POST /jobs/{j}/tasks`` ("POST task"), Shared Key signed as the SDK signs:
   * over loopback, against ``python -m batch_emulator serve`` in a *subprocess* (its own
     interpreter and GIL; uvicorn on uvloop/httptools) through three clients: raw REST on
     aiohttp (the leanest client here, so it measures the emulator rather than the client),
     ``httpx.AsyncClient`` and the official async SDK ``azure.batch.aio.BatchClient``;
   * in-process: the ASGI app called directly (a bare ASGI call, and through
     ``httpx.ASGITransport``), no sockets.
   A rate is completed requests / wall time in a fixed window after a warm-up, with a fixed
   number of requests in flight on keep-alive connections. The emulator's CPU time in the
   window (``/proc/{pid}/stat``) gives its CPU cost per request. The task the GET benchmark
   reads and the tasks the POST benchmark creates are pinned in ``active`` by the hold
   control, so no process is spawned: these are the API's figures, not ``fork``'s.
3. **Scale check**: two fresh emulator processes, one holding 1 job, the other that job plus
   ``--scale-jobs`` jobs of one task each, all held in ``active`` by the hold control (stored
   and scheduled, never run). GET windows alternate between them (the same task on both,
   and random tasks of the new jobs), so load from other processes hits both alike; the best
   of ``--repeats`` windows counts. Ratio = empty rate / the slower loaded rate.

Targets (issue 2, acceptance 5): >= 1,000 GET task/s over loopback on a 2-core machine;
>= 10,000 jobs with a task each slowing GET task by at most 2x. Only 127.0.0.1 is used; every
loop is bounded in count and time; the emulator subprocesses and the temporary directory are
removed on exit, on errors and on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import IO, Any

import aiohttp
import httpx
import uvloop
from azure.batch import models as batch_models
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.app import EmulatorApp, create_app
from batch_emulator.protocol.auth import sign, string_to_sign
from batch_emulator.protocol.formats import format_http_date
from batch_emulator.server import EmulatorConfig, PoolSeed, SharedKeyAuth

API_VERSION = "2025-06-01"
QUERY = f"api-version={API_VERSION}"
JSON_TYPE = "application/json; odata=minimalmetadata"
HOLD_GLOB = "hold-*"  # jobs whose tasks the hold control pins in "active"
BENCH_POOL = "bench"
LATENCY_POOL = "lat"
GET_JOB = "hold-get"
GET_TASK_ID = "t"
SCALE_JOB_PREFIX = "hold-scale-"
EMULATOR_POOLS = (f"{BENCH_POOL}=1x4", f"{LATENCY_POOL}=1x4")
NOOP_COMMAND = "/bin/true"
STAMP_FILE = "started"
STAMP_COMMAND = f"/bin/sh -c 'date +%s.%N > {STAMP_FILE}'"

TARGET_GET_RATE = 1_000.0
TARGET_SCALE_RATIO = 2.0
TARGET_SCALE_JOBS = 10_000

MAX_REQUESTS_PER_WINDOW = 1_000_000  # a hard cap next to the time bound of every window
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
LOADED_LATENCY_TASKS = 30
TASK_DONE_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.005
REQUEST_TIMEOUT_S = 60.0


# --- settings and figures -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    duration_s: float  # measured window of the raw-REST and bare-ASGI rates
    client_duration_s: float  # measured window of the httpx and SDK rates
    warmup_s: float
    concurrency: int  # requests in flight for raw REST and the bare ASGI calls
    client_concurrency: int  # for httpx and the SDK (httpx's pool degrades beyond ~4)
    latency_tasks: int
    scale_jobs: int
    repeats: int  # windows per scale-check rate (the best one counts)
    seed: int = 42


FULL = Settings(
    duration_s=5.0,
    client_duration_s=3.0,
    warmup_s=0.5,
    concurrency=16,
    client_concurrency=4,
    latency_tasks=100,
    scale_jobs=TARGET_SCALE_JOBS,
    repeats=3,
)
QUICK = Settings(
    duration_s=1.0,
    client_duration_s=0.5,
    warmup_s=0.2,
    concurrency=16,
    client_concurrency=4,
    latency_tasks=20,
    scale_jobs=1_000,
    repeats=1,
)


@dataclass(slots=True)
class Figure:
    """One measurement as printed: a value, its unit, details and an optional target."""

    name: str
    label: str
    value: float
    unit: str
    details: dict[str, Any] = field(default_factory=dict)
    target: str | None = None
    passed: bool | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"measurement": self.name, "value": round(self.value, 3)}
        out["unit"] = self.unit
        out.update((k, v) for k, v in self.details.items() if k != "note")  # note: text only
        if self.target is not None:
            out["target"] = self.target
            out["pass"] = self.passed
        return out

    def as_text(self) -> str:
        value = f"{self.value:,.0f}" if abs(self.value) >= 100 else f"{self.value:,.2f}"
        line = f"{self.label:<58} {value:>9} {self.unit:<6}"
        note = self.details.get("note")
        if note:
            line += f"  {note}"
        if self.target is not None:
            verdict = "not judged" if self.passed is None else "PASS" if self.passed else "FAIL"
            line += f"  [target {self.target}: {verdict}]"
        return line


class Reporter:
    """Prints each figure as soon as it is measured (text or JSON lines) and keeps it."""

    def __init__(self, *, as_json: bool, out: IO[str]) -> None:
        self.as_json = as_json
        self.out = out
        self.figures: list[Figure] = []

    def say(self, text: str) -> None:
        if not self.as_json:
            print(text, file=self.out, flush=True)

    def context(self, text: str, fields: dict[str, Any]) -> None:
        """Where and how the figures were taken (a ``context`` object in JSON mode)."""
        if self.as_json:
            print(json.dumps({"measurement": "context", **fields}), file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        if self.as_json:
            print(json.dumps(figure.as_json(), sort_keys=False), file=self.out, flush=True)
        else:
            print(figure.as_text(), file=self.out, flush=True)
        return figure


# --- Shared Key signing and the clients ---------------------------------------------


def signed_headers(
    method: str, path: str, body: bytes, *, account: str, key: str, query: str = QUERY
) -> dict[str, str]:
    """Headers of one request, signed as azure-batch 15.x signs them (NOTES.md §3.2)."""
    headers = {"ocp-date": format_http_date(dt.datetime.now(dt.UTC))}
    if method not in ("GET", "HEAD"):
        headers["content-length"] = str(len(body))
    if body:
        headers["content-type"] = JSON_TYPE
    to_sign = string_to_sign(
        method, path, query, headers, account=account, lowercase_query_names=False
    )
    headers["authorization"] = f"SharedKey {account}:{sign(key, to_sign)}"
    return headers


class UnexpectedStatus(RuntimeError):
    """The emulator answered a benchmark request with another status than expected."""


def _check(method: str, path: str, status: int, expect: int | None, body: bytes) -> None:
    """``expect`` None accepts any 2xx (the controls answer 200 or 204)."""
    if (status != expect) if expect is not None else not 200 <= status < 300:
        raise UnexpectedStatus(
            f"{method} {path} answered {status} instead of {expect}: "
            f"{body[:300].decode(errors='replace')}"
        )


class RawRest:
    """Signed REST calls on aiohttp keep-alive connections (at most ``connections``)."""

    def __init__(self, endpoint: str, account: str, key: str, connections: int) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.account = account
        self.key = key
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            # aiohttp would add "Content-Type: application/octet-stream" to a body-less
            # POST after signing; Content-Type is a signed slot (NOTES.md §3.1).
            skip_auto_headers=("Content-Type",),
        )

    async def close(self) -> None:
        await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | None = 200,
        api: bool = True,
    ) -> bytes:
        data = json.dumps(body).encode() if body is not None else b""
        query = QUERY if api else ""
        headers = signed_headers(
            method, path, data, account=self.account, key=self.key, query=query
        )
        url = f"{self.endpoint}{path}?{query}" if query else f"{self.endpoint}{path}"
        async with self.session.request(method, url, data=data or None, headers=headers) as resp:
            content = await resp.read()
            _check(method, path, resp.status, expect, content)
            return content

    async def control(self, method: str, name: str, body: Any = None) -> Any:
        content = await self.call(method, f"/_emulator/{name}", body, expect=None, api=False)
        return json.loads(content) if content else None


class AsgiDirect:
    """Calls the ASGI app with a hand-built scope: the app's own cost, no HTTP client."""

    def __init__(self, app: EmulatorApp, account: str, key: str) -> None:
        self.app = app
        self.account = account
        self.key = key

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        expect: int | None = 200,
        api: bool = True,
    ) -> bytes:
        data = json.dumps(body).encode() if body is not None else b""
        query = QUERY if api else ""
        headers = signed_headers(
            method, path, data, account=self.account, key=self.key, query=query
        )
        headers["host"] = "127.0.0.1"
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 50000),
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> MutableMapping[str, Any]:
            nonlocal sent
            if sent:  # the whole body went in one message; anything after is a hang-up
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.app(scope, receive, send)
        content = b"".join(chunks)
        _check(method, path, status, expect, content)
        return content

    async def control(self, method: str, name: str, body: Any = None) -> Any:
        content = await self.call(method, f"/_emulator/{name}", body, expect=None, api=False)
        return json.loads(content) if content else None


# --- the emulator subprocess ----------------------------------------------------------


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (Linux ``/proc``), None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


class EmulatorProcess:
    """``python -m batch_emulator serve --port 0`` in its own session, found via its ready
    file; stopped with SIGTERM (it kills its task processes), then SIGKILL."""

    def __init__(self, workdir: Path, pools: Sequence[str]) -> None:
        self.workdir = workdir
        self.ready_file = workdir / "ready.json"
        self.log_path = workdir / "emulator.log"
        argv = [sys.executable, "-m", "batch_emulator", "serve", "--host", "127.0.0.1"]
        argv += ["--port", "0", "--ready-file", str(self.ready_file)]
        argv += ["--data-dir", str(workdir / "data")]
        for pool in pools:
            argv += ["--pool", pool]
        # The public development key, so that the ready file carries it (a custom key from
        # the environment never leaves the emulator's process).
        env = {k: v for k, v in os.environ.items() if k != "BATCH_EMULATOR_KEY"}
        self._log = self.log_path.open("wb")
        # Own session: a terminal Ctrl-C reaches the benchmark only, which then stops the
        # emulator with SIGTERM so that it can kill the task processes it started.
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.endpoint = ""
        self.account = DEFAULT_ACCOUNT
        self.key = DEFAULT_KEY

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"The emulator subprocess did not start (exit {self.proc.poll()}); "
                    f"its log: {self.log_tail()}"
                )
            time.sleep(0.02)
        info = json.loads(self.ready_file.read_text())
        self.endpoint = str(info["endpoint"])
        self.account = str(info["account"])
        self.key = str(info.get("key", DEFAULT_KEY))

    def cpu_s(self) -> float | None:
        return _proc_cpu_s(self.pid)

    def rss_mb(self) -> float | None:
        return _proc_rss_mb(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT_S)
        with contextlib.suppress(OSError):
            self._log.close()


# --- rate windows ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    requests: int
    seconds: float
    concurrency: int
    server_cpu_s: float | None  # the emulator process (None: unknown)
    client_cpu_s: float  # this process

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def details(self, *, in_process: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "concurrency": self.concurrency,
        }
        # In-process, app and client share the process: its CPU covers both.
        cpu = self.client_cpu_s if in_process else self.server_cpu_s
        key = "process_cpu" if in_process else "server_cpu"
        if cpu is not None and self.requests:
            out[f"{key}_us_per_request"] = round(cpu / self.requests * 1e6, 1)
            out[f"{key}_share"] = round(cpu / self.seconds, 3)
        note = f"{self.requests:,} in {self.seconds:.1f}s"
        if f"{key}_us_per_request" in out:
            who = "app+client CPU" if in_process else "emulator CPU"
            note += (
                f", {who} {out[f'{key}_us_per_request']:.0f} µs/req "
                f"({out[f'{key}_share']:.0%} of a core)"
            )
        if not in_process:
            out["client_cpu_share"] = round(self.client_cpu_s / self.seconds, 3)
            note += f", client CPU {out['client_cpu_share']:.0%}"
        out["note"] = note
        return out


Op = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Window:
    """How a rate is sampled: loops in flight, warm-up, and whose CPU is the server's."""

    concurrency: int
    warmup_s: float
    server_cpu: Callable[[], float | None]


async def measure_rate(op: Op, win: Window, duration_s: float) -> Rate:
    """Run ``op(worker, i)`` in ``win.concurrency`` loops; count completions in a window
    that starts after ``win.warmup_s`` and lasts ``duration_s`` (or until the request cap)."""
    concurrency, warmup_s, server_cpu = win.concurrency, win.warmup_s, win.server_cpu
    completed = 0
    stop = False

    async def worker(index: int) -> None:
        nonlocal completed
        i = 0
        while not stop and completed < MAX_REQUESTS_PER_WINDOW:
            await op(index, i)
            i += 1
            completed += 1
            # An in-process call completes without ever suspending; yield once per request
            # so the timer, the other loops and the emulator's own callbacks (its
            # scheduler dispatches on call_soon) run as they would behind a server.
            await asyncio.sleep(0)

    workers = [asyncio.create_task(worker(w)) for w in range(concurrency)]

    async def wait(seconds: float) -> None:
        finished, _ = await asyncio.wait(
            workers, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION
        )
        for task in finished:
            task.result()  # re-raise a worker's failure at once

    try:
        await wait(warmup_s)
        c0, t0, s0, p0 = completed, time.perf_counter(), server_cpu(), time.process_time()
        await wait(duration_s)
        c1, t1, s1, p1 = completed, time.perf_counter(), server_cpu(), time.process_time()
    finally:
        stop = True
        for task in workers:
            if task.done():
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), REQUEST_TIMEOUT_S)
        for task in workers:
            if not task.done():
                task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    server = s1 - s0 if s0 is not None and s1 is not None else None
    return Rate(c1 - c0, t1 - t0, concurrency, server, p1 - p0)


def _no_cpu() -> float | None:
    return None


# --- operations -----------------------------------------------------------------------


Caller = Callable[..., Awaitable[bytes]]


def get_task_op(call: Caller, job_id: str = GET_JOB, task_id: str = GET_TASK_ID) -> Op:
    path = f"/jobs/{job_id}/tasks/{task_id}"

    async def op(_worker: int, _i: int) -> None:
        await call("GET", path)

    return op


def get_random_task_op(call: Caller, jobs: int, seed: int) -> Op:
    rngs: dict[int, random.Random] = {}

    async def op(worker: int, _i: int) -> None:
        rng = rngs.setdefault(worker, random.Random(seed * 1000 + worker))
        await call("GET", f"/jobs/{SCALE_JOB_PREFIX}{rng.randrange(jobs):05d}/tasks/t")

    return op


def post_task_op(call: Caller, job_id: str) -> Op:
    path = f"/jobs/{job_id}/tasks"

    async def op(worker: int, i: int) -> None:
        body = {"id": f"w{worker}-{i}", "commandLine": NOOP_COMMAND}
        await call("POST", path, body, expect=201)

    return op


def sdk_get_op(client: BatchClient) -> Op:
    async def op(_worker: int, _i: int) -> None:
        await client.get_task(GET_JOB, GET_TASK_ID)

    return op


def sdk_post_op(client: BatchClient, job_id: str) -> Op:
    async def op(worker: int, i: int) -> None:
        task = batch_models.BatchTaskCreateOptions(id=f"w{worker}-{i}", command_line=NOOP_COMMAND)
        await client.create_task(job_id, task)

    return op


def httpx_op(client: httpx.AsyncClient, method: str, path: str) -> Op:
    params = {"api-version": API_VERSION}
    expect = 200 if method == "GET" else 201

    async def op(worker: int, i: int) -> None:
        if method == "GET":
            resp = await client.get(path, params=params)
        else:
            body = {"id": f"w{worker}-{i}", "commandLine": NOOP_COMMAND}
            resp = await client.post(path, params=params, json=body)
        _check(method, path, resp.status_code, expect, resp.content)

    return op


async def prepare(rest: RawRest | AsgiDirect, post_jobs: Sequence[str] = ()) -> None:
    """Hold every ``hold-*`` task in ``active`` and create the GET benchmark's task."""
    await rest.control("PUT", "hold", {"job_id": HOLD_GLOB, "task_id": "*", "state": "active"})
    for job_id in (GET_JOB, *post_jobs):
        await rest.call("POST", "/jobs", _job_body(job_id, BENCH_POOL), expect=201)
    task = {"id": GET_TASK_ID, "commandLine": NOOP_COMMAND}
    await rest.call("POST", f"/jobs/{GET_JOB}/tasks", task, expect=201)


def _job_body(job_id: str, pool_id: str) -> dict[str, Any]:
    return {"id": job_id, "poolInfo": {"poolId": pool_id}}


# --- phases ---------------------------------------------------------------------------


def _rate_figure(
    name: str,
    label: str,
    rate: Rate,
    *,
    client: str,
    in_process: bool = False,
    target: bool = False,
    **extra: Any,
) -> Figure:
    details: dict[str, Any] = {
        "transport": "in-process" if in_process else "loopback",
        "client": client,
        **extra,
        **rate.details(in_process=in_process),
    }
    fig = Figure(name, label, rate.per_s, "req/s", details)
    if target:
        fig.target = f">= {TARGET_GET_RATE:,.0f} req/s"
        fig.passed = rate.per_s >= TARGET_GET_RATE
    return fig


def _window_for(client: str, s: Settings, server_cpu: Callable[[], float | None]) -> Window:
    """Raw REST and bare ASGI calls use ``concurrency``; the heavier clients (httpx, the
    SDK) use ``client_concurrency``, where they are fastest on this machine."""
    lean = client in ("aiohttp", "asgi")
    return Window(s.concurrency if lean else s.client_concurrency, s.warmup_s, server_cpu)


def _seconds_for(client: str, s: Settings) -> float:
    return s.duration_s if client in ("aiohttp", "asgi") else s.client_duration_s


async def loopback_rates(emu: EmulatorProcess, s: Settings, rep: Reporter) -> None:
    rest = RawRest(emu.endpoint, emu.account, emu.key, s.concurrency)
    post_jobs = {"aiohttp": "hold-post-raw", "httpx": "hold-post-httpx", "sdk": "hold-post-sdk"}
    sdk = BatchClient(emu.endpoint, AzureNamedKeyCredential(emu.account, emu.key))
    conns = s.client_concurrency
    hx = httpx.AsyncClient(
        base_url=emu.endpoint,
        auth=SharedKeyAuth(emu.account, emu.key),
        limits=httpx.Limits(max_connections=conns, max_keepalive_connections=conns),
        timeout=REQUEST_TIMEOUT_S,
    )
    task_path = f"/jobs/{GET_JOB}/tasks/{GET_TASK_ID}"
    post_path = f"/jobs/{post_jobs['httpx']}/tasks"
    # (figure, label, client, op); raw REST first, it carries the target.
    plan: list[tuple[str, str, str, Op]] = [
        ("get_task_rate", "GET task, raw REST on aiohttp", "aiohttp", get_task_op(rest.call)),
        ("get_task_rate", "GET task, httpx.AsyncClient", "httpx", httpx_op(hx, "GET", task_path)),
        ("get_task_rate", "GET task, azure.batch.aio SDK", "sdk", sdk_get_op(sdk)),
        (
            "post_task_rate",
            "POST task, raw REST on aiohttp",
            "aiohttp",
            post_task_op(rest.call, post_jobs["aiohttp"]),
        ),
        (
            "post_task_rate",
            "POST task, httpx.AsyncClient",
            "httpx",
            httpx_op(hx, "POST", post_path),
        ),
        (
            "post_task_rate",
            "POST task, azure.batch.aio SDK",
            "sdk",
            sdk_post_op(sdk, post_jobs["sdk"]),
        ),
    ]
    try:
        await prepare(rest, tuple(post_jobs.values()))
        rep.say("-- over loopback (emulator in its own process) --")
        for name, label, client, op in plan:
            win = _window_for(client, s, emu.cpu_s)
            rate = await measure_rate(op, win, _seconds_for(client, s))
            target = name == "get_task_rate" and client == "aiohttp"
            rep.add(_rate_figure(name, label, rate, client=client, target=target))
    finally:
        await hx.aclose()
        await sdk.close()
        await rest.close()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def local_spawn_floor(samples: int) -> list[float]:
    """Seconds from ``Popen`` to the stamp of the same command run here directly."""
    out: list[float] = []
    for _ in range(samples):
        before = time.time()
        done = subprocess.run(
            ["/bin/sh", "-c", "date +%s.%N"], capture_output=True, check=True, timeout=10
        )
        out.append(float(done.stdout.decode().strip()) - before)
    return out


async def _wait_completed(rest: RawRest, job_id: str, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TASK_DONE_TIMEOUT_S
    while True:
        task: dict[str, Any] = json.loads(await rest.call("GET", f"/jobs/{job_id}/tasks/{task_id}"))
        if task.get("state") == "completed":
            return task
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Task {job_id}/{task_id} is still {task.get('state')!r} after "
                f"{TASK_DONE_TIMEOUT_S:.0f}s; see the emulator log."
            )
        await asyncio.sleep(POLL_INTERVAL_S)


async def latency_samples(
    emu: EmulatorProcess, job_id: str, count: int
) -> tuple[list[float], list[float]]:
    """Seconds from the 201 of each ``POST task`` (and from its sending) to the moment
    the task's own process wrote its timestamp; one task at a time, each waited for."""
    rest = RawRest(emu.endpoint, emu.account, emu.key, 2)
    after_201: list[float] = []
    after_send: list[float] = []
    try:
        await rest.call("POST", "/jobs", _job_body(job_id, LATENCY_POOL), expect=201)
        for i in range(count):
            task_id = f"l{i}"
            body = {"id": task_id, "commandLine": STAMP_COMMAND}
            sent = time.time()
            await rest.call("POST", f"/jobs/{job_id}/tasks", body, expect=201)
            answered = time.time()
            task = await _wait_completed(rest, job_id, task_id)
            result = task.get("executionInfo", {}).get("result")
            if result != "success":
                raise RuntimeError(f"Latency task {task_id} ended with {result!r}: {task}")
            stamp = await rest.call("GET", f"/jobs/{job_id}/tasks/{task_id}/files/wd/{STAMP_FILE}")
            started = float(stamp.decode().strip())
            after_201.append(started - answered)
            after_send.append(started - sent)
    finally:
        await rest.close()
    return after_201, after_send


def _latency_figure(name: str, label: str, values: Sequence[float], **extra: Any) -> Figure:
    p50 = percentile(values, 50) * 1000
    p95 = percentile(values, 95) * 1000
    top = max(values) * 1000
    details = {
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "max_ms": round(top, 2),
        "samples": len(values),
        **extra,
        "note": f"p95 {p95:.1f} ms, max {top:.1f} ms, n={len(values)}",
    }
    if "server_rss_mb" in extra:
        details["note"] += f", emulator RSS {extra['server_rss_mb']:.0f} MB"
    return Figure(name, f"{label}, p50", p50, "ms", details)


async def start_latency(emu: EmulatorProcess, s: Settings, rep: Reporter) -> None:
    rep.say("-- POST task -> task process started (process-written timestamp) --")
    after_201, after_send = await latency_samples(emu, "lat", s.latency_tasks)
    rss = emu.rss_mb()
    extra = {"server_rss_mb": round(rss, 1)} if rss is not None else {}
    label = "task start after POST task's 201"
    rep.add(_latency_figure("start_latency_from_201", label, after_201, **extra))
    label = "task start after POST task was sent"
    rep.add(_latency_figure("start_latency_from_send", label, after_send, **extra))
    floor = local_spawn_floor(max(5, s.latency_tasks // 5))
    label = "same command spawned here by subprocess.run (floor)"
    rep.add(_latency_figure("local_spawn_floor", label, floor))


def _cpu_us(rate: Rate) -> float | None:
    if rate.server_cpu_s is None or not rate.requests:
        return None
    return round(rate.server_cpu_s / rate.requests * 1e6, 1)  # as the rate figures show it


async def _create_scale_jobs(rest: RawRest, jobs: int, concurrency: int) -> None:
    next_index = 0

    async def create() -> None:
        nonlocal next_index
        while next_index < jobs:
            job_id = f"{SCALE_JOB_PREFIX}{next_index:05d}"
            next_index += 1
            await rest.call("POST", "/jobs", _job_body(job_id, BENCH_POOL), expect=201)
            task = {"id": "t", "commandLine": NOOP_COMMAND}
            await rest.call("POST", f"/jobs/{job_id}/tasks", task, expect=201)

    await asyncio.gather(*(create() for _ in range(concurrency)))


async def scale_check(workdir: Path, s: Settings, rep: Reporter) -> None:
    """Two fresh emulator processes, one with 1 job, one with ``scale_jobs`` more; their
    GET windows alternate, so whatever else the machine runs hits both alike."""
    rep.say(
        f"-- scale: GET task on an emulator with 1 job vs one with {s.scale_jobs:,} more jobs "
        f"of one held task each (windows alternate; best of {s.repeats}) --"
    )
    conc = s.concurrency
    emus: list[EmulatorProcess] = []
    rests: list[RawRest] = []
    try:
        for name in ("scale-empty", "scale-loaded"):
            (workdir / name).mkdir()
            emus.append(EmulatorProcess(workdir / name, EMULATOR_POOLS))
        for emu in emus:
            emu.wait_ready()
            rests.append(RawRest(emu.endpoint, emu.account, emu.key, conc))
        (empty_emu, loaded_emu), (empty_rest, loaded_rest) = emus, rests
        for rest in rests:
            await prepare(rest)

        started = time.perf_counter()
        cpu0 = loaded_emu.cpu_s()
        await _create_scale_jobs(loaded_rest, s.scale_jobs, conc)
        elapsed = time.perf_counter() - started
        cpu1 = loaded_emu.cpu_s()
        state = await loaded_rest.control("GET", "state")
        held = int(state["scheduler"]["held"])
        jobs = int(state["jobs"])
        if jobs < s.scale_jobs + 1 or held < s.scale_jobs + 1:
            raise RuntimeError(
                f"After creating {s.scale_jobs} jobs the emulator reports {jobs} jobs and "
                f"{held} held tasks; expected {s.scale_jobs + 1} of each."
            )
        created = Figure(
            "scale_create_rate",
            f"create {s.scale_jobs:,} jobs + 1 task each (POST job, POST task)",
            2 * s.scale_jobs / elapsed,
            "req/s",
            {
                "jobs": jobs,
                "held_tasks": held,
                "seconds": round(elapsed, 3),
                "note": f"{elapsed:.1f}s; emulator now holds {jobs:,} jobs, {held:,} held tasks",
            },
        )
        if cpu0 is not None and cpu1 is not None:
            created.details["server_cpu_us_per_request"] = round(
                (cpu1 - cpu0) / (2 * s.scale_jobs) * 1e6, 1
            )
        rep.add(created)

        plan: list[tuple[str, str, str, Op, EmulatorProcess]] = [
            (
                "scale_get_rate_empty",
                "GET task, emulator with 1 job",
                "same",
                get_task_op(empty_rest.call),
                empty_emu,
            ),
            (
                "scale_get_rate_loaded",
                f"GET task (same task), {jobs:,} jobs",
                "same",
                get_task_op(loaded_rest.call),
                loaded_emu,
            ),
            (
                "scale_get_rate_loaded",
                f"GET task (random held task), {jobs:,} jobs",
                "random",
                get_random_task_op(loaded_rest.call, s.scale_jobs, s.seed),
                loaded_emu,
            ),
        ]
        windows: list[list[Rate]] = [[] for _ in plan]
        for _ in range(s.repeats):
            for rates, (*_, op, emu) in zip(windows, plan, strict=True):
                win = Window(conc, s.warmup_s, emu.cpu_s)
                rates.append(await measure_rate(op, win, s.duration_s))
        best: list[Rate] = []
        for rates, (name, label, task, *_) in zip(windows, plan, strict=True):
            top = max(rates, key=lambda r: r.per_s)
            best.append(top)
            per_window = [round(r.per_s, 1) for r in rates]
            fig = _rate_figure(name, label, top, client="aiohttp", task=task, windows=per_window)
            rep.add(fig)
        rss_empty, rss_loaded = empty_emu.rss_mb(), loaded_emu.rss_mb()

        empty = best[0]
        slowest = min(best[1:], key=lambda r: r.per_s)
        ratio = empty.per_s / slowest.per_s if slowest.per_s > 0 else math.inf
        details: dict[str, Any] = {
            "jobs": jobs,
            "empty_rate": round(empty.per_s, 1),
            "loaded_rate": round(slowest.per_s, 1),
            "note": f"{empty.per_s:,.0f} -> {slowest.per_s:,.0f} req/s",
        }
        # The emulator's CPU per request depends less on what else runs on the machine,
        # so its ratio is the steadier view of the same question.
        cpu_empty, cpu_loaded = _cpu_us(empty), _cpu_us(slowest)
        if cpu_empty and cpu_loaded:
            details["server_cpu_ratio"] = round(cpu_loaded / cpu_empty, 3)
            details["note"] += f"; emulator CPU {cpu_empty:.0f} -> {cpu_loaded:.0f} µs/req"
        if rss_empty is not None and rss_loaded is not None:
            details["server_rss_mb_empty"] = round(rss_empty, 1)
            details["server_rss_mb_loaded"] = round(rss_loaded, 1)
            details["note"] += f"; RSS {rss_empty:.0f} -> {rss_loaded:.0f} MB"
        ratio_fig = Figure(
            "scale_slowdown", f"GET task slowdown with {jobs:,} jobs", ratio, "x", details
        )
        ratio_fig.target = f"<= {TARGET_SCALE_RATIO:g}x with >= {TARGET_SCALE_JOBS:,} jobs"
        # Fewer jobs than the target (--quick) is not a verdict either way.
        ratio_fig.passed = (
            ratio <= TARGET_SCALE_RATIO if s.scale_jobs >= TARGET_SCALE_JOBS else None
        )
        rep.add(ratio_fig)

        # Task start with the jobs in memory: spawning may cost more in a bigger process.
        count = min(s.latency_tasks, LOADED_LATENCY_TASKS)
        after_201, _ = await latency_samples(loaded_emu, "lat", count)
        label = f"task start after POST task's 201, {jobs:,} jobs"
        extra: dict[str, Any] = {"jobs": jobs}
        if rss_loaded is not None:
            extra["server_rss_mb"] = round(rss_loaded, 1)
        rep.add(_latency_figure("start_latency_from_201_loaded", label, after_201, **extra))
    finally:
        for rest in rests:
            await rest.close()
        for emu in emus:
            emu.stop()


async def in_process_rates(workdir: Path, s: Settings, rep: Reporter) -> None:
    rep.say("-- in-process (ASGI app called directly, no sockets; client and app share a core) --")
    config = EmulatorConfig(
        data_dir=workdir / "inproc", pools=(PoolSeed(BENCH_POOL, nodes=1, slots=4),)
    )
    app = create_app(config)
    direct = AsgiDirect(app, config.account, config.key)
    hx = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1",
        auth=SharedKeyAuth(config.account, config.key),
        timeout=REQUEST_TIMEOUT_S,
    )
    task_path = f"/jobs/{GET_JOB}/tasks/{GET_TASK_ID}"
    plan: list[tuple[str, str, str, Op]] = [
        ("get_task_rate", "GET task, bare ASGI call", "asgi", get_task_op(direct.call)),
        (
            "get_task_rate",
            "GET task, httpx.ASGITransport",
            "httpx-asgi",
            httpx_op(hx, "GET", task_path),
        ),
        (
            "post_task_rate",
            "POST task, bare ASGI call",
            "asgi",
            post_task_op(direct.call, "hold-post-asgi"),
        ),
        (
            "post_task_rate",
            "POST task, httpx.ASGITransport",
            "httpx-asgi",
            httpx_op(hx, "POST", "/jobs/hold-post-httpx/tasks"),
        ),
    ]
    try:
        await app.startup()
        await prepare(direct, ("hold-post-asgi", "hold-post-httpx"))
        for name, label, client, op in plan:
            # One process: its own CPU time is the emulator's plus the client's.
            win = _window_for(client, s, _no_cpu)
            rate = await measure_rate(op, win, _seconds_for(client, s))
            rep.add(_rate_figure(name, label, rate, client=client, in_process=True))
    finally:
        await hx.aclose()
        await app.shutdown()
        app.close()


# --- entry point ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Benchmark the local Azure Batch emulator (rates, start latency, scale)."
    )
    p.add_argument("--quick", action="store_true", help="short windows, 1,000 jobs (< 20 s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    p.add_argument("--duration", type=float, default=None, help="seconds per main rate window")
    p.add_argument(
        "--client-duration", type=float, default=None, help="seconds per httpx/SDK window"
    )
    p.add_argument("--warmup", type=float, default=None, help="seconds before each window")
    p.add_argument("--concurrency", type=int, default=None, help="raw REST requests in flight")
    p.add_argument(
        "--client-concurrency", type=int, default=None, help="httpx/SDK requests in flight"
    )
    p.add_argument("--repeats", type=int, default=None, help="windows per scale-check rate")
    p.add_argument("--latency-tasks", type=int, default=None, help="tasks timed for latency")
    p.add_argument("--scale-jobs", type=int, default=None, help="jobs of the scale check")
    p.add_argument("--seed", type=int, default=None, help="seed of the random GET targets")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    s = QUICK if args.quick else FULL
    overrides = {
        "duration_s": args.duration,
        "client_duration_s": args.client_duration,
        "warmup_s": args.warmup,
        "concurrency": args.concurrency,
        "client_concurrency": args.client_concurrency,
        "repeats": args.repeats,
        "latency_tasks": args.latency_tasks,
        "scale_jobs": args.scale_jobs,
        "seed": args.seed,
    }
    s = replace(s, **{k: v for k, v in overrides.items() if v is not None})
    if s.duration_s <= 0 or s.client_duration_s <= 0 or s.warmup_s < 0:
        raise SystemExit("emulator_bench: durations must be positive (warm-up may be 0).")
    counts = (s.concurrency, s.client_concurrency, s.latency_tasks, s.scale_jobs, s.repeats)
    if min(counts) < 1:
        raise SystemExit("emulator_bench: concurrencies, counts and --repeats must be >= 1.")
    return s


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not available on this platform
        return math.nan


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the cleanup below runs for both."""
    if sys.platform == "win32" or not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _run(coro: Coroutine[Any, Any, None]) -> None:
    # The emulator's uvicorn runs on uvloop; the clients get the same loop, so the client
    # side costs as little CPU as it can on a machine the server shares.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


async def _all_phases(emu: EmulatorProcess, workdir: Path, s: Settings, rep: Reporter) -> None:
    # Latency first, on a fresh emulator: the rate phases leave it holding ~100k tasks,
    # and a bigger process spawns more slowly (see README.md).
    await start_latency(emu, s, rep)
    await loopback_rates(emu, s, rep)
    await scale_check(workdir, s, rep)
    await in_process_rates(workdir, s, rep)


def main(argv: Sequence[str] | None = None, *, out: IO[str] | None = None) -> list[Figure]:
    """Run every measurement; print them; return the figures (for the smoke test)."""
    args = build_parser().parse_args(argv)
    s = settings_from(args)
    rep = Reporter(as_json=args.json, out=out or sys.stdout)
    load = _loadavg()
    rep.context(
        f"Emulator benchmark, {'quick' if args.quick else 'full'} mode, "
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs (load average {load:.2f} at start), "
        f"Python {platform.python_version()}; {s.concurrency} requests in flight "
        f"({s.client_concurrency} for httpx/SDK), windows "
        f"{s.duration_s:g}s (httpx/SDK {s.client_duration_s:g}s) after {s.warmup_s:g}s warm-up",
        {
            "mode": "quick" if args.quick else "full",
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "loadavg_1m": round(load, 2),
            "python": platform.python_version(),
            **asdict(s),
        },
    )
    started = time.monotonic()
    with (
        _sigterm_as_interrupt(),
        tempfile.TemporaryDirectory(prefix="emulator-bench-", ignore_cleanup_errors=True) as tmp,
    ):
        workdir = Path(tmp)
        emu = EmulatorProcess(workdir, EMULATOR_POOLS)
        try:
            emu.wait_ready()
            _run(_all_phases(emu, workdir, s, rep))
        finally:
            emu.stop()
    rep.say(
        f"done in {time.monotonic() - started:.0f}s (load average {_loadavg():.2f} at the end; "
        "other processes on the machine lower every rate)"
    )
    return rep.figures


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("emulator_bench: interrupted; the emulator and temporary files were removed.")
        sys.exit(130)
    except BrokenPipeError:  # e.g. "| head": the reader left; the cleanup has already run
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
