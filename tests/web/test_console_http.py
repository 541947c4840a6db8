"""The console's pages over plain HTTP (no browser): auth, roles, escaping, form rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from azure.batch import BatchClient

from polysync.domain.models import BackoffStrategy, Job, JobOverrides, RetryPolicy
from polysync.domain.secrets import Writer
from polysync.errors import InputError
from polysync.services import vaults as vault_service
from polysync.web import app as web
from tests.web.conftest import Console, make_template


@pytest.fixture
def browser_like(console: Console) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console.url, follow_redirects=False, timeout=30) as client:
        yield client


def sign_in(client: httpx.Client, console: Console, role: str) -> str:
    """Sign in through the form; returns the session's CSRF token, read from a page."""
    resp = client.post("/signin", data={"token": console.tokens[role], "next": "/jobs"})
    assert resp.status_code == 303, resp.text
    assert resp.headers["location"] == "/jobs"
    return csrf_of(client)


def csrf_of(client: httpx.Client, path: str = "/runs") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, "the page carries no csrf-token meta tag"
    return found.group(1)


@pytest.mark.parametrize("path", ["/runs", "/tasks", "/jobs", "/platforms", "/runs/1", "/vaults"])
def test_pages_need_sign_in(browser_like: httpx.Client, path: str) -> None:
    resp = browser_like.get(path)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/signin?" + httpx.QueryParams({"next": path}).__str__()


def test_sign_in_cookie_is_httponly_and_strict(
    browser_like: httpx.Client, console: Console
) -> None:
    resp = browser_like.post("/signin", data={"token": console.tokens["viewer"], "next": "/runs"})
    cookie = resp.headers["set-cookie"].lower()
    assert "polysync_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/" in cookie
    assert "secure" not in cookie  # plain http on loopback; https requests get Secure
    # The cookie holds a session id, never the token.
    assert console.tokens["viewer"].lower() not in cookie
    assert "psk_" not in cookie


def test_bad_token_is_refused_without_a_cookie(browser_like: httpx.Client) -> None:
    resp = browser_like.post("/signin", data={"token": "psk_wrong", "next": "/runs"})
    assert resp.status_code == 401
    assert "set-cookie" not in resp.headers
    assert "That token is not valid" in resp.text


def test_sign_out_clears_the_cookie(browser_like: httpx.Client, console: Console) -> None:
    token = sign_in(browser_like, console, "viewer")
    assert browser_like.get("/runs").status_code == 200
    resp = browser_like.post("/signout", data={"csrf_token": token})
    assert resp.headers["location"] == "/signin"
    assert browser_like.get("/runs").status_code == 303


def test_viewer_may_read_but_not_change(browser_like: httpx.Client, console: Console) -> None:
    token = sign_in(browser_like, console, "viewer")
    page = browser_like.get("/platforms")
    assert page.status_code == 200
    assert "Add a platform" not in page.text
    refused = browser_like.post("/platforms", data={"name": "x", "csrf_token": token})
    assert refused.status_code == 403
    assert "has role viewer; this needs admin" in refused.text
    assert browser_like.get("/tasks/new").status_code == 403


def test_unknown_things_are_404_pages(browser_like: httpx.Client, console: Console) -> None:
    sign_in(browser_like, console, "viewer")
    for path in ("/jobs/nope", "/tasks/nope", "/runs/999999"):
        resp = browser_like.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("text/html")


def test_user_content_is_escaped(
    browser_like: httpx.Client, console: Console, batch: BatchClient
) -> None:
    template = make_template(batch, "/bin/true", prefix="webxss")
    with console.api("operator") as api:
        resp = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert resp.status_code == 201, resp.text
        resp = api.patch(
            f"/api/jobs/{template}", json={"description": "<script>alert('x')</script>"}
        )
        assert resp.status_code == 200, resp.text
    sign_in(browser_like, console, "viewer")
    page = browser_like.get(f"/jobs/{template}")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text


def test_platform_form_errors_keep_the_input(browser_like: httpx.Client, console: Console) -> None:
    token = sign_in(browser_like, console, "admin")
    form = {
        "csrf_token": token,
        "name": "second",
        "account_url": "http://batch.example.com",
        "account_name": "acct",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": "rg",
        "auth": "shared-key",
        "secret_env": "SOME_KEY",
        "verify_tls": "1",
    }
    resp = browser_like.post("/platforms", data=form)
    assert resp.status_code == 422
    assert "uses plain http to a non-local host" in resp.text
    assert 'value="acct"' in resp.text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/runs/3", "/runs/3"),
        ("/runs?task=a&state=Failed", "/runs?task=a&state=Failed"),
        ("//evil.example/x", "/runs"),
        ("https://evil.example/", "/runs"),
        ("/\\evil.example", "/runs"),
        ("runs", "/runs"),
    ],
)
def test_sign_in_only_returns_to_our_own_pages(target: str, expected: str) -> None:
    assert web._safe_next(target) == expected


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({}, RetryPolicy()),
        ({"retries": "0"}, RetryPolicy()),
        (
            {
                "retries": "2",
                "backoff": "Exponential",
                "retry_delay": "10s",
                "retry_max_delay": "5m",
            },
            RetryPolicy(True, 3, BackoffStrategy.EXPONENTIAL, 10.0, 300.0),
        ),
        ({"retries": "1", "backoff": "Linear"}, RetryPolicy(True, 2, BackoffStrategy.LINEAR)),
    ],
)
def test_retry_policy_from_the_task_form(form: dict[str, str], expected: RetryPolicy) -> None:
    assert web.retry_policy_from(form) == expected


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"retries": "-1"}, "retries -1 is out of range: give a whole number from 0 to 99"),
        ({"retries": "two"}, "is not a whole number"),
        ({"backoff": "Random"}, "use Fixed, Linear or Exponential"),
        ({"retry_delay": "soon"}, "initial retry delay"),
    ],
)
def test_retry_policy_form_errors(form: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        web.retry_policy_from(form)


JOB = Job(
    name="j",
    platform="p",
    external_id="t",
    overrides=JobOverrides(image="img:1", max_wall_clock_s=600, max_task_retries=2),
)


@pytest.mark.parametrize(
    ("form", "changes", "unset"),
    [
        # Empty fields put back the template's value for the ones that were overridden.
        ({}, {}, ["image", "max-wall-clock", "max-task-retries"]),
        (
            {"image": "img:1", "max_wall_clock": "10m", "max_task_retries": "2"},
            {"image": "img:1", "max_wall_clock_s": 600, "max_task_retries": 2},
            [],
        ),
        (
            {"command_line": "run.sh", "image": "img:2", "retention": "1d"},
            {"command_line": "run.sh", "image": "img:2", "retention_s": 86400},
            ["max-wall-clock", "max-task-retries"],
        ),
    ],
)
def test_override_form_to_changes(
    form: dict[str, str], changes: dict[str, object], unset: list[str]
) -> None:
    assert web.override_changes(JOB, form) == (changes, unset)


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ("shared-key", "key_env"),
        ("service-principal", "client_secret_env"),
        ("certificate", "certificate_password_env"),
        ("bearer-token", "token_env"),
    ],
)
def test_platform_form_secret_goes_to_the_mode_field(auth: str, field: str) -> None:
    data = web.platform_input({"name": "n", "auth": auth, "secret_env": "MY_SECRET"})
    assert getattr(data, field) == "MY_SECRET"


def test_platform_form_rejects_an_unknown_auth_mode() -> None:
    with pytest.raises(InputError, match="authentication 'magic' is not valid"):
        web.platform_input({"auth": "magic"})


class _Forms(HTMLParser):
    """Every <form method=post> of a page: (action, {field: value} of its hidden inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._open = {}
            self.forms.append((a.get("action", ""), self._open))
        elif tag == "input" and self._open is not None and a.get("type") == "hidden":
            self._open[a.get("name", "")] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def test_every_form_that_changes_something_carries_the_csrf_token(
    browser_like: httpx.Client, console: Console, batch: BatchClient
) -> None:
    template = make_template(batch, "/bin/true", prefix="webforms")
    with console.api("operator") as api:
        resp = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert resp.status_code == 201, resp.text
        assert api.post("/api/tasks", json={"name": "forms", "job": template}).status_code == 201
        run_id = api.post("/api/tasks/forms/runs", json={}).json()["id"]
    # A vault, so that its row's Test and Remove forms are on the page too.
    vault_service.add_vault(
        console.services,
        vault_service.VaultInput(name="forms-kv", url="https://forms-kv.vault.azure.net/"),
        writer=Writer.HOST,
    )
    token = sign_in(browser_like, console, "admin")
    pages = [
        "/runs",
        f"/runs/{run_id}",
        "/tasks",
        f"/tasks/new?job={template}",
        "/tasks/forms",
        f"/jobs/{template}",
        "/platforms",
        f"/platforms/local/discover?prefix={template}",
        "/vaults",
        "/vaults?edit=forms-kv",
    ]
    seen = 0
    for path in pages:
        page = browser_like.get(path)
        assert page.status_code == 200, path
        parser = _Forms()
        parser.feed(page.text)
        assert parser.forms, path
        for action, hidden in parser.forms:
            assert hidden.get("csrf_token") == token, (path, action)
            seen += 1
    assert seen >= 16  # sign-out on every page, run, cancel, sync, params, vaults, ...
