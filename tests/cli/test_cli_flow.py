"""`polysync` as a user runs it: a subprocess against a real emulator server."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from tests.cli.conftest import SUBSCRIPTION, Cli, make_template

ECHO = '/bin/sh -c \'echo "$GREETING, $NAME"; echo "count=$COUNT"\''
FAIL = '/bin/sh -c \'echo "about to fail"; echo "boom: bad input $NAME" >&2; exit 3\''
SLEEP = "/bin/sh -c 'echo started; sleep 60'"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_discover_import_create_run_success(
    cli: Cli, local_platform: str, batch: BatchClient, emulator: EmulatorServer
) -> None:
    prefix = unique("tpl")
    for i in range(7):
        make_template(batch, f"{prefix}-{i}", ECHO, env={"GREETING": "Hello", "NAME": "x"})
    emulator.control.clear_requests()

    found = cli(
        "platform", "discover", local_platform, "--filter", prefix, "--page-size", "3",
        "-o", "json",
    )  # fmt: skip
    assert found.code == 0, found.stderr
    ids = [d["id"] for d in found.json()]
    assert ids == [f"{prefix}-{i}" for i in range(7)]
    pages = [
        r for r in emulator.control.requests() if r["method"] == "GET" and r["path"] == "/jobs"
    ]
    assert len(pages) >= 3, pages
    assert all("$select=id,displayName,state" in r["query"].replace("%2C", ",") for r in pages)

    template = f"{prefix}-0"
    imported = cli("job", "import", "--platform", local_platform, template, "-o", "json")
    assert imported.code == 0, imported.stderr
    job = imported.json()[0]
    assert job["job_type"] == "Batch Job"
    assert job["external_id"] == template
    params = {p["name"]: p for p in job["parameters"]}
    assert params["GREETING"]["default"] == "Hello"
    assert params["GREETING"]["direction"] == "Input"
    sources = {c["field"]: c["source"] for c in job["cloned_defaults"]}
    assert "commandLine" in sources

    created = cli("task", "create", "greet", "--job", template, "--param", "NAME=Polysync")
    assert created.code == 0, created.stderr
    assert (
        cli("job", "param", "set", template, "COUNT", "--type", "Int", "--default", "2").code == 0
    )

    ran = cli("task", "run", "greet", "--param", "COUNT=5", "-o", "json")
    assert ran.code == 0, ran.stderr
    run = ran.json()
    assert run["state"] == "Succeeded"
    assert run["exit_code"] == 0
    assert run["run_id"] == f"{run['batch_job_id']}/{run['batch_task_id']}"
    assert run["monitor_url"] == (
        f"https://portal.azure.com/#resource/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-test"
        f"/providers/Microsoft.Batch/batchAccounts/{emulator.account}/jobs/{run['batch_job_id']}"
    )
    transitions = [(h["from"], h["to"]) for h in run["history"]]
    assert transitions[0] == (None, "Queued")
    assert transitions[-1][1] == "Succeeded"
    assert ("Queued", "Starting") in transitions
    assert run["params_sent"] == {"GREETING": "Hello", "NAME": "Polysync", "COUNT": "5"}

    logs = cli("run", "logs", str(run["id"]))
    assert logs.code == 0, logs.stderr
    assert "Hello, Polysync" in logs.stdout
    assert "count=5" in logs.stdout

    by_run_id = cli("run", "show", run["run_id"], "-o", "json")
    assert by_run_id.json()["id"] == run["id"]

    table = cli("run", "show", str(run["id"]))
    assert "Succeeded" in table.stdout
    assert run["monitor_url"] in table.stdout


def test_failed_run_shows_failure_info_and_stderr(
    cli: Cli, local_platform: str, batch: BatchClient
) -> None:
    template = unique("fail")
    make_template(batch, template, FAIL, env={"NAME": "n1"})
    assert cli("job", "import", "-p", local_platform, template).code == 0
    assert cli("task", "create", "failing", "--job", template).code == 0

    ran = cli("task", "run", "failing", "-o", "json")
    assert ran.code == 1, ran.stderr
    run = ran.json()
    assert run["state"] == "Failed"
    assert run["exit_code"] == 3
    failure = run["failure"]
    assert failure["code"] == "FailureExitCode"
    assert failure["category"] == "usererror"
    assert failure["message"]
    assert "boom: bad input n1" in failure["stderr_tail"]

    shown = cli("run", "show", str(run["id"]))
    assert "FailureExitCode" in shown.stdout
    assert "boom: bad input n1" in shown.stdout
    err = cli("run", "logs", str(run["id"]), "--stderr")
    assert "boom: bad input n1" in err.stdout


def test_cancel_running_run_is_idempotent(
    cli: Cli, local_platform: str, batch: BatchClient, emulator: EmulatorServer
) -> None:
    template = unique("sleep")
    make_template(batch, template, SLEEP)
    assert cli("job", "import", "-p", local_platform, template).code == 0
    assert cli("task", "create", "sleeper", "--job", template).code == 0

    submitted = cli("task", "run", "sleeper", "--no-wait", "-o", "json")
    assert submitted.code == 0, submitted.stderr
    run = submitted.json()
    assert run["state"] == "Starting"
    run_ref = str(run["id"])

    cancelled = cli("run", "cancel", run_ref, "-o", "json")
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["state"] == "Cancelled"
    task = batch.get_task(run["batch_job_id"], run["batch_task_id"])
    assert task.state == "completed"
    job = batch.get_job(run["batch_job_id"])
    assert job.state in ("terminating", "completed")

    again = cli("run", "cancel", run_ref)
    assert again.code == 0
    assert "already cancelled" in again.stdout

    waited = cli("run", "wait", run_ref, "-o", "json")
    assert waited.code == 1
    assert waited.json()["state"] == "Cancelled"


def test_cancel_of_finished_run_is_refused(
    cli: Cli, local_platform: str, batch: BatchClient
) -> None:
    template = unique("done")
    make_template(batch, template, ECHO, env={"GREETING": "hi", "NAME": "x"})
    assert cli("job", "import", "-p", local_platform, template).code == 0
    assert cli("task", "create", "quick", "--job", template).code == 0
    run = cli("task", "run", "quick", "-o", "json").json()
    refused = cli("run", "cancel", str(run["id"]))
    assert refused.code == 2
    assert "already finished Succeeded" in refused.stderr


def test_input_errors_are_one_sentence_and_create_nothing(
    cli: Cli, local_platform: str, batch: BatchClient
) -> None:
    template = unique("typed")
    make_template(batch, template, ECHO, env={"GREETING": "hi", "NAME": "x"})
    assert cli("job", "import", "-p", local_platform, template).code == 0
    assert cli("job", "param", "set", template, "COUNT", "--type", "Int").code == 0

    bad = cli("task", "create", "t1", "--job", template, "--param", "COUNT=many")
    assert bad.code == 2
    assert "COUNT" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert cli("task", "list", "-o", "json").json() == []

    unknown = cli("task", "create", "t1", "--job", template, "--param", "NOPE=1")
    assert unknown.code == 2
    assert "NOPE" in unknown.stderr

    assert cli("task", "create", "t1", "--job", template).code == 0
    bad_run = cli("task", "run", "t1", "--param", "COUNT=1.5")
    assert bad_run.code == 2
    assert cli("run", "list", "-o", "json").json() == []

    missing_run = cli("run", "show", "999")
    assert missing_run.code == 2
    assert "999" in missing_run.stderr

    missing_template = cli("job", "import", "-p", local_platform, "no-such-template")
    assert missing_template.code != 0
    assert "no-such-template" in missing_template.stderr

    out = cli("job", "param", "set", template, "RESULT", "--direction", "Output")
    assert out.code == 0
    assert "Output" in out.stderr
    assert "not" in out.stderr.lower()

    flag_secret = cli(
        "platform", "add", "p2", "--account-url", "http://127.0.0.1:1", "--account-name", "acct",
        "--subscription-id", SUBSCRIPTION, "--resource-group", "rg", "--key-env", "abc+/==",
    )  # fmt: skip
    assert flag_secret.code == 2
    assert "NAME of an environment variable" in flag_secret.stderr


def test_pool_not_found_fails_the_run_before_creating_anything(
    cli: Cli, local_platform: str, batch: BatchClient, emulator: EmulatorServer
) -> None:
    template = unique("nopool")
    make_template(batch, template, ECHO, pool_id="pool-that-was-deleted")
    assert cli("job", "import", "-p", local_platform, template).code == 0
    assert cli("task", "create", "orphan", "--job", template).code == 0
    emulator.control.clear_requests()
    ran = cli("task", "run", "orphan", "-o", "json")
    assert ran.code == 1
    run = ran.json()
    assert run["state"] == "Failed"
    assert run["failure"]["code"] == "PoolNotFound"
    assert "update the template Batch Job's pool" in run["failure"]["message"]
    posts = [r for r in emulator.control.requests() if r["method"] in ("POST", "PATCH")]
    assert posts == []


def test_wrong_key_is_reported_as_a_platform_error(
    cli: Cli, emulator: EmulatorServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "wrong.key"
    key_file.write_text("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=\n")
    added = cli(
        "platform", "add", "bad", "--account-url", emulator.endpoint,
        "--account-name", emulator.account, "--subscription-id", SUBSCRIPTION,
        "--resource-group", "rg", "--key-file", str(key_file),
    )  # fmt: skip
    assert added.code == 0
    tested = cli("platform", "test", "bad")
    assert tested.code == 3
    discovered = cli("platform", "discover", "bad")
    assert discovered.code == 3
    assert "credential" in discovered.stderr.lower() or "key" in discovered.stderr.lower()
    assert "d3Jvbmcta2V5" not in tested.stdout + tested.stderr + discovered.stderr


def test_secrets_never_leak(
    cli: Cli, local_platform: str, batch: BatchClient, cli_env: dict[str, str]
) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    template = unique("secret")
    # The task proves it received the secret without printing it.
    make_template(
        batch,
        template,
        '/bin/sh -c \'test -n "$TOKEN" && printf %s "$TOKEN" | sha256sum\'',
        env={"TOKEN": "placeholder"},
    )
    assert cli("job", "import", "-p", local_platform, template).code == 0
    assert cli("job", "param", "set", template, "TOKEN", "--type", "Secret").code == 0
    env = {"ETL_TOKEN": secret}
    made = cli("task", "create", "secretive", "--job", template, "--param", "TOKEN=env:ETL_TOKEN")
    assert made.code == 0, made.stderr
    ran = cli("task", "run", "secretive", "-o", "json", env=env)
    assert ran.code == 0, ran.stderr
    run = ran.json()
    assert run["params_sent"]["TOKEN"] == "***"
    import hashlib

    logs = cli("run", "logs", str(run["id"]), env=env)
    assert hashlib.sha256(secret.encode()).hexdigest() in logs.stdout
    cli("run", "show", str(run["id"]), env=env)
    cli("platform", "show", local_platform, "-o", "json", env=env)
    missing = cli("task", "run", "secretive", "-o", "json")  # no ETL_TOKEN in env
    assert missing.code == 1
    # The run record (which viewers read) says only that the host reference could not be
    # read; the host user running the CLI is told why in this process's own log.
    assert "ETL_TOKEN" not in missing.stdout
    assert "host reference could not be read" in missing.stdout
    assert "ETL_TOKEN is not set" in missing.stderr

    key = cli_env["POLYSYNC_TEST_BATCH_KEY"]
    everything = "".join(r.stdout + r.stderr for r in cli.transcript)
    assert secret not in everything
    assert key not in everything
    db = Path(cli_env["POLYSYNC_HOME"]) / "polysync.db"
    raw = b"".join(p.read_bytes() for p in db.parent.glob("polysync.db*"))
    assert secret.encode() not in raw
    assert key.encode() not in raw
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump
    assert key not in dump


@pytest.mark.parametrize("output", ["table", "json"])
def test_reads_without_anything_configured(cli: Cli, output: str) -> None:
    for noun in ("platform", "job", "task", "run"):
        result = cli(noun, "list", "-o", output)
        assert result.code == 0, result.stderr
        if output == "json":
            assert result.json() == []


@pytest.mark.parametrize(
    "args",
    [
        # Out-of-range numbers are input errors of their own (test_cli_limits.py).
        ("task", "run"),
        ("run", "list", "--limit", "abc"),
        ("worker", "--concurrency", "many"),
    ],
)
def test_usage_errors_exit_2_with_clicks_sentence(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 2
    assert "Error:" in result.stderr
    assert "unexpected" not in result.stderr
    assert "Traceback" not in result.stderr


def test_reference_text_outside_a_secret_parameter_is_pointed_out(
    cli: Cli, local_platform: str, batch: BatchClient
) -> None:
    """Decision 0010: only Secret parameters read references; the CLI says so."""
    template = unique("literal")
    make_template(batch, template, "/bin/true", env={"NAME": "x"})
    assert cli("job", "import", "-p", local_platform, template).code == 0
    made = cli("task", "create", "lit", "--job", template, "--param", "NAME=env:HOME")
    assert made.code == 0, made.stderr
    said = " ".join(made.stderr.split())
    assert "parameter NAME is a String, so env:... is sent as that text" in said
    assert f"polysync job param set {template} NAME --type Secret" in said
    shown = cli("task", "show", "lit")
    assert "sent as that text" in " ".join(shown.stderr.split())
    # Made a Secret, the host's reference is kept as one (the host may write env:).
    assert cli("job", "param", "set", template, "NAME", "--type", "Secret").code == 0
    assert "sent as that text" not in cli("task", "show", "lit").stderr
