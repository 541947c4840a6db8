"""Every endpoint of the REST API, on the real emulator and a real SQLite store."""

from __future__ import annotations

from typing import Any

import pytest
from azure.batch import BatchClient

from polysync.api.sessions import LEGACY_COOKIE
from tests.api.conftest import KEY_ENV, Api, is_terminal, make_template
from tests.support import SUBSCRIPTION

PROBLEM = "application/problem+json"


def assert_problem(r: Any, status: int, code: str, phrase: str = "") -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert phrase in body["detail"]
    return body


def setup_task(api: Api, batch: BatchClient, task: str = "hello") -> str:
    api.add_platform()
    tpl = make_template(batch)
    r = api.post(
        "/api/jobs/import", role="operator", json={"platform": "local", "external_ids": [tpl]}
    )
    assert r.status_code == 201, r.text
    for name in ("SLEEP_S", "EXIT_CODE"):
        r = api.put(f"/api/jobs/{tpl}/parameters/{name}", role="operator", json={"type": "Int"})
        assert r.status_code == 200, r.text
    r = api.post("/api/tasks", role="operator", json={"name": task, "job": tpl})
    assert r.status_code == 201, r.text
    return tpl


# -- auth ---------------------------------------------------------------------------------


def test_health_needs_no_token(api: Api) -> None:
    r = api.client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "worker": False}


@pytest.mark.parametrize(
    ("headers", "phrase"),
    [
        ({}, "needs an API token"),
        ({"Authorization": "Bearer psk_not-a-real-token"}, "not valid"),
        ({"Authorization": "Bearer something-else"}, "not valid"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "needs an API token"),
    ],
)
def test_requests_without_a_valid_token_are_401(
    api: Api, headers: dict[str, str], phrase: str
) -> None:
    r = api.client.get("/api/runs", headers=headers)
    assert_problem(r, 401, "Unauthorized", phrase)
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_me_names_the_token_and_the_session_cookie_works_too(api: Api, role: str) -> None:
    assert api.get("/api/me", role=role).json() == {"name": role, "role": role}
    try:
        signin = api.client.post(
            "/signin", data={"token": api.tokens[role]}, follow_redirects=False
        )
        assert signin.status_code == 303, signin.text
        assert api.client.get("/api/me").json() == {"name": role, "role": role}
    finally:
        api.client.cookies.clear()


def test_the_old_token_cookie_is_ignored_and_cleared(api: Api) -> None:
    api.client.cookies.set(LEGACY_COOKIE, api.tokens["admin"])
    try:
        r = api.client.get("/api/me")
        assert_problem(r, 401, "Unauthorized", "needs an API token")
        assert f"{LEGACY_COOKIE}=;" in r.headers["set-cookie"]
        assert "max-age=0" in r.headers["set-cookie"].lower()
    finally:
        api.client.cookies.clear()


@pytest.mark.parametrize(
    ("method", "url", "role", "body"),
    [
        ("POST", "/api/tasks", "viewer", {"name": "x", "job": "y"}),
        ("POST", "/api/tasks/x/runs", "viewer", {}),
        ("POST", "/api/runs/1/cancel", "viewer", None),
        ("POST", "/api/jobs/import", "viewer", {"platform": "p", "external_ids": ["a"]}),
        ("POST", "/api/platforms", "operator", {"name": "p"}),
        ("DELETE", "/api/platforms/p", "operator", None),
        ("GET", "/api/tokens", "operator", None),
        ("POST", "/api/tokens", "operator", {"name": "t", "role": "admin"}),
    ],
)
def test_a_role_too_low_is_403(
    api: Api, method: str, url: str, role: str, body: dict[str, Any] | None
) -> None:
    r = api.client.request(method, url, headers=api.headers(role), json=body)
    assert_problem(r, 403, "Forbidden", f"has role {role}")


def test_tokens_are_shown_once_listed_without_secrets_and_revocable(api: Api) -> None:
    r = api.post("/api/tokens", json={"name": "ci-bot", "role": "operator"})
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    assert token.startswith("psk_")
    assert len(token) > 40
    listed = api.get("/api/tokens").json()
    assert {t["name"]: t["role"] for t in listed}["ci-bot"] == "operator"
    assert token not in api.get("/api/tokens").text
    assert "token" not in listed[0]
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/me", headers=headers).json()["name"] == "ci-bot"
    assert_problem(api.post("/api/tokens", json={"name": "CI-BOT"}), 409, "AlreadyExists")
    assert_problem(
        api.post("/api/tokens", json={"name": "x", "role": "root"}), 422, "ValidationError"
    )
    assert api.delete("/api/tokens/ci-bot").status_code == 204
    assert_problem(api.client.get("/api/me", headers=headers), 401, "Unauthorized")
    assert_problem(api.delete("/api/tokens/ci-bot"), 404, "NotFound", "ci-bot")


# -- platforms ----------------------------------------------------------------------------


def test_platform_crud_test_and_discover(api: Api, batch: BatchClient) -> None:
    created = api.add_platform()
    assert created["auth"]["secret_ref"] == f"env:{KEY_ENV}"
    assert_problem(
        api.post("/api/platforms", json={**_platform_body(api), "name": "LOCAL"}),
        409,
        "AlreadyExists",
        "already exists",
    )
    bad = assert_problem(
        api.post("/api/platforms", json={**_platform_body(api), "account_name": "Bad Name"}),
        422,
        "InvalidInput",
    )
    assert bad["detail"].startswith("Batch account name 'Bad Name' is not valid")
    assert [p["name"] for p in api.get("/api/platforms", role="viewer").json()] == ["local"]
    assert api.get("/api/platforms/local", role="viewer").json()["account_url"] == api.endpoint
    assert_problem(api.get("/api/platforms/nope"), 404, "NotFound", "'nope' does not exist")

    body = _platform_body(api)
    del body["name"]
    r = api.put("/api/platforms/local", json={**body, "resource_group": "rg-new"})
    assert r.status_code == 200
    assert r.json()["resource_group"] == "rg-new"
    assert_problem(api.put("/api/platforms/nope", json=body), 404, "NotFound")

    report = api.post("/api/platforms/local/test", role="viewer").json()
    assert report["ok"] is True
    assert report["checks"]

    ids = sorted(make_template(batch, prefix=f"disc{i}") for i in range(3))
    r = api.get("/api/platforms/local/discover", role="viewer", params={"prefix": "disc"})
    page = r.json()
    assert page["total"] == 3
    assert sorted(i["id"] for i in page["items"]) == ids
    r = api.get("/api/platforms/local/discover", params={"prefix": "disc", "limit": 2, "offset": 2})
    assert r.json()["total"] == 3
    assert len(r.json()["items"]) == 1
    assert_problem(
        api.get("/api/platforms/local/discover", params={"limit": 0}), 422, "ValidationError"
    )

    tpl = ids[0]
    api.post("/api/jobs/import", json={"platform": "local", "external_ids": [tpl]})
    assert_problem(api.delete("/api/platforms/local"), 409, "Conflict", "is used by job(s)")
    assert api.delete("/api/platforms/local", params={"force": True}).status_code == 204
    assert api.get("/api/jobs").json() == []


def _platform_body(api: Api) -> dict[str, Any]:
    return {
        "name": "local",
        "account_url": api.endpoint,
        "account_name": "devaccount",
        "subscription_id": SUBSCRIPTION,
        "resource_group": "rg-test",
        "key_env": KEY_ENV,
    }


def test_platform_errors_from_batch_are_502(api: Api) -> None:
    body = _platform_body(api)
    body.update(name="dead", account_url="http://127.0.0.1:9")
    assert api.post("/api/platforms", json=body).status_code == 201
    r = api.get("/api/platforms/dead/discover")
    assert r.status_code == 502
    assert r.json()["code"]


# -- jobs ---------------------------------------------------------------------------------


def test_job_import_edit_sync_and_delete(api: Api, batch: BatchClient) -> None:
    api.add_platform()
    tpl = make_template(batch)
    r = api.post(
        "/api/jobs/import", role="operator", json={"platform": "local", "external_ids": [tpl]}
    )
    assert r.status_code == 201
    [imported] = r.json()
    assert imported["action"] == "created"
    assert {p["name"] for p in imported["parameters"]} >= {"NAME", "SLEEP_S", "EXIT_CODE"}
    assert_problem(
        api.post("/api/jobs/import", json={"platform": "local", "external_ids": ["no-such-tpl"]}),
        404,
        "NotFound",
        "no Batch job 'no-such-tpl'",
    )
    assert_problem(
        api.post("/api/jobs/import", json={"platform": "nope", "external_ids": [tpl]}),
        404,
        "NotFound",
    )
    assert_problem(
        api.post("/api/jobs/import", json={"platform": "local"}), 422, "InvalidInput", "--all"
    )
    assert [j["name"] for j in api.get("/api/jobs", role="viewer").json()] == [tpl]
    assert api.get("/api/jobs", params={"platform": "local"}).json()[0]["external_id"] == tpl
    assert_problem(api.get("/api/jobs", params={"platform": "zzz"}), 404, "NotFound")
    assert api.get(f"/api/jobs/{tpl}", role="viewer").json()["job_type"] == "Batch Job"

    r = api.patch(
        f"/api/jobs/{tpl}", role="operator", json={"max_wall_clock_s": 600, "tags": ["a"]}
    )
    assert r.json()["overrides"]["max_wall_clock_s"] == 600
    assert r.json()["tags"] == ["a"]
    r = api.patch(f"/api/jobs/{tpl}", json={"max_wall_clock_s": None, "description": "d"})
    assert r.json()["overrides"]["max_wall_clock_s"] is None
    assert r.json()["tags"] == ["a"]
    assert r.json()["description"] == "d"
    assert_problem(api.patch(f"/api/jobs/{tpl}", json={"bogus": 1}), 422, "ValidationError")

    r = api.put(f"/api/jobs/{tpl}/parameters/COUNT", json={"type": "Int", "default": "3"})
    assert r.status_code == 200
    count = next(p for p in r.json()["parameters"] if p["name"] == "COUNT")
    assert (count["type"], count["default"], count["origin"]) == ("Int", "3", "user")
    assert_problem(
        api.put(f"/api/jobs/{tpl}/parameters/COUNT", json={"default": "three"}),
        422,
        "InvalidParameter",
    )
    r = api.put(f"/api/jobs/{tpl}/parameters/OUT", json={"direction": "Output"})
    assert r.json()["notices"]

    r = api.post(f"/api/jobs/{tpl}/sync", role="operator")
    assert r.status_code == 200
    assert "COUNT" in {p["name"] for p in r.json()["parameters"]}  # user edits survive
    assert isinstance(r.json()["changes"], list)

    api.post("/api/tasks", json={"name": "t1", "job": tpl, "params": {"COUNT": "4"}})
    assert_problem(api.delete(f"/api/jobs/{tpl}/parameters/COUNT"), 409, "Conflict", "t1")
    assert_problem(api.delete(f"/api/jobs/{tpl}/parameters/NOPE"), 404, "NotFound")
    assert_problem(api.delete(f"/api/jobs/{tpl}"), 409, "Conflict")
    assert api.delete("/api/tasks/t1").status_code == 204
    r = api.delete(f"/api/jobs/{tpl}/parameters/COUNT")
    assert "COUNT" not in {p["name"] for p in r.json()["parameters"]}
    assert api.delete(f"/api/jobs/{tpl}", role="operator").status_code == 204
    assert_problem(api.get(f"/api/jobs/{tpl}"), 404, "NotFound")


# -- tasks and runs -----------------------------------------------------------------------


def test_task_crud(api: Api, batch: BatchClient) -> None:
    tpl = setup_task(api, batch)
    assert_problem(api.post("/api/tasks", json={"name": "HELLO", "job": tpl}), 409, "AlreadyExists")
    assert_problem(
        api.post("/api/tasks", json={"name": "t2", "job": tpl, "params": {"SLEEP_S": "x"}}),
        422,
        "InvalidParameter",
        "SLEEP_S",
    )
    assert_problem(
        api.post("/api/tasks", json={"name": "t2", "job": tpl, "params": {"NOPE": "1"}}),
        422,
        "InvalidParameter",
        "no parameter NOPE",
    )
    assert_problem(api.post("/api/tasks", json={"name": "t2", "job": "nojob"}), 404, "NotFound")
    assert_problem(api.post("/api/tasks", json={"name": "t2"}), 422, "ValidationError", "job")
    assert [t["name"] for t in api.get("/api/tasks", role="viewer").json()] == ["hello"]
    assert api.get("/api/tasks", params={"job": tpl}).json()[0]["job"] == tpl
    r = api.patch(
        "/api/tasks/hello",
        role="operator",
        json={
            "set_params": {"NAME": "api"},
            "execution_timeout_s": 600,
            "priority": 5,
            "retry_policy": {"enabled": True, "max_attempts": 3, "backoff": "Linear"},
        },
    )
    task = r.json()
    assert task["params"] == {"NAME": "api"}
    assert (task["execution_timeout_s"], task["priority"]) == (600, 5)
    assert task["retry_policy"]["max_attempts"] == 3
    r = api.patch("/api/tasks/hello", json={"execution_timeout_s": None, "unset_params": ["NAME"]})
    assert r.json()["execution_timeout_s"] is None
    assert r.json()["params"] == {}
    assert r.json()["priority"] == 5
    assert_problem(
        api.patch("/api/tasks/hello", json={"unset_params": ["NAME"]}), 422, "InvalidInput"
    )
    assert_problem(api.get("/api/tasks/nope"), 404, "NotFound")
    assert api.delete("/api/tasks/hello").status_code == 204
    assert_problem(api.delete("/api/tasks/hello"), 404, "NotFound")


def test_run_once_succeeds_with_logs_and_history(api: Api, batch: BatchClient) -> None:
    setup_task(api, batch)
    r = api.post("/api/tasks/hello/runs", role="operator", json={"params": {"NAME": "api"}})
    assert r.status_code == 202
    run = r.json()
    assert run["state"] == "Queued"
    done = api.wait_run(run["id"], is_terminal)
    assert done["state"] == "Succeeded", done
    assert done["exit_code"] == 0
    assert [h["to"] for h in done["history"]] == ["Queued", "Starting", "Running", "Succeeded"]
    assert done["attempts"][0]["run_id"] == done["run_id"]
    logs = api.get(f"/api/runs/{run['id']}/logs", role="viewer").json()
    assert logs["data"] == "hello api\n"
    assert (logs["offset"], logs["next_offset"], logs["eof"]) == (0, 10, True)
    tail = api.get(f"/api/runs/{run['id']}/logs", params={"offset": 6, "max_bytes": 2}).json()
    assert (tail["data"], tail["next_offset"], tail["eof"]) == ("ap", 8, False)
    assert_problem(
        api.get(f"/api/runs/{run['id']}/logs", params={"file": "../etc/passwd"}),
        422,
        "InvalidInput",
    )
    # A finished run cannot be cancelled: 409 with the CLI's sentence.
    assert_problem(
        api.post(f"/api/runs/{run['id']}/cancel", role="operator"),
        409,
        "Conflict",
        "already finished Succeeded",
    )


def test_failing_run_keeps_its_failure_and_stderr(api: Api, batch: BatchClient) -> None:
    setup_task(api, batch)
    run = api.post("/api/tasks/hello/runs", json={"params": {"EXIT_CODE": "3"}}).json()
    done = api.wait_run(run["id"], is_terminal)
    assert done["state"] == "Failed"
    assert done["exit_code"] == 3
    assert done["failure"]["code"] == "FailureExitCode"
    assert "failing with 3" in done["failure"]["stderr_tail"]
    stderr = api.get(f"/api/runs/{run['id']}/logs", params={"file": "stderr.txt"}).json()
    assert stderr["data"] == "failing with 3\n"
    assert_problem(
        api.post("/api/tasks/hello/runs", json={"params": {"EXIT_CODE": "x"}}),
        422,
        "InvalidParameter",
    )
    assert_problem(api.post("/api/tasks/nope/runs", json={}), 404, "NotFound")


def test_cancel_a_running_run(api: Api, batch: BatchClient) -> None:
    setup_task(api, batch)
    run = api.post("/api/tasks/hello/runs", json={"params": {"SLEEP_S": "300"}}).json()
    api.wait_run(run["id"], lambda r: r["state"] == "Running")
    r = api.post(f"/api/runs/{run['id']}/cancel", role="operator")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "Cancelled"
    assert "terminated" in r.json()["message"]
    again = api.post(f"/api/runs/{run['id']}/cancel").json()
    assert again["state"] == "Cancelled"
    assert_problem(api.post("/api/runs/999999/cancel"), 404, "NotFound")


def test_run_list_filters_and_pages(api: Api, batch: BatchClient) -> None:
    setup_task(api, batch)
    api.post("/api/tasks", json={"name": "other", "job": api.get("/api/jobs").json()[0]["name"]})
    ids = [api.post("/api/tasks/hello/runs").json()["id"] for _ in range(3)]
    other = api.post("/api/tasks/other/runs", json={"params": {"EXIT_CODE": "1"}}).json()["id"]
    for run_id in [*ids, other]:
        api.wait_run(run_id, is_terminal)
    page = api.get("/api/runs", role="viewer").json()
    assert page["total"] == 4
    assert [r["id"] for r in page["items"]] == sorted([*ids, other], reverse=True)
    page = api.get("/api/runs", params={"task": "hello", "limit": 2, "offset": 1}).json()
    assert page["total"] == 3
    assert [r["id"] for r in page["items"]] == sorted(ids, reverse=True)[1:3]
    failed = api.get("/api/runs", params={"state": "failed"}).json()
    assert [r["id"] for r in failed["items"]] == [other]
    assert_problem(api.get("/api/runs", params={"state": "Done"}), 422, "InvalidInput", "Done")
    assert_problem(api.get("/api/runs", params={"task": "nope"}), 404, "NotFound")
    assert_problem(api.get("/api/runs", params={"limit": 5000}), 422, "ValidationError")
    assert_problem(api.get("/api/runs/0"), 422, "ValidationError")
    assert_problem(api.get("/api/runs/424242"), 404, "NotFound")


def test_unknown_api_path_is_a_problem(api: Api) -> None:
    assert_problem(api.get("/api/nothing-here"), 404, "NotFound")


def test_no_secret_or_token_in_any_response(api: Api, batch: BatchClient) -> None:
    setup_task(api, batch)
    texts = [
        api.get(url).text
        for url in ("/api/platforms", "/api/platforms/local", "/api/tokens", "/api/jobs")
    ]
    from batch_emulator import DEFAULT_KEY

    for text in texts:
        assert DEFAULT_KEY not in text
        for token in api.tokens.values():
            assert token not in text
