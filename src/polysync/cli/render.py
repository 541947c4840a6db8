"""All terminal rendering of the CLI (rich tables and panels, or JSON)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape as escape  # re-exported for the CLI modules
from rich.table import Table

from polysync.domain.models import Job, Platform, RunState, SecretVault, Task, TaskRun
from polysync.jobtypes.base import ConnectivityReport, DiscoveredJob
from polysync.services import views
from polysync.vaults.checks import VaultCheck

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

STATE_STYLE = {
    RunState.QUEUED: "dim",
    RunState.STARTING: "yellow",
    RunState.RUNNING: "cyan",
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "magenta",
}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def state_text(state: RunState) -> str:
    return f"[{STATE_STYLE[state]}]{state.value}[/]"


def _ts(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def error(message: str) -> None:
    err_console.print(f"[red]error:[/] {escape(message)}")


def notice(message: str) -> None:
    err_console.print(f"[yellow]note:[/] {escape(message)}")


def info(message: str) -> None:
    console.print(escape(message))


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# -- platforms ---------------------------------------------------------------------------


def platforms(items: Sequence[Platform]) -> None:
    if not items:
        info("No platforms yet: add one with `polysync platform add NAME ...`.")
        return
    table = _table("NAME", "ACCOUNT", "URL", "AUTH", "SECRET FROM")
    for p in items:
        table.add_row(
            p.name,
            p.account_name,
            p.account_url,
            p.auth.mode.value,
            str(p.auth.secret) if p.auth.secret else "-",
        )
    console.print(table)


def platform(p: Platform) -> None:
    view = views.platform_view(p)
    rows = [
        ("Name", p.name),
        ("Provider", "Azure Batch"),
        ("Batch Account URL", p.account_url),
        ("Batch Account Name", p.account_name),
        ("Subscription Id", p.subscription_id),
        ("Resource Group Name", p.resource_group),
        ("Authentication", p.auth.mode.value),
    ]
    auth = view["auth"]
    for key, label in (
        ("secret_ref", "Secret read from"),
        ("tenant_id", "Tenant Id"),
        ("client_id", "Client Id"),
        ("certificate_path", "Certificate"),
    ):
        if auth[key]:
            rows.append((label, str(auth[key])))
    if not p.verify_tls:
        rows.append(("TLS verification", "off"))
    _kv(rows)


def connectivity(name: str, report: ConnectivityReport) -> None:
    for check, ok, detail in report.checks:
        mark = "[green]ok[/]  " if ok else "[red]fail[/]"
        console.print(f"{mark} {escape(check)}: {escape(detail)}")
    if report.ok:
        console.print(f"[green]Platform {escape(name)} is reachable and the credential works.[/]")
    else:
        console.print(f"[red]Platform {escape(name)} has problems: see the failed checks above.[/]")


# -- vaults ------------------------------------------------------------------------------


def vaults(items: Sequence[SecretVault]) -> None:
    if not items:
        info("No Secret Vaults yet: declare one with `polysync vault add NAME --url ...`.")
        return
    table = _table("NAME", "URL", "AUTH", "TASK SECRETS")
    for v in items:
        table.add_row(v.name, v.url, v.auth.mode.value, ", ".join(v.task_secrets) or "(none)")
    console.print(table)


def vault(v: SecretVault) -> None:
    view = views.vault_view(v)
    rows = [
        ("Name", v.name),
        ("Provider", "Azure Key Vault"),
        ("Vault URL", v.url),
        ("Authentication", v.auth.mode.value),
    ]
    auth = view["auth"]
    for key, label in (
        ("secret_ref", "Credential read from"),
        ("tenant_id", "Tenant Id"),
        ("client_id", "Client Id"),
        ("certificate_path", "Certificate"),
    ):
        if auth[key]:
            rows.append((label, str(auth[key])))
    if v.ca_bundle:
        rows.append(("CA bundle", v.ca_bundle))
    if not v.verify_tls:
        rows.append(("TLS verification", "off"))
    rows.append(("Task secrets", ", ".join(v.task_secrets) or "(none: platforms only)"))
    _kv(rows)


def vault_checks(name: str, checks: Sequence[VaultCheck]) -> bool:
    for check in checks:
        mark = "[green]ok[/]  " if check.ok else "[red]fail[/]"
        console.print(f"{mark} {escape(check.name)}: {escape(check.detail)}")
    ok = all(c.ok for c in checks)
    if ok:
        console.print(f"[green]Vault {escape(name)} is reachable and may list secret names.[/]")
    else:
        console.print(f"[red]Vault {escape(name)} has problems: see the failed check above.[/]")
    return ok


def discovered(items: Iterable[DiscoveredJob]) -> int:
    table = _table("ID", "DISPLAY NAME", "STATE")
    count = 0
    for d in items:
        table.add_row(d.id, d.display_name or "-", d.state)
        count += 1
    if count:
        console.print(table)
    console.print(f"{count} template job(s).")
    return count


# -- jobs --------------------------------------------------------------------------------


def jobs(items: Sequence[Job]) -> None:
    if not items:
        info("No jobs yet: import a template with `polysync job import --platform P JOB_ID`.")
        return
    table = _table("NAME", "PLATFORM", "JOB TYPE", "EXTERNAL ID", "PARAMS", "WARNINGS")
    for j in items:
        table.add_row(
            j.name,
            j.platform,
            j.job_type,
            j.external_id,
            str(len(j.parameters)),
            str(len(j.warnings)) if j.warnings else "-",
        )
    console.print(table)


def job(j: Job) -> None:
    _kv(
        [
            ("Name", j.name),
            ("Platform", j.platform),
            ("Job Type", j.job_type),
            ("External Id", j.external_id),
            ("Description", j.description or "-"),
            ("Tags", ", ".join(j.tags) or "-"),
        ]
    )
    console.print()
    if j.parameters:
        table = _table("PARAMETER", "TYPE", "DIRECTION", "DEFAULT", "FROM", "EDITED")
        for p in j.parameters:
            table.add_row(
                p.name,
                p.data_type.value,
                p.direction.value + ("  (not sent)" if p.direction.value == "Output" else ""),
                "-" if p.default is None else p.default,
                p.origin.value,
                "yes" if p.user_edited else "",
            )
        console.print(table)
    else:
        info("No parameters.")
    o = j.overrides
    overrides = [
        (label, str(value))
        for label, value in (
            ("command line", o.command_line),
            ("image", o.image),
            ("container run options", o.container_run_options),
            ("task maxWallClockTime (s)", o.max_wall_clock_s),
            ("task retention (s)", o.retention_s),
            ("max task retries", o.max_task_retries),
        )
        if value is not None
    ]
    console.print()
    if overrides:
        console.print("[bold]Overrides[/]")
        _kv(overrides)
    if j.cloned_defaults:
        console.print("[bold]Cloned from the template at each run[/]")
        table = _table("FIELD", "VALUE", "FROM")
        for c in j.cloned_defaults:
            table.add_row(c.field, c.value, c.source)
        console.print(table)
    for w in j.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


# -- tasks -------------------------------------------------------------------------------


def tasks(items: Sequence[Task]) -> None:
    if not items:
        info("No tasks yet: create one with `polysync task create NAME --job JOB`.")
        return
    table = _table("NAME", "JOB", "PARAMS", "TIMEOUT", "RETRY", "PRIORITY")
    for t in items:
        table.add_row(
            t.name,
            t.job,
            ", ".join(f"{k}={v}" for k, v in t.params.items()) or "-",
            f"{t.execution_timeout_s}s" if t.execution_timeout_s else "-",
            f"{t.retry_policy.max_attempts}x {t.retry_policy.backoff.value}"
            if t.retry_policy.enabled
            else "off",
            str(t.priority),
        )
    console.print(table)


def task(t: Task) -> None:
    r = t.retry_policy
    _kv(
        [
            ("Name", t.name),
            ("Job", t.job),
            ("Description", t.description or "-"),
            ("Execution timeout", f"{t.execution_timeout_s}s" if t.execution_timeout_s else "none"),
            (
                "Retry policy",
                f"{r.max_attempts} attempts, {r.backoff.value}, initial {r.initial_delay_s:g}s, "
                f"max {r.max_delay_s:g}s"
                if r.enabled
                else "off",
            ),
            ("Priority", str(t.priority)),
        ]
    )
    if t.params:
        table = _table("PARAMETER", "VALUE")
        for k, v in t.params.items():
            table.add_row(k, v)
        console.print(table)


# -- runs --------------------------------------------------------------------------------


def runs(items: Sequence[TaskRun], total: int | None = None) -> None:
    if not items:
        info("No runs match.")
        return
    table = _table("ID", "TASK", "STATE", "RUN ID", "EXIT", "STARTED", "ENDED")
    for r in items:
        table.add_row(
            str(r.id),
            r.task,
            state_text(r.state),
            r.run_id or "-",
            "-" if r.exit_code is None else str(r.exit_code),
            _ts(r.started_at),
            _ts(r.ended_at),
        )
    console.print(table)
    if total is not None and total > len(items):
        info(f"{len(items)} of {total} runs shown; use --limit/--offset for more.")


def run_header(run: TaskRun) -> None:
    console.print(f"Run {run.id} of task [bold]{escape(run.task)}[/] (job {escape(run.job)})")
    console.print(f"RunId    {escape(run.run_id or '-')}")
    console.print(f"Monitor  {escape(run.monitor_url or '-')}")


def run(run: TaskRun) -> None:
    _kv(
        [
            ("Run", str(run.id)),
            ("Task", run.task),
            ("Job", run.job),
            ("Platform", run.platform),
            ("State", state_text(run.state)),
            ("Attempt", str(run.attempt)),
            ("Trigger", run.trigger.value),
            ("RunId", run.run_id or "-"),
            ("Pool", run.batch_pool_id or "-"),
            ("Monitor link", run.monitor_url or "-"),
            ("Exit code", "-" if run.exit_code is None else str(run.exit_code)),
            ("Started", _ts(run.started_at)),
            ("Ended", _ts(run.ended_at)),
        ],
        markup_values={"State"},
    )
    if run.params_sent:
        console.print("[bold]Parameters sent[/] (environmentSettings)")
        _kv(sorted(run.params_sent.items()))
    if run.waiting_reason and run.state is RunState.QUEUED:
        console.print(f"[yellow]waiting:[/] {escape(run.waiting_reason)}")
    if run.diagnosis:
        console.print(f"[yellow]diagnosis:[/] {escape(run.diagnosis)}")
    if run.failure is not None:
        f = run.failure
        console.print(f"[red bold]Failure[/] {escape(f.category)} / {escape(f.code)}")
        console.print(f"  {escape(f.message)}")
        for k, v in f.details:
            console.print(f"  {escape(k)}: {escape(v)}")
        if f.stderr_tail:
            console.print("[bold]stderr.txt (tail)[/]")
            console.print(escape(f.stderr_tail.rstrip("\n")))
    console.print("[bold]History[/]")
    table = _table("AT", "FROM", "TO", "REASON")
    for h in run.history:
        table.add_row(
            _ts(h.at),
            h.from_state.value if h.from_state else "-",
            state_text(h.to_state),
            h.reason,
        )
    console.print(table)


def _kv(rows: Sequence[tuple[str, str]], markup_values: set[str] | None = None) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        shown = value if markup_values and key in markup_values else escape(value)
        console.print(f"[bold]{escape(key.ljust(width))}[/]  {shown}")
