"""``otel-mltrace compare RUN_A RUN_B [RUN_C …]``: runs side by side, and where lineages part.

Registered on the main CLI group by ``otel_mltrace.cli``. Examples::

    otel-mltrace compare 0193a2f1-7c 0193a2f4-11          # params, metrics, code, lineage diff
    otel-mltrace compare A B C --format json | jq '.lineage[0].first_divergence'
"""

from __future__ import annotations

import click

from mltrace_collector.index.queries import render
from mltrace_collector.index.queries.lineage_queries import MAX_DEPTH
from otel_mltrace.cli_core import Context, _run, fmt_option, main, pass_ctx
from otel_mltrace.compare_view import Comparison


@main.command()
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--depth", type=click.IntRange(0), default=MAX_DEPTH, help="max run hops upstream")
@fmt_option(("tree", "json"))
@pass_ctx
def compare(ctx: Context, run_ids: tuple[str, ...], depth: int, fmt: str | None) -> None:
    """Params, metrics and code revisions of runs side by side (differences marked ≠), and
    their upstream lineages aligned by artifact URI: where they first diverge and which
    upstream runs they share. With three or more runs, each is diffed against the first."""

    def go() -> None:
        result = ctx.queries().compare(list(run_ids), depth)
        if (fmt or ctx.fmt) == "json":
            render.emit(ctx.console, result, "json")
            return
        ctx.console.print(Comparison.from_dict(result))

    _run(ctx, go)
