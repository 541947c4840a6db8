"""The emulator as an ASGI application: ``create_app(config)``.

A hand-rolled ASGI callable rather than a framework: the Batch surface is a dozen fixed
paths, and skipping a router/middleware stack keeps ``GET task`` cheap (the benchmark
target is ≥1,000 requests/s over loopback on two cores).

Per request: read the body, build a :class:`~batch_emulator.routes.Request`, refuse a
``Host`` the server is not reached by (:mod:`batch_emulator.protocol.hosts`; only once a
server has bound a port — an app mounted in-process has no socket to rebind), send
``/_emulator/*`` to the controls and everything else through fault injection, the Batch
routes and the request log. The scheduler starts with the ASGI lifespan (or lazily on the
first request when mounted in-process without lifespan support, e.g. under
``httpx.ASGITransport``) and stops with it, killing every task process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from batch_emulator.backend import Backend, Clock, PoolSpec
from batch_emulator.control import Controls, DropConnection, FaultInjector, RequestLog
from batch_emulator.protocol.errors import BatchError
from batch_emulator.protocol.hosts import HostRule
from batch_emulator.routes import AuthConfig, BatchApi, Request, Response, error_response
from batch_emulator.runner import ProcessRunner
from batch_emulator.scheduler import HoldRule, Scheduler

if TYPE_CHECKING:
    from batch_emulator.server import EmulatorConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)


class EmulatorApp:
    """The emulator's state (backend, scheduler, controls) behind one ASGI callable."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        if config.data_dir is None:
            self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
                prefix="batch-emulator-"
            )
            self.data_dir = Path(self._tmp.name)
        else:
            self._tmp = None
            self.data_dir = Path(config.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.backend = Backend(
            account=config.account, clock=self.clock, active_job_quota=config.active_job_quota
        )
        self.runner = ProcessRunner(
            kill_grace_s=config.kill_grace_s, use_containers=config.use_containers
        )
        self.public_url: str | None = None
        self.host_rule: HostRule | None = None
        self._hosts_seen: dict[str, bool] = {}
        self.scheduler = Scheduler(
            self.backend,
            self.runner,
            data_dir=self.data_dir,
            account_url="",
            transition_s=config.transition_s,
        )
        auth = AuthConfig(config.account, config.key, tuple(config.bearer_tokens))
        self.api = BatchApi(self.backend, self.scheduler, auth)
        self.faults = FaultInjector(config.fault_seed)
        self.request_log = RequestLog(self.clock)
        self.controls = Controls(
            auth=auth,
            clock=self.clock,
            faults=self.faults,
            log=self.request_log,
            reset=self.reset,
            hold=self._hold,
            release=self.scheduler.release,
            release_all=self.scheduler.release_all,
            clock_advanced=self.scheduler.clock_advanced,
            state=self._state,
        )
        self._seed_pools()

    # ------------------------------------------------------------------ state

    def _seed_pools(self) -> None:
        for seed in self.config.pools:
            self.backend.add_pool(PoolSpec(seed.id, seed.nodes, seed.slots))

    def set_public_url(self, url: str) -> None:
        """The URL clients use; tasks see it as ``AZ_BATCH_ACCOUNT_URL``."""
        self.public_url = url.rstrip("/")
        self.scheduler.account_url = self.public_url

    def restrict_hosts(self, rule: HostRule) -> None:
        """Answer only the ``Host`` headers ``rule`` allows (set by the server that binds)."""
        self.host_rule = rule
        self._hosts_seen.clear()

    def _host_allowed(self, host: str | None) -> bool:
        rule = self.host_rule
        if rule is None or host is None:
            return True
        known = self._hosts_seen.get(host)
        if known is None:
            known = rule.allows(host)
            if len(self._hosts_seen) >= 256:  # bounded: every refused name is a new key
                self._hosts_seen.clear()
            self._hosts_seen[host] = known
        return known

    async def reset(self) -> None:
        await self.scheduler.reset()
        self.backend.reset()
        self.faults.clear()
        self.request_log.clear()
        self.clock.reset()
        self._seed_pools()

    def _hold(self, job_glob: str, task_glob: str, state: str) -> list[dict[str, str]]:
        self.scheduler.hold(job_glob, task_glob, state)
        return [_rule_json(r) for r in self.scheduler.holds()]

    def _state(self) -> dict[str, Any]:
        return {
            "jobs": len(self.backend.jobs),
            "pools": len(self.backend.pools),
            "holds": [_rule_json(r) for r in self.scheduler.holds()],
            "scheduler": self.scheduler.stats(),
            "clock_offset_s": self.clock.offset_s,
            "data_dir": str(self.data_dir),
        }

    async def startup(self) -> None:
        if not self.scheduler.started:
            self.scheduler.start(asyncio.get_running_loop())

    async def shutdown(self) -> None:
        if self.scheduler.started:
            await self.scheduler.shutdown()

    def close(self) -> None:
        """Remove the temporary data directory, if the app made one."""
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.scheduler.started:
            self.scheduler.start(asyncio.get_running_loop())
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1") if raw else quote(path)
        query_string = scope.get("query_string", b"").decode("latin-1")
        query: dict[str, str] = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name.lower(), value)
        host = headers.get("host")
        allowed = self._host_allowed(host)
        if not host:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        base_url = f"{scope.get('scheme', 'http')}://{host}"
        if not allowed and self.public_url is not None:
            base_url = self.public_url  # never echo the foreign name into our URLs
        elif self.public_url is None:
            self.set_public_url(base_url)
        req = Request(
            method=scope["method"],
            path=path,
            raw_path=raw_path,
            query_string=query_string,
            query=query,
            headers=headers,
            body=body,
            base_url=base_url,
        )
        if not allowed:
            # Before faults, authentication and the request log: nothing of the emulator
            # answers a page that reached it under a foreign name.
            response = error_response(req, self._foreign_host(headers["host"]), self.clock.now())
        elif path == "/_emulator" or path.startswith("/_emulator/"):
            response = await self.controls.handle(req)
        else:
            try:
                fault = await self.faults.apply(req)
            except DropConnection:
                self.request_log.add(req, None)
                _drop(send)
                return
            if fault is not None:
                response = error_response(req, fault, self.clock.now())
            else:
                response = await self.api.handle(req)
            self.request_log.add(req, response.status)
        await _send(send, req, response)

    def _foreign_host(self, host: str) -> BatchError:
        shown = host if len(host) <= 100 else host[:100] + "…"
        return BatchError.of(
            "InvalidHeaderValue",
            values=[("HeaderName", "Host"), ("HeaderValue", shown)],
            message=(
                f"The Host header {shown!r} does not name this emulator: use "
                f"{self.public_url or 'its loopback address'}, or start the emulator with "
                f"--allow-host for that name."
            ),
        )


async def _send(send: Send, req: Request, response: Response) -> None:
    headers = response.headers
    body = response.body
    if req.method == "HEAD" or response.status in (204, 304):
        # No body, and no Content-Length for 204/304 (RFC 9110); HEAD keeps the length of
        # what a GET would return when the route set one.
        if response.status not in (204, 304) and not any(
            name == b"content-length" for name, _ in headers
        ):
            headers.append((b"content-length", b"0"))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _drop(send: Send) -> None:
    """Close the client connection without an answer (fault ``drop``).

    uvicorn's ``send`` is a bound method of its request cycle, which holds the transport:
    closing it and marking the cycle disconnected makes uvicorn neither answer nor log an
    error. Elsewhere (e.g. an in-process transport) an exception is the closest thing.
    """
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None or not hasattr(cycle, "disconnected"):
        raise ConnectionAbortedError("The emulator dropped the connection (fault rule).")
    cycle.disconnected = True
    transport.close()


def _rule_json(rule: HoldRule) -> dict[str, str]:
    return {"job_id": rule.job_glob, "task_id": rule.task_glob, "state": rule.state}


def create_app(config: EmulatorConfig) -> EmulatorApp:
    """Build the emulator's ASGI application (mount it in-process or serve it)."""
    return EmulatorApp(config)


__all__ = ["EmulatorApp", "create_app"]
