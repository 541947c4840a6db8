"""`polysync server` (REST API + web console + worker) and `polysync token …`."""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Annotated

import typer

from polysync.api import tokens
from polysync.cli import render
from polysync.cli.runtime import Session, configure_logging, session, settings
from polysync.domain import limits
from polysync.domain.roles import Role
from polysync.errors import InputError, NotFoundError
from polysync.services import code_access

server_app = typer.Typer(
    help="The HTTP server: REST API under /api, the web console and the worker.",
    invoke_without_command=True,
)
token_app = typer.Typer(help="API tokens for `polysync server`.", no_args_is_help=True)


class _Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@server_app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback unless you mean otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8080,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Do not run the worker here (run `polysync worker`)."),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Start the local emulator with the demo platform, template and task, and "
            "create an admin token (printed once).",
        ),
    ] = False,
    emulator_port: Annotated[
        int,
        typer.Option(
            help="--demo: loopback port of the emulator (0-65535); 0 picks a free one. An emulator "
            "already listening there is used if it accepts the key in "
            "{home}/local-emulator.key; anything else there is an error.",
        ),
    ] = 8045,
) -> None:
    """Serve the REST API (/api, docs at /docs) and the web console on one port."""
    if ctx.invoked_subcommand is not None:
        return
    limits.PORT.check(port, "--port")
    limits.PORT.check(emulator_port, "--emulator-port")
    import uvicorn

    from polysync.api.app import create_app

    if not _is_loopback(host):
        render.notice(
            f"listening on {host}: the API is reachable from other machines over plain "
            "http; put it behind a TLS proxy."
        )
    s = settings()
    configure_logging(os.environ.get("POLYSYNC_LOG_LEVEL", s.log_level))
    role = code_access.code_role(s)  # a typo in config.toml stops the start, not a request
    if role is not Role.ADMIN:
        render.notice(
            f"[server] code_overrides_role = {role.value!r}: {role.value}s may change the code "
            "runs execute (command line, image, run options, loader/interpreter variables)."
        )
    with contextlib.ExitStack() as stack:
        if demo:
            stack.enter_context(_demo_setup(emulator_port))
        _announce_tokens(host, port, create_admin=demo)
        app = create_app(s, start_worker=not no_worker)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # keep our logging set-up (secrets redacted)
            timeout_graceful_shutdown=3,  # event streams never end by themselves
        )
        uvicorn.Server(config).run()


@contextlib.contextmanager
def _demo_setup(emulator_port: int) -> Iterator[None]:
    """The `polysync demo` set-up without its runs: emulator, platform, template, task.

    The emulator gets a random key per start (see `polysync.cli.demo`): the server may
    outlive a terminal session, and the published development key would let any local
    process, or a web page that rebinds a name to 127.0.0.1, run commands as this user.
    """
    from batch_emulator import DEFAULT_ACCOUNT
    from polysync.cli import demo
    from polysync.domain.models import AuthMode
    from polysync.domain.secrets import Writer
    from polysync.jobtypes.azure_batch.demo_fixtures import ensure_demo_template
    from polysync.jobtypes.azure_batch.jobtype import BatchJobType
    from polysync.services import jobs as job_service
    from polysync.services import platforms as platform_service
    from polysync.services import tasks as task_service

    home = settings().home
    home.mkdir(parents=True, exist_ok=True)
    with demo._emulator(emulator_port, home, port_flag="--emulator-port") as endpoint:
        with session() as s:
            svc = s.services
            platform = platform_service.add_platform(
                svc,
                platform_service.PlatformInput(
                    name=demo.PLATFORM,
                    account_url=endpoint,
                    account_name=DEFAULT_ACCOUNT,
                    subscription_id=demo.SUBSCRIPTION,
                    resource_group=demo.RESOURCE_GROUP,
                    auth=AuthMode.SHARED_KEY,
                    key_file=str(demo.key_file(home)),
                ),
                writer=Writer.HOST,
                replace_existing=True,
            )
            assert isinstance(svc.jobtype, BatchJobType)
            s.run(
                ensure_demo_template(
                    svc.jobtype,
                    platform,
                    pool_id=demo.POOL_ID,
                    template_id=demo.TEMPLATE_ID,
                    command_line=demo.TEMPLATE_COMMAND,
                    environment=demo.TEMPLATE_ENV,
                )
            )
            s.run(job_service.import_jobs(svc, demo.PLATFORM, [demo.TEMPLATE_ID]))
            for name in ("SLEEP_S", "EXIT_CODE"):
                job_service.set_parameter(
                    svc,
                    demo.TEMPLATE_ID,
                    job_service.ParamEdit(name, data_type="Int"),
                    writer=Writer.HOST,
                )
            try:
                svc.store.get_task(demo.TASK)
            except NotFoundError:
                task_service.create_task(
                    svc, demo.TASK, demo.TEMPLATE_ID, {"NAME": "Polysync"}, writer=Writer.HOST
                )
        render.info(
            f"Demo: platform {demo.PLATFORM} on the emulator at {endpoint}, job "
            f"{demo.TEMPLATE_ID}, task {demo.TASK}."
        )
        yield


def _announce_tokens(host: str, port: int, *, create_admin: bool) -> None:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 — display only
    url = f"http://{shown}:{port}/"
    with session() as s:
        if create_admin and not tokens.has_admin(s.services):
            name = _free_name(s, "admin")
            _, token = tokens.create_token(s.services, name, tokens.Role.ADMIN)
            render.console.print(
                f"Created admin token {name!r} (shown once, keep it):\n  {token}\n"
                f"Sign in at {url} with it, or call the API with "
                f"`curl -H 'Authorization: Bearer {token}' {url}api/runs`."
            )
        elif not s.services.store.list_api_tokens():
            render.notice(
                "no API token exists yet: create one with "
                "`polysync token create --name NAME --role admin`."
            )
    render.info(f"Serving {url} (API docs at {url}docs). Stop with Ctrl-C.")


def _free_name(s: Session, base: str) -> str:
    taken = {t.name.lower() for t in s.services.store.list_api_tokens()}
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}-{n}"
    return name


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="A name for the token, e.g. ci-bot.")],
    role: Annotated[
        str, typer.Option("--role", help="viewer (read), operator (run, cancel), admin.")
    ] = "viewer",
    output: Annotated[_Output, typer.Option("--output", "-o")] = _Output.TABLE,
) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    chosen = tokens.parse_role(role)
    with session() as s:
        stored, token = tokens.create_token(s.services, name, chosen)
    if output is _Output.JSON:
        render.print_json({**tokens.token_view(stored), "token": token})
        return
    render.console.print(token, soft_wrap=True)
    render.err_console.print(
        f"Token {stored.name!r} ({stored.role}) created. It is shown only now: store it safely."
    )


@token_app.command("list")
def token_list(
    output: Annotated[_Output, typer.Option("--output", "-o")] = _Output.TABLE,
) -> None:
    """List API tokens (names and roles; tokens are never shown again)."""
    with session() as s:
        items = s.services.store.list_api_tokens()
    if output is _Output.JSON:
        render.print_json([tokens.token_view(t) for t in items])
        return
    if not items:
        render.info("No API tokens. Create one with `polysync token create --name NAME`.")
        return
    from rich.table import Table

    table = Table("Name", "Role", "Created")
    for t in items:
        table.add_row(render.escape(t.name), t.role, t.created_at.strftime("%Y-%m-%d %H:%M"))
    render.console.print(table)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Revoke an API token: requests carrying it are refused (401) from now on."""
    if not name.strip():
        raise InputError("give the name of the token to revoke (see `polysync token list`).")
    with session() as s:
        tokens.revoke_token(s.services, name)
    render.info(f"Token {name} revoked.")
