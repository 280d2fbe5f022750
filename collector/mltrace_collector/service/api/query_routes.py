"""``/api/v1/search/runs`` and ``/api/v1/compare``: run search and run comparison over HTTP.

Registered on the query API by ``api.create_api``; the same ``LineageQueries`` methods
answer the CLI on a local index and ``otel_mltrace.query``. A malformed filter is a 400
naming the expression and the valid fields; an unknown run or component a 404.

Example::

    GET /api/v1/search/runs?component=train&where=metrics.accuracy%20%3E%200.9&sort=metrics.accuracy
    GET /api/v1/compare?run=0193a…&run=0193b…
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query

from mltrace_collector.index.decode.isolation import MAX_STORE_INT
from mltrace_collector.index.queries.compare import MAX_RUNS
from mltrace_collector.index.queries.lineage_queries import MAX_DEPTH, LineageQueries
from mltrace_collector.index.queries.run_search import MAX_LIMIT, NO_BOUND, VALID_FIELDS, RunFilter
from mltrace_collector.service.api.errors import answer

T = TypeVar("T")


def add_query_routes(app: FastAPI, queries: LineageQueries) -> None:
    """Add the search and compare endpoints to ``app``."""

    @app.get(
        "/api/v1/search/runs",
        tags=["runs"],
        responses={400: {"description": "malformed filter"}, 404: {"description": "no component"}},
    )
    def search_runs(
        component: str | None = Query(None, description="only runs of this component"),
        where: Annotated[
            list[str] | None, Query(description=f"FIELD OP VALUE: {VALID_FIELDS}")
        ] = None,
        tags: Annotated[list[str] | None, Query(description="runs with all these tags")] = None,
        status: Annotated[list[str] | None, Query(description="any of these statuses")] = None,
        since_ns: int = Query(0, ge=0, le=MAX_STORE_INT),
        until_ns: int = Query(NO_BOUND, ge=0, le=MAX_STORE_INT),
        sort: str | None = Query(None, description="FIELD [asc|desc], e.g. metrics.f1 desc"),
        limit: int = Query(50, ge=1, le=MAX_LIMIT),
        offset: int = Query(0, ge=0, le=MAX_STORE_INT),
    ) -> Any:
        """Runs filtered by params, metrics, tags, status and time; sorted by any field."""
        f = RunFilter(
            component, tuple(where or ()), tuple(tags or ()), tuple(status or ()), since_ns,
            until_ns, sort,
            limit, offset,
        )  # fmt: skip
        return answer(lambda: queries.search_runs(f))

    @app.get(
        "/api/v1/compare",
        tags=["runs"],
        responses={400: {"description": "not 2..20 runs"}, 404: {"description": "no such run"}},
    )
    def compare(
        run: Annotated[list[str], Query(description=f"2 to {MAX_RUNS} run IDs (prefixes ok)")],
        depth: int = Query(MAX_DEPTH, ge=0, le=MAX_DEPTH),
    ) -> Any:
        """Params, metrics, code revisions and upstream-lineage diff of runs."""
        return answer(lambda: queries.compare(run, depth))
