"""``keyvault-emulator serve`` as a real process."""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

import keyvault_emulator
from keyvault_emulator.cli import build_parser, main
from keyvault_emulator.credential import StaticTokenCredential

SRC = str(Path(keyvault_emulator.__file__).resolve().parents[1])


def _lines(proc: subprocess.Popen[str], count: int, timeout: float = 30.0) -> list[str]:
    """The first ``count`` stdout lines, or fail once ``timeout`` has passed."""
    found: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            found.put(line.rstrip("\n"))
        found.put(None)

    threading.Thread(target=pump, daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        try:
            line = found.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"the emulator printed only {lines} within {timeout}s")
        if line is None:
            pytest.fail(
                f"the emulator exited early after {lines}: {proc.stderr and proc.stderr.read()}"
            )
        lines.append(line)
    return lines


def test_serve_prints_where_to_connect_serves_and_stops_cleanly(tmp_path: Path) -> None:
    user_token_file = tmp_path / "user.token"
    user_token_file.write_text("token-from-a-file\n")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keyvault_emulator",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data),
            "--token-file",
            str(user_token_file),
            "secrets-user",
            "--log-level",
            "debug",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = _lines(proc, 4)
        url = lines[0].rsplit(" ", 1)[1]
        cert = lines[1].removeprefix("Certificate: ")
        tokens_path = Path(lines[2].rsplit(": ", 1)[1])
        assert url.startswith("https://127.0.0.1:")
        assert url.endswith("/")
        assert Path(cert) == data / "tls" / "emulator-cert.pem"
        assert "verify_challenge_resource=False" in lines[3]
        assert cert in lines[3]
        assert tokens_path == data / "tokens.json"
        assert stat.S_IMODE(tokens_path.stat().st_mode) == 0o600
        info = json.loads(tokens_path.read_text())
        assert info["tokens"]["secrets-user"] == "token-from-a-file"
        officer_token = info["tokens"]["secrets-officer"]
        options: dict[str, Any] = {"verify_challenge_resource": False, "connection_verify": cert}
        with SecretClient(url, StaticTokenCredential(officer_token), **options) as officer:
            officer.set_secret("from-cli", "cli-secret-value-42")
        with SecretClient(url, StaticTokenCredential("token-from-a-file"), **options) as user:
            assert user.get_secret("from-cli").value == "cli-secret-value-42"
        assert all("token-from-a-file" not in line and officer_token not in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "GetSecret GET /secrets/from-cli/ -> 200 (role secrets-user)" in err
    assert "token-from-a-file" not in err
    assert officer_token not in err
    assert "cli-secret-value-42" not in err
    assert not tokens_path.exists()  # its tokens died with the process
    assert "from-cli" in (data / "vault.json").read_text()


def test_no_flag_takes_a_token_as_its_value() -> None:
    parser: Any = build_parser()
    # argparse keeps sub-parsers in a private action; reach "serve" for its options.
    serve = parser._subparsers._group_actions[0].choices["serve"]
    token_flags = [a for a in serve._actions if any("token" in o for o in a.option_strings)]
    assert {o for a in token_flags for o in a.option_strings} == {
        "--token-file",
        "--admin-token-file",
        "--tokens-out",
    }
    assert all(a.metavar in (("PATH", "ROLE"), None) for a in token_flags)
    text = serve.format_help()
    for flag in ("--host", "--port", "--data-dir", "--token-file", "--extra-host"):
        assert flag in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token-file", "{file}", "owner"], "is not one of"),
        (["--token-file", "{missing}", "reader"], "cannot read"),
        (["--token-file", "{file}", "reader", "--token-file", "{file}", "reader"], "twice"),
        (["--token-file", "{empty}", "reader"], "empty"),
    ],
)
def test_bad_token_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "t").write_text("tok")
    (tmp_path / "e").write_text("\n")
    paths = {"file": tmp_path / "t", "missing": tmp_path / "m", "empty": tmp_path / "e"}
    with pytest.raises(SystemExit) as exc:
        main(["serve", *(a.format(**paths) for a in args)])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
