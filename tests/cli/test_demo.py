"""`polysync demo`, the embedded default, as the README's first command runs it."""

from __future__ import annotations

import socket

from tests.cli.conftest import Cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_demo_shows_success_failure_and_cancel_and_is_rerunnable(cli: Cli) -> None:
    port = str(_free_port())
    first = cli("demo", "--port", port, timeout=120)
    assert first.code == 0, first.stderr
    out = first.stdout
    assert "Hello, Polysync!" in out  # the task's stdout, printed by the demo
    assert "FailureExitCode" in out
    assert "demo: failing on purpose with exit code 3" in out  # stderr tail of the failure
    assert "ended Succeeded, Failed, Cancelled" in out
    assert "portal.azure.com/#resource/subscriptions/" in out

    again = cli("demo", "--port", port, timeout=120)
    assert again.code == 0, again.stderr
    assert "Updated job demo-template" in again.stdout
    runs = cli("run", "list", "--no-refresh", "-o", "json").json()
    assert [r["state"] for r in runs] == ["Cancelled", "Failed", "Succeeded"] * 2
