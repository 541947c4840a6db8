"""/api/health (no token), /api/me and /api/events (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from polysync.api.auth import Principal
from polysync.api.deps import get_events
from polysync.api.events import RunEvents, StreamAccess
from polysync.api.routes.common import Viewer, problems

router = APIRouter(prefix="/api", tags=["system"])

KEEPALIVE_S = 15.0


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    """Liveness, without a token: is the server up, does it run a worker."""
    return {"status": "ok", "worker": request.app.state.worker is not None}


@router.get("/me", responses=problems(401))
def me(principal: Viewer) -> dict[str, Any]:
    """The calling token's name and role."""
    return {"name": principal.name, "role": principal.role.value}


async def _stream(
    request: Request, events: RunEvents, access: StreamAccess[Principal], caller: Principal
) -> AsyncIterator[str]:
    # A pump task reads the subscription: waiting on the local queue with a timeout (for
    # keep-alives) must not cancel the subscription itself.
    local: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for run in events.subscribe():
                local.put_nowait(run)
        finally:
            local.put_nowait(None)

    pumping = asyncio.create_task(pump())
    try:
        # Revoking the caller's token or ending its session ends the stream (None = end).
        with access.watch(caller, lambda: local.put_nowait(None)):
            # Tell the client how soon to reconnect, then one `run` event per change.
            yield "retry: 2000\n\n"
            while True:
                try:
                    run = await asyncio.wait_for(local.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if run is None:
                    return
                yield f"event: run\nid: {run['id']}\ndata: {json.dumps(run)}\n\n"
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping


@router.get(
    "/events",
    responses={
        200: {
            "description": "`event: run` with the run's JSON as data, per state change.",
            "content": {"text/event-stream": {}},
        },
        **problems(401),
    },
    response_class=StreamingResponse,
)
async def events(
    request: Request, caller: Viewer, hub: Annotated[RunEvents, Depends(get_events)]
) -> StreamingResponse:
    """Run state changes as Server-Sent Events: ``event: run``, ``data: <run json>``.

    The stream ends within about two seconds of its token being revoked or its console
    session ending."""
    access: StreamAccess[Principal] = request.app.state.stream_access
    return StreamingResponse(
        _stream(request, hub, access, caller),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
