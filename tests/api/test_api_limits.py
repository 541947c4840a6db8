"""Input limits over HTTP: NUL and lengths are 422s, bounds are the limits module's.

The NUL cases run on SQLite (which stored the text: 201) and, when CI provides one, on
PostgreSQL (which refused it: a 503 "the database failed").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from fastapi.testclient import TestClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.api import tokens
from polysync.api.app import create_app
from polysync.domain import limits
from tests.api.conftest import KEY_ENV, Api, is_terminal, server_settings
from tests.api.test_api import assert_problem, setup_task
from tests.store.conftest import BACKENDS, PG_URL, reset_postgres


@pytest.fixture(params=BACKENDS)
def api_db(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Api]:
    """The ``api`` fixture, on SQLite and on PostgreSQL."""
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    settings = server_settings(tmp_path / "home")
    if request.param == "postgres":
        reset_postgres(PG_URL)
        settings = replace(settings, database_url=PG_URL)
    app = create_app(settings, start_worker=False)
    made = {r.value: tokens.create_token(app.state.services, r.value, r)[1] for r in tokens.Role}
    with TestClient(app) as client:
        yield Api(app, client, made, emulator.endpoint)


NUL = "a\x00b"

# (method, url, body, where the refused value would have been saved)
NUL_WRITES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/tasks", {"name": "n2", "job": "{tpl}", "description": NUL}, "/api/tasks/n2"),
    ("PATCH", "/api/tasks/hello", {"description": NUL}, "/api/tasks/hello"),
    ("PATCH", "/api/jobs/{tpl}", {"description": NUL}, "/api/jobs/{tpl}"),
    ("PATCH", "/api/jobs/{tpl}", {"command_line": NUL}, "/api/jobs/{tpl}"),
    ("PATCH", "/api/jobs/{tpl}", {"image": NUL}, "/api/jobs/{tpl}"),
    ("PATCH", "/api/jobs/{tpl}", {"container_run_options": NUL}, "/api/jobs/{tpl}"),
    ("PATCH", "/api/jobs/{tpl}", {"tags": ["ok", NUL]}, "/api/jobs/{tpl}"),
    ("PUT", "/api/jobs/{tpl}/parameters/NEWP", {"description": NUL}, "/api/jobs/{tpl}"),
    (
        "POST",
        "/api/platforms",
        {
            "name": "p2",
            "account_url": "https://acct.westeurope.batch.azure.com",
            "account_name": "acct",
            "subscription_id": "11111111-2222-3333-4444-555555555555",
            "resource_group": "rg",
            "auth": "managed-identity",
            "client_id": NUL,
        },
        "/api/platforms/p2",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "saved_at"),
    NUL_WRITES,
    ids=[f"{m} {u} {next(iter(b))}" for m, u, b, _ in NUL_WRITES],
)
def test_nul_in_a_text_field_is_a_422_and_saves_nothing(
    api_db: Api,
    batch: BatchClient,
    method: str,
    url: str,
    body: dict[str, Any],
    saved_at: str,
) -> None:
    tpl = setup_task(api_db, batch)
    body = {k: (v.replace("{tpl}", tpl) if isinstance(v, str) else v) for k, v in body.items()}
    before = api_db.get(saved_at.replace("{tpl}", tpl))
    r = api_db.client.request(
        method, url.replace("{tpl}", tpl), json=body, headers=api_db.headers("admin")
    )
    assert_problem(r, 422, "InvalidInput", "contains a NUL character (\\0)")
    after = api_db.get(saved_at.replace("{tpl}", tpl))
    assert (after.status_code, after.text) == (before.status_code, before.text)


@pytest.mark.parametrize(
    "path",
    ["/api/tasks/a%00b", "/api/jobs/a%00b", "/api/platforms/a%00b", "/api/runs?task=a%00b"],
)
def test_nul_in_a_looked_up_name_is_a_422(api_db: Api, path: str) -> None:
    # PostgreSQL refused the query itself (503 "the database failed"); SQLite said 404.
    assert_problem(api_db.get(path), 422, "InvalidInput", "contains a NUL character")


def test_import_of_a_template_id_batch_cannot_hold_is_a_422(api: Api) -> None:
    api.add_platform()
    r = api.post("/api/jobs/import", json={"platform": "local", "external_ids": ["a.b"]})
    assert_problem(r, 422, "InvalidInput", "template job id 'a.b' is not a Batch job id")


def test_importing_an_imported_template_under_another_name_is_a_409(
    api: Api, batch: BatchClient
) -> None:
    tpl = setup_task(api, batch)
    r = api.post(
        "/api/jobs/import",
        role="operator",
        json={"platform": "local", "external_ids": [tpl], "name": "other"},
    )
    assert_problem(
        r,
        409,
        "AlreadyExists",
        f"template {tpl} of platform local is already imported as job {tpl!r}: refresh it "
        f"with `polysync job sync {tpl}`",
    )
    assert [j["name"] for j in api.get("/api/jobs").json()] == [tpl]
    assert api.get("/api/jobs/other").status_code == 404


@pytest.mark.parametrize("file", [".", "./stdout.txt", "wd//stdout.txt", "wd/./x", "wd/"])
def test_bad_task_file_paths_are_422_before_batch_is_asked(
    api: Api, batch: BatchClient, file: str
) -> None:
    setup_task(api, batch)
    run = api.post("/api/tasks/hello/runs", role="operator").json()
    assert api.wait_run(run["id"], is_terminal)["state"] == "Succeeded"
    r = api.get(f"/api/runs/{run['id']}/logs", role="viewer", params={"file": file})
    assert_problem(r, 422, "InvalidInput", "give a relative path such as stdout.txt")


# (schema, property, the Bound or Text its limits come from)
SCHEMA_BOUNDS: list[tuple[str, str, limits.Bound | limits.Text]] = [
    ("TaskCreate", "priority", limits.PRIORITY),
    ("TaskCreate", "execution_timeout_s", limits.EXECUTION_TIMEOUT_S),
    ("TaskCreate", "description", limits.DESCRIPTION),
    ("TaskCreate", "name", limits.NAME),
    ("RetryBody", "max_attempts", limits.MAX_ATTEMPTS),
    ("RetryBody", "initial_delay_s", limits.RETRY_DELAY_S),
    ("JobPatch", "max_wall_clock_s", limits.MAX_WALL_CLOCK_S),
    ("JobPatch", "retention_s", limits.RETENTION_S),
    ("JobPatch", "max_task_retries", limits.MAX_TASK_RETRIES),
    ("JobPatch", "command_line", limits.COMMAND_LINE),
    ("JobPatch", "image", limits.IMAGE),
    ("JobPatch", "container_run_options", limits.RUN_OPTIONS),
    ("ParameterBody", "default", limits.PARAM_VALUE),
    ("PlatformCreate", "client_id", limits.PLATFORM_FIELD),
    ("TokenCreate", "name", limits.NAME),
]


def _limits_of(prop: dict[str, Any]) -> dict[str, Any]:
    """minimum/maximum/maxLength of a property, through an ``anyOf`` with null."""
    for option in [prop, *prop.get("anyOf", [])]:
        found = {k: option[k] for k in ("minimum", "maximum", "maxLength") if k in option}
        if found:
            return found
    return {}


@pytest.mark.parametrize(("schema", "prop", "limit"), SCHEMA_BOUNDS)
def test_the_api_schema_states_the_limits_module_bounds(
    api: Api, schema: str, prop: str, limit: limits.Bound | limits.Text
) -> None:
    spec = api.get("/openapi.json", role="viewer").json()
    declared = _limits_of(spec["components"]["schemas"][schema]["properties"][prop])
    if isinstance(limit, limits.Text):
        assert declared == {"maxLength": limit.max_len}
    else:
        assert declared == {"minimum": limit.low, "maximum": limit.high}


@pytest.mark.parametrize(
    ("path", "name", "bound"),
    [
        ("/api/runs/{run_id}", "run_id", limits.RUN_ID),
        ("/api/runs", "offset", limits.OFFSET),
        ("/api/runs", "limit", limits.PAGE_SIZE),
        ("/api/runs/{run_id}/logs", "max_bytes", limits.LOG_CHUNK_BYTES),
    ],
)
def test_the_api_parameters_state_the_limits_module_bounds(
    api: Api, path: str, name: str, bound: limits.Bound
) -> None:
    spec = api.get("/openapi.json", role="viewer").json()
    params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
    schema = params[name]["schema"]
    assert (schema["minimum"], schema["maximum"]) == (bound.low, bound.high)
