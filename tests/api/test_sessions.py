"""Console sessions and CSRF over HTTP, in-process (TestClient) on a real SQLite store.

A fake clock drives expiry: ``[server] session_lifetime = "2h"`` and
``session_idle_timeout = "30m"`` come from a real config.toml.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from polysync.api import csrf, tokens
from polysync.api.app import create_app
from polysync.api.sessions import SESSION_COOKIE, session_digest
from polysync.config import load_settings
from polysync.store.sql import SqlStore

PROBLEM = "application/problem+json"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Server:
    app: FastAPI
    client: TestClient
    clock: FakeClock
    tokens: dict[str, str]

    @property
    def store(self) -> SqlStore:
        store: SqlStore = self.app.state.services.store
        return store

    def sign_in(self, role: str = "admin") -> str:
        """POST /signin like the form; returns the session id the cookie now holds."""
        r = self.client.post(
            "/signin", data={"token": self.tokens[role], "next": "/runs"}, follow_redirects=False
        )
        assert r.status_code == 303, r.text
        session_id: str | None = self.client.cookies.get(SESSION_COOKIE)
        assert session_id
        return session_id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[server]\nsession_lifetime = "2h"\nsession_idle_timeout = "30m"\n'
    )
    settings = load_settings({"home": home}, environ={})
    clock = FakeClock()
    app = create_app(settings, start_worker=False, clock=clock)
    made = {r.value: tokens.create_token(app.state.services, r.value, r)[1] for r in tokens.Role}
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        yield Server(app, client, clock, made)


def problem(r: httpx.Response, status: int, phrase: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert phrase in body["detail"], body["detail"]
    return body


# -- what is stored, what the cookie holds -------------------------------------------------


def test_sign_in_stores_only_a_hash_of_a_random_session_id(server: Server) -> None:
    first = server.sign_in("operator")
    server.client.cookies.clear()
    second = server.sign_in("operator")
    assert first != second
    assert len(first) == 43  # 256 random bits, URL-safe base64
    assert server.tokens["operator"] not in (first, second)
    session = server.store.find_console_session(session_digest(second))
    assert session is not None
    assert (session.token.name, session.token.role) == ("operator", "operator")
    assert session.created_at == server.clock.now
    assert session.expires_at == server.clock.now + timedelta(hours=2)
    # Nothing in the table holds the id itself.
    with server.store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM console_sessions").all()
    assert len(rows) == 2
    assert not any(first in str(row) or second in str(row) for row in rows)


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_a_session_has_exactly_its_tokens_role(server: Server, role: str) -> None:
    session_id = server.sign_in(role)
    assert server.client.get("/api/me").json() == {"name": role, "role": role}
    headers = {csrf.HEADER: csrf.csrf_token(session_id)}
    # An operator's write (body-less run of a task that does not exist: 404 past the role
    # check) and an admin's (list tokens).
    run = server.client.post("/api/tasks/nope/runs", headers=headers)
    listed = server.client.get("/api/tokens")
    if role == "viewer":
        problem(run, 403, "has role viewer; this request needs operator")
    else:
        problem(run, 404, "nope")
    if role == "admin":
        assert listed.status_code == 200
    else:
        problem(listed, 403, f"has role {role}; this request needs admin")
    page = server.client.get("/platforms")
    assert page.status_code == 200
    assert ("Add a platform" in page.text) is (role == "admin")


# -- expiry with a fake clock ---------------------------------------------------------------


def test_idle_timeout_ends_a_session(server: Server) -> None:
    session_id = server.sign_in()
    server.clock.advance(minutes=29)
    assert server.client.get("/api/me").status_code == 200  # used: the idle clock restarts
    server.clock.advance(minutes=29)
    assert server.client.get("/runs", follow_redirects=False).status_code == 200
    server.clock.advance(minutes=31)
    problem(server.client.get("/api/me"), 401, "your console session has ended")
    page = server.client.get("/runs", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/signin?next=")
    # The row is gone: the same cookie never comes back to life.
    assert server.store.find_console_session(session_digest(session_id)) is None


def test_absolute_lifetime_ends_a_busy_session(server: Server) -> None:
    server.sign_in()
    for _ in range(7):  # used every 17 minutes: never idle, 1h59m in all
        server.clock.advance(minutes=17)
        assert server.client.get("/api/me").status_code == 200
    server.clock.advance(minutes=1)  # 2h after sign-in
    problem(server.client.get("/api/me"), 401, "your console session has ended")


def test_a_config_change_shortens_sessions_already_open(tmp_path: Path) -> None:
    """The absolute end is also checked against the policy of the running server."""
    from polysync.api.sessions import SessionPolicy, Sessions

    home = tmp_path / "home"
    settings = load_settings({"home": home}, environ={})
    app = create_app(settings, start_worker=False)
    try:
        svc = app.state.services
        token, _ = tokens.create_token(svc, "t", tokens.Role.VIEWER)
        clock = FakeClock()
        long = Sessions(svc.store, SessionPolicy(lifetime_s=86_400, idle_timeout_s=86_400), clock)
        session_id, _ = long.start(token)
        short = Sessions(svc.store, SessionPolicy(lifetime_s=3600, idle_timeout_s=86_400), clock)
        clock.advance(minutes=59)
        assert short.lookup(session_id) is not None
        clock.advance(minutes=2)
        assert short.lookup(session_id) is None
    finally:
        app.state.services.close()


# -- sign-out and revocation ---------------------------------------------------------------


def test_sign_out_ends_the_session_on_the_server(server: Server) -> None:
    session_id = server.sign_in()
    token = csrf.csrf_token(session_id)
    out = server.client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/signin"
    assert f"{SESSION_COOKIE}=" in out.headers["set-cookie"]
    # Replay the old cookie, as a copy of it would be.
    server.client.cookies.set(SESSION_COOKIE, session_id)
    problem(server.client.get("/api/me"), 401, "your console session has ended")
    page = server.client.get("/jobs", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2Fjobs"


def test_revoking_the_token_ends_its_sessions(server: Server) -> None:
    session_id = server.sign_in("operator")
    assert server.client.get("/api/me").status_code == 200
    revoke = server.client.delete(
        "/api/tokens/operator", headers={"Authorization": f"Bearer {server.tokens['admin']}"}
    )
    assert revoke.status_code == 204, revoke.text
    problem(server.client.get("/api/me"), 401, "your console session has ended")
    assert server.client.get("/runs", follow_redirects=False).status_code == 303
    assert server.store.find_console_session(session_digest(session_id)) is None


def test_sign_in_again_replaces_the_previous_session(server: Server) -> None:
    first = server.sign_in("viewer")
    second = server.sign_in("admin")  # the browser still sends the first cookie
    assert server.store.find_console_session(session_digest(first)) is None
    assert server.client.get("/api/me").json()["role"] == "admin"
    assert second != first


def test_malformed_session_cookies_are_just_signed_out(server: Server) -> None:
    for value in ("", "x", "a" * 5000, "a" * 42 + "!", server.tokens["admin"]):
        server.client.cookies.set(SESSION_COOKIE, value)
        r = server.client.get("/api/me")
        assert r.status_code == 401, value
        server.client.cookies.clear()


# -- CSRF on the API with the cookie --------------------------------------------------------

NEW_TOKEN = {"name": "made-by-csrf", "role": "admin"}


def _tokens(server: Server) -> set[str]:
    return {t.name for t in server.store.list_api_tokens()}


@pytest.mark.parametrize(
    ("headers", "phrase"),
    [
        ({}, "without a valid X-CSRF-Token header"),
        ({csrf.HEADER: "wrong"}, "without a valid X-CSRF-Token header"),
        ({"Origin": "http://127.0.0.1:9999"}, "sent by a page of http://127.0.0.1:9999"),
        ({"Origin": "null"}, "sent by a page of null"),
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
    ],
)
def test_cookie_writes_without_the_csrf_token_or_from_elsewhere_are_refused(
    server: Server, headers: dict[str, str], phrase: str
) -> None:
    session_id = server.sign_in()
    sent = dict(headers)
    if "Origin" in sent or "Sec-Fetch-Site" in sent:
        sent[csrf.HEADER] = csrf.csrf_token(session_id)  # even with the right token
    before = _tokens(server)
    r = server.client.post("/api/tokens", json=NEW_TOKEN, headers=sent)
    body = problem(r, 403, phrase)
    assert body["code"] == "Forbidden"
    assert _tokens(server) == before  # nothing was created
    for url in ("/api/tasks/x/runs", "/api/runs/1/cancel", "/api/platforms/p/test"):
        problem(server.client.post(url, headers=sent), 403, phrase)
    problem(server.client.delete("/api/tokens/viewer", headers=sent), 403, phrase)
    assert "viewer" in _tokens(server)


def test_cookie_writes_from_our_own_pages_work(server: Server) -> None:
    session_id = server.sign_in()
    r = server.client.post(
        "/api/tokens",
        json=NEW_TOKEN,
        headers={
            csrf.HEADER: csrf.csrf_token(session_id),
            "Origin": "http://127.0.0.1:8080",
            "Sec-Fetch-Site": "same-origin",
        },
    )
    assert r.status_code == 201, r.text
    assert "made-by-csrf" in _tokens(server)


def test_reads_with_the_cookie_need_no_csrf_token(server: Server) -> None:
    server.sign_in("viewer")
    r = server.client.get("/api/runs", headers={"Sec-Fetch-Site": "same-site"})
    assert r.status_code == 200


def test_bearer_requests_are_not_ambient_and_need_no_csrf_token(server: Server) -> None:
    server.sign_in("viewer")  # a cookie is there too: the bearer token wins
    r = server.client.post(
        "/api/tokens",
        json=NEW_TOKEN,
        headers={
            "Authorization": f"Bearer {server.tokens['admin']}",
            "Origin": "http://elsewhere.example",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert r.status_code == 201, r.text


def test_an_old_sessions_csrf_token_is_refused(server: Server) -> None:
    old = server.sign_in()
    server.sign_in()
    r = server.client.post(
        "/api/tokens", json=NEW_TOKEN, headers={csrf.HEADER: csrf.csrf_token(old)}
    )
    problem(r, 403, "X-CSRF-Token")


# -- CSRF on the console's forms ------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "headers", "phrase"),
    [
        ({}, {}, "did not carry the console's security token"),
        ({"csrf_token": "forged"}, {}, "did not carry the console's security token"),
        ({"csrf_token": "OK"}, {"Origin": "http://127.0.0.1:9"}, "page of http://127.0.0.1:9"),
        ({"csrf_token": "OK"}, {"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site: same-site"),
    ],
)
def test_forged_console_forms_get_a_403_page_and_change_nothing(
    server: Server, form: dict[str, str], headers: dict[str, str], phrase: str
) -> None:
    session_id = server.sign_in()
    data = {k: (csrf.csrf_token(session_id) if v == "OK" else v) for k, v in form.items()}
    before = server.store.list_platforms()
    r = server.client.post(
        "/platforms",
        data={**data, "name": "forged", "account_url": "http://x"},
        headers=headers,
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert phrase in r.text.replace("&#39;", "'")
    assert server.store.list_platforms() == before
    # Sign-out is a form too: a forged one leaves the session alive.
    out = server.client.post("/signout", data=data, headers=headers, follow_redirects=False)
    assert out.status_code == 403
    assert server.client.get("/api/me").status_code == 200


def test_sign_in_from_another_site_is_refused(server: Server) -> None:
    """Login CSRF: another page must not sign this browser in as someone else."""
    r = server.client.post(
        "/signin",
        data={"token": server.tokens["viewer"], "next": "/runs"},
        headers={"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "sent by a page of another site" in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert server.client.get("/api/me").status_code == 401
