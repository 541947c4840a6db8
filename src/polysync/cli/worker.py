"""`polysync worker` (the run engine) and `polysync worker stats`."""

from __future__ import annotations

import asyncio
import enum
import signal
from typing import Annotated, Any

import typer
from rich.table import Table

from polysync.cli import render
from polysync.cli.runtime import session
from polysync.dispatcher.metrics import latest_snapshot, metrics_dir, serve_metrics
from polysync.dispatcher.worker import Worker, WorkerOptions, default_worker_id
from polysync.domain import limits
from polysync.domain.models import RunState


class _Output(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


worker_app = typer.Typer(
    help="The run engine: claims Queued runs, submits them and tracks them to the end.",
    invoke_without_command=True,
)


@worker_app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Claim owner name (default: host-pid).")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", help=f"Runs in flight at most ({limits.CONCURRENCY.span()})."
        ),
    ] = 10_000,
    submit_rate: Annotated[
        float,
        typer.Option(
            "--submit-rate",
            help=f"Batch create calls per second per account ({limits.SUBMIT_RATE.span()}).",
        ),
    ] = 20.0,
    sweep_interval: Annotated[
        float,
        typer.Option(
            "--sweep-interval",
            help=f"Seconds between completion sweeps ({limits.SWEEP_INTERVAL_S.span()}).",
        ),
    ] = 1.0,
    node_sweep: Annotated[
        bool,
        typer.Option(
            "--node-sweep/--no-node-sweep",
            help=(
                "Each sweep also lists the nodes of the runs' pools, which shows tasks start "
                "and succeed without a call per run; off: one GET task per run does it."
            ),
        ),
    ] = True,
    exit_when_idle: Annotated[
        bool,
        typer.Option("--exit-when-idle", help="Exit once no run is Queued, Starting or Running."),
    ] = False,
    metrics_port: Annotated[
        int, typer.Option("--metrics-port", help="Serve /metrics on 127.0.0.1 (0 = off).")
    ] = 0,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            help=f"Claim lease in seconds, renewed at 1/3 ({limits.LEASE_S.span()}).",
        ),
    ] = 30.0,
) -> None:
    """Run the engine until SIGTERM/SIGINT (graceful: in-flight runs resume on restart)."""
    if ctx.invoked_subcommand is not None:
        return
    for bound, value, flag in (
        (limits.CONCURRENCY, concurrency, "--concurrency"),
        (limits.SUBMIT_RATE, submit_rate, "--submit-rate"),
        (limits.SWEEP_INTERVAL_S, sweep_interval, "--sweep-interval"),
        (limits.PORT, metrics_port, "--metrics-port"),
        (limits.LEASE_S, lease, "--lease"),
    ):
        bound.check(value, flag)
    with session() as s:
        wid = worker_id or default_worker_id()
        options = WorkerOptions(
            worker_id=wid,
            concurrency=concurrency,
            submit_rate=submit_rate,
            sweep_interval_s=sweep_interval,
            node_sweep=node_sweep,
            lease_s=lease,
            exit_when_idle=exit_when_idle,
            metrics_path=metrics_dir(s.services.settings.home) / f"{_safe(wid)}.json",
        )
        engine = Worker(s.services, options)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, engine.stop)
            server = None
            if metrics_port:

                def render_metrics() -> str:
                    engine.refresh_run_counts()
                    return engine.metrics.prometheus()

                server = await serve_metrics(metrics_port, render_metrics)
            render.err_console.print(
                f"worker {wid}: running (submit rate {submit_rate:g}/s per account, sweep "
                f"every {sweep_interval:g} s"
                + ("" if node_sweep else ", no node sweep")
                + (f", metrics on http://127.0.0.1:{metrics_port}/metrics" if server else "")
                + "). Stop with Ctrl-C or SIGTERM."
            )
            try:
                await engine.run()
            finally:
                if server is not None:
                    server.close()
                    await server.wait_closed()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

        s.run(main())
    render.err_console.print(f"worker {wid}: stopped.")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "worker"


@worker_app.command("stats")
def stats(
    output: Annotated[
        _Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
    ] = _Output.TABLE,
) -> None:
    """Runs by state (live from the store) and the newest worker's metrics snapshot."""
    with session() as s:
        by_state = {st.value: s.services.store.count_runs(state=st) for st in RunState}
        snap = latest_snapshot(s.services.settings.home)
    data: dict[str, Any] = {"runs_by_state": by_state, "worker": snap}
    if output is _Output.JSON:
        render.print_json(data)
        return
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    table.add_column("state")
    table.add_column("runs", justify="right")
    for state, n in by_state.items():
        table.add_row(state, str(n))
    render.console.print(table)
    if snap is None:
        render.info("No worker metrics yet: start `polysync worker` (it saves them every 5 s).")
        return
    render.console.print(
        f"\n[bold]worker {render.escape(str(snap.get('worker_id')))}[/] "
        f"(snapshot {render.escape(str(snap.get('path')))})"
    )
    calls = Table(show_edge=False, header_style="bold", pad_edge=False)
    calls.add_column("Batch operation")
    calls.add_column("calls", justify="right")
    for op, n in (snap.get("calls_by_operation") or {}).items():
        calls.add_row(render.escape(str(op)), str(n))
    calls.add_row("[bold]total[/]", str(snap.get("calls_total", 0)))
    render.console.print(calls)
    latency = snap.get("detection_latency") or {}
    render.console.print(
        f"detection latency: p50 {_fmt(latency.get('p50_s'))}, p99 {_fmt(latency.get('p99_s'))}"
        f" over {latency.get('count', 0)} run(s)\n"
        f"throttling: {snap.get('throttled_responses', 0)} 429/503 answer(s), "
        f"{snap.get('throttle_pauses', 0)} account pause(s), "
        f"{snap.get('quota_holds', 0)} quota hold(s)"
    )


def _fmt(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:.3f} s"
    return "-"
