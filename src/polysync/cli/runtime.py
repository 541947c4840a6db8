"""The CLI's one sync edge: settings, services and an event loop per command."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from polysync.config import Settings, load_settings
from polysync.domain.secrets import RedactingFilter
from polysync.services.context import Services, open_services

T = TypeVar("T")

_overrides: dict[str, object] = {}


def set_global_overrides(**values: object) -> None:
    _overrides.update({k: v for k, v in values.items() if v is not None})


def settings() -> Settings:
    return load_settings(_overrides)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # Secrets resolved during this process are masked in every log line (D11).
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Azure SDK logs request headers at INFO; keep it quiet unless asked for DEBUG.
    if level.upper() != "DEBUG":
        logging.getLogger("azure").setLevel(logging.WARNING)
    # Alembic narrates every migration check at INFO; only its problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it exists (Linux, macOS), else asyncio's own.

    The worker spends a good part of its CPU in the event loop itself — thousands of
    Batch calls a minute, each a few socket reads, writes and callbacks — and uvloop
    does that work in C (decision 0008). uvicorn already runs the server on it.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows: uvloop does not exist there
        return None
    return uvloop.new_event_loop


class Session:
    """Services plus an event loop that lives for the whole command."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._runner = asyncio.Runner(loop_factory=loop_factory())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def close(self) -> None:
        try:
            self._runner.run(self.services.aclose())
        finally:
            self._runner.close()
            self.services.close()


@contextmanager
def session() -> Iterator[Session]:
    s = settings()
    configure_logging(os.environ.get("POLYSYNC_LOG_LEVEL", s.log_level))
    sess = Session(open_services(s))
    try:
        yield sess
    finally:
        sess.close()
