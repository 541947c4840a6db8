"""Runs started through the API when the server has no worker (`--no-worker`).

Each is created already claimed by this server process (``start_run(..., owner=...)``,
decision 0012) and followed to its end by ``services.runs.wait_run`` — the step function
and cadence `polysync task run` uses — as a task on the server's loop. Holding the claim
from creation on, the follower is the run's one submitter: a `polysync worker` beside
the server leaves it alone. On shutdown the claims are released and any worker takes over.
"""

from __future__ import annotations

import asyncio
import logging

from polysync.errors import PolysyncError
from polysync.services import runs as run_service
from polysync.services.claims import run_once_owner
from polysync.services.context import Services

log = logging.getLogger(__name__)


class RunFollowers:
    def __init__(self, svc: Services, owner: str | None = None) -> None:
        self.svc = svc
        self.owner = owner or run_once_owner()
        self._tasks: set[asyncio.Task[None]] = set()

    def follow(self, run_id: int) -> None:
        task = asyncio.get_running_loop().create_task(
            self._follow(run_id), name=f"follow-run-{run_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, run_id: int) -> None:
        try:
            await run_service.wait_run(self.svc, run_id, owner=self.owner)
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
