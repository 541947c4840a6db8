"""Out-of-range numbers, overflows and NULs in the console's forms and paths (over HTTP).

Each used to be a 500 (an OverflowError from the store), a JSON error instead of a page,
or a value the API refuses being saved. Now: a 4xx page with the sentence, nothing saved.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.batch import BatchClient

from tests.web.conftest import Console, console_client, make_template

HUGE = "99999999999999999999"  # past 64 bits
TASK = "limits-task"


@pytest.fixture(scope="module")
def job(console: Console, batch: BatchClient) -> str:
    """A job and a task of it, made through the API."""
    template = make_template(batch, "/bin/true", prefix="weblimits")
    with console.api("operator") as api:
        r = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert r.status_code == 201, r.text
        r = api.post("/api/tasks", json={"name": TASK, "job": template})
        assert r.status_code == 201, r.text
    return template


@pytest.fixture
def operator(console: Console) -> Iterator[httpx.Client]:
    with console_client(console, "operator") as client:
        yield client


def read(console: Console, path: str) -> Any:
    with console.api("admin") as api:
        r = api.get(path)
    return r.status_code, r.json()


def assert_page(resp: httpx.Response, fragment: str) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("text/html"), resp.headers["content-type"]
    assert fragment in html.unescape(resp.text), resp.text[:2000]


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"priority": HUGE}, f"priority {HUGE} is out of range"),
        ({"priority": "9" * 5000}, "priority is far too large"),
        ({"priority": "2000000"}, "priority 2000000 is out of range"),
        ({"priority": "-2000000"}, "priority -2000000 is out of range"),
        ({"timeout": f"{HUGE}d"}, "execution timeout is far too large"),
        ({"timeout": "3651d"}, "execution timeout 3651d is out of range"),
        (
            {"retries": "1", "retry_delay": f"{HUGE}d", "retry_max_delay": f"{HUGE}d"},
            "initial retry delay is far too large",
        ),
        ({"description": "a\x00b"}, "description contains a NUL character"),
    ],
)
def test_task_form_refuses_and_saves_nothing(
    console: Console, operator: httpx.Client, job: str, form: dict[str, str], fragment: str
) -> None:
    data = {"job": job, "name": "refused", "retries": "0", **form}
    assert_page(operator.post("/tasks", data=data), fragment)
    assert read(console, "/api/tasks/refused")[0] == 404


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"priority": HUGE}, f"priority {HUGE} is out of range"),
        ({"timeout": f"{HUGE}d"}, "execution timeout is far too large"),
        ({"description": "a\x00b"}, "description contains a NUL character"),
    ],
)
def test_task_edit_form_refuses_and_saves_nothing(
    console: Console, operator: httpx.Client, job: str, form: dict[str, str], fragment: str
) -> None:
    before = read(console, f"/api/tasks/{TASK}")
    assert_page(operator.post(f"/tasks/{TASK}", data={"retries": "0", **form}), fragment)
    assert read(console, f"/api/tasks/{TASK}") == before


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"max_wall_clock": "0s"}, "task max wall clock time 0s is out of range"),
        ({"max_wall_clock": f"{HUGE}s"}, "task max wall clock time 1157407407407407d"),
        ({"retention": f"{HUGE}d"}, "task retention time is far too large"),
        ({"max_task_retries": "9" * 40}, "max task retries is far too large"),
        ({"command_line": "run\x00.sh"}, "command line contains a NUL character"),
        ({"image": "x" * 1001}, "container image is 1001 characters long"),
        ({"tags": "ok, b\x00d"}, "contains a NUL character"),
        ({"description": "a\x00b"}, "description contains a NUL character"),
    ],
)
def test_job_overrides_form_refuses_and_saves_nothing(
    console: Console, job: str, form: dict[str, str], fragment: str
) -> None:
    before = read(console, f"/api/jobs/{job}")
    # An admin: code-bearing fields (command line, image, run options) need that role
    # (decision 0011), and the limits must hold for whoever may change them.
    with console_client(console, "admin") as admin:
        assert_page(admin.post(f"/jobs/{job}/overrides", data=form), fragment)
    assert read(console, f"/api/jobs/{job}") == before


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"account_url": "https://user:pass@acct.westeurope.batch.azure.com"}, "user name or"),
        ({"account_url": "https://acct.westeurope.batch.azure.com:99999"}, "invalid port"),
        ({"client_id": "c\x00"}, "client id contains a NUL character"),
    ],
)
def test_platform_form_refuses_and_saves_nothing(
    console: Console, form: dict[str, str], fragment: str
) -> None:
    data = {
        "name": "refused-platform",
        "account_url": "https://acct.westeurope.batch.azure.com",
        "account_name": "acct",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": "rg",
        "auth": "managed-identity",
        **form,
    }
    with console_client(console, "admin") as admin:
        assert_page(admin.post("/platforms", data=data), fragment)
    assert read(console, "/api/platforms/refused-platform")[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "fragment"),
    [
        ("GET", f"/runs/{HUGE}", f"run id {HUGE} is out of range"),
        ("GET", "/runs/0", "run id 0 is out of range"),
        ("GET", "/runs/abc", "run id 'abc' is not a whole number"),
        ("POST", f"/runs/{HUGE}/cancel", f"run id {HUGE} is out of range"),
        ("GET", f"/runs?offset={HUGE}", f"offset {HUGE} is out of range"),
        ("GET", "/runs?offset=abc", "offset 'abc' is not a whole number"),
        ("GET", "/platforms/local/discover?offset=abc", "offset 'abc' is not a whole number"),
        ("GET", "/platforms/local/discover?prefix=a%00", "contains a NUL character"),
    ],
)
def test_paths_and_queries_refuse_with_a_page(
    operator: httpx.Client, method: str, path: str, fragment: str
) -> None:
    assert_page(operator.request(method, path), fragment)


def test_pages_still_take_good_numbers(operator: httpx.Client, job: str) -> None:
    assert operator.get("/runs?offset=0").status_code == 200
    assert operator.get("/runs?offset=").status_code == 200
    assert operator.get("/platforms/local/discover?offset=25").status_code == 200
    assert operator.get("/runs/9007199254740991").status_code == 404
    ok = operator.post(f"/tasks/{TASK}", data={"retries": "0", "priority": "1000000"})
    assert ok.status_code == 303, ok.text[:500]
    assert operator.post(f"/tasks/{TASK}", data={"retries": "0"}).status_code == 303
