"""Out-of-range numbers, overflows and bad paths in the CLI: exit 2, one sentence, no trace.

The bounds come from ``polysync.domain.limits`` (the API's too); every case here used to
end in "unexpected OverflowError" (exit 3), a Batch refusal, or a value the API refuses
being saved. NUL characters cannot reach the CLI (no argv string can hold one); the API
and console tests cover them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.domain import limits
from polysync.domain.models import JobOverrides, Task
from polysync.store.sql import SqlStore
from tests.cli.conftest import KEY_ENV, SUBSCRIPTION, Cli, Result
from tests.support import create_template, sdk_client

HUGE = "99999999999999999999"  # past 64 bits: an OverflowError in SQLite before
JOB = "tpl-limits"
TASK = "limits"


@dataclass
class Setup:
    cli: Cli
    home: Path
    run_id: int

    def store(self) -> SqlStore:
        return SqlStore.open(f"sqlite:///{self.home / 'polysync.db'}")

    def tasks(self) -> list[Task]:
        store = self.store()
        try:
            return store.list_tasks()
        finally:
            store.close()

    def overrides(self) -> JobOverrides:
        store = self.store()
        try:
            return store.get_job(JOB).overrides
        finally:
            store.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorServer) -> Setup:
    """One home for the module: a platform, a job, a task and one finished run."""
    home = tmp_path_factory.mktemp("limits") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSYNC_")}
    # WARNING, not DEBUG: stderr must hold the one sentence and nothing else.
    env.update(
        POLYSYNC_HOME=str(home),
        POLYSYNC_LOG_LEVEL="WARNING",
        COLUMNS="200",
        NO_COLOR="1",
        **{KEY_ENV: DEFAULT_KEY},
    )
    cli = Cli(env)
    with sdk_client(emulator) as batch:
        create_template(batch, "/bin/sh -c 'echo out; echo err >&2'", job_id=JOB, env={"A": "1"})
    steps = [
        ("platform", "add", "local", "--account-url", emulator.endpoint, "--account-name",
         emulator.account, "--subscription-id", SUBSCRIPTION, "--resource-group", "rg",
         "--key-env", KEY_ENV),
        ("job", "import", "--platform", "local", JOB),
        ("task", "create", TASK, "--job", JOB),
    ]  # fmt: skip
    for step in steps:
        result = cli(*step)
        assert result.code == 0, (step, result.stderr)
    ran = cli("task", "run", TASK, "-o", "json")
    assert ran.code == 0, ran.stderr
    return Setup(cli, home, int(ran.json()["id"]))


def assert_one_sentence(result: Result, fragment: str) -> None:
    assert result.code == 2, (result.code, result.stderr)
    err = result.stderr.strip()
    assert "\n" not in err, err
    assert err.startswith("error: "), err
    assert "unexpected" not in err
    assert "Traceback" not in err
    assert fragment in err, err


TASK_CASES = [
    (["--priority", HUGE], f"priority {HUGE} is out of range"),
    (["--priority", "1000001"], "priority 1000001 is out of range"),
    (["--priority", "-1000001"], "priority -1000001 is out of range"),
    (["--timeout", f"{HUGE}d"], "execution timeout is far too large"),
    (["--timeout", "0s"], "execution timeout 0s is out of range"),
    (["--timeout", "3651d"], "execution timeout 3651d is out of range"),
    (["--timeout", "9" * 5000], "characters long"),  # was "unexpected ValueError" (int())
    (["--retries", "100"], "--retries 100 is out of range"),
    (["--retries", "-1"], "--retries -1 is out of range"),
    (["--retries", HUGE], f"--retries {HUGE} is out of range"),
    (["--retries", "1", "--retry-delay", "3651d"], "initial retry delay 3651d is out of range"),
    (["--description", "x" * 4001], "description is 4001 characters long"),
    (["--param", "A=" + "x" * 100_001], "the value of parameter A is 100001 characters long"),
]


@pytest.mark.parametrize(("args", "fragment"), TASK_CASES)
def test_task_create_refuses_out_of_range_settings(
    setup: Setup, args: list[str], fragment: str
) -> None:
    result = setup.cli("task", "create", "refused", "--job", JOB, *args)
    assert_one_sentence(result, fragment)
    assert [t.name for t in setup.tasks()] == [TASK]  # nothing saved


@pytest.mark.parametrize(("args", "fragment"), [TASK_CASES[i] for i in (0, 3, 7, 11)])
def test_task_set_refuses_the_same(setup: Setup, args: list[str], fragment: str) -> None:
    before = setup.tasks()
    assert_one_sentence(setup.cli("task", "set", TASK, *args), fragment)
    assert setup.tasks() == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--max-wall-clock", "0s"], "task max wall clock time 0s is out of range"),
        (["--max-wall-clock", f"{HUGE}d"], "task max wall clock time is far too large"),
        (["--retention", f"{HUGE}s"], "task retention time 1157407407407407d9h46m39s is"),
        (["--max-task-retries", "101"], "max task retries 101 is out of range"),
        (["--max-task-retries", "-2"], "max task retries -2 is out of range"),
        (["--max-task-retries", HUGE], f"max task retries {HUGE} is out of"),
        (["--command-line", "x" * 8001], "command line is 8001 characters long"),
    ],
)
def test_job_set_refuses_what_the_api_refuses(setup: Setup, args: list[str], fragment: str) -> None:
    assert_one_sentence(setup.cli("job", "set", JOB, *args), fragment)
    assert setup.overrides() == JobOverrides()  # nothing saved


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "show", HUGE], f"run id {HUGE} is out of range"),
        (["run", "show", "9007199254740992"], "run id 9007199254740992 is out of range"),
        (["run", "show", "0"], "run id 0 is out of range"),
        (["run", "show", "²"], "run '²' does not exist"),  # isdigit() said yes, int() no
        (["run", "cancel", "9" * 30], "run id is far too large"),
        (["run", "logs", HUGE], f"run id {HUGE} is out of range"),
        (["run", "show", "x" * 200], "the run reference is 200 characters long"),
        (["run", "wait", "1", "--timeout", f"{HUGE}d"], "--timeout is far too large"),
        (["run", "list", "--offset", HUGE], f"--offset {HUGE} is out of range"),
        (["run", "list", "--offset", "-1"], "--offset -1 is out of range"),
        (["run", "list", "--limit", "0"], "--limit 0 is out of range"),
        (["run", "list", "--limit", "1001"], "--limit 1001 is out of range"),
        (["platform", "discover", "local", "--page-size", "0"], "page size 0 is out of range"),
        (["platform", "discover", "local", "--page-size", HUGE], f"page size {HUGE} is"),
        # --exit-when-idle: a worker that wrongly starts ends at once (nothing is queued).
        (["worker", "--exit-when-idle", "--concurrency", "0"], "--concurrency 0 is out of range"),
        (["worker", "--exit-when-idle", "--lease", "nan"], "--lease nan is not a finite number"),
        (["worker", "--exit-when-idle", "--submit-rate", "inf"], "--submit-rate inf is not a"),
        (["server", "--port", "70000"], "--port 70000 is out of range"),
        (["server", "--demo", "--emulator-port", HUGE], f"--emulator-port {HUGE} is"),
        (["demo", "--port", HUGE], f"--port {HUGE} is out of range"),
    ],
)
def test_numbers_and_run_references_are_checked_before_the_store(
    setup: Setup, args: list[str], fragment: str
) -> None:
    assert_one_sentence(setup.cli(*args), fragment)


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (".", "has an empty, '.' or '..' segment"),
        ("wd/../stdout.txt", "has an empty, '.' or '..' segment"),
        ("wd//x", "has an empty, '.' or '..' segment"),
        ("/etc/passwd", "is absolute"),
        ("wd/", "names a directory"),
        ("", "the task file path is empty"),
    ],
)
def test_run_logs_refuses_bad_task_file_paths(setup: Setup, path: str, fragment: str) -> None:
    # The run reached Batch: these used to be sent to it (a 403 "refused the credential"
    # for '.', exit 3) or printed something else than what was asked.
    assert_one_sentence(setup.cli("run", "logs", str(setup.run_id), "--file", path), fragment)


def test_run_logs_still_reads_good_paths(setup: Setup) -> None:
    result = setup.cli("run", "logs", str(setup.run_id), "--file", "stderr.txt")
    assert result.code == 0, result.stderr
    assert result.stdout == "err\n"


def test_importing_an_imported_template_under_a_new_name_is_refused(setup: Setup) -> None:
    result = setup.cli("job", "import", "--platform", "local", JOB, "--name", "renamed")
    assert_one_sentence(
        result,
        f"template {JOB} of platform local is already imported as job '{JOB}': refresh it "
        f"with `polysync job sync {JOB}`, or remove it first (`polysync job remove {JOB}`) to "
        "import it as 'renamed'.",
    )
    listed = setup.cli("job", "list", "-o", "json")
    assert [j["name"] for j in listed.json()] == [JOB]
    # The same name (any case) is still a refresh, as before.
    again = setup.cli("job", "import", "--platform", "local", JOB, "--name", JOB.upper())
    assert again.code == 0, again.stderr
    assert "Updated job" in again.stdout


@pytest.mark.parametrize(
    ("bound", "cli_args", "api_request"),
    [
        (
            limits.PRIORITY,
            lambda v: ["task", "set", TASK, "--priority", str(v)],
            lambda v: ("PATCH", f"/api/tasks/{TASK}", {"json": {"priority": v}}),
        ),
        (
            limits.EXECUTION_TIMEOUT_S,
            lambda v: ["task", "set", TASK, "--timeout", f"{v}s"],
            lambda v: ("PATCH", f"/api/tasks/{TASK}", {"json": {"execution_timeout_s": v}}),
        ),
        (
            limits.MAX_WALL_CLOCK_S,
            lambda v: ["job", "set", JOB, "--max-wall-clock", f"{v}s"],
            lambda v: ("PATCH", f"/api/jobs/{JOB}", {"json": {"max_wall_clock_s": v}}),
        ),
        (
            limits.MAX_TASK_RETRIES,
            lambda v: ["job", "set", JOB, "--max-task-retries", str(v)],
            lambda v: ("PATCH", f"/api/jobs/{JOB}", {"json": {"max_task_retries": v}}),
        ),
        (
            limits.OFFSET,
            lambda v: ["run", "list", "--no-refresh", "--offset", str(v)],
            lambda v: ("GET", "/api/runs", {"params": {"offset": v}}),
        ),
    ],
    ids=lambda x: x.what if isinstance(x, limits.Bound) else "",
)
def test_cli_and_api_share_the_bounds(
    setup: Setup, tmp_path: Path, bound: limits.Bound, cli_args: object, api_request: object
) -> None:
    """Both edges take the same edge values and refuse the next ones, from one Bound."""
    from fastapi.testclient import TestClient

    from polysync.api.app import create_app
    from polysync.api.tokens import Role, create_token
    from polysync.config import load_settings

    assert callable(cli_args)
    assert callable(api_request)
    settings = load_settings({"home": setup.home}, environ={})
    app = create_app(settings, start_worker=False)
    name = "bounds-" + bound.what.replace(" ", "-")
    _, token = create_token(app.state.services, name, Role.ADMIN)
    low, high = int(bound.low), int(bound.high)
    try:
        with TestClient(app) as client:
            for value, ok in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
                method, url, kw = api_request(value)
                headers = {"Authorization": f"Bearer {token}"}
                answer = client.request(method, url, headers=headers, **kw)
                result = setup.cli(*cli_args(value))
                if ok:
                    assert answer.status_code == 200, (value, answer.text)
                    assert result.code == 0, (value, result.stderr)
                else:
                    assert answer.status_code == 422, (value, answer.text)
                    assert result.code == 2, (value, result.stderr)
                    assert "out of range" in result.stderr
    finally:
        # Back to the module's starting point for the "nothing saved" checks.
        store = setup.store()
        try:
            store.update_task(dataclasses.replace(store.get_task(TASK), priority=0,
                                                  execution_timeout_s=None))  # fmt: skip
            job = store.get_job(JOB)
            store.upsert_job(dataclasses.replace(job, overrides=JobOverrides()))
        finally:
            store.close()
