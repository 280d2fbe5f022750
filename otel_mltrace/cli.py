"""``otel-mltrace``: query lineage from a local index or a running collector, and serve.

Examples::

    otel-mltrace trace 'file:///work/predictions/predictions.csv@sha256:…'
    otel-mltrace --server http://127.0.0.1:4318 history train --limit 5
    otel-mltrace stale --older-than 7d --format json
    otel-mltrace serve --db postgresql://mltrace@db/mltrace
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console

from mltrace_collector import render
from mltrace_collector.client import RemoteError, RemoteQueries
from mltrace_collector.queries import LineageQueries, NotFound
from otel_mltrace.config import describe, resolve

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``7d``, ``2w`` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration; use e.g. 30s, 15m, 6h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str | None) -> int | None:
    """ISO-8601 time or a relative duration ago (``6h``) -> Unix ns."""
    if text is None:
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1e9)
    except ValueError:
        pass
    return int((datetime.now().timestamp() - parse_duration(text)) * 1e9)


def local_artifact(ident: str) -> str:
    """A path on this disk is identified by content, so `trace ./model.pkl` just works."""
    if "://" not in ident and os.path.exists(ident):
        from otel_mltrace.artifacts import artifact_id

        return artifact_id(ident)
    return ident


@dataclass
class Context:
    db: str | None
    server: str | None
    token: str | None
    fmt: str
    console: Console
    _queries: Any = None

    def queries(self) -> Any:
        """``LineageQueries`` over the local index, or ``RemoteQueries`` on ``--server``."""
        if self._queries is None:
            if self.server:
                self._queries = RemoteQueries(self.server, token=self.token)
            else:
                from mltrace_collector.store.base import open_store

                target = str(resolve("db", self.db))
                if "://" not in target and not os.path.exists(target):
                    raise NotFound(
                        f"no lineage index at {target}; run an instrumented pipeline first, "
                        "or point at one with --db PATH / --server URL"
                    )
                self._queries = LineageQueries(open_store(target))
        return self._queries


def _run(ctx: Context, fn: Callable[[], None]) -> None:
    try:
        fn()
    except NotFound as exc:
        ctx.console.print(f"[red]not found:[/red] {exc.args[0] if exc.args else exc}")
        sys.exit(2)
    except RemoteError as exc:
        ctx.console.print(f"[red]error:[/red] {exc}")
        sys.exit(3)
    except ValueError as exc:  # a bad setting or argument: its message names it and the fix
        ctx.console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


def fmt_option(choices: tuple[str, ...]) -> Callable[[F], F]:
    return click.option(
        "--format", "fmt", type=click.Choice(choices), default=None, help="output format"
    )


@click.group()
@click.option("--db", envvar="MLTRACE_DB", help="local index: SQLite path or postgresql:// URL")
@click.option("--server", envvar="MLTRACE_SERVER", help="query a running collector at this URL")
@click.option("--token", envvar="MLTRACE_AUTH_TOKEN", help="bearer token for --server")
@click.option(
    "--format", "fmt", type=click.Choice(render.FORMATS), default="tree", help="output format"
)
@click.pass_context
def main(
    click_ctx: click.Context, db: str | None, server: str | None, token: str | None, fmt: str
) -> None:
    """Lineage and tracing for ML pipelines (otel-mltrace).

    Queries read the embedded index (MLTRACE_INDEX; default
    ~/.local/share/otel-mltrace/index.db) unless --db or --server says otherwise.
    """
    if db is None and server is None:
        db = str(resolve("index"))
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=200)  # piped output: don't cut lines at 80
    click_ctx.obj = Context(db, server, token, fmt, console)


def pass_ctx(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the ``Context``; also accept ``--db``/``--server`` after the subcommand name.

    ``otel-mltrace trace X --db lineage.db`` and ``otel-mltrace --db lineage.db trace X``
    mean the same; the option nearer the command wins.
    """

    @click.option("--db", "local_db", default=None, help="local index (SQLite path or URL)")
    @click.option("--server", "local_server", default=None, help="collector base URL")
    @functools.wraps(fn)
    def wrapper(*args: Any, local_db: str | None, local_server: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context().find_object(Context)
        assert ctx is not None
        if local_db is not None:
            ctx.db, ctx.server, ctx._queries = local_db, None, None
        if local_server is not None:
            ctx.server, ctx._queries = local_server, None
        return fn(ctx, *args, **kwargs)

    return wrapper


def _graph_command(name: str, help_text: str) -> None:
    @main.command(name, help=help_text)
    @click.argument("ident")
    @click.option("--depth", type=click.IntRange(0), default=1000, help="max run hops")
    @fmt_option(render.FORMATS)
    @pass_ctx
    def command(ctx: Context, ident: str, depth: int, fmt: str | None) -> None:
        def go() -> None:
            graph = getattr(ctx.queries(), name)(local_artifact(ident), depth)
            render.emit(ctx.console, graph, fmt or ctx.fmt, render.lineage_tree(graph))

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
        c.print(f"trace {info['trace_id']}  span {info['span_id']}  service {info['service']}")
        c.print(f"code {info['code_repository'] or '-'} @ {info['code_revision'] or '-'}")
        c.print(f"     {info['code_file'] or '-'}:{info['code_function'] or '-'}")
        if info.get("status_message"):
            c.print(f"[red]{info['status_message']}[/red]")
        c.print(f"params  {info['params']}\nmetrics {info['metrics']}")
        for i in info["inputs"]:
            c.print(f"  in  {i['artifact_id']}  <- {i['producer_run_id'] or 'raw'}")
        for o in info["outputs"]:
            c.print(f"  out {o}")
        for chk in info.get("checks", []):
            color = {"pass": "green", "fail": "red"}.get(chk["status"], "yellow")
            c.print(
                f"  check {chk['phase']:<6} {chk['name']}: [{color}]{chk['status']}[/{color}] "
                f"({chk['duration_s'] * 1000:.1f} ms, on_fail={chk['on_fail']}) {chk['message']}",
                markup=True,
            )
        for s in info["output_summaries"]:
            c.print(
                f"  output {s['name']} ({s['kind']}): n={s['value_count']} "
                f"nulls={s['null_count']} min={s['value_min']} max={s['value_max']}"
            )

    _run(ctx, go)


@main.command()
@click.argument("component")
@click.option("--since", help="ISO time or duration ago (e.g. 7d)")
@click.option("--until", help="ISO time or duration ago")
@click.option("--limit", type=click.IntRange(1), default=20)
@fmt_option(("tree", "json"))
@pass_ctx
def history(
    ctx: Context, component: str, since: str | None, until: str | None, limit: int, fmt: str | None
) -> None:
    """Runs of one component, newest first."""

    def go() -> None:
        rows = ctx.queries().history(
            component, parse_time(since) or 0, parse_time(until) or 2**62, limit
        )
        render.emit(ctx.console, rows, fmt or ctx.fmt, render.runs_table(component, rows))

    _run(ctx, go)


@main.command()
@click.option("--limit", type=click.IntRange(1), default=20)
@click.option("--offset", type=click.IntRange(0), default=0)
@fmt_option(("tree", "json"))
@pass_ctx
def runs(ctx: Context, limit: int, offset: int, fmt: str | None) -> None:
    """Recent runs of all components, newest first (paged)."""

    def go() -> None:
        rows = ctx.queries().runs(limit, offset)
        render.emit(ctx.console, rows, fmt or ctx.fmt, render.runs_table("runs", rows))

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
@click.option("--all", "show_all", is_flag=True, help="also list components that are fresh")
@fmt_option(("tree", "json"))
@pass_ctx
def stale(ctx: Context, older_than: str | None, show_all: bool, fmt: str | None) -> None:
    """Components whose newest run read outdated inputs (newer versions exist, or too old)."""
    threshold = parse_duration(older_than) if older_than else float(resolve("stale_after_seconds"))

    def go() -> None:
        rows = [r for r in ctx.queries().stale(threshold) if show_all or r["stale"]]
        for r in rows:
            r["why"] = "; ".join(r["reasons"]) or "fresh"
        table = render.rows_table("stale", rows, ("component", "run_id", "stale", "why"))
        render.emit(ctx.console, rows, fmt or ctx.fmt, table)

    _run(ctx, go)


@main.command("config")
def show_config() -> None:
    """List every MLTRACE_ setting (precedence: flag/argument > env var > default)."""
    click.echo(describe())


def _register_serve() -> None:
    try:
        from mltrace_collector.service import serve_command
    except ModuleNotFoundError as exc:  # the collector extra is not installed
        if exc.name not in {"fastapi", "grpc", "uvicorn", "starlette", "prometheus_client"}:
            raise
        return
    main.add_command(serve_command)


_register_serve()
import otel_mltrace.cli_review  # noqa: E402,F401  (registers flag, unflag, flags, review)

if __name__ == "__main__":  # `python -m otel_mltrace.cli`: use the imported module's group,
    from otel_mltrace.cli import main as _main  # the one the other modules add commands to

    _main()
