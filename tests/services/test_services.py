"""Use cases end to end on a real SQLite store and the real emulator, with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer, PoolSeed
from polysync.config import load_settings
from polysync.domain.models import (
    DataType,
    Direction,
    Job,
    Parameter,
    ParamOrigin,
    RunState,
)
from polysync.domain.secrets import Writer
from polysync.errors import InputError, NotFoundError
from polysync.jobtypes.base import ImportedTemplate
from polysync.services import jobs as job_service
from polysync.services import runs as run_service
from polysync.services import tasks as task_service
from polysync.services.context import Services, open_services
from tests.support import (
    add_emulator_platform,
    create_template,
    running_emulator,
    sdk_client,
    wait_until,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with running_emulator(
        tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 1, 4), PoolSeed("empty", 0, 1)
    ) as emu:
        yield emu


@pytest.fixture
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


@pytest.fixture
async def svc(
    tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Services]:
    monkeypatch.setenv("PS_SVC_KEY", DEFAULT_KEY)
    services = open_services(load_settings({"home": tmp_path / "home"}, environ={}))
    services.clock = FakeClock()
    add_emulator_platform(services, emulator, "PS_SVC_KEY")
    yield services
    await services.aclose()
    services.close()


def template(
    batch: BatchClient,
    *,
    pool: str = "pool1",
    env: dict[str, str] | None = None,
    command: str = "/bin/sh -c 'echo hi'",
    wall_clock: timedelta | None = timedelta(minutes=5),
) -> str:
    return create_template(
        batch, command, env=env, pool_id=pool, max_wall_clock=wall_clock, task_id="t"
    )


async def test_stuck_starting_run_gets_the_pool_diagnosis(
    svc: Services, batch: BatchClient
) -> None:
    tpl = template(batch, pool="empty")
    await job_service.import_jobs(svc, "local", [tpl])
    task_service.create_task(svc, "stuck", tpl, {}, writer=Writer.HOST)
    run = run_service.start_run(svc, "stuck", writer=Writer.HOST)
    run = await run_service.submit_run(svc, run.id)
    assert run.state is RunState.STARTING

    run = await run_service.refresh_run(svc, run.id)
    assert run.state is RunState.STARTING
    assert run.diagnosis is None  # young runs are not diagnosed

    assert isinstance(svc.clock, FakeClock)
    svc.clock.advance(run_service.STUCK_STARTING_AFTER.total_seconds() + 1)
    run = await run_service.refresh_run(svc, run.id)
    assert run.state is RunState.STARTING
    assert run.diagnosis is not None
    assert "no available compute nodes" in run.diagnosis
    assert "empty" in run.diagnosis

    cancelled = await run_service.cancel_run(svc, run.id)
    assert cancelled.run.state is RunState.CANCELLED


async def test_cancel_of_a_run_that_already_failed_records_its_own_outcome_once(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    """Decision 0005: the task ended before the terminate; its failure stands, read once."""
    tpl = template(batch, command="/bin/sh -c 'echo nope >&2; exit 3'")
    await job_service.import_jobs(svc, "local", [tpl])
    task_service.create_task(svc, "ends-first", tpl, {}, writer=Writer.HOST)
    run = await run_service.submit_run(
        svc, run_service.start_run(svc, "ends-first", writer=Writer.HOST).id
    )
    assert run.batch_job_id is not None
    assert run.batch_task_id is not None
    job_id, task_id = run.batch_job_id, run.batch_task_id
    wait_until(lambda: batch.get_task(job_id, task_id).state == "completed", 30, "the task to end")
    emulator.control.clear_requests()

    result = await run_service.cancel_run(svc, run.id)

    assert result.run.state is RunState.FAILED
    assert result.run.exit_code == 3
    assert result.run.failure is not None
    assert result.run.failure.stderr_tail is not None
    assert "nope" in result.run.failure.stderr_tail
    assert "before the cancel reached Batch" in result.message
    task_reads = [
        r
        for r in emulator.control.requests()
        if r["method"] == "GET" and r["path"] == f"/jobs/{job_id}/tasks/{task_id}"
    ]
    assert len(task_reads) == 1  # the poll after the terminate, not a second one


async def test_import_warns_without_max_wall_clock_and_sync_keeps_user_edits(
    svc: Services, batch: BatchClient
) -> None:
    tpl = template(batch, env={"A": "1", "B": "2"}, wall_clock=None)
    (outcome,) = await job_service.import_jobs(svc, "local", [tpl])
    assert any("maxWallClockTime" in w for w in outcome.job.warnings)
    assert {p.name for p in outcome.job.parameters} == {"A", "B"}

    job_service.set_parameter(
        svc, tpl, job_service.ParamEdit("A", data_type="Int", default="42"), writer=Writer.HOST
    )
    job_service.set_overrides(svc, tpl, changes={"command_line": "/bin/sh -c 'echo override'"})
    job_service.set_parameter(
        svc, tpl, job_service.ParamEdit("EXTRA", default="x"), writer=Writer.HOST
    )

    synced = await job_service.sync_job(svc, tpl)
    params = {p.name: p for p in synced.job.parameters}
    assert params["A"].default == "42"
    assert params["A"].data_type is DataType.INT
    assert params["B"].default == "2"
    assert "EXTRA" in params
    assert synced.job.overrides.command_line == "/bin/sh -c 'echo override'"


async def test_run_uses_override_and_follow_streams_the_output(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    tpl = template(batch, env={"WHO": "tpl"})
    await job_service.import_jobs(svc, "local", [tpl])
    job_service.set_overrides(
        svc, tpl, changes={"command_line": "/bin/sh -c 'echo one $WHO; echo two $WHO'"}
    )
    task_service.create_task(svc, "follow", tpl, {"WHO": "me"}, writer=Writer.HOST)
    run = run_service.start_run(svc, "follow", writer=Writer.HOST)
    emulator.control.hold(job_id="*", task_id="follow", state="active")
    run = await run_service.submit_run(svc, run.id)
    chunks: list[bytes] = []

    async def no_sleep(_: float) -> None:
        # The first empty read happens while the task is held; release it then.
        emulator.control.release(job_id="*", task_id="follow")

    async for chunk in run_service.follow_file(
        svc, run.id, "stdout.txt", follow=True, sleep=no_sleep
    ):
        chunks.append(chunk)
    assert b"".join(chunks) == b"one me\ntwo me\n"
    final = svc.store.get_run(run.id)
    assert final.state is RunState.SUCCEEDED


async def test_start_run_validates_before_creating(svc: Services, batch: BatchClient) -> None:
    tpl = template(batch, env={"N": "1"})
    await job_service.import_jobs(svc, "local", [tpl])
    job_service.set_parameter(
        svc, tpl, job_service.ParamEdit("N", data_type="Int"), writer=Writer.HOST
    )
    task_service.create_task(svc, "typed", tpl, {}, writer=Writer.HOST)
    with pytest.raises(InputError, match="N"):
        run_service.start_run(svc, "typed", {"N": "one"}, writer=Writer.HOST)
    with pytest.raises(NotFoundError):
        run_service.start_run(svc, "no-such-task", writer=Writer.HOST)
    assert svc.store.list_runs() == []


async def test_import_all_skips_polysync_run_jobs(svc: Services, batch: BatchClient) -> None:
    tpl = template(batch)
    await job_service.import_jobs(svc, "local", [tpl])
    task_service.create_task(svc, "quick", tpl, {}, writer=Writer.HOST)
    run = run_service.start_run(svc, "quick", writer=Writer.HOST)
    run = await run_service.wait_run(svc, run.id)
    assert run.state is RunState.SUCCEEDED
    imported = await job_service.import_jobs(svc, "local", import_all=True)
    assert run.batch_job_id not in {o.job.external_id for o in imported}
    assert tpl in {o.job.external_id for o in imported}


def _param(name: str, default: str, *, edited: bool = False) -> Parameter:
    return Parameter(
        name=name,
        default=default,
        origin=ParamOrigin.USER if edited else ParamOrigin.TEMPLATE_JOB_ENV,
        user_edited=edited,
    )


@pytest.mark.parametrize(
    ("existing", "fresh", "expected", "change_words"),
    [
        pytest.param([], [_param("A", "1")], {"A": "1"}, ["added"], id="new-from-template"),
        pytest.param(
            [_param("A", "1")], [_param("A", "2")], {"A": "2"}, ["-> '2'"], id="untouched-refreshed"
        ),
        pytest.param(
            [_param("A", "9", edited=True)],
            [_param("A", "2")],
            {"A": "9"},
            ["kept your edit"],
            id="user-edit-wins",
        ),
        pytest.param([_param("A", "1")], [], {}, ["removed"], id="dropped-by-template"),
        pytest.param([_param("U", "u", edited=True)], [], {"U": "u"}, [], id="user-param-survives"),
    ],
)
def test_merge_template_table(
    existing: list[Parameter],
    fresh: list[Parameter],
    expected: dict[str, str],
    change_words: list[str],
) -> None:
    job = Job(name="j", platform="p", external_id="t", parameters=tuple(existing))
    template = ImportedTemplate("t", None, tuple(fresh), (), ())
    merged, changes = job_service.merge_template(job, template)
    assert {p.name: p.default for p in merged.parameters} == expected
    for word in change_words:
        assert any(word in c for c in changes), changes
    assert replace(merged, parameters=job.parameters).overrides == job.overrides
    assert all(p.direction is Direction.INPUT for p in merged.parameters)


async def test_an_outcome_decided_before_a_cancel_request_is_not_recorded(
    svc: Services, batch: BatchClient
) -> None:
    """A worker's copy of a run can predate a cancel request (decision 0008): the write
    of the outcome it decided is refused, and the next poll decides with the new copy."""
    tpl = template(batch, command="/bin/sh -c 'exit 3'")
    await job_service.import_jobs(svc, "local", [tpl])
    task_service.create_task(svc, "stale", tpl, {}, writer=Writer.HOST)
    run = await run_service.submit_run(svc, run_service.start_run(svc, "stale", writer=Writer.HOST))
    assert run.state is RunState.STARTING
    assert run.batch_job_id is not None
    job_id, task_id = run.batch_job_id, run.batch_task_id or ""

    def task_completed() -> bool:
        return bool(batch.get_task(job_id, task_id).state == "completed")

    wait_until(task_completed, 30, "the Batch task to complete")
    svc.store.request_cancel(run.id)  # e.g. `polysync run cancel` from another process
    held = await run_service.refresh_run(svc, run)  # the copy without the request
    assert held.state is RunState.RUNNING  # Running is recorded; the failure is not
    assert held.cancel_requested
    assert held.failure is None
    assert svc.store.get_run(run.id).state is RunState.RUNNING

    decided = await run_service.refresh_run(svc, held)
    assert decided.state is RunState.CANCELLED  # the terminate-like failure, now a cancel
    assert [h.to_state for h in decided.history][-1] is RunState.CANCELLED


@pytest.mark.parametrize(
    ("pinned", "to_type", "refused"),
    [
        # A typed change re-checks every pinned value (it used to fail only at run time).
        ("seven", "Int", "is not a whole number"),
        ("3.5", "Int", "is not a whole number"),
        ("maybe", "Bool", "is not a boolean"),
        ("{not json", "JSON", "is not valid JSON"),
        # A literal never becomes a Secret (it would sit in the database in clear)…
        ("hunter2-literal", "Secret", "holds a literal"),
        # …and a literal that looks like a reference would become one.
        ("env:HOME", "Secret", None),  # the host may write env: (decision 0010)
        ("vault://nope/x", "Secret", "no Secret Vault named 'nope'"),
        ("7", "Int", None),
    ],
)
async def test_a_type_change_rechecks_every_pinned_value(
    svc: Services, batch: BatchClient, pinned: str, to_type: str, refused: str | None
) -> None:
    tpl = template(batch, env={"P": "1"})  # a default every type accepts (a Secret drops it)
    await job_service.import_jobs(svc, "local", [tpl])
    task_service.create_task(svc, "pins", tpl, {"P": pinned}, writer=Writer.HOST)
    edit = job_service.ParamEdit("P", data_type=to_type)
    if refused is None:
        job_service.set_parameter(svc, tpl, edit, writer=Writer.HOST)
        assert svc.store.get_job(tpl).parameter("P").data_type.value == to_type  # type: ignore[union-attr]  # the parameter exists
        return
    with pytest.raises(InputError) as info:
        job_service.set_parameter(svc, tpl, edit, writer=Writer.HOST)
    message = str(info.value)
    assert f"parameter P of job {tpl} cannot become {to_type}" in message
    assert "task pins" in message
    assert refused in message
    assert "hunter2" not in message or to_type != "Secret"
    assert svc.store.get_job(tpl).parameter("P").data_type is DataType.STRING  # type: ignore[union-attr]  # the parameter exists
