"""HTTP JSON query API (``/api/v1``), ``/healthz``, and the collector's ASGI app.

The OpenAPI document is served at ``/openapi.json`` (interactive docs at ``/docs``).

Example::

    app = create_app(pipeline, queries, max_body_bytes=64 << 20, auth_token=None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import Body, FastAPI, HTTPException, Query
from starlette.types import ASGIApp

from mltrace_collector.index.decode.isolation import MAX_STORE_INT
from mltrace_collector.index.ingest import ExportHandler
from mltrace_collector.index.queries.lineage_queries import MAX_DEPTH, LineageQueries
from mltrace_collector.service.api.errors import answer, install_error_answers
from mltrace_collector.service.api.query_routes import add_query_routes
from mltrace_collector.service.receivers.http_receiver import otlp_traces_route
from mltrace_collector.service.receivers.security import BearerAuthMiddleware
from otel_mltrace._version import __version__

T = TypeVar("T")
JSON = Any


def create_api(
    queries: LineageQueries, health: Callable[[], dict[str, Any]], *, auth: bool = False
) -> FastAPI:
    """The FastAPI app with the query endpoints (no OTLP route, no auth; ``auth``: the
    OpenAPI document declares 401s)."""
    app = FastAPI(
        title="otel-mltrace collector",
        version=__version__,
        description="Run-level, cross-trace lineage of ML pipelines.",
    )
    install_error_answers(app, auth=auth)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSON:
        """Liveness/readiness: 200 while the store answers."""
        return health()

    @app.get("/api/v1/trace", tags=["lineage"])
    def trace(
        id: str = Query(description="artifact ID, unversioned URI or run ID"),
        depth: int = Query(MAX_DEPTH, ge=0, le=MAX_DEPTH),
    ) -> JSON:
        """Upstream lineage graph of an artifact or run, down to raw artifacts."""
        return answer(lambda: queries.trace(id, depth))

    @app.get("/api/v1/downstream", tags=["lineage"])
    def downstream(
        id: str = Query(description="artifact ID, unversioned URI or run ID"),
        depth: int = Query(MAX_DEPTH, ge=0, le=MAX_DEPTH),
    ) -> JSON:
        """Everything derived from an artifact or run."""
        return answer(lambda: queries.downstream(id, depth))

    @app.get("/api/v1/runs", tags=["runs"])
    def runs(
        limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_STORE_INT)
    ) -> JSON:
        """Recent runs, newest first."""
        return queries.runs(limit, offset)

    @app.get("/api/v1/runs/{run_id:path}", tags=["runs"])
    def inspect(run_id: str) -> JSON:
        """Everything known about one run (a unique ID prefix is enough)."""
        return answer(lambda: queries.inspect(run_id))

    @app.get("/api/v1/components", tags=["components"])
    def components() -> JSON:
        """Components with run counts, failures and last run time."""
        return queries.components()

    @app.get("/api/v1/components/{component:path}/history", tags=["components"])
    def history(
        component: str,
        since_ns: int = Query(0, ge=0, le=MAX_STORE_INT),
        until_ns: int = Query(2**62, ge=0, le=MAX_STORE_INT),
        limit: int = Query(50, ge=1, le=1000),
    ) -> JSON:
        """Runs of one component, newest first, within a time range."""
        return answer(lambda: queries.history(component, since_ns, until_ns, limit))

    @app.get("/api/v1/stale", tags=["components"])
    def stale(
        older_than_s: float = Query(86400.0, gt=0),
        now_ns: int | None = Query(None, ge=0, le=MAX_STORE_INT),
    ) -> JSON:
        """Every live run: stale or not, its reasons and the path to a stale upstream run."""
        return queries.stale(older_than_s, now_ns)

    @app.get("/api/v1/flags", tags=["review"])
    def flags() -> JSON:
        """Flagged records, artifacts and runs."""
        return queries.flags()

    @app.post("/api/v1/flags", tags=["review"])
    def flag(
        ids: Annotated[list[str], Body(description="record, artifact or run IDs")],
        reason: Annotated[str | None, Body(description="why (label, ticket …)")] = None,
    ) -> JSON:
        """Flag items; 404 naming the first unknown ID (then nothing is flagged)."""
        return answer(lambda: queries.flag(ids, reason))

    @app.post("/api/v1/flags/remove", tags=["review"])
    def unflag(
        ids: Annotated[list[str] | None, Body(description="IDs to unflag")] = None,
        all: Annotated[bool, Body(description="remove every flag")] = False,
    ) -> JSON:
        """Unflag items (or all); 404 naming an ID that is not flagged."""
        if ids is None and not all:
            raise HTTPException(status_code=400, detail="give ids, or all=true")
        return {"removed": answer(lambda: queries.unflag(None if all else ids))}

    @app.get("/api/v1/review", tags=["review"])
    def review(limit: int = Query(20, ge=1, le=1000)) -> JSON:
        """Upstream runs, components and code revisions ranked by association with flags."""
        return answer(lambda: queries.review(limit))

    add_query_routes(app, queries)
    return app


def create_app(
    handler: ExportHandler,
    queries: LineageQueries,
    health: Callable[[], dict[str, Any]],
    *,
    max_body_bytes: int,
    auth_token: str | None,
    extra_routes: Iterable[Any] = (),
) -> ASGIApp:
    """The whole HTTP listener: OTLP ``/v1/traces`` + query API + extra routes, with auth."""
    app = create_api(queries, health, auth=auth_token is not None)
    app.router.routes.append(
        otlp_traces_route(handler, max_body_bytes=max_body_bytes, auth_token=auth_token)
    )
    for route in extra_routes:
        app.router.routes.append(route)
    return BearerAuthMiddleware(app, auth_token, exempt_paths={"/healthz"})
