"""Pieces shared by the routers: role dependencies, bounds, error re-mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query

from polysync.api.auth import Principal, Role, require
from polysync.api.problems import Conflict
from polysync.errors import AlreadyExistsError, InputError, NotFoundError, ParameterError

T = TypeVar("T")

Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]

# Bounds keep every number inside what the databases store (64-bit integers).
MAX_INT = 2**53
Name = Annotated[str, Path(min_length=1, max_length=200)]
Force = Annotated[
    bool, Query(description="Also delete what depends on it (jobs, tasks, run records).")
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_INT, description="Items to skip.")]


def sees_references(who: Principal) -> bool:
    """Operators and admins see Secret parameters' references; viewers do not (0010 §4)."""
    return who.role.allows(Role.OPERATOR)


def sees_credentials(who: Principal) -> bool:
    """Only admins see where platform and vault credentials are read from."""
    return who.role.allows(Role.ADMIN)


PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route may answer."""
    return {status: {"description": "Problem", **PROBLEM} for status in statuses}


@contextmanager
def refused_is_conflict() -> Iterator[None]:
    """A plain InputError from a delete/cancel means "not in this state": 409."""
    try:
        yield
    except (NotFoundError, AlreadyExistsError, ParameterError):
        raise
    except InputError as exc:
        if type(exc) is InputError:
            raise Conflict(str(exc)) from None
        raise


def page(items: list[T], limit: int, offset: int, view: Callable[[T], Any]) -> dict[str, Any]:
    chosen = items[offset : offset + limit]
    return {
        "items": [view(i) for i in chosen],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }
