"""The Vaults page (issue 10, acceptance 1 for the console; decision 0010).

Against a real server whose config.toml lets admins name the local Key Vault's token
files and its CA bundle (``[server] host_references``, written before it starts), the
real Key Vault emulator and a real SQLite store:

- operators list vaults (name, URL, auth mode, task secrets) without their credentials;
  viewers get a 403 page; only admins add, replace, test and remove, and see "used by";
- the add form refuses bad input with the service's sentence and creates nothing;
- in Chromium: an admin adds the local vault and tests it, an operator runs a task whose
  Secret parameter is a ``vault://`` reference, a removal while the task refers to the
  vault is refused naming it, and the page raises no CSP violation.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.batch import BatchClient
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from batch_emulator.server import EmulatorServer
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from polysync.domain.models import AuthMode
from polysync.domain.secrets import Writer
from polysync.errors import NotFoundError
from polysync.services import tasks as task_service
from polysync.services import vaults as vault_service
from polysync.web import app as web
from tests.web.conftest import (
    CSP_PROBE,
    Console,
    console_client,
    csp_events,
    make_template,
    screenshot,
    serve_console,
    signed_in,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def kv() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vault-tokens").resolve()


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory,
    emulator: EmulatorServer,
    kv: KeyVaultServer,
    token_dir: Path,
) -> Iterator[Console]:
    """The server, its host allowing admins to name the token files and the vault's CA."""
    allowed = [f"file:{token_dir}/*", f"file:{Path(kv.cert_path).resolve()}"]
    config = f"[server]\nhost_references = {json.dumps(allowed)}\n"
    with serve_console(tmp_path_factory.mktemp("home"), emulator, config=config) as running:
        yield running


def token_file(kv: KeyVaultServer, token_dir: Path, name: str) -> Path:
    """The vault's bearer token in a 0600 file, as an admin would keep it on the host."""
    path = token_dir / f"{name}.token"
    path.write_text(kv.tokens["secrets-user"] + "\n")
    path.chmod(0o600)
    return path


def vault_form(kv: KeyVaultServer, token_dir: Path, name: str, **change: str) -> dict[str, str]:
    """The add form of the local vault, filled as an admin would."""
    return {
        "name": name,
        "url": kv.url,
        "auth": "bearer-token",
        "credential": f"file:{token_file(kv, token_dir, name)}",
        "tenant_id": "",
        "client_id": "",
        "certificate": "",
        "ca_bundle": str(kv.cert_path),
        "verify_tls": "1",
        "task_secrets": "*",
        **change,
    }


def alert(resp: httpx.Response) -> str:
    found = re.search(r'<div class="flash error" role="alert" id="error">(.*?)</div>', resp.text)
    assert found, resp.text[:2000]
    return html.unescape(found.group(1))


def row(page_html: str, name: str) -> str:
    """The text of a vault's row (tags dropped, blanks collapsed)."""
    found = re.search(rf'<tr data-vault="{re.escape(name)}">.*?</tr>', page_html, re.S)
    assert found, f"no row for vault {name}"
    text = re.sub(r"<[^>]+>", " ", found.group(0))
    return html.unescape(re.sub(r"\s+", " ", text).replace(" :", ":"))


def flash(client: httpx.Client, resp: httpx.Response) -> str:
    """The page a post/redirect/get lands on, with its flash text."""
    assert resp.status_code == 303, (resp.status_code, resp.text[:1000])
    return html.unescape(client.get(resp.headers["location"]).text)


@pytest.fixture
def admin(console: Console) -> Iterator[httpx.Client]:
    with console_client(console, "admin") as client:
        yield client


@pytest.fixture
def declared(console: Console, kv: KeyVaultServer, token_dir: Path) -> Iterator[str]:
    """Vault ``kvh`` declared by an admin (through the service, as the page does)."""
    form = vault_form(kv, token_dir, "kvh")
    vault_service.add_vault(
        console.services,
        vault_service.VaultInput(
            name="kvh",
            url=kv.url,
            auth=AuthMode.BEARER_TOKEN,
            token_ref=form["credential"],
            ca_bundle=str(kv.cert_path),
        ),
        writer=Writer.ADMIN,
        replace_existing=True,
    )
    yield "kvh"
    with contextlib.suppress(NotFoundError):  # a test may have removed it
        vault_service.remove_vault(console.services, "kvh")


# -- who sees what -------------------------------------------------------------------------


def test_the_nav_offers_vaults_to_operators_and_admins(console: Console) -> None:
    for role, shown in (("viewer", False), ("operator", True), ("admin", True)):
        with console_client(console, role) as client:
            runs = client.get("/runs").text
            assert ('href="/vaults"' in runs) is shown, role
            resp = client.get("/vaults")
            assert resp.status_code == (200 if shown else 403), role
            assert resp.headers["content-type"].startswith("text/html")
            if not shown:
                assert "has role viewer; this needs operator" in html.unescape(resp.text)


def test_operators_list_vaults_without_their_credentials(
    console: Console, declared: str, token_dir: Path, kv: KeyVaultServer
) -> None:
    with console_client(console, "operator") as operator:
        for path in ("/vaults", f"/vaults?edit={declared}"):
            page = html.unescape(operator.get(path).text)
            listed = row(page, declared)
            for shown in ("127.0.0.1", "bearer-token", "*"):  # URL, auth, task secrets
                assert shown in listed
            assert str(token_dir) not in page  # neither the token file…
            assert str(Path(kv.cert_path).resolve()) not in page  # …nor the CA bundle
            assert "Used by" not in page
            for control in ("Save vault", "Test connectivity", "Remove"):
                assert control not in page, (path, control)


def test_admins_see_credentials_and_users(
    console: Console, declared: str, token_dir: Path, batch: BatchClient, admin: httpx.Client
) -> None:
    listed = row(admin.get("/vaults").text, declared)
    assert f"file:{token_dir}/{declared}.token" in listed
    assert "Test connectivity" in listed
    assert "Remove" in listed
    assert "not used" in listed
    template = make_template(batch, "/bin/true", prefix="vaultuse")
    job = _import(console, template)
    _secret_param(console, job)
    task_service.create_task(
        console.services, "uses-kvh", job, {"TOKEN": f"vault://{declared}/x"}, writer=Writer.HOST
    )
    try:
        listed = row(admin.get("/vaults").text, declared)
        assert "task uses-kvh (parameter TOKEN)" in listed
    finally:
        console.services.store.remove_task("uses-kvh")


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("action", ["add", "replace", "test", "remove"])
def test_only_admins_change_or_test_vaults(
    console: Console, kv: KeyVaultServer, token_dir: Path, declared: str, role: str, action: str
) -> None:
    before = console.services.store.get_vault(declared)
    kv.control.clear_requests()
    posts = {
        "add": ("/vaults", vault_form(kv, token_dir, "other")),
        "replace": (
            "/vaults",
            vault_form(kv, token_dir, declared, task_secrets="", replace="1"),
        ),
        "test": (f"/vaults/{declared}/test", {}),
        "remove": (f"/vaults/{declared}/delete", {}),
    }
    url, form = posts[action]
    with console_client(console, role) as client:
        resp = client.post(url, data=form)
    assert resp.status_code == 403, resp.text[:500]
    assert f"has role {role}; this needs admin" in html.unescape(resp.text)
    assert "other" not in [v.name for v in console.services.store.list_vaults()]
    assert console.services.store.get_vault(declared) == before
    assert kv.control.count() == 0  # no connectivity test ran either


# -- what admins do ----------------------------------------------------------------------


def test_an_admin_adds_tests_replaces_and_removes_a_vault(
    console: Console, kv: KeyVaultServer, token_dir: Path, batch: BatchClient, admin: httpx.Client
) -> None:
    store = console.services.store
    page = flash(admin, admin.post("/vaults", data=vault_form(kv, token_dir, "kva")))
    assert "Secret Vault kva saved" in page
    vault = store.get_vault("kva")
    assert vault.url == kv.url
    assert vault.task_secrets == ("*",)
    assert str(vault.auth.secret) == f"file:{token_dir}/kva.token"
    assert vault.ca_bundle == str(Path(kv.cert_path).resolve())

    # Test connectivity: each check's sentence, and not one secret value read.
    kv.control.clear_requests()
    resp = admin.post("/vaults/kva/test")
    assert resp.status_code == 200, resp.text[:1000]
    checks = row(resp.text, "kva")
    assert "ok credential: bearer-token credential built" in checks
    assert f"ok reach: {kv.url} answered over TLS" in checks
    assert "ok list secret names: may list secret names" in checks
    assert "Vault kva is reachable and its credential works." in checks
    assert kv.control.count("GetSecret") == 0
    assert kv.control.count("ListSecrets", status=200) == 1
    assert kv.tokens["secrets-user"] not in resp.text

    # The same name again: refused unless replacing; replacing narrows its task secrets.
    resp = admin.post("/vaults", data=vault_form(kv, token_dir, "kva", task_secrets="etl-*"))
    assert resp.status_code == 409
    assert "a Secret Vault named 'kva' already exists" in alert(resp)
    assert store.get_vault("kva").task_secrets == ("*",)
    form = vault_form(kv, token_dir, "kva", task_secrets="etl-*, web-*  batch-?", replace="1")
    assert "Secret Vault kva saved" in flash(admin, admin.post("/vaults", data=form))
    assert store.get_vault("kva").task_secrets == ("etl-*", "web-*", "batch-?")

    # The edit link fills the form with the vault's settings, to replace them.
    edit = html.unescape(admin.get("/vaults?edit=kva").text)
    assert 'value="etl-*, web-*, batch-?"' in edit
    assert f'value="file:{token_dir}/kva.token"' in edit
    assert re.search(r'name="replace" value="1" checked', edit)

    # Removal is refused while a task refers to it (the page names the task)…
    job = _import(console, make_template(batch, "/bin/true", prefix="vaultrm"))
    _secret_param(console, job)
    task_service.create_task(
        console.services, "uses-kva", job, {"TOKEN": "vault://kva/etl-x"}, writer=Writer.HOST
    )
    resp = admin.post("/vaults/kva/delete")
    assert resp.status_code == 409
    assert alert(resp) == (
        "Secret Vault kva is still referred to by task uses-kva (parameter TOKEN); point them "
        "at another vault (or wait for the runs to end) first."
    )
    assert store.get_vault("kva").name == "kva"
    # …and done once nothing does.
    store.remove_task("uses-kva")
    assert "Secret Vault kva removed" in flash(admin, admin.post("/vaults/kva/delete"))
    with pytest.raises(NotFoundError):
        store.get_vault("kva")
    resp = admin.post("/vaults/kva/delete")
    assert resp.status_code == 404
    assert "Secret Vault 'kva' does not exist" in alert(resp)


def test_a_failing_vault_shows_which_check_failed(
    console: Console, kv: KeyVaultServer, token_dir: Path, admin: httpx.Client
) -> None:
    bad = token_dir / "kvbad.token"
    form = vault_form(kv, token_dir, "kvbad", credential=f"file:{bad}")
    assert admin.post("/vaults", data=form).status_code == 303
    bad.write_text("not-a-token-the-vault-knows")  # written after vault_form made the good one
    try:
        resp = admin.post("/vaults/kvbad/test")
        assert resp.status_code == 200
        checks = row(resp.text, "kvbad")
        assert "fail list secret names" in checks
        assert "(401)" in checks
        assert "Vault kvbad has problems: see the failed checks above." in checks
        assert "not-a-token" not in resp.text
    finally:
        vault_service.remove_vault(console.services, "kvbad")


@pytest.mark.parametrize(
    ("change", "status", "sentence"),
    [
        ({"url": "http://kv.vault.azure.net/"}, 422, "Key Vault needs https"),
        ({"url": "https://kv.vault.azure.net/secrets"}, 422, "must have no path"),
        ({"name": "bad name"}, 422, "vault name 'bad name' is not valid"),
        ({"name": "x" * 300}, 422, "is not valid: use 1-"),
        ({"name": "x" * 3000}, 422, "name is 3000 characters long"),
        ({"name": "nul\x00"}, 422, "contains a NUL character"),
        ({"auth": "shared-key"}, 422, "a Secret Vault authenticates with Entra ID"),
        ({"auth": "magic"}, 422, "authentication 'magic' is not valid: use one of"),
        ({"credential": ""}, 422, "this authentication mode needs --token"),
        ({"auth": "managed-identity"}, 422, "managed-identity takes no credential reference"),
        ({"credential": "sup3r-literal"}, 422, "never the value itself"),
        ({"credential": "vault://vnew/x"}, 422, "cannot be kept in vault vnew itself"),
        ({"credential": "vault://nowhere/x"}, 422, "there is no Secret Vault named 'nowhere'"),
        ({"credential": "env:HOME"}, 422, "host_references"),
        ({"credential": "file:/etc/shadow"}, 422, "host_references"),
        ({"ca_bundle": "/etc/hostname"}, 422, "host_references"),
        ({"certificate": "/etc/hostname", "auth": "certificate"}, 422, "needs --tenant-id"),
        ({"task_secrets": "etl/*"}, 422, "task secret pattern 'etl/*' is not valid"),
        ({"task_secrets": " ".join(f"s{i}" for i in range(101))}, 422, "at most 100"),
    ],
)
def test_the_add_form_refuses_bad_input_and_creates_nothing(
    console: Console,
    kv: KeyVaultServer,
    token_dir: Path,
    admin: httpx.Client,
    change: dict[str, str],
    status: int,
    sentence: str,
) -> None:
    form = {**vault_form(kv, token_dir, "vnew"), **change}
    resp = admin.post("/vaults", data=form)
    assert resp.status_code == status, resp.text[:1000]
    assert resp.headers["content-type"].startswith("text/html")
    assert sentence in alert(resp)
    assert "vnew" not in [v.name for v in console.services.store.list_vaults()]
    page = html.unescape(resp.text)
    assert 'value="https://' in page or "url" in change  # the form keeps what was typed
    assert "sup3r-literal" not in page  # a pasted secret is not echoed back


def test_vault_forms_without_the_csrf_token_change_nothing(
    console: Console, kv: KeyVaultServer, token_dir: Path, declared: str
) -> None:
    with console_client(console, "admin") as admin:
        admin.csrf = "forged"  # signed in, but the token is not the session's
        kv.control.clear_requests()
        for url, form in (
            ("/vaults", vault_form(kv, token_dir, "forged")),
            (f"/vaults/{declared}/test", {}),
            (f"/vaults/{declared}/delete", {}),
        ):
            resp = admin.post(url, data=form)
            assert resp.status_code == 403, url
    names = [v.name for v in console.services.store.list_vaults()]
    assert "forged" not in names
    assert declared in names
    assert kv.control.count() == 0


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ("service-principal", "client_secret_ref"),
        ("certificate", "certificate_password_ref"),
        ("bearer-token", "token_ref"),
    ],
)
def test_the_credential_goes_to_the_modes_reference(auth: str, field: str) -> None:
    data = web.vault_input({"name": "v", "auth": auth, "credential": " vault://o/s "})
    assert getattr(data, field) == "vault://o/s"
    others = {"client_secret_ref", "certificate_password_ref", "token_ref"} - {field}
    assert all(getattr(data, other) is None for other in others)


@pytest.mark.parametrize(
    ("text", "patterns"),
    [("*", ("*",)), ("etl-*, web-*  batch-?\n", ("etl-*", "web-*", "batch-?")), ("", ())],
)
def test_task_secrets_are_split_on_commas_and_blanks(text: str, patterns: tuple[str, ...]) -> None:
    assert web.vault_input({"task_secrets": text}).task_secrets == patterns


# -- in the browser ------------------------------------------------------------------------

SECRET_COMMAND = (
    '/bin/sh -c \'case "$TOKEN" in web-secret-*) echo "got the secret";; '
    '*) echo "no secret" >&2; exit 3;; esac\''
)


def test_vaults_in_the_browser(
    context: BrowserContext,
    page: Page,
    console: Console,
    kv: KeyVaultServer,
    token_dir: Path,
    batch: BatchClient,
) -> None:
    kv.set_secret("web-token", "web-secret-" + "9" * 20)
    token = token_file(kv, token_dir, "kvweb")
    job = _import(console, make_template(batch, SECRET_COMMAND, prefix="webvault"))
    context.add_init_script(CSP_PROBE)
    complaints: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if re.search(r"Content Security Policy|Refused to|Permissions-Policy", msg.text):
            complaints.append(msg.text)

    page.on("console", on_console)
    csp: list[str] = []

    # An admin adds the local Key Vault, then tests its connectivity.
    signed_in(context, console, "admin")
    page.goto(console.url + "/runs")
    page.get_by_role("link", name=re.compile("^Vaults")).click()
    expect(page).to_have_url(console.url + "/vaults")
    expect(page.get_by_text("No Secret Vaults yet")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("kvweb")
    page.get_by_label("Vault URL").fill(kv.url)
    page.get_by_label("Authentication").select_option("bearer-token")
    page.get_by_label("Credential reference").fill(f"file:{token}")
    page.get_by_label("CA bundle").fill(str(kv.cert_path))
    page.get_by_label("Task secrets").fill("web-*")
    page.get_by_role("button", name="Save vault").click()
    expect(page).to_have_url(console.url + "/vaults")
    expect(page.get_by_role("status")).to_contain_text("Secret Vault kvweb saved")
    csp += csp_events(page)
    vault_row = page.locator('tr[data-vault="kvweb"]')
    expect(vault_row).to_contain_text(f"file:{token}")
    expect(vault_row).to_contain_text("web-*")
    vault_row.get_by_role("button", name="Test connectivity").click()
    vault_row = page.locator('tr[data-vault="kvweb"]')
    expect(vault_row.locator("ul.checks li .ok")).to_have_count(3)
    expect(vault_row.locator("ul.checks li .bad")).to_have_count(0)
    expect(vault_row).to_contain_text("Vault kvweb is reachable and its credential works.")
    csp += csp_events(page)
    screenshot(page, "11-vaults")

    # An operator makes TOKEN a Secret, creates a task reading the vault, and runs it.
    signed_in(context, console, "operator")
    page.goto(f"{console.url}/jobs/{job}")
    page.locator("#np-name").fill("TOKEN")
    page.locator("#np-type").select_option("Secret")
    page.get_by_role("button", name="Add parameter").click()
    expect(page.get_by_role("status")).to_contain_text("Parameter TOKEN of job")
    page.get_by_role("link", name="New task for this job").click()
    page.get_by_label("Task name").fill("web-vault")
    field = page.get_by_label("TOKEN")
    field.fill("env:HOME")  # checked as typed: the console never takes env:/file:
    expect(field).to_have_attribute("aria-invalid", "true")
    message = page.locator("#" + str(field.get_attribute("aria-describedby")).split()[0])
    expect(message).to_contain_text("env: and file: references are refused")
    field.fill("vault://kvweb/web-token")
    expect(field).to_have_attribute("aria-invalid", "false")
    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(console.url + "/tasks/web-vault")
    expect(page.get_by_label("TOKEN")).to_have_value("vault://kvweb/web-token")
    page.get_by_role("button", name="Run once").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+$"))
    expect(page.locator("h1 [data-run-field=state]")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator('pre[data-log="stdout.txt"]')).to_contain_text("got the secret")
    expect(page.locator("[data-params-sent]")).to_contain_text("***")
    expect(page.locator("[data-params-sent]")).not_to_contain_text("web-secret-")
    screenshot(page, "12-vault-run")

    # The admin cannot remove the vault while the task refers to it: the page says why.
    signed_in(context, console, "admin")
    page.goto(console.url + "/vaults")
    expect(page.locator('tr[data-vault="kvweb"]')).to_contain_text(
        "task web-vault (parameter TOKEN)"
    )
    page.locator('tr[data-vault="kvweb"]').get_by_role("button", name="Remove").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Secret Vault kvweb is still referred to by task web-vault (parameter TOKEN)"
    )
    assert console.services.store.get_vault("kvweb").name == "kvweb"
    csp += csp_events(page)
    screenshot(page, "13-vault-remove-refused")

    assert csp == []
    assert complaints == []


# -- helpers -------------------------------------------------------------------------------


def _import(console: Console, template: str) -> str:
    with console.api("operator") as api:
        r = api.post("/api/jobs/import", json={"platform": "local", "external_ids": [template]})
        assert r.status_code == 201, r.text
        name: str = r.json()[0]["name"]
    return name


def _secret_param(console: Console, job: str) -> None:
    with console.api("operator") as api:
        r = api.put(f"/api/jobs/{job}/parameters/TOKEN", json={"type": "Secret"})
        assert r.status_code == 200, r.text
