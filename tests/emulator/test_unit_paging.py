"""Tests for batch_emulator.protocol.paging (NOTES.md §6)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from batch_emulator.protocol.errors import BatchError
from batch_emulator.protocol.paging import (
    decode_skiptoken,
    encode_skiptoken,
    make_skiptoken,
    next_link,
    read_skiptoken,
)

FILTER = "state eq 'active' and startswith(id,'a b')"


@pytest.mark.parametrize(
    "state",
    [{}, {"a": "job-1"}, {"a": 42, "q": "x"}, {"a": "ünïcode/+=&?"}, {"nested": {"k": [1, 2]}}],
)
def test_round_trip_and_url_safe(state: dict[str, object]) -> None:
    token = encode_skiptoken(state)
    assert decode_skiptoken(token) == state
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _flip_char(token: str, index: int) -> str:
    c = token[index]
    return token[:index] + ("A" if c != "A" else "B") + token[index + 1 :]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: _flip_char(t, 0),
        lambda t: _flip_char(t, len(t) // 2),
        lambda t: _flip_char(t, len(t) - 2),
        lambda t: t[:-3],
        lambda t: t + "AAAA",
        lambda t: "",
        lambda t: "not a token!",
        lambda t: base64.urlsafe_b64encode(b"\0" * 8 + b'{"a":"x"}').decode(),
    ],
)
def test_tampered_tokens_rejected(mutate: object) -> None:
    token = encode_skiptoken({"a": "job-0001", "q": "abc"})
    bad = mutate(token)  # type: ignore[operator]  # parametrised lambdas
    with pytest.raises(BatchError) as info:
        decode_skiptoken(bad)
    assert (info.value.code, info.value.status) == ("InvalidQueryParameterValue", 400)
    assert info.value.values[0] == ("QueryParameterName", "$skiptoken")


def test_non_object_payload_rejected() -> None:
    with pytest.raises(BatchError, match="InvalidQueryParameterValue"):
        decode_skiptoken(encode_skiptoken([1, 2]))  # type: ignore[arg-type]  # deliberately wrong


def test_make_and_read_bound_to_query() -> None:
    token = make_skiptoken("job-7", filter=FILTER, select="id,state")
    assert read_skiptoken(token, filter=FILTER, select="id,state") == "job-7"
    assert (
        read_skiptoken(make_skiptoken(12, filter=None, select=None), filter=None, select=None) == 12
    )
    for other in [("state eq 'completed'", "id,state"), (FILTER, "id"), (None, "id,state")]:
        with pytest.raises(BatchError) as info:
            read_skiptoken(token, filter=other[0], select=other[1])
        assert "different" in info.value.values[2][1]
    with pytest.raises(BatchError):
        read_skiptoken(token, filter=FILTER, select="id,state", expand="stats")


def test_next_link_shape() -> None:
    token = make_skiptoken("x", filter=FILTER, select="id,state")
    link = next_link("http://127.0.0.1:5000/", "/jobs", "2025-06-01", 2, FILTER, "id,state", token)
    assert link.startswith(
        "http://127.0.0.1:5000/jobs?api-version=2025-06-01&maxresults=2&$filter="
    )
    assert "&$select=id%2Cstate&$skiptoken=" + token in link
    assert " " not in link
    assert "'" not in link
    query = parse_qs(urlsplit(link).query)
    assert query == {
        "api-version": ["2025-06-01"],
        "maxresults": ["2"],
        "$filter": [FILTER],
        "$select": ["id,state"],
        "$skiptoken": [token],
    }


def test_next_link_minimal() -> None:
    assert next_link("https://h", "jobs/j1/tasks", "2025-06-01.21.0", None, None, None, "T") == (
        "https://h/jobs/j1/tasks?api-version=2025-06-01.21.0&$skiptoken=T"
    )
