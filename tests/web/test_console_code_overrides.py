"""Code-bearing fields in the console (decision 0011): read-only for operators, 403 if
posted anyway, kept when the rest of the form is saved; admins edit them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from azure.batch import BatchClient
from playwright.sync_api import BrowserContext, Page, expect

from polysync.errors import NotFoundError
from tests.web.conftest import Console, console_client, make_template, signed_in

pytestmark = pytest.mark.timeout(120)

ADMIN_COMMAND = "/bin/sh -c 'echo set by an admin'"


@pytest.fixture
def job(console: Console, batch: BatchClient) -> str:
    """An imported job whose command line and LD_PRELOAD parameter an admin set."""
    template = make_template(batch, "/bin/true", prefix="webcode")
    with console.api("admin") as api:
        resp = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert resp.status_code == 201, resp.text
        name: str = resp.json()[0]["name"]
        assert api.patch(f"/api/jobs/{name}", json={"command_line": ADMIN_COMMAND}).is_success
        assert api.put(f"/api/jobs/{name}/parameters/LD_PRELOAD", json={}).is_success
    return name


@pytest.fixture
def operator(console: Console) -> Iterator[httpx.Client]:
    with console_client(console, "operator") as client:
        yield client


def _input(html: str, element_id: str) -> str:
    found = re.search(rf'<input id="{element_id}"[^>]*>', html)
    assert found, f"no input #{element_id}"
    return found.group(0)


def test_operators_see_code_fields_read_only_admins_edit_them(
    console: Console, job: str, operator: httpx.Client
) -> None:
    page = operator.get(f"/jobs/{job}").text
    for element_id in ("o-cmd", "o-image", "o-run"):
        assert " disabled" in _input(page, element_id)
    assert " disabled" not in _input(page, "o-wall")  # the rest stays editable
    assert "changing them needs the admin role" in page
    row = re.search(r'<tr data-param="LD_PRELOAD">.*?</tr>', page, re.S)
    assert row
    assert "admin only" in row.group(0)
    assert 'name="default"' not in row.group(0)
    assert "adding or editing them needs the admin role" in page

    with console_client(console, "admin") as admin:
        page = admin.get(f"/jobs/{job}").text
    assert " disabled" not in _input(page, "o-cmd")
    assert "changing them needs the admin role" not in page


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("command_line", "/bin/sh -c 'id > /tmp/owned'"),
        ("image", "attacker/image"),
        ("container_run_options", "--privileged"),
    ],
)
def test_posting_a_code_override_anyway_is_a_403_page(
    console: Console, job: str, operator: httpx.Client, field: str, value: str
) -> None:
    before = console.services.store.get_job(job)
    resp = operator.post(
        f"/jobs/{job}/overrides",
        data={"command_line": ADMIN_COMMAND, field: value, "max_wall_clock": "5m"},
    )
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("text/html")
    assert "Not allowed" in resp.text
    assert "so it needs the admin role and this token is operator" in resp.text
    assert console.services.store.get_job(job).overrides == before.overrides


def test_the_page_as_posted_keeps_the_code_fields(
    console: Console, job: str, operator: httpx.Client
) -> None:
    # What the operator's browser posts: the disabled fields are not sent.
    resp = operator.post(
        f"/jobs/{job}/overrides",
        data={"max_wall_clock": "20m", "retention": "", "max_task_retries": "", "tags": "a"},
    )
    assert resp.status_code == 303, resp.text
    saved = console.services.store.get_job(job)
    assert saved.overrides.command_line == ADMIN_COMMAND
    assert saved.overrides.max_wall_clock_s == 1200
    assert saved.tags == ("a",)


def test_code_bearing_parameters_are_a_403_page(
    console: Console, job: str, operator: httpx.Client
) -> None:
    svc = console.services
    for path, data in (
        (f"/jobs/{job}/params", {"name": "PYTHONPATH", "type": "String", "default": "/tmp"}),
        (f"/jobs/{job}/params", {"name": "LD_PRELOAD", "default": "/tmp/x.so"}),
        (f"/jobs/{job}/params/LD_PRELOAD/delete", {}),
        ("/tasks", {"job": job, "name": "web-pre", "param:LD_PRELOAD": "/tmp/x.so"}),
    ):
        resp = operator.post(path, data=data)
        assert resp.status_code == 403, path
        assert "needs the admin role" in resp.text
    params = {p.name: p for p in svc.store.get_job(job).parameters}
    assert "PYTHONPATH" not in params
    assert params["LD_PRELOAD"].default is None
    with pytest.raises(NotFoundError):
        svc.store.get_task("web-pre")
    # Ordinary parameters stay operator-level.
    resp = operator.post(f"/jobs/{job}/params", data={"name": "COUNT", "default": "3"})
    assert resp.status_code == 303, resp.text


def test_in_the_browser_the_operator_saves_around_the_locked_fields(
    context: BrowserContext, page: Page, console: Console, job: str
) -> None:
    signed_in(context, console, "operator")
    page.goto(f"{console.url}/jobs/{job}")
    command = page.get_by_label("Command line")
    expect(command).to_be_disabled()
    expect(command).to_have_value(ADMIN_COMMAND)
    expect(page.locator("#o-code-note")).to_contain_text("needs the admin role")
    expect(page.locator('tr[data-param="LD_PRELOAD"]')).to_contain_text("admin only")
    page.get_by_label("Task maxWallClockTime").fill("15m")
    page.get_by_role("button", name="Save overrides").click()
    expect(page.get_by_role("status")).to_contain_text("Overrides of job")
    expect(page.get_by_label("Task maxWallClockTime")).to_have_value("15m")
    expect(page.get_by_label("Command line")).to_have_value(ADMIN_COMMAND)

    # The task editor: LD_PRELOAD is shown but cannot be set.
    page.goto(f"{console.url}/tasks/new?job={job}")
    expect(page.get_by_label("LD_PRELOAD")).to_be_disabled()
    page.get_by_label("Task name").fill("web-code-task")
    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(f"{console.url}/tasks/web-code-task")
