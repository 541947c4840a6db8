"""`polysync vault …`: Secret Vaults that `vault://VAULT/SECRET` references resolve through."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from polysync.cli import options, render
from polysync.cli.runtime import session
from polysync.domain.models import AuthMode
from polysync.domain.secrets import Writer
from polysync.services import vaults as vault_service
from polysync.services import views

vault_app = typer.Typer(
    help="Secret Vaults (Azure Key Vault): where vault://VAULT/SECRET references are read.",
    no_args_is_help=True,
)


class _Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOpt = Annotated[
    _Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]
_REF = "a reference: vault://VAULT/SECRET (another vault), env:NAME or file:PATH"


@vault_app.command("add")
def vault_add(
    name: Annotated[str, typer.Argument(help="A name for this vault, e.g. prod-kv.")],
    url: Annotated[str, typer.Option(help="Vault URL, https://<vault-name>.vault.azure.net/.")],
    auth: Annotated[
        AuthMode, typer.Option(help="How Polysync authenticates to the vault (not shared-key).")
    ] = AuthMode.MANAGED_IDENTITY,
    tenant_id: options.TenantId = None,
    client_id: options.ClientId = None,
    client_secret: options.ClientSecret = None,
    client_secret_env: options.ClientSecretEnv = None,
    client_secret_file: options.ClientSecretFile = None,
    certificate_path: options.CertificatePath = None,
    certificate_password: options.CertificatePassword = None,
    certificate_password_env: options.CertificatePasswordEnv = None,
    certificate_password_file: options.CertificatePasswordFile = None,
    token: options.Token = None,
    token_env: options.TokenEnv = None,
    token_file: options.TokenFile = None,
    task_secrets: Annotated[
        list[str] | None,
        typer.Option(
            "--task-secrets",
            help="Secret names (globs) Task parameters may read, e.g. etl-* (repeatable; "
            "default: all but platform and vault credentials).",
        ),
    ] = None,
    no_task_secrets: Annotated[
        bool,
        typer.Option("--no-task-secrets", help="Task parameters may read none of its secrets."),
    ] = False,
    ca_bundle: Annotated[
        str | None, typer.Option(help="PEM file of CAs to trust (e.g. the local Key Vault's).")
    ] = None,
    insecure: options.Insecure = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Update the vault if the name exists.")
    ] = False,
    output: OutputOpt = _Output.TABLE,
) -> None:
    """Declare a Secret Vault. Its own credential is a reference too, never a flag value."""
    if no_task_secrets and task_secrets:
        raise typer.BadParameter("give --task-secrets or --no-task-secrets, not both.")
    chosen = () if no_task_secrets else tuple(task_secrets or ("*",))
    data = vault_service.VaultInput(
        name=name,
        url=url,
        auth=auth,
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret_ref=client_secret,
        client_secret_env=client_secret_env,
        client_secret_file=client_secret_file,
        certificate_path=certificate_path,
        certificate_password_ref=certificate_password,
        certificate_password_env=certificate_password_env,
        certificate_password_file=certificate_password_file,
        token_ref=token,
        token_env=token_env,
        token_file=token_file,
        task_secrets=chosen,
        ca_bundle=ca_bundle,
        verify_tls=not insecure,
    )
    with session() as s:
        vault = vault_service.add_vault(
            s.services, data, writer=Writer.HOST, replace_existing=replace
        )
    if output is _Output.JSON:
        render.print_json(views.vault_view(vault))
    else:
        render.info(
            f"Secret Vault {vault.name} saved. Check it with `polysync vault test {vault.name}`, "
            f"then refer to its secrets as vault://{vault.name}/SECRET."
        )


@vault_app.command("list")
def vault_list(output: OutputOpt = _Output.TABLE) -> None:
    """List Secret Vaults."""
    with session() as s:
        items = s.services.store.list_vaults()
    if output is _Output.JSON:
        render.print_json([views.vault_view(v) for v in items])
    else:
        render.vaults(items)


@vault_app.command("show")
def vault_show(name: str, output: OutputOpt = _Output.TABLE) -> None:
    """Show one vault (its credential only as the reference it is read from)."""
    with session() as s:
        vault = s.services.store.get_vault(name)
        users = s.services.store.vault_users(name)
    if output is _Output.JSON:
        render.print_json({**views.vault_view(vault), "used_by": users})
        return
    render.vault(vault)
    render.info("Used by: " + (", ".join(users) if users else "nothing yet"))


@vault_app.command("test")
def vault_test(name: str, output: OutputOpt = _Output.TABLE) -> None:
    """Reach the vault and list one secret name; reads no secret value. Exit 3 on a problem."""
    with session() as s:
        checks = s.run(vault_service.test_vault(s.services, name))
    ok = all(c.ok for c in checks)
    if output is _Output.JSON:
        render.print_json(
            {
                "vault": name,
                "ok": ok,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
            }
        )
    else:
        render.vault_checks(name, checks)
    if not ok:
        raise typer.Exit(3)


@vault_app.command("remove")
def vault_remove(name: str) -> None:
    """Remove a vault (refused while a platform, vault, job, task or run refers to it)."""
    with session() as s:
        vault_service.remove_vault(s.services, name)
    render.info(f"Secret Vault {name} removed.")
