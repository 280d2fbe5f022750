"""``history`` / ``runs`` options: filters, sort and params/metrics columns.

Used by ``otel_mltrace.cli``. Examples::

    otel-mltrace history train --where 'params.model = rf' --where 'metrics.accuracy > 0.9'
    otel-mltrace runs --status error --tag nightly --since 7d
    otel-mltrace history train --sort 'metrics.accuracy desc' --columns params.C,metrics.accuracy
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from mltrace_collector.index.queries import render
from mltrace_collector.index.queries.run_search import (
    RUN_STATUSES,
    VALID_FIELDS,
    BadQuery,
    RunFilter,
    parse_field,
)
from otel_mltrace.query import to_ns
from otel_mltrace.query_results import BASE_COLUMNS, RunTable, series_summary

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_EXTRA_COLUMNS = 8
"""Params/metrics columns shown by default (the rest: ``--columns`` or ``--format json``)."""


def filter_options(fn: F) -> F:
    """The filter, sort, paging and column options shared by ``history`` and ``runs``."""
    options = [
        click.option("--where", "where", multiple=True,
                     help=f"FIELD OP VALUE, e.g. 'metrics.acc > 0.9' (fields: {VALID_FIELDS})"),
        click.option("--tag", "tags", multiple=True, help="only runs with this tag (repeatable)"),
        click.option("--status", "status", multiple=True, help="only runs with this status: "
                     f"{', '.join(RUN_STATUSES)} (repeatable: any)"),
        click.option("--since", help="ISO time or duration ago (e.g. 7d)"),
        click.option("--until", help="ISO time or duration ago"),
        click.option("--sort", help="FIELD [asc|desc], e.g. 'metrics.accuracy desc'"),
        click.option("--columns", help="comma-separated: params.C,metrics.f1 (params.* = all)"),
        click.option("--limit", type=click.IntRange(1), default=20),
        click.option("--offset", type=click.IntRange(0), default=0),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_filter(component: str | None, opts: dict[str, Any]) -> RunFilter:
    """The ``RunFilter`` of parsed CLI options (``BadQuery`` for malformed ones)."""
    return RunFilter(
        component=component,
        where=tuple(opts["where"]),
        tags=tuple(opts["tags"]),
        status=tuple(opts["status"]),
        since_ns=to_ns(opts["since"], "--since") or 0,
        until_ns=to_ns(opts["until"], "--until") or RunFilter.until_ns,
        sort=opts["sort"],
        limit=opts["limit"],
        offset=opts["offset"],
    ).validate()


def pick_columns(table: RunTable, spec: str | None) -> list[str]:
    """``--columns``: base columns plus the named ones; default the first params/metrics."""
    if spec is None:
        columns = table.columns()
        extra = [c for c in columns[len(BASE_COLUMNS) :] if c != "tags"][:DEFAULT_EXTRA_COLUMNS]
        return [*BASE_COLUMNS, *extra, *(["tags"] if "tags" in columns else [])]
    chosen: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item in BASE_COLUMNS or item == "tags":
            chosen.append(item)
        elif item in ("params.*", "metrics.*"):
            kind = item[:-2]
            chosen += [c for c in table.columns() if c.startswith(kind + ".")]
        else:
            field, key = parse_field(item, f"--columns {spec!r}")
            if key is None:
                raise BadQuery(
                    f"unknown column {item!r} in --columns {spec!r}; valid: "
                    f"{', '.join(BASE_COLUMNS)}, tags, params.<name>, metrics.<name>, params.*"
                )
            names = {k for r in table for k in (r.params if field == "params" else r.metrics)}
            if table.runs and key not in names:  # a misspelt name: a column of blanks
                raise BadQuery(
                    f"no run shown has {item} (in --columns {spec!r}); "
                    f"{field} there are: {', '.join(sorted(names)) or 'none'}"
                )
            chosen.append(item)
    shown = [c for c in chosen if c in BASE_COLUMNS]
    rest = [c for c in chosen if c not in BASE_COLUMNS]
    return [*(shown or ["run_id", "start", "status"]), *rest]


def show_runs(ctx: Any, title: str, rows: Sequence[dict[str, Any]], columns: str | None,
              fmt: str) -> None:  # fmt: skip
    """Print runs as a table (chosen columns) or JSON (everything)."""
    table = RunTable.from_rows(title, rows)
    if fmt == "json":
        render.emit(ctx.console, list(rows), "json")
        return
    if not rows:  # an empty frame of headers says less than a sentence
        ctx.console.print(f"{title}: no runs match", markup=False)
        return
    cols = pick_columns(table, columns)
    body = [[table.value(r, c) for c in cols] for r in table]
    from otel_mltrace.query_results import rich_table

    header = ["duration" if c == "duration_s" else "revision" if c == "code_revision" else c
              for c in cols]  # fmt: skip
    for row in body:
        for i, c in enumerate(cols):
            if c == "start" and row[i]:
                row[i] = str(row[i])[:23]
            elif c == "code_revision" and row[i]:
                row[i] = str(row[i])[:10]
            elif c == "duration_s":
                row[i] = f"{row[i]:.2f}s"
    ctx.console.print(rich_table(title, header, body))


def series_line(s: dict[str, Any]) -> str:
    """``last=0.12 min=0.1 max=2.3 count=100`` for ``inspect`` (the series: ``--format json``).

    A value may be NaN or ±inf, which answers spell as text (``"NaN"``): shown as is."""
    return series_summary(s) + (f" ({s['thinned']} points thinned out)" if s.get("thinned") else "")
