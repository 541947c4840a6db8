"""No secret reaches any output or the database (issue 10, acceptance 4).

The whole product, as processes: the CLI in subprocesses and `polysync server` (API,
console and worker) in a subprocess with DEBUG logging, against the Batch emulator and
the local Key Vault. The platform's account key and a Secret parameter live in the vault;
the vault's own bearer token is in a 0600 file. One task proves it received its secret
(a hash); another echoes it to stdout and stderr and fails. Then every CLI output, API
response, event-stream line, console page (viewer and admin), the server's log, the
database files (SQLite file, WAL and shm) and an SQL dump are scanned for every secret
value and bearer token, in the spellings a leak would take — on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from azure.batch import BatchClient

from batch_emulator.keys import generate_key
from batch_emulator.server import EmulatorServer, PoolSeed
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.cli.conftest import Cli
from tests.store.conftest import BACKENDS, PG_URL, reset_postgres
from tests.support import SUBSCRIPTION, create_template, emulator_config, sdk_client

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ECHO = (
    '/bin/sh -c \'echo "out: $TOKEN"; echo "err: $TOKEN" >&2; '
    'printf "{\\"t\\": \\"%s\\"}\\n" "$TOKEN" >&2; exit 3\''
)
HASH = "/bin/sh -c 'printf %s \"$TOKEN\" | sha256sum'"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    # A key of its own (not the published one): it is one of the secrets scanned for.
    config = replace(
        emulator_config(tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 1, 4)),
        key=generate_key(),
    )
    with EmulatorServer(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def kv() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spellings(secret: str) -> set[str]:
    """How a secret would show if it leaked: as is, JSON- or URL-escaped, base64."""
    import base64

    return {
        secret,
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
    }


class Server:
    """`python -m polysync server` in a subprocess, its stderr (the log) in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "polysync", "server", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class EventTap(threading.Thread):
    """Reads the server's event stream (SSE) into ``lines`` until stopped."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.lines: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=httpx.Timeout(5, read=2)) as client:
            while not self.stopped.is_set():
                try:
                    with client.stream("GET", f"{self.url}/api/events", headers=headers) as r:
                        for line in r.iter_lines():
                            self.lines.append(line)
                            if self.stopped.is_set():
                                return
                except httpx.HTTPError:
                    continue  # a read timeout between events: listen again


def _database_dump(url: str, home: Path) -> bytes:
    if url.startswith("postgresql"):
        pg_dump = shutil.which("pg_dump") or next(
            iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None
        )
        assert pg_dump is not None, "pg_dump is needed for the PostgreSQL dump"
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        return subprocess.run(
            [str(pg_dump), "--data-only", plain], capture_output=True, check=True, timeout=60
        ).stdout
    db = home / "polysync.db"
    raw = b"".join(p.read_bytes() for p in sorted(db.parent.glob("polysync.db*")))
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump()).encode()
    return raw + dump


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_secret_reaches_any_output_or_the_database(
    backend: str, tmp_path: Path, emulator: EmulatorServer, kv: KeyVaultServer
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSYNC_")}
    env.update(POLYSYNC_HOME=str(home), POLYSYNC_LOG_LEVEL="DEBUG", COLUMNS="200", NO_COLOR="1")
    db_url = f"sqlite:///{home / 'polysync.db'}"
    if backend == "postgres":
        reset_postgres(PG_URL)
        db_url = PG_URL
        env["POLYSYNC_DATABASE_URL"] = PG_URL
    cli = Cli(env)
    etl = "etl-" + uuid.uuid4().hex
    kv.set_secret("batch-key", emulator.key)
    kv.set_secret("etl-token", etl)
    secrets = {
        "the account key": emulator.key,
        "the Secret parameter": etl,
        "the vault's bearer token": kv.tokens["secrets-user"],
        "the vault's officer token": kv.tokens["secrets-officer"],
    }
    token_file = tmp_path / "kv.token"
    token_file.write_text(kv.tokens["secrets-user"])
    token_file.chmod(0o600)
    with sdk_client(emulator) as batch_client:
        batch: BatchClient = batch_client
        echo_tpl = create_template(batch, ECHO, prefix="echo", env={"TOKEN": "x"})
        hash_tpl = create_template(batch, HASH, prefix="hash", env={"TOKEN": "x"})

        # The host declares the vault and a platform whose key lives in it.
        ok = [
            cli("vault", "add", "kv", "--url", kv.url, "--auth", "bearer-token",
                "--token-file", str(token_file), "--ca-bundle", str(kv.cert_path)),
            cli("vault", "test", "kv"),
            cli("vault", "show", "kv", "-o", "json"),
            cli("platform", "add", "local", "--account-url", emulator.endpoint,
                "--account-name", emulator.account, "--subscription-id", SUBSCRIPTION,
                "--resource-group", "rg", "--key", "vault://kv/batch-key"),
            cli("platform", "test", "local"),
            cli("platform", "show", "local", "-o", "json"),
            cli("job", "import", "-p", "local", echo_tpl, hash_tpl),
            cli("job", "param", "set", echo_tpl, "TOKEN", "--type", "Secret"),
            cli("job", "param", "set", hash_tpl, "TOKEN", "--type", "Secret"),
            cli("task", "create", "echo", "--job", echo_tpl, "--param", "TOKEN=vault://kv/etl-token"),
            cli("task", "create", "hash", "--job", hash_tpl, "--param", "TOKEN=vault://kv/etl-token"),
        ]  # fmt: skip
        for result in ok:
            assert result.code == 0, result.stderr
        hashed = cli("task", "run", "hash", "-o", "json")
        assert hashed.code == 0, hashed.stderr
        hash_run = hashed.json()["id"]
        logs = cli("run", "logs", str(hash_run))
        # Positive control: the secret did reach the task.
        assert hashlib.sha256(etl.encode()).hexdigest() in logs.stdout
        admin = cli("token", "create", "--name", "admin", "--role", "admin", "-o", "json").json()
        viewer = cli("token", "create", "--name", "viewer", "--role", "viewer", "-o", "json")

        server = Server(env, tmp_path / "server.log")
        tap = EventTap(server.url, admin["token"])
        tap.start()
        seen: list[str] = []
        try:
            auth = {"Authorization": f"Bearer {admin['token']}"}
            with httpx.Client(base_url=server.url, headers=auth, timeout=30) as api:
                run = api.post("/api/tasks/echo/runs").json()
                deadline = time.monotonic() + 60
                while True:
                    got = api.get(f"/api/runs/{run['id']}")
                    seen.append(got.text)
                    if got.json()["state"] in ("Succeeded", "Failed", "Cancelled"):
                        break
                    assert time.monotonic() < deadline, got.text
                    time.sleep(0.2)
                failed = got.json()
                assert failed["state"] == "Failed", failed
                # Positive control: the task did print it, and Polysync masked it.
                assert "err: ***" in failed["failure"]["stderr_tail"]
                for path in (
                    f"/api/runs/{run['id']}/logs?file=stdout.txt",
                    f"/api/runs/{run['id']}/logs?file=stderr.txt",
                    f"/api/runs/{hash_run}",
                    "/api/runs",
                    "/api/tasks",
                    "/api/tasks/echo",
                    f"/api/jobs/{echo_tpl}",
                    "/api/platforms",
                    "/api/vaults",
                    "/api/vaults/kv",
                ):
                    response = api.get(path)
                    assert response.status_code == 200, (path, response.text)
                    seen.append(response.text)
                assert "out: ***" in api.get(f"/api/runs/{run['id']}/logs").json()["data"]
                seen.append(api.post("/api/vaults/kv/test").text)
                seen.append(api.post("/api/platforms/local/test").text)
            for role_token in (admin["token"], viewer.json()["token"]):
                with httpx.Client(base_url=server.url, timeout=30) as browser:
                    signed = browser.post("/signin", data={"token": role_token, "next": "/runs"})
                    assert signed.status_code == 303, signed.text
                    for page in (
                        "/runs",
                        f"/runs/{run['id']}",
                        "/tasks",
                        "/tasks/echo",
                        f"/jobs/{echo_tpl}",
                        "/platforms",
                        "/vaults",
                    ):
                        response = browser.get(page)
                        assert response.status_code in (200, 403, 404), (page, response.text)
                        seen.append(response.text)
            # The event stream saw the failure too (its stderr tail is scanned below).
            deadline = time.monotonic() + 15
            while not any('"Failed"' in line for line in tap.lines):
                assert time.monotonic() < deadline, tap.lines[-5:]
                time.sleep(0.1)
        finally:
            tap.stopped.set()
            server.stop()
            tap.join(timeout=10)

        for args in (
            ("run", "show", str(run["id"])),
            ("run", "show", str(run["id"]), "-o", "json"),
            ("run", "logs", str(run["id"])),
            ("run", "logs", str(run["id"]), "--stderr"),
            ("run", "list", "-o", "json"),
            ("task", "show", "echo", "-o", "json"),
            ("task", "run", "echo"),
        ):
            cli(*args)
        # The scan can see a leak: the raw task output on Batch does hold the secret.
        raw = batch.download_task_file(
            failed["batch_job_id"], failed["batch_task_id"], "stdout.txt"
        )
        assert etl in b"".join(raw).decode()

    outputs = {
        "CLI output": "\n".join(r.stdout + r.stderr for r in cli.transcript),
        "API responses and console pages": "\n".join(seen),
        "the event stream": "\n".join(tap.lines),
        "the server's DEBUG log": server.log.read_text(errors="replace"),
    }
    stored = _database_dump(db_url, home)
    found: list[str] = []
    for what, secret in secrets.items():
        for spelling in spellings(secret):
            found += [f"{what} in {where}" for where, text in outputs.items() if spelling in text]
            if spelling.encode() in stored:
                found.append(f"{what} in the database ({backend})")
    assert not found, found
    # And the bearer tokens the API handed out never came back in a log line or a page.
    assert not re.search(re.escape(admin["token"]), outputs["the server's DEBUG log"])
