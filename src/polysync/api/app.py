"""The FastAPI application: REST API under /api, the web console, the worker.

``create_app(settings)`` opens one :class:`Services` for the app (``app.state.services``);
its lifespan starts the run event watcher, the re-check of the event streams' callers
and, unless ``start_worker=False``, the :class:`~polysync.dispatcher.worker.Worker` on the
server's own event loop. Without a worker, runs started through the API are followed by
:class:`RunFollowers`.

Security pieces, each in its own module: console sessions (``sessions.py``), CSRF rules
(``csrf.py``, applied by ``auth.py`` and the console), security headers on every response
(``security.py``, wrapped around the whole app) and /docs from the installed Swagger UI
(``apidocs.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

import polysync
from polysync.api import apidocs, problems
from polysync.api.auth import Principal, still_live
from polysync.api.background import RunFollowers
from polysync.api.events import RunEvents, RunWatcher, StreamAccess
from polysync.api.routes import jobs, platforms, runs, system, tasks, tokens, vaults
from polysync.api.security import SecurityHeaders
from polysync.api.sessions import SessionPolicy, Sessions, utc_now
from polysync.config import Settings
from polysync.dispatcher.worker import Worker, WorkerOptions
from polysync.services.context import Services, open_services

log = logging.getLogger(__name__)

WEB_STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

DESCRIPTION = """\
Polysync for Azure Batch over HTTP: platforms, jobs, tasks and runs, the same use cases
as the `polysync` CLI. Every request except `GET /api/health` needs an API token
(`polysync token create --name NAME --role viewer|operator|admin`) as
`Authorization: Bearer psk_…`, or the web console's session cookie (then POST, PUT, PATCH
and DELETE also need the `X-CSRF-Token` header). Errors are `application/problem+json`
with a stable `code`.
"""


class _App(FastAPI):
    """FastAPI with the security headers outside everything, error responses included."""

    def build_middleware_stack(self) -> ASGIApp:
        # Outside ServerErrorMiddleware: a 500 answered by it gets the headers too.
        return SecurityHeaders(super().build_middleware_stack())


def create_app(
    settings: Settings,
    *,
    start_worker: bool = True,
    services: Services | None = None,
    worker_options: WorkerOptions | None = None,
    events_interval_s: float = 0.5,
    clock: Callable[[], datetime] = utc_now,
    access_check_interval_s: float = 1.0,
) -> FastAPI:
    """The server's app. ``clock`` times console sessions; ``access_check_interval_s`` is
    how often open event streams re-check their callers (tests move or shorten both)."""
    owned = services is None
    svc = services if services is not None else open_services(settings)
    sessions = Sessions(svc.store, SessionPolicy.from_settings(settings), clock)
    access: StreamAccess[Principal] = StreamAccess(
        still_live(svc.store, sessions), interval_s=access_check_interval_s
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background: list[asyncio.Task[None]] = []
        watcher = RunWatcher(svc.store, app.state.events, interval_s=events_interval_s)
        background.append(asyncio.create_task(watcher.run(), name="run-event-watcher"))
        background.append(asyncio.create_task(access.run(), name="event-stream-access"))
        worker: Worker | None = None
        if start_worker:
            worker = Worker(svc, worker_options or WorkerOptions())
            background.append(asyncio.create_task(worker.run(), name="worker"))
        app.state.worker = worker
        try:
            yield
        finally:
            app.state.events.close()
            if worker is not None:
                worker.stop()
            await app.state.followers.aclose()
            for task in background:
                if task.get_name() != "worker":
                    task.cancel()
            results = await asyncio.gather(*background, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    log.error("server background task failed", exc_info=result)
            app.state.worker = None
            with contextlib.suppress(Exception):
                await svc.aclose()
            if owned:
                svc.close()

    app = _App(
        title="Polysync for Azure Batch",
        version=getattr(polysync, "__version__", "0"),
        description=DESCRIPTION,
        lifespan=lifespan,
        # apidocs serves /docs and /openapi.json behind auth; no CDN page, no redoc.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.services = svc
    app.state.sessions = sessions
    app.state.stream_access = access
    app.state.settings = settings
    app.state.events = RunEvents()
    app.state.followers = RunFollowers(svc)
    app.state.worker = None
    problems.install(app)
    for module in (system, platforms, jobs, tasks, runs, tokens, vaults, apidocs):
        app.include_router(module.router)
    _include_web(app)
    return app


def _include_web(app: FastAPI) -> None:
    """The web console (polysync.web), when that package is present."""
    if importlib.util.find_spec("polysync.web") is not None and (
        importlib.util.find_spec("polysync.web.app") is not None
    ):
        from polysync.web.app import router as web_router  # type: ignore[import-not-found,unused-ignore]  # optional: the console may be absent

        app.include_router(web_router)
    if WEB_STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=WEB_STATIC), name="static")
