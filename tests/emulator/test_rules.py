"""Pure rules of the emulator, table-driven: body readers, paging, outcomes, parsing."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from batch_emulator.backend import (
    Backend,
    Clock,
    NullEngine,
    PoolSpec,
    _formula_target,
    _job_action_for,
    page_over,
    read_duration,
    read_enum,
    read_id,
    read_int,
)
from batch_emulator.control import FaultRule
from batch_emulator.model import FailureInfo, Job, Task
from batch_emulator.protocol.errors import BatchError
from batch_emulator.routes import Request, _parse_range, check_conditions
from batch_emulator.server import PoolSeed


class RecordingEngine(NullEngine):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def task_ready(self, task: Task) -> None:
        self.calls.append(("ready", task.id))

    def job_terminating(self, job: Job, reason: str) -> None:
        self.calls.append(("terminating", reason))

    def job_deleting(self, job: Job) -> None:
        self.calls.append(("deleting", job.id))


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("A-b_9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("a b", False),
        ("a.b", False),
        ("", False),
        (5, False),
        ("é", False),
    ],
)
def test_read_id(value: Any, ok: bool) -> None:
    if ok:
        assert read_id({"id": value}) == value
    else:
        with pytest.raises(BatchError) as info:
            read_id({"id": value})
        assert info.value.code == "InvalidPropertyValue"


def test_read_id_missing() -> None:
    with pytest.raises(BatchError) as info:
        read_id({})
    assert (info.value.code, info.value.values) == (
        "MissingRequiredProperty",
        [("PropertyName", "id")],
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("PT02H00M00S", dt.timedelta(hours=2)),
        ("P7D", dt.timedelta(days=7)),
        ("PT0.5S", dt.timedelta(milliseconds=500)),
        ("P10675199DT2H48M5.4775807S", None),  # unlimited
    ],
)
def test_read_duration(raw: str | None, expected: dt.timedelta | None) -> None:
    assert read_duration({"d": raw}, "d", "d") == expected


@pytest.mark.parametrize("raw", ["2 hours", "PT", 7, "-PT1H"])
def test_read_duration_rejects(raw: Any) -> None:
    with pytest.raises(BatchError):
        read_duration({"d": raw}, "d", "d")


@pytest.mark.parametrize(
    ("raw", "expected"), [("TerminateJob", "terminatejob"), ("noaction", "noaction"), (None, "x")]
)
def test_read_enum_answers_in_service_spelling(raw: str | None, expected: str) -> None:
    assert read_enum({"e": raw}, "e", ("noaction", "terminatejob"), "x") == expected


@pytest.mark.parametrize("raw", [True, "1", 1.5, 2000])
def test_read_int_rejects(raw: Any) -> None:
    with pytest.raises(BatchError):
        read_int({"n": raw}, "n", 0, lo=-1000, hi=1000)


KEYS = [f"k{i}" for i in range(10)]
ITEMS = {k: int(k[1:]) for k in KEYS}


@pytest.mark.parametrize(
    ("after", "limit", "accept", "expected", "more"),
    [
        (None, 3, lambda v: True, [0, 1, 2], True),
        ("k2", 3, lambda v: True, [3, 4, 5], True),
        ("k6", 3, lambda v: True, [7, 8, 9], False),
        (None, 3, lambda v: v % 2 == 0, [0, 2, 4], True),
        ("k4", 3, lambda v: v % 2 == 0, [6, 8], False),
        (None, 10, lambda v: True, list(range(10)), False),
        ("k9", 5, lambda v: True, [], False),
    ],
)
def test_page_over(
    after: str | None, limit: int, accept: Any, expected: list[int], more: bool
) -> None:
    assert page_over(KEYS, ITEMS, after, limit, accept) == (expected, more)


def _task(exit_code: int | None, conditions: dict[str, Any] | None) -> Task:
    now = dt.datetime.now(dt.UTC)
    job = Job(
        id="j",
        pool_info={},
        pool_id="p",
        creation_time=now,
        last_modified=now,
        state_transition_time=now,
    )
    task = Task(
        id="t",
        job=job,
        command_line="x",
        creation_time=now,
        last_modified=now,
        state_transition_time=now,
        seq=1,
    )
    task.exit_code = exit_code
    if conditions is not None:
        task.extra["exitConditions"] = conditions
    return task


@pytest.mark.parametrize(
    ("exit_code", "conditions", "action"),
    [
        (0, None, "none"),
        (1, None, "terminate"),
        (None, None, "terminate"),  # launch failure
        (3, {"exitCodes": [{"code": 3, "exitOptions": {"jobAction": "none"}}]}, "none"),
        (0, {"exitCodes": [{"code": 0, "exitOptions": {"jobAction": "terminate"}}]}, "terminate"),
        (
            5,
            {"exitCodeRanges": [{"start": 1, "end": 9, "exitOptions": {"jobAction": "none"}}]},
            "none",
        ),
        (5, {"default": {"jobAction": "none"}}, "none"),
        (0, {"default": {"jobAction": "terminate"}}, "none"),  # default never applies to 0
        (None, {"preProcessingError": {"jobAction": "none"}}, "none"),
    ],
)
def test_job_action_for(exit_code: int | None, conditions: Any, action: str) -> None:
    assert _job_action_for(_task(exit_code, conditions)) == action


def test_clock_stamps_are_strictly_increasing() -> None:
    clock = Clock()
    stamps = [clock.stamp() for _ in range(100)]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    before = clock.now()
    clock.advance(3600)
    assert clock.now() - before >= dt.timedelta(hours=1)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_state_machine_without_processes() -> None:
    engine = RecordingEngine()
    backend = Backend(account="a", engine=engine)
    backend.add_pool(PoolSpec("p", 1, 1))
    backend.create_job({"id": "j", "poolInfo": {"poolId": "p"}})
    task = backend.add_task("j", {"id": "t", "commandLine": "x"})
    job = backend.get_job("j")
    backend.update_job("j", {"onAllTasksComplete": "terminatejob"}, replace=False)
    assert job.state == "active"
    pool = backend.get_pool("p")
    backend.assign_task(task, pool, pool.nodes[0], preparing=False)
    backend.start_task(task)
    assert pool.nodes[0].used == 1
    retried = backend.settle_task(
        task, exit_code=2, failure=FailureInfo("usererror", "FailureExitCode", "m"), retryable=True
    )
    assert retried is False  # maxTaskRetryCount 0
    assert pool.nodes[0].used == 0
    assert task.result == "failure"
    assert job.state == "terminating"
    assert engine.calls[-1] == ("terminating", "AllTasksComplete")
    backend.finish_job(job, "AllTasksComplete")
    assert (job.state, job.terminate_reason, job.previous_state) == (
        "completed",
        "AllTasksComplete",
        "terminating",
    )
    with pytest.raises(BatchError) as info:
        backend.add_task("j", {"id": "u", "commandLine": "x"})
    assert info.value.code == "JobCompleted"


def test_quota_counts_only_unfinished_jobs() -> None:
    backend = Backend(account="a", active_job_quota=1)
    backend.create_job({"id": "a", "poolInfo": {"poolId": "p"}})
    with pytest.raises(BatchError) as info:
        backend.create_job({"id": "b", "poolInfo": {"poolId": "p"}})
    assert info.value.code == "ActiveJobAndScheduleQuotaReached"
    job = backend.get_job("a")
    backend.begin_termination(job, "x")
    backend.finish_job(job, "x")
    backend.create_job({"id": "b", "poolInfo": {"poolId": "p"}})
    assert backend.get_job("B").id == "b"


@pytest.mark.parametrize(
    ("text", "seed"),
    [
        ("p=1", PoolSeed("p", 1, 1)),
        ("pool1=2x4", PoolSeed("pool1", 2, 4)),
        ("z=0X3", PoolSeed("z", 0, 3)),
    ],
)
def test_pool_seed_parse(text: str, seed: PoolSeed) -> None:
    assert PoolSeed.parse(text) == seed


@pytest.mark.parametrize("text", ["p", "=1", "p=x", "p=1x0", "p=-1"])
def test_pool_seed_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="--pool"):
        PoolSeed.parse(text)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, (0, 10)),
        ("bytes=0-4", 10, (0, 5)),
        ("bytes=5-", 10, (5, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=8-100", 10, (8, 10)),
        (None, 0, (0, 0)),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int]) -> None:
    assert _parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("bytes=10-12", "InvalidRange"),
        ("lines=1-2", "InvalidHeaderValue"),
        ("bytes=a-b", "InvalidHeaderValue"),
    ],
)
def test_parse_range_rejects(header: str, code: str) -> None:
    with pytest.raises(BatchError) as info:
        _parse_range(header, 10)
    assert info.value.code == code


def _req(headers: dict[str, str]) -> Request:
    return Request("GET", "/", "/", "", {}, headers, b"", "http://x")


LAST = dt.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("headers", "read", "status"),
    [
        ({}, True, None),
        ({"if-match": '"0xABC"'}, False, None),
        ({"if-match": "0xDEF"}, False, 412),
        ({"if-match": "*"}, False, None),
        ({"if-none-match": '"0xABC"'}, True, 304),
        ({"if-none-match": "*"}, False, 412),
        ({"if-modified-since": "Fri, 02 Jan 2026 03:04:05 GMT"}, True, 304),
        ({"if-modified-since": "Fri, 02 Jan 2026 03:04:04 GMT"}, True, None),
        ({"if-unmodified-since": "Fri, 02 Jan 2026 03:04:04 GMT"}, False, 412),
        ({"if-unmodified-since": "Fri, 02 Jan 2026 03:04:05 GMT"}, False, None),
    ],
)
def test_check_conditions(headers: dict[str, str], read: bool, status: int | None) -> None:
    if status is None:
        check_conditions(_req(headers), "0xABC", LAST, read=read)
    else:
        with pytest.raises(BatchError) as info:
            check_conditions(_req(headers), "0xABC", LAST, read=read)
        assert (info.value.code, info.value.status) == ("ConditionNotMet", status)


@pytest.mark.parametrize(
    "raw",
    [
        {"status": 200},
        {"every": 0},
        {"probability": 2},
        {"latency_ms": -1},
        {"path": ""},
        {"nope": 1},
        "x",
    ],
)
def test_fault_rule_validation(raw: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        FaultRule.from_json(raw)


def test_fault_rule_default_error() -> None:
    err = FaultRule.from_json({"status": 503, "retry_after_s": 1}).error()
    assert (err.code, err.status, err.retry_after_s) == ("ServerBusy", 503, 1)
    assert FaultRule.from_json({"status": 418}).error().code == "ServerBusy"


@pytest.mark.parametrize(
    ("formula", "nodes"),
    [("$TargetDedicatedNodes = 3;", 3), ("$TargetDedicated=2", 2), ("startingNumberOfVMs = 1;", 0)],
)
def test_formula_target(formula: str, nodes: int) -> None:
    assert _formula_target(formula) == nodes
