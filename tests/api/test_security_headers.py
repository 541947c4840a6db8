"""Security headers on every kind of response, and /docs + /openapi.json behind auth,
served from the installed swagger-ui-bundle (in-process, real SQLite store)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient

from polysync.api import csrf
from polysync.api.sessions import SESSION_COOKIE
from tests.api.conftest import Api

PROBLEM = "application/problem+json"


def assert_secure(r: httpx.Response, *, cache: str = "no-store") -> None:
    h = r.headers
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "same-origin"
    assert h["cross-origin-opener-policy"] == "same-origin"
    assert h["cross-origin-resource-policy"] == "same-origin"
    assert "camera=()" in h["permissions-policy"]
    assert h["cache-control"] == cache
    assert len(h.get_list("content-security-policy")) == 1


def sign_in(api: Api, role: str = "viewer") -> str:
    r = api.client.post("/signin", data={"token": api.tokens[role]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    value: str | None = api.client.cookies.get(SESSION_COOKIE)
    assert value
    return value


def test_api_json_and_problems_carry_the_headers(api: Api) -> None:
    ok = api.get("/api/runs", role="viewer")
    assert ok.status_code == 200
    assert_secure(ok)
    assert_secure(api.client.get("/api/health"))
    for r, status in (
        (api.client.get("/api/runs"), 401),
        (api.get("/api/tokens", role="viewer"), 403),
        (api.get("/api/nothing-here"), 404),
        (api.get("/api/runs", params={"limit": "x"}), 422),
        (api.client.post("/api/runs/1/cancel", headers={"Authorization": "Bearer psk_x"}), 401),
    ):
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert_secure(r)


def test_unexpected_errors_carry_the_headers(api: Api) -> None:
    async def boom() -> None:
        raise RuntimeError("kaput")

    api.app.add_api_route("/api/boom", boom)
    with TestClient(api.app, raise_server_exceptions=False) as client:
        r = client.get("/api/boom")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "kaput" not in r.text
    assert_secure(r)


def test_console_pages_static_files_and_404s_carry_the_headers(api: Api) -> None:
    signin = api.client.get("/signin")
    assert signin.status_code == 200
    assert_secure(signin)
    redirect = api.client.get("/runs", follow_redirects=False)
    assert redirect.status_code == 303
    assert_secure(redirect)
    sign_in(api)
    page = api.client.get("/runs")
    assert page.status_code == 200
    assert_secure(page)
    missing = api.client.get("/jobs/none-such")
    assert missing.status_code == 404
    assert_secure(missing)
    unrouted = api.client.get("/no/such/page")
    assert unrouted.status_code == 404
    assert_secure(unrouted)
    for asset in ("/static/app.js", "/static/app.css"):
        r = api.client.get(asset)
        assert r.status_code == 200
        assert_secure(r, cache="no-cache")
    assert_secure(api.client.get("/static/none.js"), cache="no-cache")


def test_console_pages_have_no_inline_script_or_style(api: Api) -> None:
    sign_in(api, "admin")
    for path in ("/signin", "/runs", "/tasks", "/jobs", "/platforms", "/tasks/new"):
        html = api.client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path  # no onclick= and friends
        assert not re.search(r"\sstyle=", html), path


# -- /docs and /openapi.json ------------------------------------------------------------------


def test_docs_and_schema_need_what_the_api_needs(api: Api) -> None:
    anonymous = api.client.get("/docs", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/signin?next=%2Fdocs"
    assert_secure(anonymous)
    bad = api.client.get("/docs", headers={"Authorization": "Bearer psk_nope"})
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith(PROBLEM)
    schema = api.client.get("/openapi.json")
    assert schema.status_code == 401
    assert schema.headers["content-type"].startswith(PROBLEM)
    assert_secure(schema)

    assert api.client.get("/docs/openapi-3.0.json").status_code == 401
    docs_schema = api.get("/docs/openapi-3.0.json", role="viewer")
    assert docs_schema.status_code == 200
    assert docs_schema.json()["openapi"] == "3.0.3"
    assert_secure(docs_schema)

    viewer_schema = api.get("/openapi.json", role="viewer")
    assert viewer_schema.status_code == 200
    assert "/api/runs" in viewer_schema.json()["paths"]
    assert_secure(viewer_schema)
    viewer_docs = api.get("/docs", role="viewer")
    assert viewer_docs.status_code == 200
    assert_secure(viewer_docs)
    assert 'content=""' in viewer_docs.text  # no session, so no CSRF token to hand out


def test_docs_page_loads_only_our_own_files(api: Api) -> None:
    session_id = sign_in(api)
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    html = docs.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(s.startswith("/docs/assets/") for s in sources), sources
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # nothing inline
    assert "cdn" not in html.lower()
    # Try-it-out with the session cookie needs the CSRF token: the page carries it.
    assert f'<meta name="csrf-token" content="{csrf.csrf_token(session_id)}">' in html
    assert api.client.get("/openapi.json").status_code == 200  # the session reads it too
    for src in sources:
        # Public files of a package: they carry no user data, so no sign-in is needed.
        api.client.cookies.clear()
        r = api.client.get(src)
        assert r.status_code == 200, src
        assert_secure(r, cache="no-cache")
    bundle = api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert len(bundle.content) > 100_000


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/index.html",  # the package's page has an inline script
        "/docs/assets/swagger-initializer.js",  # the package's, pointing at petstore
        "/docs/assets/swagger-ui.js.map",
        "/docs/assets/..%2F..%2F__init__.py",
        "/redoc",
        "/docs/oauth2-redirect",
    ],
)
def test_only_the_listed_docs_files_are_served(api: Api, path: str) -> None:
    r = api.get(path, role="viewer")
    assert r.status_code == 404, path
    assert_secure(r, cache="no-cache" if path.startswith("/docs/assets/") else "no-store")
