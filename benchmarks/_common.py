"""What several benchmarks share: the cost floor of a run span, and the databases to run
against (SQLite, or a throwaway PostgreSQL that may be missing).

Example::

    for backend, db in databases(["sqlite", "postgres"], workdir / "bench.db", summary):
        summary += bench(backend, db)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import Tracer

from otel_mltrace import semconv
from otel_mltrace._ids import uuid7


class DropSpans(SpanProcessor):
    """A span processor that drops every span: what is left is the cost of making it."""

    def on_end(self, span: ReadableSpan) -> None:
        return None


def raw_run_span(
    tracer: Tracer, component: str, function: str, inputs: Sequence[str], outputs: Sequence[str]
) -> None:
    """One raw OTel span with the attributes ``otel_mltrace.run()`` gives a run."""
    attrs = {
        semconv.COMPONENT: component,
        semconv.RUN_ID: uuid7(),
        semconv.CODE_FUNCTION: function,
        semconv.CODE_FILE: __file__,
    }
    with tracer.start_as_current_span(component, attributes=attrs) as span:
        span.set_attribute(semconv.INPUTS, inputs)
        span.set_attribute(semconv.OUTPUTS, outputs)


def databases(
    backends: Iterable[str], sqlite_path: Path, skipped: list[str]
) -> Iterator[tuple[str, str]]:
    """``(backend, database)`` for each backend in turn: ``sqlite_path``, or a database of a
    throwaway PostgreSQL that is stopped when the loop moves on (or ends). When none can
    start, a line saying why is appended to ``skipped`` and the backend is left out."""
    for backend in backends:
        if backend == "sqlite":
            yield backend, str(sqlite_path)
            continue
        from tests.servers.postgres import PostgresServer, PostgresUnavailable

        try:
            pg = PostgresServer.start()
        except PostgresUnavailable as exc:
            skipped.append(f"{backend} skipped: {exc}")
            continue
        with pg:
            yield backend, pg.create_database("bench")


def timed_get(url: str) -> tuple[float, str]:
    """Seconds a GET of ``url`` took (a scrape, a query) and its body; raises on an error."""
    import httpx  # only the benchmarks that scrape need it

    start = time.perf_counter()
    resp = httpx.get(url, timeout=600)
    took = time.perf_counter() - start
    resp.raise_for_status()
    return took, resp.text
