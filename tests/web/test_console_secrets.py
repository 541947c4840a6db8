"""Secret references in the console (issue 10, acceptance 6; decision 0010 §3 and §4).

- Viewers never see a reference: every console page, fetched as a viewer, holds none of
  the Secret parameters' ``vault://`` references nor a platform's or vault's credential
  source; operators see the Secret references (they edit them), admins the credentials.
- The doors an operator could use to read the server's environment or files fail closed
  through the console's own forms: task create and update, a Secret default, a new Secret
  parameter, and a String parameter holding ``env:``/``file:`` text turned into a Secret.
  Each gives a 4xx page with the service's sentence and saves nothing; the sentence is the
  same whether or not the file exists.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from polysync.domain.models import DataType, RunState
from polysync.errors import NotFoundError
from tests.support import add_local_vault
from tests.web.conftest import KEY_ENV, Console, console_client, make_template

pytestmark = pytest.mark.timeout(120)

VAULT = "kvs"
TASK_REF = f"vault://{VAULT}/task-token"
DEFAULT_REF = f"vault://{VAULT}/default-token"
PLATFORM_REF = f"env:{KEY_ENV}"  # the console fixture's platform key (a host reference)
TASK = "secret-task"


@pytest.fixture(scope="module")
def kv() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def token_file(
    console: Console, kv: KeyVaultServer, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Vault ``kvs``, declared on the host (its bearer token in a 0600 file there)."""
    directory = tmp_path_factory.mktemp("tokens")
    add_local_vault(console.services, kv, directory, name=VAULT)
    kv.set_secret("task-token", "task-secret-" + "7" * 16)
    kv.set_secret("default-token", "default-secret-" + "8" * 16)
    found = console.services.store.get_vault(VAULT).auth.secret
    assert found is not None
    assert found.kind == "file"
    return Path(found.target)


@pytest.fixture(scope="module")
def job(console: Console, batch: BatchClient, token_file: Path) -> str:
    """A job with a String parameter NAME and a Secret TOKEN (default a vault reference),
    a task of it pinning TOKEN to another vault reference, and one finished run."""
    template = make_template(batch, "/bin/sh -c 'echo \"hello $NAME\"'", env={"NAME": "world"})
    with console.api("operator") as api:
        r = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert r.status_code == 201, r.text
        r = api.put(
            f"/api/jobs/{template}/parameters/TOKEN",
            json={"type": "Secret", "default": DEFAULT_REF},
        )
        assert r.status_code == 200, r.text
        r = api.post(
            "/api/tasks", json={"name": TASK, "job": template, "params": {"TOKEN": TASK_REF}}
        )
        assert r.status_code == 201, r.text
        run_id = api.post(f"/api/tasks/{TASK}/runs", json={}).json()["id"]
    deadline = time.monotonic() + 60
    while not console.services.store.get_run(run_id).state.is_terminal:
        assert time.monotonic() < deadline, "the run never finished"
        time.sleep(0.1)
    assert console.services.store.get_run(run_id).state is RunState.SUCCEEDED
    return template


@pytest.fixture
def operator(console: Console) -> Iterator[httpx.Client]:
    with console_client(console, "operator") as client:
        yield client


def pages(console: Console, job: str) -> list[str]:
    run = console.services.store.list_runs(task=TASK, limit=1, with_history=False)[0]
    return [
        "/runs",
        f"/runs/{run.id}",
        f"/runs?task={TASK}",
        "/tasks",
        f"/tasks/{TASK}",
        "/jobs",
        f"/jobs/{job}",
        "/platforms",
        f"/platforms/local/discover?prefix={job}",
        "/vaults",
        f"/vaults?edit={VAULT}",
    ]


def text_of(resp: httpx.Response) -> str:
    return html.unescape(resp.text)


def alert(resp: httpx.Response) -> str:
    found = re.search(r'<div class="flash error" role="alert" id="error">(.*?)</div>', resp.text)
    assert found, resp.text[:2000]
    return html.unescape(found.group(1))


# -- what each role sees -----------------------------------------------------------------


def test_a_viewer_sees_no_reference_on_any_page(
    console: Console, job: str, token_file: Path
) -> None:
    secret_texts = [
        TASK_REF,
        DEFAULT_REF,
        f"vault://{VAULT}/",
        PLATFORM_REF,
        KEY_ENV,
        str(token_file),
        DEFAULT_KEY,
    ]
    with console_client(console, "viewer") as viewer:
        for path in pages(console, job):
            resp = viewer.get(path)
            assert resp.status_code == (403 if path.startswith("/vaults") else 200), path
            text = text_of(resp)
            for secret in secret_texts:
                assert secret not in text, (path, secret)
        # Where a Secret reference would be, the viewer reads *** instead.
        tasks = text_of(viewer.get("/tasks"))
        assert "TOKEN=***" in tasks
        task_page = text_of(viewer.get(f"/tasks/{TASK}"))
        assert re.search(r'name="param:TOKEN"[^>]*value="\*\*\*"', task_page)
        assert 'placeholder="default: ***"' in task_page
        assert 'placeholder="default: world"' in task_page  # ordinary defaults stay
        job_page = text_of(viewer.get(f"/jobs/{job}"))
        token_row = re.search(r'<tr data-param="TOKEN">.*?</tr>', job_page, re.S)
        assert token_row
        assert "***" in token_row.group(0)
        # That the platform has a credential, not where it is read from.
        assert re.search(r'<td class="mono">set</td>', viewer.get("/platforms").text)


def test_operators_see_secret_references_but_not_credentials(
    console: Console, job: str, token_file: Path, operator: httpx.Client
) -> None:
    tasks = text_of(operator.get("/tasks"))
    assert f"TOKEN={TASK_REF}" in tasks
    task_page = text_of(operator.get(f"/tasks/{TASK}"))
    assert re.search(rf'name="param:TOKEN"[^>]*value="{re.escape(TASK_REF)}"', task_page)
    assert f'placeholder="default: {DEFAULT_REF}"' in task_page
    assert f'value="{DEFAULT_REF}"' in text_of(operator.get(f"/jobs/{job}"))
    for path in pages(console, job):
        resp = operator.get(path)
        assert resp.status_code == 200, path
        text = text_of(resp)
        for credential in (PLATFORM_REF, str(token_file)):
            assert credential not in text, (path, credential)


def test_admins_see_where_credentials_are_read_from(
    console: Console, job: str, token_file: Path
) -> None:
    with console_client(console, "admin") as admin:
        assert PLATFORM_REF in text_of(admin.get("/platforms"))
        assert f"file:{token_file}" in text_of(admin.get("/vaults"))
        assert TASK_REF in text_of(admin.get("/tasks"))


def test_the_task_form_says_what_a_secret_parameter_takes(job: str, operator: httpx.Client) -> None:
    for path in (f"/tasks/{TASK}", f"/tasks/new?job={job}"):
        page = text_of(operator.get(path))
        assert "A value may be a reference: env:NAME or file:PATH" not in page
        hint = re.search(r'<p class="muted" id="params-hint">(.*?)</p>', page, re.S)
        assert hint, path
        said = re.sub(r"<[^>]+>", "", hint.group(1))
        assert "Secret parameter takes a vault://VAULT/SECRET reference" in said
        assert "env: and file: references are refused" in said
        assert "In any other parameter the text is a literal" in said


# -- the doors to the server's environment and files -------------------------------------

EXISTING_FILE = "/etc/hostname"
MISSING_FILE = "/etc/polysync-no-such-file"
HOST_REFS = [
    f"env:{KEY_ENV}",
    "env:AZURE_BATCH_KEY",
    "file:/etc/shadow",
    f"file:{EXISTING_FILE}",
    f"file:{MISSING_FILE}",
]


def refusal(param: str, ref: str) -> str:
    kind = ref.split(":")[0]
    return (
        f"{param}: {kind}: references are not accepted from the API or the console (they "
        "would read the server's own environment or files); use a vault://VAULT/SECRET "
        "reference to a Secret Vault an admin declared."
    )


def task_form(name: str, params: dict[str, str], **extra: str) -> dict[str, str]:
    """The task form as the browser posts it."""
    form = {
        "name": name,
        "timeout": "",
        "retries": "0",
        "backoff": "Fixed",
        "retry_delay": "30s",
        "retry_max_delay": "1h",
        "priority": "0",
        "description": "",
        **extra,
    }
    form.update({f"param:{k}": v for k, v in params.items()})
    return form


def assert_refused(resp: httpx.Response, sentence: str) -> None:
    assert resp.status_code == 422, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("text/html")
    assert alert(resp) == sentence
    assert DEFAULT_KEY not in resp.text


@pytest.mark.parametrize("ref", HOST_REFS)
def test_an_operator_cannot_create_a_task_reading_the_server(
    console: Console, job: str, operator: httpx.Client, ref: str
) -> None:
    name = f"exfil-{HOST_REFS.index(ref)}"
    resp = operator.post("/tasks", data=task_form(name, {"TOKEN": ref}, job=job))
    assert_refused(resp, refusal("parameter TOKEN", ref))
    with pytest.raises(NotFoundError):
        console.services.store.get_task(name)


@pytest.mark.parametrize("ref", HOST_REFS)
def test_an_operator_cannot_point_a_task_at_the_server(
    console: Console, job: str, operator: httpx.Client, ref: str
) -> None:
    before = console.services.store.get_task(TASK)
    resp = operator.post(
        f"/tasks/{TASK}", data=task_form(TASK, {"TOKEN": ref, "NAME": "x"}, priority="5")
    )
    assert_refused(resp, refusal("parameter TOKEN", ref))
    after = console.services.store.get_task(TASK)
    assert after.params == before.params == {"TOKEN": TASK_REF}
    assert after.priority == before.priority


@pytest.mark.parametrize("ref", HOST_REFS)
def test_an_operator_cannot_make_a_secret_default_read_the_server(
    console: Console, job: str, operator: httpx.Client, ref: str
) -> None:
    index = HOST_REFS.index(ref)
    edits = [
        ("TOKEN", {"type": "Secret", "direction": "Input", "default": ref}),
        (f"NEW_{index}", {"type": "Secret", "direction": "Input", "default": ref}),
    ]
    for param, fields in edits:
        resp = operator.post(f"/jobs/{job}/params", data={"name": param, **fields})
        assert_refused(resp, refusal(f"the default of parameter {param}", ref))
    schema = {p.name: p for p in console.services.store.get_job(job).parameters}
    assert schema["TOKEN"].default == DEFAULT_REF
    assert f"NEW_{index}" not in schema


@pytest.mark.parametrize("ref", HOST_REFS)
def test_an_operator_cannot_turn_host_text_into_a_secret(
    console: Console, job: str, operator: httpx.Client, ref: str
) -> None:
    index = HOST_REFS.index(ref)
    param, holder = f"TEXT_{index}", f"holder-{index}"
    # As a String the text is a literal: saved as typed, sent as typed.
    resp = operator.post(
        f"/jobs/{job}/params",
        data={"name": param, "type": "String", "direction": "Input", "default": ref},
    )
    assert resp.status_code == 303, resp.text[:500]
    # The default itself, made a Secret: refused.
    resp = operator.post(
        f"/jobs/{job}/params",
        data={"name": param, "type": "Secret", "direction": "Input", "default": ref},
    )
    assert_refused(resp, refusal(f"the default of parameter {param}", ref))
    # A task holding the text, with the default emptied: refused, naming the task.
    resp = operator.post(
        f"/jobs/{job}/params",
        data={"name": param, "type": "String", "direction": "Input", "default": ""},
    )
    assert resp.status_code == 303, resp.text[:500]
    resp = operator.post("/tasks", data=task_form(holder, {param: ref}, job=job))
    assert resp.status_code == 303, resp.text[:500]
    resp = operator.post(
        f"/jobs/{job}/params",
        data={"name": param, "type": "Secret", "direction": "Input", "default": ""},
    )
    assert resp.status_code == 422
    said = alert(resp)
    assert said.startswith(f"parameter {param} of job {job} cannot become Secret: task {holder}")
    assert refusal(f"task {holder}", ref).rstrip(".") in said
    schema = {p.name: p for p in console.services.store.get_job(job).parameters}
    assert schema[param].data_type is DataType.STRING
    assert console.services.store.get_task(holder).params == {param: ref}


def test_the_refusal_is_the_same_whether_or_not_the_file_exists(
    job: str, operator: httpx.Client
) -> None:
    assert Path(EXISTING_FILE).exists()
    assert not Path(MISSING_FILE).exists()
    said = [
        alert(operator.post("/tasks", data=task_form("oracle", {"TOKEN": ref}, job=job)))
        for ref in (f"file:{EXISTING_FILE}", f"file:{MISSING_FILE}")
    ]
    assert said[0] == said[1] == refusal("parameter TOKEN", "file:")
