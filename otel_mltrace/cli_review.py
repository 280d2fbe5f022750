"""``otel-mltrace flag | unflag | flags | review``: mark wrong outputs, find the culprit.

Registered on the main CLI group by ``otel_mltrace.cli``. Examples::

    otel-mltrace flag pred-000042 pred-000097 --reason "complaint #123"
    otel-mltrace review --limit 10
    otel-mltrace review --format json | jq '.runs[0]'
    otel-mltrace unflag --all
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table
from rich.text import Text

from mltrace_collector.index.queries import render
from otel_mltrace.artifacts import local_artifact
from otel_mltrace.cli_core import Context, _run, fmt_option, main, pass_ctx


@main.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--reason", help="why: a label, ticket or note stored with the flag")
@fmt_option(("tree", "json"))
@pass_ctx
def flag(ctx: Context, ids: tuple[str, ...], reason: str | None, fmt: str | None) -> None:
    """Flag records, artifacts or runs as wrong (e.g. mispredictions)."""

    def go() -> None:
        done = ctx.queries().flag([local_artifact(i) for i in ids], reason)
        table = render.rows_table("flagged", done, ("id", "kind", "reason"))
        render.emit(ctx.console, done, fmt or ctx.fmt, table)

    _run(ctx, go)


@main.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="remove every flag")
@pass_ctx
def unflag(ctx: Context, ids: tuple[str, ...], all_: bool) -> None:
    """Remove flags of IDs (or --all)."""
    if bool(ids) == all_:
        raise click.UsageError("give IDs to unflag, or --all (not both)")

    def go() -> None:
        removed = ctx.queries().unflag(None if all_ else [local_artifact(i) for i in ids])
        ctx.console.print(f"removed {removed} flag(s)")

    _run(ctx, go)


@main.command("flags")
@fmt_option(("tree", "json"))
@pass_ctx
def list_flags(ctx: Context, fmt: str | None) -> None:
    """List flagged items."""

    def go() -> None:
        rows = ctx.queries().flags()
        table = render.rows_table(
            "flags", rows, ("target_id", "kind", "reason", "origin", "flagged")
        )
        render.emit(ctx.console, rows, fmt or ctx.fmt, table)

    _run(ctx, go)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def review_tables(result: dict[str, Any]) -> list[Table]:
    """Ranked runs, components and code revisions as rich tables."""
    stats = ("coverage", "unflagged_coverage", "lift", "p_value", "score")
    counts = f"flagged {result['flagged']} / unflagged {result['unflagged']}"
    tables = []
    for title, rows, cols in (
        ("runs", result["runs"], ("rank", "component", "run_id", "start", "code_revision")),
        ("components", result["components"], ("rank", "component")),
        ("code revisions", result["revisions"], ("rank", "code_revision", "components")),
    ):
        table = Table(title=f"review: {title} ({counts})")
        for col in (*cols, "flagged_count", *stats):
            table.add_column(col)
        for r in rows:
            cells = []
            for col in (*cols, "flagged_count", *stats):
                value = r.get(col)
                if col == "start":
                    value = (value or "")[:23]
                elif col == "code_revision":
                    value = (value or "")[:10]
                elif col == "components":
                    value = ",".join(value)
                cells.append(Text(_fmt(value)))
            table.add_row(*cells)
        tables.append(table)
    return tables


@main.command()
@click.option("--limit", type=click.IntRange(1), default=10, help="rows per table")
@fmt_option(("tree", "json"))
@pass_ctx
def review(ctx: Context, limit: int, fmt: str | None) -> None:
    """Rank upstream runs, components and code revisions by how much more often they
    appear in the lineage of flagged outputs than of unflagged outputs of the same kind."""

    def go() -> None:
        result = ctx.queries().review(limit)
        if (fmt or ctx.fmt) == "json":
            render.emit(ctx.console, result, "json")
            return
        ctx.console.print(result["verdict"], markup=False)
        if result["runs"]:
            keys = ("runs", "components", "revisions")
            for key, table in zip(keys, review_tables(result), strict=True):
                if result[key]:
                    ctx.console.print(table)
                else:  # an empty table with headers reads like a failed query
                    title = str(table.title).split(" (")[0]
                    ctx.console.print(f"{title}: none over-represented", markup=False)
        if result["unresolved_flags"]:
            ctx.console.print(f"[dim]flags without upstream: {result['unresolved_flags']}[/dim]")

    _run(ctx, go)
