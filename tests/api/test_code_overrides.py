"""Code-bearing changes through the API: admin only unless the host says operator (0011)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from fastapi.testclient import TestClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.api import tokens
from polysync.api.app import create_app
from polysync.config import load_settings
from tests.api.conftest import KEY_ENV, Api, make_template
from tests.api.test_api import assert_problem

NEEDS_ADMIN = "so it needs the admin role and this token is operator"


def imported_job(api: Api, batch: BatchClient) -> str:
    api.add_platform()
    tpl = make_template(batch, prefix="code")
    r = api.post(
        "/api/jobs/import", role="operator", json={"platform": "local", "external_ids": [tpl]}
    )
    assert r.status_code == 201, r.text
    return tpl


def job(api: Api, name: str) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/api/jobs/{name}", role="viewer").json()
    return body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("command_line", "/bin/sh -c 'id > /tmp/owned'"),
        ("image", "attacker/image:latest"),
        ("container_run_options", "--privileged -v /:/host"),
    ],
)
def test_operator_may_not_set_code_overrides(
    api: Api, batch: BatchClient, field: str, value: str
) -> None:
    tpl = imported_job(api, batch)
    before = job(api, tpl)
    refused = api.patch(f"/api/jobs/{tpl}", role="operator", json={field: value})
    body = assert_problem(refused, 403, "Forbidden", NEEDS_ADMIN)
    assert f"changing {field} of job {tpl!r}" in body["detail"]
    assert job(api, tpl) == before  # nothing changed, not even the other fields

    r = api.patch(f"/api/jobs/{tpl}", role="admin", json={field: value})
    assert r.status_code == 200, r.text
    assert r.json()["overrides"][field] == value
    # Dropping it again (back to the template's) is a change of code too.
    assert_problem(
        api.patch(f"/api/jobs/{tpl}", role="operator", json={field: None}), 403, "Forbidden"
    )
    # Sending it back unchanged, with other changes, is not.
    r = api.patch(
        f"/api/jobs/{tpl}", role="operator", json={field: value, "description": "same code"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "same code"


def test_a_mixed_patch_is_refused_whole(api: Api, batch: BatchClient) -> None:
    tpl = imported_job(api, batch)
    before = job(api, tpl)
    refused = api.patch(
        f"/api/jobs/{tpl}",
        role="operator",
        json={"max_wall_clock_s": 60, "description": "x", "command_line": "/bin/true"},
    )
    assert_problem(refused, 403, "Forbidden")
    assert job(api, tpl) == before


def test_non_code_overrides_stay_operator_level(api: Api, batch: BatchClient) -> None:
    tpl = imported_job(api, batch)
    r = api.patch(
        f"/api/jobs/{tpl}",
        role="operator",
        json={
            "max_wall_clock_s": 600,
            "retention_s": 3600,
            "max_task_retries": 2,
            "description": "nightly",
            "tags": ["etl"],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["overrides"]["max_wall_clock_s"] == 600
    assert body["overrides"]["retention_s"] == 3600
    assert body["overrides"]["max_task_retries"] == 2
    assert (body["description"], body["tags"]) == ("nightly", ["etl"])
    # A viewer still may not change anything at all.
    assert_problem(
        api.patch(f"/api/jobs/{tpl}", role="viewer", json={"description": "v"}),
        403,
        "Forbidden",
        "needs operator",
    )


@pytest.mark.parametrize("param", ["LD_PRELOAD", "ld_preload", "PYTHONPATH", "NODE_OPTIONS"])
def test_operator_may_not_add_a_code_bearing_parameter(
    api: Api, batch: BatchClient, param: str
) -> None:
    tpl = imported_job(api, batch)
    refused = api.put(
        f"/api/jobs/{tpl}/parameters/{param}", role="operator", json={"default": "/tmp/x.so"}
    )
    body = assert_problem(refused, 403, "Forbidden", NEEDS_ADMIN)
    assert f"editing parameter {param} of job {tpl!r}" in body["detail"]
    assert param not in {p["name"] for p in job(api, tpl)["parameters"]}
    r = api.put(f"/api/jobs/{tpl}/parameters/{param}", role="admin", json={"default": "/x.so"})
    assert r.status_code == 200, r.text


def test_code_bearing_parameters_need_admin_everywhere(api: Api, batch: BatchClient) -> None:
    """Once an admin put LD_PRELOAD in the schema: its default, removal, task values and
    run overrides stay admin-only; the job's other parameters stay operator-level."""
    tpl = imported_job(api, batch)
    assert api.put(f"/api/jobs/{tpl}/parameters/LD_PRELOAD", json={}).status_code == 200
    for refused in (
        api.put(
            f"/api/jobs/{tpl}/parameters/LD_PRELOAD", role="operator", json={"default": "/x.so"}
        ),
        api.delete(f"/api/jobs/{tpl}/parameters/LD_PRELOAD", role="operator"),
        api.post(
            "/api/tasks",
            role="operator",
            json={"name": "pre", "job": tpl, "params": {"LD_PRELOAD": "/x.so"}},
        ),
    ):
        assert_problem(refused, 403, "Forbidden", NEEDS_ADMIN)
    assert api.get("/api/tasks/pre").status_code == 404
    assert [p["default"] for p in job(api, tpl)["parameters"] if p["name"] == "LD_PRELOAD"] == [
        None
    ]

    # A task the operator may create, then may not point at code.
    r = api.post(
        "/api/tasks", role="operator", json={"name": "t", "job": tpl, "params": {"NAME": "a"}}
    )
    assert r.status_code == 201, r.text
    refused = api.patch(
        "/api/tasks/t", role="operator", json={"set_params": {"LD_PRELOAD": "/x.so"}}
    )
    assert_problem(refused, 403, "Forbidden", "setting LD_PRELOAD on task 't'")
    assert "LD_PRELOAD" not in api.get("/api/tasks/t").json()["params"]
    r = api.patch("/api/tasks/t", role="operator", json={"set_params": {"NAME": "b"}})
    assert r.status_code == 200, r.text

    # An admin pins it; the operator may neither change nor unset it, but may keep it.
    assert api.patch("/api/tasks/t", json={"set_params": {"LD_PRELOAD": ""}}).status_code == 200
    for patch in ({"set_params": {"LD_PRELOAD": "/x.so"}}, {"unset_params": ["LD_PRELOAD"]}):
        assert_problem(api.patch("/api/tasks/t", role="operator", json=patch), 403, "Forbidden")
    same = api.patch("/api/tasks/t", role="operator", json={"set_params": {"LD_PRELOAD": ""}})
    assert same.status_code == 200, same.text

    # Run overrides: refused before a run exists.
    runs_before = api.get("/api/runs").json()["total"]
    refused = api.post(
        "/api/tasks/t/runs", role="operator", json={"params": {"LD_PRELOAD": "/x.so"}}
    )
    assert_problem(refused, 403, "Forbidden", "for a run of task 't'")
    assert api.get("/api/runs").json()["total"] == runs_before


@pytest.fixture
def operator_may_change_code(
    tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    """The API of a server whose host wrote ``code_overrides_role = "operator"``."""
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[server]\ncode_overrides_role = "operator"\nhost_references = ["env:{KEY_ENV}"]\n'
    )
    settings = load_settings({"home": home}, environ={})
    app = create_app(settings, start_worker=False, events_interval_s=0.1)
    made = {
        role.value: tokens.create_token(app.state.services, role.value, role)[1]
        for role in tokens.Role
    }
    with TestClient(app) as client:
        yield Api(app, client, made, emulator.endpoint)


def test_the_host_may_let_operators_change_code(
    operator_may_change_code: Api, batch: BatchClient
) -> None:
    api = operator_may_change_code
    tpl = imported_job(api, batch)
    r = api.patch(f"/api/jobs/{tpl}", role="operator", json={"command_line": "/bin/true"})
    assert r.status_code == 200, r.text
    assert r.json()["overrides"]["command_line"] == "/bin/true"
    r = api.put(f"/api/jobs/{tpl}/parameters/LD_PRELOAD", role="operator", json={})
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "t", "job": tpl, "params": {"LD_PRELOAD": "/x.so"}},
    )
    assert r.status_code == 201, r.text
    # Viewers still change nothing.
    assert_problem(
        api.patch(f"/api/jobs/{tpl}", role="viewer", json={"command_line": "x"}), 403, "Forbidden"
    )
