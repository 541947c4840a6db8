"""Behaviour 2 and 7: import a template (D2) against the emulator through the real SDK."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.batch import BatchClient

from polysync.domain.models import ClonedDefault, DataType, Direction, ParamOrigin, Platform
from polysync.errors import NotFoundError, TemplateError
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from tests.jobtype.conftest import make_template, unique


async def test_import_seeds_schema_and_shows_cloned_defaults(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(
        batch,
        common_env={"REGION": "eu", "MODE": "fast"},
        task_env={"MODE": "slow", "GREETING": "hi"},
        image="alpine:3.19",
        run_options="--rm",
        max_wall_clock=timedelta(hours=2),
    )

    imported = await jobtype.import_template(platform, template_id)

    assert imported.external_id == template_id
    assert imported.display_name == f"template {template_id}"
    params = {p.name: p for p in imported.parameters}
    assert set(params) == {"REGION", "MODE", "GREETING"}
    assert all(p.data_type is DataType.STRING for p in params.values())
    assert all(p.direction is Direction.INPUT for p in params.values())
    assert params["REGION"].default == "eu"
    assert params["REGION"].origin is ParamOrigin.TEMPLATE_JOB_ENV
    assert params["MODE"].default == "slow"  # the task's value overrides the job's
    assert params["MODE"].origin is ParamOrigin.TEMPLATE_TASK_ENV
    source = "first task 'template-task'"
    defaults = set(imported.cloned_defaults)
    assert ClonedDefault("poolInfo.poolId", "pool1", "template job") in defaults
    assert ClonedDefault("commandLine", "/bin/sh -c 'echo hello $GREETING'", source) in defaults
    assert ClonedDefault("containerSettings.imageName", "alpine:3.19", source) in defaults
    assert ClonedDefault("containerSettings.containerRunOptions", "--rm", source) in defaults
    assert ClonedDefault("job.constraints.maxWallClockTime", "PT2H", "template job") in defaults
    assert imported.warnings == ()


async def test_import_warns_without_max_wall_clock_time(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, max_wall_clock=None)
    imported = await jobtype.import_template(platform, template_id)
    assert len(imported.warnings) == 1
    assert "constraints.maxWallClockTime" in imported.warnings[0]
    assert template_id in imported.warnings[0]


async def test_job_manager_task_wins_over_first_task(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(
        batch, job_manager="/bin/sh -c 'echo manager'", task_env={"FROM_TASK": "1"}
    )
    imported = await jobtype.import_template(platform, template_id)
    commands = [d for d in imported.cloned_defaults if d.field == "commandLine"]
    assert commands == [
        ClonedDefault("commandLine", "/bin/sh -c 'echo manager'", "jobManagerTask 'jm'")
    ]
    params = {p.name: p for p in imported.parameters}
    assert params["JM_VAR"].origin is ParamOrigin.TEMPLATE_JOB_MANAGER
    assert "FROM_TASK" not in params


async def test_template_without_command_line_is_refused(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, command_line=None)
    with pytest.raises(TemplateError) as caught:
        await jobtype.import_template(platform, template_id)
    message = str(caught.value)
    assert template_id in message
    assert "no jobManagerTask and no task" in message
    assert "commandLine" in message


async def test_unknown_template_is_not_found(platform: Platform, jobtype: BatchJobType) -> None:
    missing = unique("no-such-template")
    with pytest.raises(NotFoundError) as caught:
        await jobtype.import_template(platform, missing)
    assert missing in str(caught.value)
    assert "polysync platform discover emu" in str(caught.value)
