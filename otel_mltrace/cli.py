"""``otel-mltrace``: query lineage from a local index or a running collector, and serve.

Examples::

    otel-mltrace trace 'file:///work/predictions/predictions.csv@sha256:…'
    otel-mltrace --server http://127.0.0.1:4318 history train --limit 5
    otel-mltrace stale --older-than 7d --format json
    otel-mltrace serve --db postgresql://mltrace@db/mltrace
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from mltrace_collector.index.queries import render
from mltrace_collector.index.queries.stale import age_text
from mltrace_collector.index.queries.stale import why as stale_why
from otel_mltrace.cli_core import (
    Context,
    _run,
    fmt_option,
    main,
    parse_duration,
    parse_time,
    pass_ctx,
)
from otel_mltrace.cli_runs import filter_options, make_filter, series_line, show_runs
from otel_mltrace.cli_settings import FLAG, describe_target, explain
from otel_mltrace.config import resolve
from otel_mltrace.extras import missing_message
from otel_mltrace.idents import first_found, identified, local_artifact, local_candidates
from otel_mltrace.stale_view import shorten

# what other modules and tests import from here (the group and its helpers live in cli_core)
__all__ = [
    "Context",
    "_run",
    "first_found",
    "fmt_option",
    "local_artifact",
    "local_candidates",
    "main",
    "parse_duration",
    "parse_time",
    "pass_ctx",
]


def _graph_command(name: str, help_text: str) -> None:
    @main.command(name, help=help_text)
    @click.argument("ident")
    @click.option("--depth", type=click.IntRange(0), default=1000, help="max run hops")
    @click.option("--all-versions", is_flag=True, help="list every version of the location")
    @fmt_option(render.FORMATS)
    @pass_ctx
    def command(ctx: Context, ident: str, depth: int, all_versions: bool, fmt: str | None) -> None:
        def go() -> None:
            query = getattr(ctx.queries(), name)
            graph = identified(ident, lambda i: query(i, depth))  # as query.trace
            shown = fmt or ctx.fmt
            render.emit(ctx.console, graph, shown, render.lineage_tree(graph))
            resolved = graph.get("resolved")
            if resolved and shown in ("dot", "mermaid"):  # keep the graph text pure
                click.echo(f"note: {resolved['note']}", err=True)
            if resolved and all_versions and shown == "tree":
                ctx.console.print(render.versions_table(resolved))

        _run(ctx, go)


_graph_command("trace", "Upstream lineage of an artifact or run, down to raw data.")
_graph_command("downstream", "Everything derived from an artifact or run.")


@main.command()
@click.argument("run_id")
@fmt_option(("tree", "json"))
@pass_ctx
def inspect(ctx: Context, run_id: str, fmt: str | None) -> None:
    """Everything known about one run (a unique prefix of the ID is enough)."""

    def go() -> None:
        info = ctx.queries().inspect(run_id)
        if (fmt or ctx.fmt) == "json":
            render.emit(ctx.console, info, "json")
            return
        c = ctx.console
        c.print(render.runs_table(f"run {info['run_id']}", [info]))
        for line in (
            f"trace {info['trace_id']}  span {info['span_id']}  service {info['service']}",
            f"code {info['code_repository'] or '-'} @ {info['code_revision'] or '-'}",
            f"     {info['code_file'] or '-'}:{info['code_function'] or '-'}",
        ):
            c.print(line, markup=False)
        if info.get("status_message"):
            c.print(f"[red]{escape(info['status_message'])}[/red]")
        c.print(f"params  {info['params']}\nmetrics {info['metrics']}", markup=False)
        c.print(f"tags    {', '.join(info.get('tags') or []) or '-'}", markup=False)
        for name, s in info.get("metric_series", {}).items():
            line = f"  series {name}: " + (s if isinstance(s, str) else series_line(s))
            c.print(line, markup=False)
        for i in info["inputs"]:
            c.print(f"  in  {i['artifact_id']}  <- {i['producer_run_id'] or 'raw'}", markup=False)
        for o in info["outputs"]:
            c.print(f"  out {o}", markup=False)
        for chk in info.get("checks", []):
            color = {"pass": "green", "fail": "red"}.get(chk["status"], "yellow")
            c.print(
                f"  check {chk['phase']:<6} {escape(chk['name'])}: "  # names hold [col]
                f"[{color}]{chk['status']}[/{color}] ({chk['duration_s'] * 1000:.1f} ms, "
                f"on_fail={chk['on_fail']}) {escape(chk['message'])}",
                markup=True,
            )
        for s in info["output_summaries"]:
            c.print(
                f"  output {s['name']} ({s['kind']}): n={s['value_count']} "
                f"nulls={s['null_count']} min={s['value_min']} max={s['value_max']}",
                markup=False,
            )

    _run(ctx, go)


@main.command()
@click.argument("component")
@filter_options
@fmt_option(("tree", "json"))
@pass_ctx
def history(ctx: Context, component: str, fmt: str | None, **opts: Any) -> None:
    """Runs of one component, newest first, with params and metrics as columns.

    Filter with --where 'params.model = rf' --where 'metrics.accuracy > 0.9', --tag,
    --status, --since/--until; sort with --sort 'metrics.accuracy desc'.
    """

    def go() -> None:
        rows = ctx.queries().search_runs(make_filter(component, opts))
        show_runs(ctx, component, rows, opts["columns"], fmt or ctx.fmt)

    _run(ctx, go)


@main.command()
@click.option("--component", help="only runs of this component")
@filter_options
@fmt_option(("tree", "json"))
@pass_ctx
def runs(ctx: Context, component: str | None, fmt: str | None, **opts: Any) -> None:
    """Recent runs of all components, newest first (paged; same filters as history)."""

    def go() -> None:
        rows = ctx.queries().search_runs(make_filter(component, opts))
        show_runs(ctx, component or "runs", rows, opts["columns"], fmt or ctx.fmt)

    _run(ctx, go)


@main.command()
@fmt_option(("tree", "json"))
@pass_ctx
def components(ctx: Context, fmt: str | None) -> None:
    """Every component with its run count, failures and last run."""

    def go() -> None:
        rows = ctx.queries().components()
        table = render.rows_table(
            "components", rows, ("component", "runs", "failures", "last_start")
        )
        render.emit(ctx.console, rows, fmt or ctx.fmt, table)

    _run(ctx, go)


@main.command()
@click.option("--older-than", default=None, help="input age threshold, e.g. 1d (default 24h)")
@click.option("--all", "show_all", is_flag=True, help="also list the live runs that are fresh")
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="table rows at most, then a count of the rest (0: all; --format json lists all)",
)
@fmt_option(("tree", "json"))
@pass_ctx
def stale(
    ctx: Context, older_than: str | None, show_all: bool, limit: int, fmt: str | None
) -> None:
    """Live runs (an output is still the newest version) that read outdated inputs (a newer
    version exists, or older than the threshold) or have a stale run upstream."""
    threshold = parse_duration(older_than) if older_than else float(resolve("stale_after_seconds"))

    def go() -> None:
        live = ctx.queries().stale(threshold)
        rows = [r for r in live if show_all or r["stale"]]
        for r in rows:
            r["why"] = stale_why(r)
        if (fmt or ctx.fmt) == "json":  # complete: a program reads every row
            render.emit(ctx.console, rows, "json")
            return
        if not rows:  # an empty table reads as "did it run?"
            ctx.console.print(
                f"nothing is stale: {len(live)} live run(s), none with a newer input version, "
                f"an input older than {age_text(threshold)} or a stale run upstream",
                markup=False,
            )
            return
        shown, notes = shorten(rows, limit)
        table = render.rows_table("stale", shown, ("component", "run_id", "stale", "why"))
        render.emit(ctx.console, shown, fmt or ctx.fmt, table)
        for line in notes:
            ctx.console.print(line, markup=False, highlight=False)

    _run(ctx, go)


@main.command("config")
@fmt_option(("tree", "json"))
@pass_ctx
def show_config(ctx: Context, fmt: str | None) -> None:
    """Every MLTRACE_ setting: default, current value and where it came from.

    Precedence: flag/argument > MLTRACE_* environment variable > default.
    """
    given = (ctx.db, ctx.server, ctx.token)
    rows = explain({g.name: g.value for g in given if g.rank >= FLAG})
    columns = ("env", "value", "source", "default", "help")
    render.emit(ctx.console, rows, fmt or ctx.fmt, render.rows_table("settings", rows, columns))
    if (fmt or ctx.fmt) != "json":  # MLTRACE_DB, MLTRACE_SERVER and MLTRACE_INDEX all name one
        where = describe_target(ctx.db, ctx.server)
        ctx.console.print(f"Queries read: {escape(where)}", highlight=False)


def _register_serve() -> None:
    try:
        from mltrace_collector.service.collector import serve_command
    except ModuleNotFoundError as exc:  # the collector extra is not installed
        if exc.name not in {"fastapi", "grpc", "uvicorn", "starlette", "prometheus_client"}:
            raise
        missing = missing_message(exc.name, extra="collector", feature="otel-mltrace serve")

        @main.command("serve", context_settings={"ignore_unknown_options": True})
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def serve_missing(args: tuple[str, ...]) -> None:
            """Run the collector (needs the collector extra)."""
            raise click.ClickException(missing)

        return
    main.add_command(serve_command)


_register_serve()
import otel_mltrace.cli_compare  # noqa: E402  (registers compare)
import otel_mltrace.cli_review  # noqa: E402,F401  (registers flag, unflag, flags, review)

if __name__ == "__main__":  # `python -m otel_mltrace.cli`: use the imported module's group,
    from otel_mltrace.cli import main as _main  # the one the other modules add commands to

    _main()
