"""The emulator as an ASGI application.

A hand-rolled ASGI callable (like ``batch_emulator.app``): a dozen fixed paths need no
framework. Per request, in the order the service's front end would apply them:

1. ``Host`` must name this emulator (:mod:`keyvault_emulator.hosts`), else 421.
2. ``/_emulator/*`` goes to the controls (admin token; never logged).
3. Route (404/405), then authenticate (401 + challenge), then ``api-version`` (400),
   then RBAC (403 ``ForbiddenByRbac``).
4. A pending fault may now answer 503/429 or drop the connection.
5. The operation runs under the vault lock; a change is written to the data directory.

Every secrets API request is recorded in the request log and logged at DEBUG — method,
path, operation, status and role only: never a header, a query value or a body, so
neither tokens nor secret values can reach a log.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from keyvault_emulator import __version__, errors, store
from keyvault_emulator.auth import Role, TokenTable, authenticate, authorize
from keyvault_emulator.backend import Vault
from keyvault_emulator.clock import Clock
from keyvault_emulator.control import Controls, FaultInjector, RequestLog
from keyvault_emulator.hosts import HostPolicy
from keyvault_emulator.routes import MUTATING, Call, SecretsApi, check_api_version
from keyvault_emulator.routing import match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("keyvault_emulator")

MAX_BODY = 1024 * 1024  # far above the 25 KB value limit; stops a runaway client
VAULT_NAME = "local-emulator"  # the vault name RBAC denials quote


class KeyVaultApp:
    """Vault state, controls and request log behind one ASGI callable."""

    def __init__(
        self,
        *,
        tokens: Mapping[Role, str],
        admin_token: str,
        tenant_id: str,
        port: int,
        clock: Clock,
        extra_hosts: tuple[str, ...] = (),
        data_dir: Path | None = None,
    ) -> None:
        self.clock = clock
        self.tenant_id = tenant_id
        self.vault = Vault(clock)
        # One lock for the vault and its file: requests run on the server's event loop,
        # the in-process helpers on the test's thread.
        self.lock = threading.Lock()
        self.hosts = HostPolicy(port, extra_hosts)
        self.tokens = TokenTable(tokens)
        self.api = SecretsApi(self.vault)
        self.request_log = RequestLog(clock)
        self.faults = FaultInjector()
        self.controls = Controls(
            admin_token=admin_token, log=self.request_log, faults=self.faults, reset=self.reset
        )
        self.store_path = data_dir / store.VAULT_FILE if data_dir is not None else None
        if self.store_path is not None:
            snapshot = store.load(self.store_path)
            if snapshot is not None:
                self.vault.load_snapshot(snapshot)

    # -- state ------------------------------------------------------------------------

    def persist(self) -> None:
        """Write the vault to the data directory (call with ``lock`` held)."""
        if self.store_path is not None:
            store.save(self.store_path, self.vault.snapshot())

    async def reset(self) -> None:
        with self.lock:
            self.vault.reset()
            self.persist()
        self.faults.clear()
        self.request_log.clear()

    # -- ASGI -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        more = True
        while more and len(body) <= MAX_BODY:  # stop reading a runaway body early
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        method: str = scope["method"]
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else quote(scope["path"])
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Query names compare case-insensitively; the first value of a name wins.
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        query: dict[str, str] = {}
        for name, value in pairs:
            query.setdefault(name.lower(), value)
        host = headers.get("host", "")
        try:
            if not host:
                raise errors.bad_host()
            if not self.hosts.allows(host):
                raise errors.misdirected(self.hosts.port)
            if len(body) > MAX_BODY:
                raise errors.body_too_large(MAX_BODY)
        except errors.VaultError as err:
            log.debug("%s %s refused before routing: %s", method, path, err.status)
            await _respond(send, err.status, err.body(), err.headers)
            return
        if path == "/_emulator" or path.startswith("/_emulator/"):
            try:
                answer = await self.controls.handle(
                    method, path, query, headers.get("authorization"), bytes(body)
                )
            except errors.VaultError as err:
                await _respond(send, err.status, err.body(), err.headers)
                return
            await _respond(send, answer.status, answer.body)
            return
        vault_url = f"{scope.get('scheme', 'https')}://{host}"
        await self._secrets_api(
            send, method, path, raw_path, query, headers, bytes(body), vault_url
        )

    async def _secrets_api(
        self,
        send: Send,
        method: str,
        path: str,
        raw_path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        vault_url: str,
    ) -> None:
        operation: str | None = None
        role: Role | None = None
        try:
            route = match(method, raw_path)
            operation = route.operation
            role = authenticate(self.tokens, headers.get("authorization"), self.tenant_id)
            api_version = check_api_version(query)
            resource = f"/providers/microsoft.keyvault/vaults/{VAULT_NAME}"
            if route.name:
                resource += f"/secrets/{route.name}"
            authorize(role, operation, resource=resource, vault=VAULT_NAME)
            fault = self.faults.take(operation)
            if fault is not None:
                if fault.drop:
                    self._record(method, path, operation, None, role)
                    _drop(send)
                    return
                raise errors.injected(fault.status or 503, fault.retry_after_s)
            call = Call(route, query, body, vault_url, api_version)
            with self.lock:
                answer = self.api.execute(call)
                if operation in MUTATING:
                    self.persist()
        except errors.VaultError as err:
            self._record(method, path, operation, err.status, role)
            await _respond(send, err.status, err.body(), err.headers)
            return
        except Exception:  # a bug must still answer in the envelope and reach the log
            log.exception("%s %s %s failed", operation, method, path)
            self._record(method, path, operation, 500, role)
            await _respond(send, 500, errors.internal_error().body())
            return
        self._record(method, path, operation, answer.status, role)
        await _respond(send, answer.status, answer.body)

    def _record(
        self, method: str, path: str, operation: str | None, status: int | None, role: Role | None
    ) -> None:
        role_name = role.value if role is not None else None
        self.request_log.add(method, path, operation, status, role_name)
        log.debug("%s %s %s -> %s (role %s)", operation, method, path, status, role_name)


async def _respond(
    send: Send, status: int, body: Any, extra_headers: tuple[tuple[str, str], ...] = ()
) -> None:
    headers = [
        (b"x-ms-request-id", str(uuid.uuid4()).encode()),
        (b"x-ms-keyvault-service-version", f"emulator-{__version__}".encode()),
        (b"cache-control", b"no-cache"),
        (b"x-content-type-options", b"nosniff"),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers]
    payload = b""
    if body is not None and status != 204:
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers.append((b"content-type", b"application/json; charset=utf-8"))
    if status != 204:
        headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _drop(send: Send) -> None:
    """Close the connection without answering (a ``drop`` fault).

    uvicorn's ``send`` is a method of its per-request cycle object, which holds the
    transport: closing that and flagging the cycle as disconnected makes uvicorn neither
    answer nor complain. Under another server the nearest thing is an exception.
    """
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None or not hasattr(cycle, "disconnected"):
        raise ConnectionAbortedError("The emulator dropped the connection (fault).")
    cycle.disconnected = True
    transport.close()


__all__ = ["KeyVaultApp"]
