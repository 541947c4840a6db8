"""FastAPI dependencies shared by the API routes and the web console."""

from __future__ import annotations

from fastapi import Request

from polysync.api.background import RunFollowers
from polysync.api.events import RunEvents
from polysync.services.context import Services


def get_services(request: Request) -> Services:
    """The one ``Services`` of this app (``app.state.services``, opened by ``create_app``)."""
    services: Services = request.app.state.services
    return services


def get_events(request: Request) -> RunEvents:
    events: RunEvents = request.app.state.events
    return events


def run_owner(request: Request) -> str | None:
    """Who submits the runs this server starts: its worker (None: the worker claims them),
    else its followers, which create each run already claimed (decision 0012)."""
    if request.app.state.worker is not None:
        return None
    followers: RunFollowers = request.app.state.followers
    return followers.owner


def follow_run(request: Request, run_id: int) -> None:
    """Take a new run to its end: the worker does if this server has one, else a task.

    Without a worker, create the run with ``owner=run_owner(request)`` first, so the
    follower holds it from the start and no other worker submits it too.
    """
    if request.app.state.worker is not None:
        return  # the worker claims Queued runs within claim_idle_interval_s (0.5 s)
    followers: RunFollowers = request.app.state.followers
    followers.follow(run_id)
