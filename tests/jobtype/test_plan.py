"""D2/D3/D11: template + overrides + parameters → Batch bodies, table-driven. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from polysync.domain.models import (
    ClonedDefault,
    Direction,
    Job,
    JobOverrides,
    Parameter,
    ParamOrigin,
)
from polysync.errors import TemplateError
from polysync.jobtypes.azure_batch import plan
from polysync.jobtypes.base import ResolvedParam

UNLIMITED = "P10675199DT2H48M5.4775807S"
FINGERPRINT = {"polysync.installation": "abcd1234", "polysync.run": "7", "polysync.attempt": "1"}

TEMPLATE: dict[str, Any] = {
    "id": "tmpl",
    "displayName": "Template",
    "state": "active",
    "poolInfo": {"poolId": "pool1"},
    "constraints": {"maxWallClockTime": "PT2H", "maxTaskRetryCount": 1},
    "priority": 10,
    "onTaskFailure": "performexitoptionsjobaction",
    "commonEnvironmentSettings": [
        {"name": "REGION", "value": "eu"},
        {"name": "MODE", "value": "fast"},
    ],
    "metadata": [{"name": "owner", "value": "team-a"}, {"name": "polysync.run", "value": "x"}],
}
FIRST_TASK: dict[str, Any] = {
    "id": "prep",
    "commandLine": "/bin/sh -c 'echo $REGION'",
    "environmentSettings": [{"name": "MODE", "value": "slow"}, {"name": "OUT", "value": "o"}],
    "containerSettings": {"imageName": "ubuntu:22.04", "containerRunOptions": "--rm"},
    "constraints": {"maxWallClockTime": "PT30M", "retentionTime": "P7D", "maxTaskRetryCount": 2},
    "resourceFiles": [{"httpUrl": "https://x/y", "filePath": "y"}],
    "exitConditions": {"default": {"jobAction": "terminate"}},
    "dependsOn": {"taskIds": ["a"]},
}
MANAGER: dict[str, Any] = {
    "id": "jm",
    "commandLine": "python manage.py",
    "environmentSettings": [{"name": "JM_ONLY", "value": "1"}],
    "killJobOnCompletion": True,
}


def _job(overrides: JobOverrides | None = None, parameters: tuple[Parameter, ...] = ()) -> Job:
    return Job(
        name="nightly",
        platform="local",
        external_id="tmpl",
        parameters=parameters,
        overrides=overrides or JobOverrides(),
    )


def _plan(
    template: dict[str, Any] | None = None,
    first_task: dict[str, Any] | None = FIRST_TASK,
    *,
    job: Job | None = None,
    params: tuple[ResolvedParam, ...] = (),
    timeout: int | None = None,
) -> plan.RunPlan:
    tmpl = TEMPLATE if template is None else template
    return plan.build_plan(
        template_id="tmpl",
        template_job=tmpl,
        source=plan.choose_source(tmpl, first_task),
        job=job or _job(),
        params=params,
        batch_job_id="ps-abcd1234-r7-a1",
        batch_task_id="nightly",
        display_name="Polysync nightly run 7",
        fingerprint=FINGERPRINT,
        execution_timeout_s=timeout,
    )


# ----------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H", 3600.0),
        ("PT02H00M00S", 7200.0),
        ("P7D", 604800.0),
        ("P1DT2H3M4.5S", 93784.5),
        ("P1W", 604800.0),
        ("PT0S", 0.0),
        (UNLIMITED, None),
        ("P10675199D", None),
        ("P", None),
        ("PT", None),
        ("1h", None),
        (None, None),
        (42, None),
    ],
)
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert plan.parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "PT0S"), (90, "PT1M30S"), (5400, "PT1H30M"), (86400, "P1D"), (90061, "P1DT1H1M1S")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert plan.format_duration(seconds) == text
    assert plan.parse_duration_s(text) == seconds


# ----------------------------------------------------------------- D2 sources


@pytest.mark.parametrize(
    ("template", "first", "kind", "label"),
    [
        (
            {**TEMPLATE, "jobManagerTask": MANAGER},
            FIRST_TASK,
            "jobManagerTask",
            "jobManagerTask 'jm'",
        ),
        (TEMPLATE, FIRST_TASK, "task", "first task 'prep'"),
        ({**TEMPLATE, "jobManagerTask": {}}, FIRST_TASK, "task", "first task 'prep'"),
    ],
)
def test_choose_source_precedence(
    template: dict[str, Any], first: dict[str, Any], kind: str, label: str
) -> None:
    source = plan.choose_source(template, first)
    assert source is not None
    assert (source.kind, source.label) == (kind, label)


def test_choose_source_none_without_manager_or_task() -> None:
    assert plan.choose_source(TEMPLATE, None) is None
    assert plan.needs_first_task(TEMPLATE)
    assert not plan.needs_first_task({**TEMPLATE, "jobManagerTask": MANAGER})


@pytest.mark.parametrize(
    ("overrides", "template", "first", "expected"),
    [
        (JobOverrides(), TEMPLATE, FIRST_TASK, FIRST_TASK["commandLine"]),
        (JobOverrides(), {**TEMPLATE, "jobManagerTask": MANAGER}, FIRST_TASK, "python manage.py"),
        (
            JobOverrides(command_line="run it"),
            {**TEMPLATE, "jobManagerTask": MANAGER},
            None,
            "run it",
        ),
        (JobOverrides(command_line="run it"), TEMPLATE, None, "run it"),
    ],
)
def test_command_line_precedence(
    overrides: JobOverrides,
    template: dict[str, Any],
    first: dict[str, Any] | None,
    expected: str,
) -> None:
    assert _plan(template, first, job=_job(overrides)).task_body["commandLine"] == expected


@pytest.mark.parametrize(
    ("first", "what"),
    [
        (None, "it has no jobManagerTask and no task"),
        ({"id": "empty", "commandLine": ""}, "first task 'empty' has an empty commandLine"),
    ],
)
def test_no_command_line_is_a_template_error(first: dict[str, Any] | None, what: str) -> None:
    with pytest.raises(TemplateError) as caught:
        _plan(TEMPLATE, first)
    message = str(caught.value)
    assert "'tmpl'" in message
    assert what in message
    assert "polysync job set nightly --command-line" in message


def test_no_pool_info_is_a_template_error() -> None:
    template = {k: v for k, v in TEMPLATE.items() if k != "poolInfo"}
    with pytest.raises(TemplateError, match="no poolInfo"):
        _plan(template)


# ----------------------------------------------------------------- job body (D2, D3)


def test_job_body_shape() -> None:
    body = _plan().job_body
    assert body["id"] == "ps-abcd1234-r7-a1"
    assert body["displayName"] == "Polysync nightly run 7"
    assert body["poolInfo"] == {"poolId": "pool1"}
    assert body["onAllTasksComplete"] == "noaction"  # D3: PATCHed afterwards
    assert body["constraints"] == {"maxWallClockTime": "PT2H", "maxTaskRetryCount": 1}
    assert body["priority"] == 10
    assert body["commonEnvironmentSettings"] == TEMPLATE["commonEnvironmentSettings"]
    # Never copied: the job manager, onTaskFailure.
    assert "jobManagerTask" not in _plan({**TEMPLATE, "jobManagerTask": MANAGER}).job_body
    assert "onTaskFailure" not in body


def test_patch_body_terminates_when_done() -> None:
    assert _plan().patch_body == {"onAllTasksComplete": "terminatejob"}


def test_metadata_copies_template_and_fingerprint_wins() -> None:
    items = {m["name"]: m["value"] for m in _plan().job_body["metadata"]}
    assert items["owner"] == "team-a"
    for name, value in FINGERPRINT.items():
        assert items[name] == value
    names = [m["name"] for m in _plan().job_body["metadata"]]
    assert len(names) == len(set(names))


def test_auto_pool_is_copied_and_has_no_preflight_pool() -> None:
    auto = {"autoPoolSpecification": {"autoPoolIdPrefix": "ap", "poolLifetimeOption": "job"}}
    result = _plan({**TEMPLATE, "poolInfo": auto})
    assert result.job_body["poolInfo"] == auto
    assert result.pool_id is None
    assert _plan().pool_id == "pool1"


def test_unlimited_job_wall_clock_is_not_sent() -> None:
    template = {**TEMPLATE, "constraints": {"maxWallClockTime": UNLIMITED, "maxTaskRetryCount": 0}}
    assert _plan(template).job_body["constraints"] == {"maxTaskRetryCount": 0}


# ----------------------------------------------------------------- task body (D2, D11)


def test_task_body_matches_the_seed_payload() -> None:
    params = (ResolvedParam("REGION", "us"), ResolvedParam("TOKEN", "s3cret", secret=True))
    body = _plan(params=params).task_body
    assert body["id"] == "nightly"
    assert body["commandLine"] == FIRST_TASK["commandLine"]
    assert body["containerSettings"] == {"imageName": "ubuntu:22.04", "containerRunOptions": "--rm"}
    env = {e["name"]: e["value"] for e in body["environmentSettings"]}
    assert env == {"MODE": "slow", "OUT": "o", "REGION": "us", "TOKEN": "s3cret"}
    assert all(isinstance(e["value"], str) for e in body["environmentSettings"])
    # Copied to run the same work; not copied: exit conditions, dependencies.
    assert body["resourceFiles"] == FIRST_TASK["resourceFiles"]
    assert "exitConditions" not in body
    assert "dependsOn" not in body


def test_param_value_overrides_template_env_of_same_name() -> None:
    body = _plan(params=(ResolvedParam("MODE", "turbo"),)).task_body
    modes = [e for e in body["environmentSettings"] if e["name"] == "MODE"]
    assert modes == [{"name": "MODE", "value": "turbo"}]


def test_output_parameters_are_never_sent() -> None:
    schema = (
        Parameter("OUT", direction=Direction.OUTPUT),
        Parameter("REGION", direction=Direction.OUTPUT),
        Parameter("MODE", direction=Direction.INPUT_OUTPUT),
    )
    result = _plan(job=_job(parameters=schema), params=(ResolvedParam("MODE", "m"),))
    task_env = {e["name"] for e in result.task_body["environmentSettings"]}
    job_env = {e["name"] for e in result.job_body["commonEnvironmentSettings"]}
    assert "OUT" not in task_env
    assert "REGION" not in job_env
    assert "MODE" in task_env  # Input&Output is sent


@pytest.mark.parametrize(
    ("overrides", "first", "expected"),
    [
        (JobOverrides(), FIRST_TASK, {"imageName": "ubuntu:22.04", "containerRunOptions": "--rm"}),
        (
            JobOverrides(image="alpine:3", container_run_options="--net host"),
            FIRST_TASK,
            {"imageName": "alpine:3", "containerRunOptions": "--net host"},
        ),
        (
            JobOverrides(image="alpine:3"),
            {"id": "t", "commandLine": "x"},
            {"imageName": "alpine:3"},
        ),
        (JobOverrides(), {"id": "t", "commandLine": "x"}, None),
    ],
)
def test_container_settings_only_with_an_image(
    overrides: JobOverrides, first: dict[str, Any], expected: dict[str, str] | None
) -> None:
    body = _plan(TEMPLATE, first, job=_job(overrides)).task_body
    assert body.get("containerSettings") == expected


def test_run_options_without_image_warn() -> None:
    result = _plan(
        TEMPLATE,
        {"id": "t", "commandLine": "x"},
        job=_job(JobOverrides(container_run_options="-v")),
    )
    assert "containerSettings" not in result.task_body
    assert any("run options" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("overrides", "timeout", "first_constraints", "expected"),
    [
        (
            JobOverrides(),
            None,
            {"maxWallClockTime": "PT30M", "retentionTime": "P7D", "maxTaskRetryCount": 2},
            {"maxWallClockTime": "PT30M", "retentionTime": "P7D", "maxTaskRetryCount": 2},
        ),
        (
            JobOverrides(max_wall_clock_s=60, retention_s=3600, max_task_retries=0),
            None,
            {"maxWallClockTime": "PT30M", "retentionTime": "P7D", "maxTaskRetryCount": 2},
            {"maxWallClockTime": "PT1M", "retentionTime": "PT1H", "maxTaskRetryCount": 0},
        ),
        # The Task's execution timeout applies when tighter than the template's...
        (JobOverrides(), 600, {"maxWallClockTime": "PT30M"}, {"maxWallClockTime": "PT10M"}),
        # ...not when looser,
        (JobOverrides(), 7200, {"maxWallClockTime": "PT30M"}, {"maxWallClockTime": "PT30M"}),
        # and an unlimited template value counts as no limit at all.
        (JobOverrides(), 7200, {"maxWallClockTime": UNLIMITED}, {"maxWallClockTime": "PT2H"}),
        # A Job override beats the Task's timeout.
        (JobOverrides(max_wall_clock_s=7200), 60, {}, {"maxWallClockTime": "PT2H"}),
        (JobOverrides(), None, {"maxWallClockTime": UNLIMITED, "retentionTime": UNLIMITED}, None),
    ],
)
def test_task_constraints(
    overrides: JobOverrides,
    timeout: int | None,
    first_constraints: dict[str, Any],
    expected: dict[str, Any] | None,
) -> None:
    first = {"id": "t", "commandLine": "x", "constraints": first_constraints}
    body = _plan(TEMPLATE, first, job=_job(overrides), timeout=timeout).task_body
    assert body.get("constraints") == expected


# ----------------------------------------------------------------- import (D2)


def test_seed_parameters_from_job_and_task_env() -> None:
    source = plan.choose_source(TEMPLATE, FIRST_TASK)
    params, warnings = plan.seed_parameters("tmpl", TEMPLATE, source)
    by_name = {p.name: p for p in params}
    assert set(by_name) == {"REGION", "MODE", "OUT"}
    assert by_name["REGION"].default == "eu"
    assert by_name["REGION"].origin is ParamOrigin.TEMPLATE_JOB_ENV
    # The task's setting wins over commonEnvironmentSettings, as in Batch.
    assert by_name["MODE"].default == "slow"
    assert by_name["MODE"].origin is ParamOrigin.TEMPLATE_TASK_ENV
    assert all(p.direction is Direction.INPUT and p.data_type.value == "String" for p in params)
    assert warnings == ()


def test_seed_parameters_from_job_manager() -> None:
    template = {**TEMPLATE, "jobManagerTask": MANAGER}
    params, _ = plan.seed_parameters("tmpl", template, plan.choose_source(template, FIRST_TASK))
    by_name = {p.name: p for p in params}
    assert by_name["JM_ONLY"].origin is ParamOrigin.TEMPLATE_JOB_MANAGER
    assert "OUT" not in by_name  # the first task is not the source when a manager exists


def test_seed_parameters_skip_invalid_names_with_a_warning() -> None:
    template = {
        **TEMPLATE,
        "commonEnvironmentSettings": [
            {"name": "AZ_BATCH_NODE_ROOT_DIR", "value": "x"},
            {"name": "1BAD", "value": "y"},
            {"name": "GOOD", "value": None},
        ],
    }
    params, warnings = plan.seed_parameters("tmpl", template, None)
    assert [p.name for p in params] == ["GOOD"]
    assert params[0].default is None
    assert len(warnings) == 1
    assert "AZ_BATCH_NODE_ROOT_DIR" in warnings[0]
    assert "1BAD" in warnings[0]


@pytest.mark.parametrize(
    ("constraints", "warns"),
    [
        (None, True),
        ({}, True),
        ({"maxWallClockTime": UNLIMITED}, True),
        ({"maxWallClockTime": "PT1H"}, False),
    ],
)
def test_warning_without_max_wall_clock(constraints: dict[str, Any] | None, warns: bool) -> None:
    template = {**TEMPLATE, "constraints": constraints}
    warnings = plan.template_warnings("tmpl", template)
    assert bool(warnings) is warns
    if warns:
        assert "maxWallClockTime" in warnings[0]
        assert "'tmpl'" in warnings[0]


def test_cloned_defaults_say_where_each_came_from() -> None:
    rows = plan.cloned_defaults(TEMPLATE, plan.choose_source(TEMPLATE, FIRST_TASK))
    assert ClonedDefault("poolInfo.poolId", "pool1", "template job") in rows
    assert ClonedDefault("commandLine", FIRST_TASK["commandLine"], "first task 'prep'") in rows
    assert ClonedDefault("containerSettings.imageName", "ubuntu:22.04", "first task 'prep'") in rows
    assert ClonedDefault("job.constraints.maxWallClockTime", "PT2H", "template job") in rows
    assert ClonedDefault("constraints.maxWallClockTime", "PT30M", "first task 'prep'") in rows


def test_cloned_defaults_with_overrides_and_manager() -> None:
    template = {**TEMPLATE, "jobManagerTask": MANAGER}
    rows = plan.cloned_defaults(
        template, plan.choose_source(template, None), JobOverrides(image="alpine:3")
    )
    assert ClonedDefault("commandLine", "python manage.py", "jobManagerTask 'jm'") in rows
    assert ClonedDefault("containerSettings.imageName", "alpine:3", "override") in rows


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("A", True),
        ("_x1", True),
        ("MY_VAR", True),
        ("1A", False),
        ("A-B", False),
        ("", False),
        ("AZ_BATCH_X", False),
        ("az_batch_x", False),
    ],
)
def test_valid_env_name(name: str, ok: bool) -> None:
    assert plan.valid_env_name(name) is ok
