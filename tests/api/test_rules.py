"""Pure rules of the API: role order, token format, UTF-8-safe log chunks, problem statuses."""

from __future__ import annotations

import pytest

from polysync.api.problems import Conflict, Forbidden, Unauthorized, status_of
from polysync.api.tokens import PREFIX, Role, digest, new_token
from polysync.errors import (
    AlreadyExistsError,
    InputError,
    NotFoundError,
    ParameterError,
    PlatformError,
    PolysyncError,
    StoreError,
    TemplateError,
    ThrottledError,
)
from polysync.services.runs import _utf8_end


@pytest.mark.parametrize(
    ("have", "need", "ok"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.OPERATOR, False),
        (Role.OPERATOR, Role.VIEWER, True),
        (Role.OPERATOR, Role.ADMIN, False),
        (Role.ADMIN, Role.OPERATOR, True),
        (Role.ADMIN, Role.ADMIN, True),
    ],
)
def test_roles_are_ordered(have: Role, need: Role, ok: bool) -> None:
    assert have.allows(need) is ok


def test_tokens_are_random_prefixed_and_hashed() -> None:
    a, b = new_token(), new_token()
    assert a != b
    assert a.startswith(PREFIX)
    assert len(digest(a)) == 64
    assert digest(a) != digest(b)
    assert a not in digest(a)


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"", 0),
        (b"abc", 3),
        ("é".encode(), 2),
        ("aé".encode()[:2], 1),  # cut inside a 2-byte character
        ("a€".encode()[:3], 1),  # cut inside a 3-byte character
        ("a€".encode(), 4),
        ("a🙂".encode()[:4], 1),  # cut inside a 4-byte character
        ("a🙂".encode(), 5),
    ],
)
def test_log_chunks_end_on_a_character_boundary(data: bytes, end: int) -> None:
    assert _utf8_end(data) == end


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (NotFoundError("x"), 404),
        (AlreadyExistsError("x"), 409),
        (Conflict("x"), 409),
        (ParameterError("x"), 422),
        (InputError("x"), 422),
        (TemplateError("x"), 422),
        (ThrottledError("x"), 503),
        (PlatformError("x"), 502),
        (StoreError("x"), 503),
        (Unauthorized("x"), 401),
        (Forbidden("x"), 403),
        (PolysyncError("x"), 500),
    ],
)
def test_error_statuses(exc: PolysyncError, status: int) -> None:
    assert status_of(exc) == status
