"""Table tests for batch_emulator.protocol.odata (NOTES.md §6, §8)."""

from __future__ import annotations

from typing import Any

import pytest

from batch_emulator.protocol.errors import BatchError
from batch_emulator.protocol.odata import (
    JOB_FILTER_PROPERTIES,
    POOL_FILTER_PROPERTIES,
    TASK_FILTER_PROPERTIES,
    apply_select,
    parse_expand,
    parse_filter,
    parse_maxresults,
    parse_select,
)

TASKS: list[dict[str, Any]] = [
    {
        "id": "task-A1",
        "state": "completed",
        "creationTime": "2026-01-01T00:00:00.0000000Z",
        "lastModified": "2026-01-01T00:00:00.0000001Z",
        "executionInfo": {
            "endTime": "2026-01-01T01:00:00.0000000Z",
            "exitCode": 0,
            "result": "success",
        },
    },
    {
        "id": "task-b2",
        "state": "completed",
        "creationTime": "2026-01-02T00:00:00.5000000Z",
        "executionInfo": {
            "endTime": "2026-01-02T01:00:00.0000000Z",
            "exitCode": 3,
            "result": "failure",
        },
    },
    {
        "id": "other's",
        "state": "running",
        "creationTime": "2026-01-03T00:00:00.0000000Z",
        "executionInfo": {"startTime": "2026-01-03T00:00:01.0000000Z"},
    },
    {"id": "queued", "state": "active", "creationTime": "2026-01-04T00:00:00Z"},
]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("", ["task-A1", "task-b2", "other's", "queued"]),
        ("state eq 'completed'", ["task-A1", "task-b2"]),
        ("state eq 'Completed'", ["task-A1", "task-b2"]),
        ("id eq 'TASK-a1'", ["task-A1"]),
        ("id ne 'task-a1'", ["task-b2", "other's", "queued"]),
        ("id eq 'other''s'", ["other's"]),
        ("startswith(id,'task-')", ["task-A1", "task-b2"]),
        ("startswith(id, 'TASK-B')", ["task-b2"]),
        ("startswith(id,'task-') eq false", ["other's", "queued"]),
        ("not startswith(id,'task-')", ["other's", "queued"]),
        ("id ge 'task-b' and id lt 'u'", ["task-b2"]),
        ("executionInfo/exitCode eq 3", ["task-b2"]),
        ("executionInfo/exitCode ne 0", ["task-b2", "other's", "queued"]),
        ("executionInfo/exitCode gt -1", ["task-A1", "task-b2"]),
        ("executionInfo/result eq 'failure'", ["task-b2"]),
        ("executionInfo/result ne 'failure'", ["task-A1", "other's", "queued"]),
        ("creationTime gt DateTime'2026-01-02T00:00:00Z'", ["task-b2", "other's", "queued"]),
        (
            "creationTime gt DateTime'2026-01-02T00:00:00.4999999Z'",
            ["task-b2", "other's", "queued"],
        ),
        ("creationTime le DateTime'Fri, 02 Jan 2026 00:00:00 GMT'", ["task-A1"]),
        ("creationTime ge DateTime'2026-01-02T02:00:00+02:00'", ["task-b2", "other's", "queued"]),
        ("lastModifiedTime gt DateTime'2026-01-01T00:00:00Z'", ["task-A1"]),
        ("lastModified eq DateTime'2026-01-01T00:00:00.0000001Z'", ["task-A1"]),
        ("executionInfo/endTime lt DateTime'2026-01-02T00:00:00Z'", ["task-A1"]),
        ("executionInfo/endTime eq null", ["other's", "queued"]),
        ("state eq 'running' or state eq 'active'", ["other's", "queued"]),
        ("(state eq 'running' or state eq 'active') and startswith(id,'q')", ["queued"]),
        ("state eq 'completed' and (executionInfo/exitCode eq 3 or id eq 'queued')", ["task-b2"]),
        ("state EQ 'active' OR id eq 'task-b2'", ["task-b2", "queued"]),
        ("  ( ( id eq 'queued' ) )  ", ["queued"]),
    ],
)
def test_task_filters(text: str, ids: list[str]) -> None:
    pred = parse_filter(text, TASK_FILTER_PROPERTIES)
    assert [t["id"] for t in TASKS if pred(t)] == ids


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("state eq", "literal"),
        ("state 'active'", "operator"),
        ("state eq 'active' and", "property name"),
        ("(state eq 'active'", "')'"),
        ("state eq 'active')", "Unexpected"),
        ("State eq 'active'", "cannot be used"),
        ("displayName eq 'x'", "cannot be used"),
        ("state ne 'active'", "operator 'ne'"),
        ("state eq 'bogus'", "not a valid value"),
        ("executionInfo/result gt 'failure'", "operator 'gt'"),
        ("executionInfo/exitCode eq '3'", "integer"),
        ("creationTime gt '2026-01-01'", "DateTime"),
        ("creationTime gt DateTime'yesterday'", "ISO 8601"),
        ("id eq 'unterminated", "Unterminated"),
        ("id eq 3", "quoted string"),
        ("startswith(id", "','"),
        ("startswith(id, 3)", "quoted string"),
        ("startswith(state,'a')", "operator 'startswith'"),
        ("startswith(executionInfo/exitCode,'1')", "operator 'startswith'"),
        ("id eq 'a' && id eq 'b'", "Unexpected character"),
        ("id lt null", "null"),
        ("eq eq 'a'", "property name"),
    ],
)
def test_filter_errors(text: str, reason: str) -> None:
    with pytest.raises(BatchError) as info:
        parse_filter(text, TASK_FILTER_PROPERTIES)
    err = info.value
    assert (err.code, err.status) == ("InvalidQueryParameterValue", 400)
    assert err.values[:2] == [("QueryParameterName", "$filter"), ("QueryParameterValue", text)]
    assert err.values[2][0] == "Reason"
    assert reason in err.values[2][1]


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("state ne 'active'", False),
        ("executionInfo/poolId eq 'POOL1'", True),
        ("startswith(executionInfo/poolId,'po')", True),
        ("executionInfo/endTime gt DateTime'2026-05-01T00:00:00Z'", False),
        ("stateTransitionTime lt DateTime'2026-05-01T00:00:00Z'", True),
    ],
)
def test_job_filters(text: str, matches: bool) -> None:
    job = {
        "id": "j1",
        "state": "active",
        "stateTransitionTime": "2026-04-01T00:00:00.1234567Z",
        "executionInfo": {"poolId": "pool1", "startTime": "2026-04-01T00:00:00Z"},
    }
    assert parse_filter(text, JOB_FILTER_PROPERTIES)(job) is matches


def test_job_filter_rejects_task_only_property() -> None:
    with pytest.raises(BatchError, match="InvalidQueryParameterValue"):
        parse_filter("executionInfo/exitCode eq 0", JOB_FILTER_PROPERTIES)


def test_pool_filter() -> None:
    pool = {"id": "pool1", "state": "active", "allocationState": "steady", "vmSize": "STANDARD_D2"}
    assert parse_filter(
        "allocationState eq 'steady' and vmSize eq 'standard_d2'", POOL_FILTER_PROPERTIES
    )(pool)


@pytest.mark.parametrize(
    ("text", "obj", "expected"),
    [
        ("a/b eq 'X'", {"a": {"b": "x"}}, True),
        ("flag eq true", {"flag": True}, True),
        ("flag eq true", {"flag": 1}, False),
        ("n ge 2", {"n": 2}, True),
        ("missing eq null", {}, True),
        ("missing ne null", {}, False),
        ("a/b eq 'x'", {"a": "not-a-dict"}, False),
    ],
)
def test_filter_without_whitelist(text: str, obj: dict[str, Any], expected: bool) -> None:
    assert parse_filter(text)(obj) is expected


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (None, None),
        ("", None),
        ("id,state", ["id", "state"]),
        (" id , executionInfo ,id", ["id", "executionInfo"]),
    ],
)
def test_parse_select(text: str | None, fields: list[str] | None) -> None:
    assert parse_select(text) == fields


@pytest.mark.parametrize(("text", "allowed"), [("id,,state", None), ("id,bogus", {"id"})])
def test_parse_select_errors(text: str, allowed: set[str] | None) -> None:
    with pytest.raises(BatchError) as info:
        parse_select(text, allowed)
    assert info.value.values[0] == ("QueryParameterName", "$select")


def test_apply_select() -> None:
    obj = {"odata.metadata": "m", "id": "t", "url": "u", "state": "active", "eTag": "0x1"}
    assert apply_select(obj, ["state", "id", "nope"]) == {
        "odata.metadata": "m",
        "id": "t",
        "state": "active",
    }
    assert apply_select(obj, None) == obj
    assert apply_select(obj, None) is not obj


def test_parse_expand() -> None:
    assert parse_expand(None) == frozenset()
    assert parse_expand("stats") == {"stats"}
    with pytest.raises(BatchError, match="InvalidQueryParameterValue"):
        parse_expand("stats,tasks")


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 1000), ("1", 1), ("1000", 1000), (" 25 ", 25)]
)
def test_parse_maxresults(value: str | None, expected: int) -> None:
    assert parse_maxresults(value) == expected


def test_parse_maxresults_default() -> None:
    assert parse_maxresults(None, default=50) == 50


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0", "OutOfRangeQueryParameterValue"),
        ("1001", "OutOfRangeQueryParameterValue"),
        ("-5", "OutOfRangeQueryParameterValue"),
        ("", "InvalidQueryParameterValue"),
        ("ten", "InvalidQueryParameterValue"),
        ("1.5", "InvalidQueryParameterValue"),
    ],
)
def test_parse_maxresults_errors(value: str, code: str) -> None:
    with pytest.raises(BatchError) as info:
        parse_maxresults(value)
    assert (info.value.code, info.value.status) == (code, 400)
    assert info.value.values[:2] == [
        ("QueryParameterName", "maxresults"),
        ("QueryParameterValue", value),
    ]
