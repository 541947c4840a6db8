"""Running the emulator: configuration, an in-process server for tests, the CLI server.

``KeyVaultServer`` (a context manager) binds a loopback port, writes a fresh self-signed
certificate, runs uvicorn on its own thread and returns once connections are accepted::

    with KeyVaultServer(KeyVaultConfig()) as kv:
        client = SecretClient(kv.url, kv.credential("secrets-user"), **kv.client_options())

``serve()`` runs the same server in the foreground for ``keyvault-emulator serve`` and
returns on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from batch_emulator.tls import write_self_signed
from keyvault_emulator import DEFAULT_TENANT
from keyvault_emulator.app import KeyVaultApp
from keyvault_emulator.auth import Role
from keyvault_emulator.backend import SecretChanges
from keyvault_emulator.clock import Clock, system_clock
from keyvault_emulator.controlclient import ControlClient
from keyvault_emulator.credential import AsyncStaticTokenCredential, StaticTokenCredential
from keyvault_emulator.hosts import split_host

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # noqa: S104 - names compared against, not bound


@dataclass(frozen=True)
class KeyVaultConfig:
    """Everything the emulator needs to start.

    ``tokens`` maps a role (``secrets-user``, ``secrets-officer``, ``reader``) to the bearer
    token that carries it; a role left out gets a random token (see ``server.tokens``).
    ``admin_token`` opens ``/_emulator/*`` only; None generates one. Tokens are kept out
    of ``repr``.
    """

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | str | None = None  # None: in memory, certificate in a temp directory
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    tenant_id: str = DEFAULT_TENANT
    extra_hosts: tuple[str, ...] = ()
    clock: Clock | None = None  # None: the system clock
    log_level: str = "warning"  # uvicorn's


def _check_token(what: str, token: str) -> None:
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(f"The {what} token must be non-empty printable ASCII without spaces.")


def resolve_tokens(configured: Mapping[str, str]) -> dict[Role, str]:
    """One token per role: the configured ones, random ones for the rest."""
    tokens: dict[Role, str] = {}
    for name, token in configured.items():
        try:
            role = Role(name)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ValueError(f"Unknown role {name!r}; the roles are {known}.") from None
        _check_token(role.value, token)
        tokens[role] = token
    for role in Role:
        tokens.setdefault(role, secrets.token_urlsafe(32))
    if len(set(tokens.values())) != len(tokens):
        raise ValueError("Each role needs a token of its own.")
    return tokens


def _url_host(host: str) -> str:
    if host in _WILDCARD_HOSTS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _certificate_names(config: KeyVaultConfig) -> tuple[str, ...]:
    """Names the certificate covers besides localhost/127.0.0.1/::1: the listening
    address (unless a wildcard) and the extra hosts' names."""
    names = [] if config.host in _WILDCARD_HOSTS else [config.host]
    for entry in config.extra_hosts:
        parsed = split_host(entry)
        if parsed is not None:
            names.append(parsed[0])
    return tuple(names)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn that reports when it accepts connections and, off the main thread, leaves
    signal handling alone (and never re-raises a captured signal, so ``serve`` returns)."""

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
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _Run:
    """One start of the emulator: tokens, certificate, socket, app and uvicorn server."""

    def __init__(self, config: KeyVaultConfig, *, configure_logging: bool) -> None:
        self.tokens = resolve_tokens(config.tokens)
        self.admin_token = config.admin_token or secrets.token_urlsafe(32)
        _check_token("admin", self.admin_token)
        if self.admin_token in self.tokens.values():
            raise ValueError("The admin token must differ from every role's token.")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.data_dir = Path(config.data_dir) if config.data_dir is not None else None
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tls_dir = self.data_dir / "tls"
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="keyvault-emulator-")
            tls_dir = Path(self._tmp.name) / "tls"
        self.cert_path, key_path = write_self_signed(tls_dir, _certificate_names(config))
        self.sock = _bind(config.host, config.port)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"https://{_url_host(config.host)}:{self.port}/"
        self.clock = config.clock or system_clock
        self.app = KeyVaultApp(
            tokens=self.tokens,
            admin_token=self.admin_token,
            tenant_id=config.tenant_id,
            port=self.port,
            clock=self.clock,
            extra_hosts=config.extra_hosts,
            data_dir=self.data_dir,
        )
        uv_config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level=config.log_level,
            log_config=uvicorn.config.LOGGING_CONFIG if configure_logging else None,
            access_log=False,  # its lines carry the query string
            server_header=False,
            ssl_certfile=str(self.cert_path),
            ssl_keyfile=str(key_path),
            timeout_graceful_shutdown=2,
        )
        self.server = _Uvicorn(uv_config)

    def run(self) -> None:
        self.server.run(sockets=[self.sock])

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None


class KeyVaultServer:
    """The emulator on a background thread; use it as a context manager."""

    def __init__(self, config: KeyVaultConfig | None = None) -> None:
        self.config = config or KeyVaultConfig()
        self._run: _Run | None = None
        self._thread: threading.Thread | None = None
        self._control: ControlClient | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        where = self._run.url if self._run is not None else "stopped"
        return f"KeyVaultServer({where})"

    def _need(self) -> _Run:
        if self._run is None:
            raise RuntimeError("The Key Vault emulator is not running; use it inside 'with'.")
        return self._run

    # -- where and how to connect -------------------------------------------------------

    @property
    def url(self) -> str:
        """The vault URL, ``https://127.0.0.1:<port>/`` (trailing slash, like Key Vault's)."""
        return self._need().url

    @property
    def port(self) -> int:
        return self._need().port

    @property
    def cert_path(self) -> Path:
        """The self-signed certificate to trust (``connection_verify=str(cert_path)``)."""
        return self._need().cert_path

    @property
    def tokens(self) -> dict[str, str]:
        """Role name → bearer token."""
        return {role.value: token for role, token in self._need().tokens.items()}

    @property
    def admin_token(self) -> str:
        return self._need().admin_token

    @property
    def data_dir(self) -> Path | None:
        return self._need().data_dir

    @property
    def app(self) -> KeyVaultApp:
        return self._need().app

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            raise RuntimeError("The Key Vault emulator is not running; use it inside 'with'.")
        return self._control

    def credential(self, role: str = "secrets-user") -> StaticTokenCredential:
        """A sync ``TokenCredential`` carrying ``role``."""
        return StaticTokenCredential(self.tokens[Role(role).value])

    def async_credential(self, role: str = "secrets-user") -> AsyncStaticTokenCredential:
        return AsyncStaticTokenCredential(self.tokens[Role(role).value])

    def client_options(self) -> dict[str, Any]:
        """The only two ``SecretClient`` options a loopback vault needs beyond the defaults:
        skip the check that the challenge's resource matches the vault's domain, and
        trust the emulator's certificate."""
        return {"verify_challenge_resource": False, "connection_verify": str(self.cert_path)}

    # -- arranging state in-process (no request log entry, no auth) ---------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        enabled: bool = True,
    ) -> str:
        """Add a version of ``name`` directly; returns its version id."""
        app = self.app
        with app.lock:
            _, version = app.vault.set_secret(
                name, value, content_type=content_type, tags=tags, enabled=enabled
            )
            app.persist()
        return version.version

    def disable(self, name: str, version: str | None = None) -> None:
        """Disable a version (the latest by default): ``get`` then answers 403."""
        self._set_enabled(name, version, False)

    def enable(self, name: str, version: str | None = None) -> None:
        self._set_enabled(name, version, True)

    def _set_enabled(self, name: str, version: str | None, enabled: bool) -> None:
        app = self.app
        with app.lock:
            app.vault.update(name, version, SecretChanges(enabled=enabled))
            app.persist()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> KeyVaultServer:
        if self._run is not None:
            raise RuntimeError("This KeyVaultServer is already running.")
        run = _Run(self.config, configure_logging=False)
        self._run = run
        ready = threading.Event()
        run.server.on_started = ready.set

        def serve_thread() -> None:
            try:
                run.run()
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                self._error = exc
            finally:
                ready.set()  # also wakes start() when the server could not start

        self._thread = threading.Thread(target=serve_thread, name="keyvault-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(STARTUP_TIMEOUT_S) or not run.server.started:
            self.stop()
            raise RuntimeError(f"The Key Vault emulator did not start: {self._error!r}")
        self._control = ControlClient(run.url, run.admin_token, cafile=run.cert_path)
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        run, self._run = self._run, None
        if run is None:
            return
        run.server.should_exit = True
        # Do not wait for idle keep-alive clients to finish TLS close-notify: a test's SDK
        # client may keep its pool open for the whole session, and the waits add up.
        run.server.force_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        run.cleanup()

    def __enter__(self) -> KeyVaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Started:
    """What ``serve`` tells its caller once requests are accepted."""

    url: str
    cert_path: Path
    tokens: dict[str, str] = field(repr=False)
    admin_token: str = field(repr=False)


def serve(config: KeyVaultConfig, on_started: Callable[[Started], None]) -> None:
    """Run the emulator in the foreground until SIGINT/SIGTERM."""
    run = _Run(config, configure_logging=True)

    def started() -> None:
        on_started(
            Started(
                url=run.url,
                cert_path=run.cert_path,
                tokens={r.value: t for r, t in run.tokens.items()},
                admin_token=run.admin_token,
            )
        )

    run.server.on_started = started
    try:
        run.run()
    finally:
        run.cleanup()


__all__ = ["KeyVaultConfig", "KeyVaultServer", "Started", "resolve_tokens", "serve"]
