"""An open GET /api/events stream ends soon after its caller loses access: its token is
revoked (bearer and cookie streams), its console session is signed out or expires.

A real uvicorn server on 127.0.0.1 (TestClient buffers whole responses); expiry is driven
by a fake clock, the rest by the API itself. Each stream must end within BOUND_S of the
change; a stream that does not end would wait for its 15 s keep-alive and fail the read
timeout instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from polysync.api import csrf, tokens
from polysync.api.app import create_app
from polysync.api.sessions import SESSION_COOKIE
from polysync.config import load_settings

BOUND_S = 3.0  # the re-check runs every second; allow for a loaded CI box


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Live:
    url: str
    app: FastAPI
    clock: FakeClock
    tokens: dict[str, str]

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=httpx.Timeout(10, read=6))

    def sign_in(self, client: httpx.Client, role: str) -> str:
        r = client.post("/signin", data={"token": self.tokens[role]}, follow_redirects=False)
        assert r.status_code == 303, r.text
        value = client.cookies.get(SESSION_COOKIE)
        assert value
        return value


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    clock = FakeClock()
    settings = load_settings({"home": tmp_path / "home"}, environ={})
    app = create_app(settings, start_worker=False, clock=clock)
    made = {r.value: tokens.create_token(app.state.services, r.value, r)[1] for r in tokens.Role}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(f"http://127.0.0.1:{port}", app, clock, made)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _open(stream: httpx.Response) -> Iterator[str]:
    assert stream.status_code == 200, stream.read()
    lines = stream.iter_lines()
    assert next(lines) == "retry: 2000"  # the stream is open (and watched) from here
    return lines


def _ends_after(lines: Iterator[str], change: Callable[[], None]) -> float:
    """Make the change, then read the stream to its end; seconds it took to end."""
    change()
    started = time.monotonic()
    for line in lines:
        assert not line.startswith("event: "), line  # nothing happens meanwhile
    return time.monotonic() - started


def test_revoking_a_token_ends_its_bearer_stream_only(live: Live) -> None:
    with (
        live.client() as client,
        client.stream("GET", "/api/events", headers=live.bearer("admin")) as kept,
        client.stream("GET", "/api/events", headers=live.bearer("viewer")) as revoked,
    ):
        # Keep the iterator: a dropped one closes its stream when garbage-collected.
        kept_lines = _open(kept)
        lines = _open(revoked)
        access = live.app.state.stream_access
        assert access.watched == 2

        def revoke() -> None:
            r = client.delete("/api/tokens/viewer", headers=live.bearer("admin"))
            assert r.status_code == 204, r.text

        assert _ends_after(lines, revoke) < BOUND_S
        assert access.watched == 1  # the admin's stream flows on
        assert kept_lines is not None
        again = client.get("/api/events", headers=live.bearer("viewer"))
        assert again.status_code == 401


def test_revoking_a_token_ends_its_cookie_stream(live: Live) -> None:
    with live.client() as browser, live.client() as admin:
        live.sign_in(browser, "operator")
        with browser.stream("GET", "/api/events") as stream:
            lines = _open(stream)

            def revoke() -> None:
                r = admin.delete("/api/tokens/operator", headers=live.bearer("admin"))
                assert r.status_code == 204, r.text

            assert _ends_after(lines, revoke) < BOUND_S
        assert browser.get("/api/events").status_code == 401


def test_signing_out_ends_the_sessions_stream(live: Live) -> None:
    with live.client() as browser, live.client() as other_tab:
        session_id = live.sign_in(browser, "viewer")
        other_tab.cookies.set(SESSION_COOKIE, session_id)
        with browser.stream("GET", "/api/events") as stream:
            lines = _open(stream)

            def sign_out() -> None:
                r = other_tab.post(
                    "/signout",
                    data={"csrf_token": csrf.csrf_token(session_id)},
                    follow_redirects=False,
                )
                assert r.status_code == 303, r.text

            assert _ends_after(lines, sign_out) < BOUND_S


def test_an_expiring_session_ends_its_stream(live: Live) -> None:
    with live.client() as browser:
        live.sign_in(browser, "viewer")
        with browser.stream("GET", "/api/events") as stream:
            lines = _open(stream)

            def time_passes() -> None:
                # A stream is not activity: an idle tab's session still times out.
                live.clock.now += timedelta(hours=1, seconds=1)

            assert _ends_after(lines, time_passes) < BOUND_S
        assert browser.get("/api/events").status_code == 401
