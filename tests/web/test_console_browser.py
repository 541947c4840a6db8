"""The web console in headless Chromium against a real server, store and emulator.

Acceptance 2 of issue 5: sign in with a token, import a template, create a task, run it,
watch it reach Succeeded live, open the run and see stdout, run a failing task and see
its failure reason, cancel a running one. Every page visited is saved as a screenshot
under tests/artifacts/.
"""

from __future__ import annotations

import re

import pytest
from azure.batch import BatchClient
from playwright.sync_api import BrowserContext, Page, expect

from polysync.domain.secrets import Writer
from polysync.services import tasks as task_service
from tests.web.conftest import Console, make_template, screenshot, signed_in

pytestmark = pytest.mark.timeout(120)

# Marks the page's JavaScript world: gone if the page were reloaded.
MARK = "window.__polysyncNoReload = 'still here'"
MARKED = "window.__polysyncNoReload === 'still here'"


def import_via_api(console: Console, template: str) -> str:
    with console.api("operator") as api:
        resp = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert resp.status_code == 201, resp.text
        name: str = resp.json()[0]["name"]
    return name


def test_sign_in_and_out(page: Page, console: Console) -> None:
    page.goto(console.url + "/runs")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fruns$"))
    page.get_by_label("API token").fill("psk_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That token is not valid")
    screenshot(page, "01-signin")

    page.get_by_label("API token").fill(console.tokens["admin"])
    page.keyboard.press("Enter")  # forms submit from the keyboard
    expect(page).to_have_url(console.url + "/runs")
    expect(page.get_by_role("heading", name=re.compile("^Runs"))).to_be_visible()
    expect(page.get_by_text("web-admin (admin)")).to_be_visible()
    # The token never reaches page scripts: the cookie is HttpOnly.
    assert page.evaluate("document.cookie").find("psk_") == -1

    page.keyboard.press("g")
    page.keyboard.press("p")
    expect(page).to_have_url(console.url + "/platforms")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url + "/signin")
    page.goto(console.url + "/jobs")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fjobs$"))


def test_platform_connectivity_check(context: BrowserContext, page: Page, console: Console) -> None:
    signed_in(context, console)
    page.goto(console.url + "/platforms")
    row = page.get_by_role("row").filter(has_text="local")
    row.get_by_role("button", name="Check connectivity").click()
    expect(row.get_by_text("is reachable and the credential works")).to_be_visible()
    assert row.locator("ul.checks li .ok").count() >= 1
    assert row.locator("ul.checks li .bad").count() == 0
    expect(page.get_by_role("heading", name="Add a platform")).to_be_visible()
    screenshot(page, "02-platforms")


def test_import_edit_create_run_watch_live(
    context: BrowserContext, page: Page, console: Console, batch: BatchClient
) -> None:
    template = make_template(
        batch,
        "/bin/sh -c 'echo \"$GREETING x$COUNT\"'",
        env={"GREETING": "hello", "COUNT": "1", "RESULT": "none"},
        prefix="webok",
    )
    signed_in(context, console)

    # Discovery → import: filter by prefix, tick the template, import it.
    page.goto(console.url + "/platforms/local/discover")
    page.get_by_label("Job id starts with").fill(template)
    page.get_by_role("button", name="Filter").click()
    page.get_by_label(template).check()
    expect(page.get_by_text("1 selected")).to_be_visible()
    screenshot(page, "03-discover")
    page.get_by_role("button", name="Import selected").click()

    # Job editor: cloned defaults with their sources, the schema, type and direction edits.
    expect(page).to_have_url(f"{console.url}/jobs/{template}")
    expect(page.get_by_role("status")).to_contain_text(f"Created job {template}")
    cloned = page.locator("#cloned + table")
    expect(cloned).to_contain_text("commandLine")
    expect(cloned).to_contain_text("poolInfo.poolId")
    count_row = page.locator('tr[data-param="COUNT"]')
    count_row.get_by_label("Type of COUNT").select_option("Int")
    count_row.get_by_role("button", name="Save COUNT").click()
    expect(page.get_by_role("status")).to_contain_text("Parameter COUNT of job")
    expect(page.locator('tr[data-param="COUNT"]').get_by_label("Type of COUNT")).to_have_value(
        "Int"
    )
    result_row = page.locator('tr[data-param="RESULT"]')
    result_row.get_by_label("Direction of RESULT").select_option("Output")
    result_row.get_by_role("button", name="Save RESULT").click()
    expect(page.get_by_role("status")).to_contain_text("is an Output parameter")
    expect(page.locator('tr[data-param="RESULT"]')).to_contain_text("not sent")
    expect(page.locator("[data-output-notice]")).to_contain_text(
        "Output parameters are not supported"
    )
    page.get_by_label("Task maxWallClockTime").fill("20m")
    page.get_by_label("Tags").fill("nightly, etl")
    page.get_by_role("button", name="Save overrides").click()
    expect(page.get_by_role("status")).to_contain_text("Overrides of job")
    expect(page.get_by_label("Task maxWallClockTime")).to_have_value("20m")
    expect(page.get_by_label("Tags")).to_have_value("nightly, etl")
    screenshot(page, "04-job-editor")

    # Task editor: validation as you type, then the server's sentence, then a good save.
    page.get_by_role("link", name="New task for this job").click()
    page.get_by_label("Task name").fill("web-hello")
    count = page.get_by_label("COUNT")
    count.fill("three")
    expect(count).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#" + str(count.get_attribute("aria-describedby")))).to_contain_text(
        "COUNT is not a whole number"
    )
    page.get_by_label("Execution timeout").fill("10m")
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("alert")).to_contain_text("COUNT")
    expect(page.get_by_role("alert")).to_contain_text("is not a whole number")
    expect(page.get_by_label("COUNT")).to_have_value("three")  # the form keeps what was typed
    screenshot(page, "05a-task-editor-invalid")
    page.get_by_label("COUNT").fill("3")
    expect(page.get_by_label("COUNT")).to_have_attribute("aria-invalid", "false")
    page.get_by_label("Retries").fill("1")
    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(console.url + "/tasks/web-hello")
    expect(page.get_by_label("Execution timeout")).to_have_value("10m")
    expect(page.get_by_label("Retries")).to_have_value("1")
    screenshot(page, "05-task-editor")

    # Run once → the run page follows the run live, without a reload.
    page.get_by_role("button", name="Run once").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    page.evaluate(MARK)
    badge = page.locator("h1 [data-run-field=state]")
    expect(badge).to_have_text("Succeeded", timeout=30_000)
    assert page.evaluate(MARKED), "the page reloaded"
    expect(page.locator("[data-timeline]")).to_contain_text("exit code 0")
    expect(page.locator("[data-run-field=run_id]")).to_contain_text("/")
    expect(page.locator("[data-run-field=exit_code]")).to_have_text("0")
    expect(page.locator("[data-run-field=monitor_url] a")).to_have_attribute(
        "href", re.compile(r"^https://")
    )
    expect(page.locator('pre[data-log="stdout.txt"]')).to_contain_text("hello x3")
    sent = page.locator("[data-params-sent]")
    expect(sent).to_contain_text("COUNT")
    expect(sent).not_to_contain_text("RESULT")  # an Output parameter is never sent
    screenshot(page, "06-run-succeeded")

    # The runs list shows a run started elsewhere and its state changes, live.
    page.goto(console.url + "/runs?task=web-hello")
    expect(page.locator("[data-live-status]")).to_have_text("live")
    page.evaluate(MARK)
    rows = page.locator("tr[data-run-id]")
    expect(rows).to_have_count(1)
    with console.api("operator") as api:
        resp = api.post("/api/tasks/web-hello/runs", json={})
        assert resp.status_code == 202, resp.text
        new_id = resp.json()["id"]
    new_row = page.locator(f'tr[data-run-id="{new_id}"]')
    expect(new_row.locator("[data-field=state]")).to_have_text("Succeeded", timeout=30_000)
    expect(rows).to_have_count(2)
    expect(page.locator("[data-runs-count]")).to_have_text("1–2 of 2")
    assert page.evaluate(MARKED), "the page reloaded"
    screenshot(page, "07-runs-list")

    # Filters are keyboard-usable selects; "/" focuses the first one.
    page.keyboard.press("/")
    expect(page.get_by_label("Task")).to_be_focused()


def test_failing_run_shows_its_failure(
    context: BrowserContext, page: Page, console: Console, batch: BatchClient
) -> None:
    template = make_template(
        batch,
        "/bin/sh -c 'echo disk full on /data >&2; exit 3'",
        prefix="webfail",
        max_wall_clock=None,
    )
    job = import_via_api(console, template)
    task_service.create_task(console.services, "web-fail", job, {}, writer=Writer.HOST)
    signed_in(context, console, "operator")

    page.goto(f"{console.url}/jobs/{job}")
    expect(page.locator("[data-warning]").first).to_contain_text("maxWallClockTime")
    page.goto(console.url + "/tasks/web-fail")
    page.get_by_role("button", name="Run once").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    expect(page.locator("h1 [data-run-field=state]")).to_have_text("Failed", timeout=30_000)
    failure = page.locator("[data-failure]")
    expect(failure).to_be_visible()
    expect(failure.locator("[data-failure-code]")).to_contain_text("FailureExitCode")
    expect(page.locator("[data-run-field=exit_code]")).to_have_text("3")
    expect(page.locator('pre[data-log="stderr.txt"]')).to_contain_text("disk full on /data")
    expect(page.get_by_role("button", name="Cancel run")).to_be_disabled()
    screenshot(page, "08-run-failed")


def test_cancel_a_running_run(
    context: BrowserContext, page: Page, console: Console, batch: BatchClient
) -> None:
    template = make_template(
        batch, "/bin/sh -c 'echo started; sleep 60'", prefix="webslow", max_wall_clock=None
    )
    job = import_via_api(console, template)
    task_service.create_task(
        console.services, "web-slow", job, {}, execution_timeout_s=600, writer=Writer.HOST
    )
    signed_in(context, console, "operator")

    page.goto(console.url + "/tasks")
    page.get_by_role("button", name="Run web-slow once").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    page.evaluate(MARK)
    state = page.locator("h1 [data-run-field=state]")
    expect(state).to_have_text("Running", timeout=30_000)
    expect(page.locator('pre[data-log="stdout.txt"]')).to_contain_text("started")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("[data-cancel-result]")).to_contain_text("cancelled")
    expect(state).to_have_text("Cancelled", timeout=20_000)
    expect(page.locator("[data-timeline]")).to_contain_text("cancelled by user")
    expect(page.get_by_role("button", name="Cancel run")).to_be_disabled()
    assert page.evaluate(MARKED), "the page reloaded"
    screenshot(page, "09-run-cancelled")


def test_viewer_reads_but_cannot_change(
    context: BrowserContext, page: Page, console: Console
) -> None:
    signed_in(context, console, "viewer")
    page.goto(console.url + "/platforms")
    expect(page.get_by_role("heading", name="Add a platform")).to_have_count(0)
    page.goto(console.url + "/tasks")
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Run .* once$"))).to_have_count(0)
    page.goto(console.url + "/jobs")
    screenshot(page, "10-jobs")


def test_pages_fit_a_laptop_screen(context: BrowserContext, page: Page, console: Console) -> None:
    signed_in(context, console)
    for path in ("/runs", "/tasks", "/jobs", "/platforms"):
        page.goto(console.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"{path} scrolls sideways ({width}px)"
