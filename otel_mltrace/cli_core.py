"""The ``otel-mltrace`` command group and what its commands share: the ``Context``
(where to query), ``--format`` and ``--db/--server/--token`` handling, error reporting.

Commands live in ``cli.py``, ``cli_compare.py`` and ``cli_review.py``, which all add
themselves to :data:`main` here; ``otel_mltrace.cli`` imports them all (the entry point).

Example::

    @main.command()
    @fmt_option(("tree", "json"))
    @pass_ctx
    def hello(ctx: Context, fmt: str | None) -> None:
        _run(ctx, lambda: ctx.console.print("hello"))
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from mltrace_collector.index.queries import render
from mltrace_collector.index.queries.client import RemoteError
from mltrace_collector.index.queries.lineage_queries import NotFound
from mltrace_collector.index.queries.run_search import BadQuery
from otel_mltrace.cli_settings import (
    FLAG,
    FLAG_AFTER,
    Given,
    choose_target,
    rank_of,
    stronger,
)
from otel_mltrace.extras import MissingExtra
from otel_mltrace.query import duration_seconds, open_queries, to_ns

F = TypeVar("F", bound=Callable[..., Any])


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``6h``, ``7d``, ``2w`` -> seconds."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise click.BadParameter(f"{text!r} is not a duration; use e.g. 30s, 15m, 6h, 7d")
    return seconds


def parse_time(text: str | None) -> int | None:
    """ISO-8601 time (``Z`` allowed) or a relative duration ago (``6h``) -> Unix ns."""
    try:
        return to_ns(text)
    except BadQuery as exc:
        raise click.BadParameter(str(exc)) from None


@dataclass
class Context:
    db: Given
    server: Given
    token: Given
    fmt: str
    console: Console
    _queries: Any = None

    def queries(self) -> Any:
        """``LineageQueries`` over the local index, or ``RemoteQueries`` on ``--server``."""
        if self._queries is None:  # the same opening as otel_mltrace.query.connect
            target = choose_target(self.db, self.server)
            try:
                self._queries = open_queries(target.db, target.server, self.token.value)
            except MissingExtra as exc:  # a postgresql:// index without psycopg
                raise click.ClickException(str(exc)) from None
        return self._queries


def _run(ctx: Context, fn: Callable[[], None]) -> None:
    try:
        fn()
    except NotFound as exc:
        ctx.console.print(f"[red]not found:[/red] {escape(str(exc.args[0] if exc.args else exc))}")
        sys.exit(2)
    except BadQuery as exc:  # before RemoteError: a collector's 400 is both
        ctx.console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
        sys.exit(2)
    except RemoteError as exc:
        ctx.console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(3)
    except ValueError as exc:  # a bad setting or argument: its message names it and the fix
        ctx.console.print(f"[red]error:[/red] {escape(str(exc))}")
        sys.exit(2)


def fmt_option(choices: tuple[str, ...]) -> Callable[[F], F]:
    """``--format`` of one command; a group-level ``--format`` it cannot show is a usage
    error naming the formats it can (``--format dot components`` has no graph to draw)."""

    def inherit(click_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
        if value is not None:
            return value
        group_fmt = getattr(click_ctx.obj, "fmt", "tree")
        if group_fmt not in choices:
            raise click.UsageError(
                f"--format {group_fmt} does not apply to '{click_ctx.info_name}'; "
                f"it shows {' or '.join(choices)}"
            )
        return str(group_fmt)

    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=None,
        callback=inherit,
        help="output format",
    )


@click.group()
@click.version_option(package_name="otel-mltrace", prog_name="otel-mltrace")
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
    Precedence: a flag (before or after the command name) > MLTRACE_* variable > default.
    """
    db_given = Given("db", db, rank_of(click_ctx, "db", db))
    server_given = Given("server", server, rank_of(click_ctx, "server", server))
    token_given = Given("auth_token", token, rank_of(click_ctx, "token", token))
    flagged = {"db": db if db_given.rank == FLAG else None}
    flagged["auth_token"] = token if token_given.rank == FLAG else None
    # `otel-mltrace --db x serve`: the flag before the command reaches serve's own options
    click_ctx.default_map = {"serve": {k: v for k, v in flagged.items() if v is not None}}
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=200)  # piped output: don't cut lines at 80
    click_ctx.obj = Context(db_given, server_given, token_given, fmt, console)


def pass_ctx(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the ``Context``; also accept ``--db``/``--server``/``--token`` after the
    subcommand name.

    ``otel-mltrace trace X --db lineage.db`` and ``otel-mltrace --db lineage.db trace X``
    mean the same; the option nearer the command wins, and any flag beats MLTRACE_* variables
    (``otel_mltrace.cli_settings``).
    """

    @click.option("--db", "local_db", default=None, help="local index (SQLite path or URL)")
    @click.option("--server", "local_server", default=None, help="collector base URL")
    @click.option("--token", "local_token", default=None, help="bearer token for --server")
    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        local_db: str | None,
        local_server: str | None,
        local_token: str | None,
        **kwargs: Any,
    ) -> Any:
        ctx = click.get_current_context().find_object(Context)
        assert ctx is not None
        ctx.db = stronger(ctx.db, Given("db", local_db, FLAG_AFTER))
        ctx.server = stronger(ctx.server, Given("server", local_server, FLAG_AFTER))
        ctx.token = stronger(ctx.token, Given("auth_token", local_token, FLAG_AFTER))
        ctx._queries = None
        return fn(ctx, *args, **kwargs)

    return wrapper
