"""Serving the emulator: configuration, an in-process server for tests, the CLI server.

``EmulatorServer`` runs uvicorn on its own thread and event loop and returns once the
server accepts requests; ``emu.control`` talks to the ``/_emulator`` controls with the
same Shared Key credentials as any client. ``serve()`` runs the server in the foreground
for ``batch-emulator serve`` and stops cleanly on SIGINT/SIGTERM, killing task processes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.app import EmulatorApp, create_app
from batch_emulator.protocol.auth import sign, string_to_sign
from batch_emulator.protocol.formats import format_http_date
from batch_emulator.protocol.hosts import HostRule, parse_host
from batch_emulator.tls import write_self_signed

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class PoolSeed:
    """A pool that exists from the start: ``nodes`` nodes of ``slots`` task slots each."""

    id: str
    nodes: int = 1
    slots: int = 1

    @classmethod
    def parse(cls, text: str) -> PoolSeed:
        """``ID=NODES[xSLOTS]`` as given to ``--pool`` (e.g. ``pool1=2x4``)."""
        pool_id, sep, size = text.partition("=")
        if not sep or not pool_id:
            raise ValueError(f"--pool {text!r}: expected ID=NODES or ID=NODESxSLOTS.")
        nodes_text, _, slots_text = size.lower().partition("x")
        try:
            nodes = int(nodes_text)
            slots = int(slots_text) if slots_text else 1
        except ValueError:
            raise ValueError(
                f"--pool {text!r}: NODES and SLOTS must be whole numbers, e.g. pool1=2x4."
            ) from None
        if nodes < 0 or slots < 1:
            raise ValueError(f"--pool {text!r}: NODES must be >= 0 and SLOTS >= 1.")
        return cls(pool_id, nodes, slots)


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything the emulator needs to start."""

    host: str = "127.0.0.1"
    port: int = 0
    account: str = DEFAULT_ACCOUNT
    key: str = DEFAULT_KEY
    data_dir: Path | str | None = None  # None: a temporary directory removed on stop
    pools: tuple[PoolSeed, ...] = ()
    bearer_tokens: tuple[str, ...] = ()
    tls: bool = False
    active_job_quota: int | None = None
    # Minimum time a job stays terminating/deleting (and a pool deleting/resizing), so
    # SDK pollers and a GET right after the 202 observe the transitional state.
    transition_s: float = 0.2
    # Grace between SIGTERM and SIGKILL when a task's process tree is killed.
    kill_grace_s: float = 3.0
    use_containers: bool = True
    fault_seed: int = 0
    log_level: str = "warning"
    extra_hosts: tuple[str, ...] = field(default=())
    # Host headers served besides localhost/loopback on the bound port (and, bound to a
    # wildcard address, IP literals): NAME, NAME:PORT or "*" (see protocol/hosts.py).
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for entry in self.allowed_hosts:
            if entry.strip() != "*":
                try:
                    parse_host(entry)
                except ValueError as exc:
                    raise ValueError(f"allowed_hosts: {exc}.") from None


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - only used to print a reachable URL
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    """uvicorn without re-raising captured signals (so callers can finish cleanly), with a
    hook that runs once the sockets accept connections."""

    on_started: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class _Prepared:
    """The bound socket, the app and the uvicorn server of one run."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if config.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="batch-emulator-")
            config = replace(config, data_dir=Path(self._tmp.name))
        self.config = config
        data_dir = Path(str(config.data_dir))
        self.tls_cert_path: Path | None = None
        tls_key_path: Path | None = None
        if config.tls:
            allowed = tuple(parse_host(h)[0] for h in config.allowed_hosts if h.strip() != "*")
            hosts = (config.host, *config.extra_hosts, *allowed)
            self.tls_cert_path, tls_key_path = write_self_signed(data_dir / "tls", hosts)
        self.sock = _bind(config.host, config.port)
        self.port: int = self.sock.getsockname()[1]
        scheme = "https" if config.tls else "http"
        self.endpoint = f"{scheme}://{_url_host(config.host)}:{self.port}"
        self.app: EmulatorApp = create_app(config)
        self.app.set_public_url(self.endpoint)
        self.app.restrict_hosts(
            HostRule(
                port=self.port, scheme=scheme, bound_host=config.host, allowed=config.allowed_hosts
            )
        )
        uv_config = uvicorn.Config(
            self.app,
            lifespan="on",
            log_level=config.log_level,
            access_log=False,
            server_header=False,
            ssl_certfile=str(self.tls_cert_path) if self.tls_cert_path else None,
            ssl_keyfile=str(tls_key_path) if tls_key_path else None,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=30,
        )
        self.server = _Server(uv_config)

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        self.app.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None


class SharedKeyAuth(httpx.Auth):
    """Signs httpx requests with Shared Key exactly as the Batch SDK does (NOTES.md §3.2)."""

    def __init__(self, account: str, key: str) -> None:
        self.account = account
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["ocp-date"] = format_http_date(dt.datetime.now(dt.UTC))
        if request.method not in ("GET", "HEAD") and "content-length" not in request.headers:
            request.headers["content-length"] = "0"
        url = request.url
        to_sign = string_to_sign(
            request.method,
            url.raw_path.decode("ascii").split("?", 1)[0],
            url.query.decode("ascii"),
            dict(request.headers),
            account=self.account,
            lowercase_query_names=False,
        )
        request.headers["authorization"] = f"SharedKey {self.account}:{sign(self.key, to_sign)}"
        yield request


class ControlClient:
    """A small client of the ``/_emulator`` controls (see :mod:`batch_emulator.control`)."""

    def __init__(
        self,
        endpoint: str,
        account: str,
        key: str,
        *,
        cafile: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(cafile)) if cafile is not None else True
        )
        self._client = httpx.Client(
            base_url=self.endpoint,
            auth=SharedKeyAuth(account, key),
            verify=verify,
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, name: str, body: Any = None) -> Any:
        response = self._client.request(
            method, f"/_emulator/{name}", json=body if body is not None else None
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"Emulator control {method} /_emulator/{name} failed with "
                f"{response.status_code}: {response.text}"
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def reset(self) -> None:
        self._call("POST", "reset")

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "requests")["requests"])

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def set_faults(self, rules: Sequence[dict[str, Any]], *, seed: int | None = None) -> None:
        body: dict[str, Any] = {"rules": list(rules)}
        if seed is not None:
            body["seed"] = seed
        self._call("PUT", "faults", body)

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def hold(self, job_id: str = "*", task_id: str = "*", state: str = "active") -> None:
        self._call("PUT", "hold", {"job_id": job_id, "task_id": task_id, "state": state})

    def release(self, job_id: str = "*", task_id: str = "*") -> int:
        return int(
            self._call("POST", "release", {"job_id": job_id, "task_id": task_id})["released"]
        )

    def release_all(self) -> int:
        return int(self._call("DELETE", "hold")["released"])

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "clock", {"advance_s": seconds})
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "state")
        return result


class EmulatorServer:
    """The emulator on a background thread; use as a context manager."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._prepared: _Prepared | None = None
        self._thread: threading.Thread | None = None
        self._control: ControlClient | None = None
        self._error: BaseException | None = None

    # -- properties ------------------------------------------------------------

    def _need(self) -> _Prepared:
        if self._prepared is None:
            raise RuntimeError("The emulator is not running; use it inside 'with'.")
        return self._prepared

    @property
    def endpoint(self) -> str:
        return self._need().endpoint

    @property
    def port(self) -> int:
        return self._need().port

    @property
    def account(self) -> str:
        return self.config.account

    @property
    def key(self) -> str:
        return self.config.key

    @property
    def data_dir(self) -> Path:
        return Path(str(self._need().config.data_dir))

    @property
    def tls_cert_path(self) -> Path | None:
        return self._need().tls_cert_path

    @property
    def app(self) -> EmulatorApp:
        return self._need().app

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            raise RuntimeError("The emulator is not running; use it inside 'with'.")
        return self._control

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> EmulatorServer:
        if self._prepared is not None:
            raise RuntimeError("This EmulatorServer is already running.")
        prepared = _Prepared(self.config)
        self._prepared = prepared

        def run() -> None:
            try:
                prepared.server.run(sockets=[prepared.sock])
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                self._error = exc

        self._thread = threading.Thread(target=run, name="batch-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not prepared.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The emulator did not start: {self._error!r}")
            time.sleep(0.01)
        self._control = ControlClient(
            prepared.endpoint, self.config.account, self.config.key, cafile=prepared.tls_cert_path
        )
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            return
        prepared.server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        prepared.cleanup()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    config: EmulatorConfig,
    *,
    ready_file: Path | None = None,
    key_file: Path | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the emulator in the foreground until SIGINT/SIGTERM (the CLI's ``serve``).

    ``key_file``: where the key came from, for the ready file (the key itself stays out).
    """
    prepared = _Prepared(config)
    ready_written = False

    def started() -> None:
        nonlocal ready_written
        announce(
            f"Azure Batch emulator listening on {prepared.endpoint} (account {config.account})"
        )
        if ready_file is not None:
            _write_ready_file(ready_file, prepared, config, key_file)
            ready_written = True

    prepared.server.on_started = started
    try:
        prepared.server.run(sockets=[prepared.sock])
    finally:
        if ready_written and ready_file is not None:
            with contextlib.suppress(OSError):
                ready_file.unlink()
        prepared.cleanup()


def _write_ready_file(
    path: Path, prepared: _Prepared, config: EmulatorConfig, key_file: Path | None
) -> None:
    """JSON for scripts: where to connect. The key is included only if it is the public
    development default; a custom key never leaves the process (a key file's path does:
    who may read the file may use the key)."""
    source = "default" if config.key == DEFAULT_KEY else "custom"
    info: dict[str, Any] = {
        "endpoint": prepared.endpoint,
        "account": config.account,
        "port": prepared.port,
        "key_source": "file" if key_file is not None else source,
        "tls": config.tls,
        "data_dir": str(prepared.config.data_dir),
    }
    if key_file is not None:
        info["key_file"] = str(key_file)
    elif config.key == DEFAULT_KEY:
        info["key"] = DEFAULT_KEY
    if prepared.tls_cert_path is not None:
        info["tls_cert_path"] = str(prepared.tls_cert_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)


def parse_pools(values: Iterable[str]) -> tuple[PoolSeed, ...]:
    return tuple(PoolSeed.parse(v) for v in values)


def endpoint_host(endpoint: str) -> str:
    return urlsplit(endpoint).hostname or ""


__all__ = [
    "ControlClient",
    "EmulatorConfig",
    "EmulatorServer",
    "PoolSeed",
    "SharedKeyAuth",
    "parse_pools",
    "serve",
]
