"""The secret model through the API (issue 10, acceptance 1 and 6; decision 0010).

An operator cannot get a server environment variable or file into a run by any reference
an admin did not give them; viewers see no secret's source; refusals are the same
sentence whatever the server holds (no existence oracle). Admins manage Secret Vaults.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.api.conftest import KEY_ENV, Api, is_terminal, make_template
from tests.api.test_api import assert_problem

# What an operator would want to read off the server.
SERVER_SECRETS = [f"env:{KEY_ENV}", "env:HOME", "file:/etc/shadow", "file:/etc/hostname"]


@pytest.fixture(scope="module")
def kv() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


def token_file(tmp_path: Path, kv: KeyVaultServer, role: str = "secrets-user") -> Path:
    path = tmp_path / f"{role}.token"
    path.write_text(kv.tokens[role])
    return path


def add_vault(api: Api, kv: KeyVaultServer, tmp_path: Path, name: str = "kv", **extra: Any) -> Any:
    """The local vault, declared by an admin through the API (its token file allowed)."""
    body = {
        "name": name,
        "url": kv.url,
        "auth": "bearer-token",
        "token_ref": f"file:{token_file(tmp_path, kv, extra.pop('role', 'secrets-user'))}",
        "ca_bundle": str(kv.cert_path),
        **extra,
    }
    return api.post("/api/vaults", json=body)


@pytest.fixture
def secret_job(api: Api, batch: BatchClient, tmp_path: Path) -> str:
    """A platform and a Job with a String parameter NAME and a Secret parameter TOKEN."""
    api.add_platform()
    tpl = make_template(batch)
    r = api.post(
        "/api/jobs/import", role="operator", json={"platform": "local", "external_ids": [tpl]}
    )
    assert r.status_code == 201, r.text
    r = api.put(f"/api/jobs/{tpl}/parameters/TOKEN", role="operator", json={"type": "Secret"})
    assert r.status_code == 200, r.text
    for name in ("SLEEP_S", "EXIT_CODE"):
        assert (
            api.put(f"/api/jobs/{tpl}/parameters/{name}", json={"type": "Int"}).status_code == 200
        )
    return tpl


def allow_host_files(api: Api, tmp_path: Path, kv: KeyVaultServer | None = None) -> None:
    """Let API admins name files under tmp_path (and the vault's certificate) too: the
    host's allow-list (0010 §3), as a host would allow its vault token files."""
    svc = api.app.state.services
    allowed = (*svc.settings.host_references, f"file:{tmp_path}/*")
    if kv is not None:
        allowed += (f"file:{kv.cert_path}",)
    svc.settings = replace(svc.settings, host_references=allowed)


# -- acceptance 1: the exfiltration paths fail closed -------------------------------------


@pytest.mark.parametrize("ref", SERVER_SECRETS)
def test_operator_cannot_pin_a_host_reference(api: Api, secret_job: str, ref: str) -> None:
    r = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "exfil", "job": secret_job, "params": {"TOKEN": ref}},
    )
    body = assert_problem(r, 422, "ReferenceNotAllowed", "not accepted from the API or the console")
    assert api.get("/api/tasks/exfil").status_code == 404  # nothing half-created
    # No existence oracle: the sentence is the same whatever the server has there.
    kind = ref.split(":")[0]
    assert body["detail"] == (
        f"parameter TOKEN: {kind}: references are not accepted from the API or the console "
        "(they would read the server's own environment or files); use a vault://VAULT/SECRET "
        "reference to a Secret Vault an admin declared."
    )


@pytest.mark.parametrize("ref", SERVER_SECRETS)
def test_operator_cannot_reach_the_host_by_any_other_door(
    api: Api, secret_job: str, ref: str
) -> None:
    assert (
        api.post(
            "/api/tasks",
            role="operator",
            json={"name": "t", "job": secret_job, "params": {"TOKEN": "vault://nope/x"}},
        ).status_code
        == 422
    )
    r = api.post("/api/tasks", role="operator", json={"name": "t", "job": secret_job})
    assert r.status_code == 201, r.text
    doors = [
        api.patch("/api/tasks/t", role="operator", json={"set_params": {"TOKEN": ref}}),
        api.post("/api/tasks/t/runs", role="operator", json={"params": {"TOKEN": ref}}),
        api.put(f"/api/jobs/{secret_job}/parameters/TOKEN", role="operator", json={"default": ref}),
        api.put(
            f"/api/jobs/{secret_job}/parameters/OTHER",
            role="operator",
            json={"type": "Secret", "default": ref},
        ),
    ]
    for r in doors:
        assert_problem(r, 422, "ReferenceNotAllowed", "not accepted from the API or the console")
    assert api.get("/api/runs").json()["total"] == 0
    assert api.get("/api/tasks/t").json()["params"] == {}
    job = api.get(f"/api/jobs/{secret_job}").json()
    assert {p["name"]: p["default"] for p in job["parameters"]}["TOKEN"] is None
    assert "OTHER" not in {p["name"] for p in job["parameters"]}


def test_a_literal_cannot_be_turned_into_a_reference(
    api: Api, secret_job: str, kv: KeyVaultServer, tmp_path: Path
) -> None:
    allow_host_files(api, tmp_path, kv)
    kv.set_secret("etl-token", "etl-token-value")
    assert add_vault(api, kv, tmp_path).status_code == 201
    # NAME is a String: "env:..." there is text, saved as such…
    ref = f"env:{KEY_ENV}"
    params = {"NAME": ref, "TOKEN": "vault://kv/etl-token", "SLEEP_S": "60"}
    r = api.post(
        "/api/tasks", role="operator", json={"name": "lit", "job": secret_job, "params": params}
    )
    assert r.status_code == 201, r.text
    queued = api.post(
        "/api/tasks/lit/runs", role="operator", json={"params": {"NAME": "file:/etc/shadow"}}
    )
    assert queued.status_code == 202, queued.text
    # …and turning NAME into a Secret would make it a read of the server: refused, naming
    # the task and the unfinished run that hold such a value; the schema is unchanged.
    r = api.put(f"/api/jobs/{secret_job}/parameters/NAME", role="operator", json={"type": "Secret"})
    body = assert_problem(r, 422, "InvalidParameter", "cannot become Secret")
    assert "task lit" in body["detail"]
    assert f"run {queued.json()['id']}" in body["detail"]
    job = api.get(f"/api/jobs/{secret_job}").json()
    assert {p["name"]: p["type"] for p in job["parameters"]}["NAME"] == "String"
    assert api.post(f"/api/runs/{queued.json()['id']}/cancel", role="operator").status_code == 200


def test_env_text_in_a_string_parameter_reaches_the_task_as_text(
    api: Api, secret_job: str, kv: KeyVaultServer, tmp_path: Path
) -> None:
    """Outside a Secret parameter, `env:X` is six characters of text: the task gets the
    text, never the server's variable (the template prints `hello $NAME`)."""
    allow_host_files(api, tmp_path, kv)
    kv.set_secret("etl-token", "etl-token-value")
    assert add_vault(api, kv, tmp_path).status_code == 201
    ref = f"env:{KEY_ENV}"
    params = {"NAME": ref, "TOKEN": "vault://kv/etl-token", "EXIT_CODE": "0"}
    r = api.post(
        "/api/tasks", role="operator", json={"name": "text", "job": secret_job, "params": params}
    )
    assert r.status_code == 201, r.text
    run = api.post("/api/tasks/text/runs", role="operator").json()
    done = api.wait_run(run["id"], is_terminal)
    assert done["state"] == "Succeeded", done
    assert done["params_sent"]["NAME"] == ref
    out = api.get(f"/api/runs/{run['id']}/logs").json()["data"]
    assert out.strip() == f"hello {ref}"
    assert DEFAULT_KEY not in out


def test_viewers_never_see_where_a_secret_lives(
    api: Api, secret_job: str, kv: KeyVaultServer, tmp_path: Path
) -> None:
    allow_host_files(api, tmp_path, kv)
    assert add_vault(api, kv, tmp_path).status_code == 201
    r = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "seen", "job": secret_job, "params": {"TOKEN": "vault://kv/etl-token"}},
    )
    assert r.status_code == 201, r.text
    api.put(
        f"/api/jobs/{secret_job}/parameters/TOKEN",
        role="operator",
        json={"default": "vault://kv/etl-default"},
    )

    viewer_platform = api.get("/api/platforms/local", role="viewer").json()
    assert viewer_platform["auth"]["secret_ref"] is None
    assert viewer_platform["auth"]["secret_set"] is True
    assert api.get("/api/platforms", role="operator").json()[0]["auth"]["secret_ref"] is None
    assert api.get("/api/platforms/local").json()["auth"]["secret_ref"] == f"env:{KEY_ENV}"

    assert api.get("/api/tasks/seen", role="viewer").json()["params"] == {"TOKEN": "***"}
    assert api.get("/api/tasks", role="viewer").json()[0]["params"] == {"TOKEN": "***"}
    assert api.get("/api/tasks/seen", role="operator").json()["params"] == {
        "TOKEN": "vault://kv/etl-token"
    }
    default = {
        p["name"]: p["default"]
        for p in api.get(f"/api/jobs/{secret_job}", role="viewer").json()["parameters"]
    }
    assert default["TOKEN"] == "***"
    assert default["NAME"] == "world"  # ordinary defaults stay visible
    assert api.get("/api/vaults", role="viewer").status_code == 403
    listed = api.get("/api/vaults", role="operator").json()
    assert listed[0]["name"] == "kv"
    assert listed[0]["auth"]["secret_ref"] is None
    assert "used_by" not in api.get("/api/vaults/kv", role="operator").json()


def test_a_platform_credential_is_never_a_task_secret(
    api: Api, secret_job: str, kv: KeyVaultServer, tmp_path: Path
) -> None:
    allow_host_files(api, tmp_path, kv)
    assert add_vault(api, kv, tmp_path).status_code == 201
    current = api.get("/api/platforms/local").json()
    fields = ("account_url", "account_name", "subscription_id", "resource_group")
    r = api.put(
        "/api/platforms/local",
        json={**{k: current[k] for k in fields}, "key_ref": "vault://kv/batch-key"},
    )
    assert r.status_code == 200, r.text
    r = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "steal", "job": secret_job, "params": {"TOKEN": "vault://kv/batch-key"}},
    )
    assert_problem(r, 422, "ReferenceNotAllowed", "is a platform or vault credential")


def test_task_secrets_narrow_what_parameters_may_read(
    api: Api, secret_job: str, kv: KeyVaultServer, tmp_path: Path
) -> None:
    allow_host_files(api, tmp_path, kv)
    assert add_vault(api, kv, tmp_path, task_secrets=["etl-*"]).status_code == 201
    ok = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "a", "job": secret_job, "params": {"TOKEN": "vault://kv/etl-token"}},
    )
    assert ok.status_code == 201, ok.text
    no = api.post(
        "/api/tasks",
        role="operator",
        json={"name": "b", "job": secret_job, "params": {"TOKEN": "vault://kv/admin-pw"}},
    )
    assert_problem(no, 422, "ReferenceNotAllowed", "does not lend secret 'admin-pw'")


def test_an_admin_is_held_to_the_hosts_allow_list(api: Api) -> None:
    body = {
        "name": "p2",
        "account_url": api.endpoint,
        "account_name": "acct1",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": "rg",
    }
    for secret in ({"key_env": "HOME"}, {"key_file": "/etc/shadow"}, {"key_ref": "env:PATH"}):
        r = api.post("/api/platforms", json={**body, **secret})
        assert_problem(r, 422, "ReferenceNotAllowed", "host_references")
    assert api.get("/api/platforms").json() == []


# -- acceptance 6: vault management for admins -------------------------------------------


def test_vault_lifecycle(api: Api, kv: KeyVaultServer, tmp_path: Path, secret_job: str) -> None:
    allow_host_files(api, tmp_path, kv)
    created = add_vault(api, kv, tmp_path)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["auth"]["secret_ref"].startswith("file:")
    assert view["task_secrets"] == ["*"]
    assert kv.tokens["secrets-user"] not in created.text

    kv.control.clear_requests()
    tested = api.post("/api/vaults/kv/test")
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True
    assert kv.control.count("GetSecret") == 0  # the test reads no secret value…
    assert kv.control.count("ListSecrets", status=200) == 1  # …it lists names

    api.post(
        "/api/tasks",
        role="operator",
        json={"name": "user", "job": secret_job, "params": {"TOKEN": "vault://kv/x"}},
    )
    refused = api.delete("/api/vaults/kv")
    assert_problem(refused, 409, "Conflict", "task user (parameter TOKEN)")
    assert api.get("/api/vaults/kv").json()["used_by"] == ["task user (parameter TOKEN)"]
    assert api.delete("/api/tasks/user").status_code == 204
    assert api.delete("/api/vaults/kv").status_code == 204
    assert api.get("/api/vaults").json() == []


def test_vault_test_names_what_is_missing(api: Api, kv: KeyVaultServer, tmp_path: Path) -> None:
    allow_host_files(api, tmp_path, kv)
    bad = tmp_path / "bad.token"
    bad.write_text("not-a-token-the-vault-knows")
    r = api.post(
        "/api/vaults",
        json={
            "name": "badtok",
            "url": kv.url,
            "auth": "bearer-token",
            "token_ref": f"file:{bad}",
            "ca_bundle": str(kv.cert_path),
        },
    )
    assert r.status_code == 201, r.text
    report = api.post("/api/vaults/badtok/test").json()
    assert report["ok"] is False
    assert "401" in report["checks"][-1]["detail"]
    r = api.post(
        "/api/vaults",
        json={"name": "down", "url": "https://127.0.0.1:9/", "auth": "managed-identity"},
    )
    assert r.status_code == 201
    assert "not-a-token" not in str(api.post("/api/vaults/badtok/test").json())


@pytest.mark.parametrize(
    ("change", "status", "code", "phrase"),
    [
        ({"url": "http://kv.vault.azure.net/"}, 422, "InvalidInput", "needs https"),
        ({"url": "https://u:p@kv.vault.azure.net/"}, 422, "InvalidInput", "user name or password"),
        ({"url": "https://kv.vault.azure.net/secrets"}, 422, "InvalidInput", "no path"),
        ({"auth": "shared-key"}, 422, "InvalidInput", "authenticates with Entra ID"),
        ({"auth": "bearer-token"}, 422, "InvalidInput", "needs --token"),
        (
            {"auth": "bearer-token", "token_ref": "vault://self/x"},
            422,
            "InvalidInput",
            "cannot be kept in vault self",
        ),
        (
            {"auth": "bearer-token", "token_ref": "sup3r-literal"},
            422,
            "SecretUnavailable",
            "never the value itself",
        ),
        (
            {"auth": "bearer-token", "token_env": "HOME"},
            422,
            "ReferenceNotAllowed",
            "host_references",
        ),
        ({"task_secrets": ["bad/pattern"]}, 422, "InvalidInput", "not valid"),
        ({"extra": 1}, 422, "ValidationError", "extra"),
    ],
)
def test_vault_input_errors(
    api: Api, change: dict[str, Any], status: int, code: str, phrase: str
) -> None:
    body = {
        "name": "self",
        "url": "https://kv.vault.azure.net/",
        "auth": "managed-identity",
        **change,
    }
    r = api.post("/api/vaults", json=body)
    assert_problem(r, status, code, phrase)
    assert "sup3r-literal" not in r.text
    assert api.get("/api/vaults").json() == []


@pytest.mark.parametrize(
    ("method", "url", "role", "status"),
    [
        ("post", "/api/vaults", "operator", 403),
        ("post", "/api/vaults", "viewer", 403),
        ("get", "/api/vaults", "viewer", 403),
        ("get", "/api/vaults/kv", "viewer", 403),
        ("put", "/api/vaults/kv", "operator", 403),
        ("delete", "/api/vaults/kv", "operator", 403),
        ("post", "/api/vaults/kv/test", "operator", 403),
        ("get", "/api/vaults/nope", "operator", 404),
        ("delete", "/api/vaults/nope", "admin", 404),
    ],
)
def test_vault_roles(api: Api, method: str, url: str, role: str, status: int) -> None:
    body = (
        {"name": "x", "url": "https://kv.vault.azure.net/"} if method in ("post", "put") else None
    )
    r = getattr(api, method)(url, role=role, **({"json": body} if body else {}))
    assert r.status_code == status, r.text


def test_a_run_with_a_vault_secret_through_the_api(
    api: Api, secret_job: str, kv: KeyVaultServer, tmp_path: Path
) -> None:
    """End to end through the API's follower: the secret reaches the task, is masked."""
    allow_host_files(api, tmp_path, kv)
    kv.set_secret("api-token", "api-" + "5" * 24)
    assert add_vault(api, kv, tmp_path).status_code == 201
    r = api.post(
        "/api/tasks",
        role="operator",
        json={
            "name": "v",
            "job": secret_job,
            "params": {"TOKEN": "vault://kv/api-token", "EXIT_CODE": "0"},
        },
    )
    assert r.status_code == 201, r.text
    run = api.post("/api/tasks/v/runs", role="operator").json()
    done = api.wait_run(run["id"], is_terminal)
    assert done["state"] == "Succeeded", done
    assert done["params_sent"]["TOKEN"] == "***"
    assert DEFAULT_KEY not in str(done)


@pytest.mark.parametrize("field", ["ca_bundle", "certificate_path"])
def test_an_admin_learns_nothing_about_which_server_files_exist(api: Api, field: str) -> None:
    """A path the host does not allow is refused before anyone looks at the disk."""
    body = {
        "name": "oracle",
        "account_url": api.endpoint,
        "account_name": "acct1",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": "rg",
        "auth": "certificate" if field == "certificate_path" else "managed-identity",
        "tenant_id": "t",
        "client_id": "c",
        "certificate_path": "/etc/hostname",
    }
    answers = [
        api.post("/api/platforms", json={**body, field: path}).json()["detail"]
        for path in ("/etc/hostname", "/etc/no-such-file-here")
    ]
    assert all("host_references" in a for a in answers), answers
    assert "does not exist" not in " ".join(answers)
    assert answers[0].replace("hostname", "X") == answers[1].replace("no-such-file-here", "X")
