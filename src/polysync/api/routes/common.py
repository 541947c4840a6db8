"""Pieces shared by the routers: role dependencies, bounds, error re-mapping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from polysync.api.auth import Principal, Role, require
from polysync.api.problems import Conflict
from polysync.domain import limits
from polysync.errors import AlreadyExistsError, InputError, NotFoundError, ParameterError

T = TypeVar("T")

Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def within(bound: limits.Bound) -> dict[str, Any]:
    """``ge``/``le`` of a pydantic field or parameter, from the one copy of the bound
    (domain/limits.py) that the services, the CLI and the console enforce too."""
    return {"ge": bound.low, "le": bound.high}


Name = Annotated[str, Path(min_length=1, max_length=limits.NAME.max_len)]
ParamNamePath = Annotated[str, Path(min_length=1, max_length=limits.PARAM_NAME.max_len)]
NameFilter = Annotated[str | None, Query(max_length=limits.NAME.max_len)]
Force = Annotated[
    bool, Query(description="Also delete what depends on it (jobs, tasks, run records).")
]
Limit = Annotated[int, Query(**within(limits.PAGE_SIZE), description="Page size.")]
Offset = Annotated[int, Query(**within(limits.OFFSET), description="Items to skip.")]


Text = Annotated[str, Field(max_length=limits.PLATFORM_FIELD.max_len)]


class CredentialFields(BaseModel):
    """How a platform or a vault authenticates; secrets only as references (0010).

    ``*_ref`` takes ``vault://VAULT/SECRET``; ``env:``/``file:`` (and ``*_env`` / ``*_file``,
    a certificate path, a CA bundle — all read by the server from its own environment and
    files) only where the host's ``[server] host_references`` allows them.
    """

    model_config = ConfigDict(extra="forbid")

    tenant_id: Text | None = None
    client_id: Text | None = None
    client_secret_ref: Text | None = None
    client_secret_env: Text | None = None
    client_secret_file: Text | None = None
    certificate_path: Text | None = None
    certificate_password_ref: Text | None = None
    certificate_password_env: Text | None = None
    certificate_password_file: Text | None = None
    token_ref: Text | None = None
    token_env: Text | None = None
    token_file: Text | None = None
    verify_tls: bool = True
    ca_bundle: Text | None = None


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
