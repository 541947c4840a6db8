"""Runs started through the API when the server has no worker (`--no-worker`).

Each is followed to its end by ``services.runs.wait_run`` — the step function and
cadence `polysync task run` uses — as a task on the server's loop. It claims the run
while it follows it, so a `polysync worker` started later leaves it alone; on shutdown
the claims are released and any worker takes over.
"""

from __future__ import annotations

import asyncio
import logging

from polysync.errors import PolysyncError
from polysync.services import runs as run_service
from polysync.services.context import Services

log = logging.getLogger(__name__)


class RunFollowers:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._tasks: set[asyncio.Task[None]] = set()

    def follow(self, run_id: int) -> None:
        task = asyncio.get_running_loop().create_task(
            self._follow(run_id), name=f"follow-run-{run_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, run_id: int) -> None:
        try:
            await run_service.wait_run(self.svc, run_id)
        except PolysyncError as exc:
            log.warning("run %s: following it stopped: %s", run_id, exc)
        except Exception:
            log.exception("run %s: following it failed", run_id)

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
