"""Lineage queries — the one implementation behind the CLI and the HTTP API.

Every answer is plain JSON-able data, so the CLI renders the same structure whether it
read a local index (``--db``) or asked a running collector (``--server``).

Stitching rules (DESIGN.md): a versioned input ``URI@algo:digest`` stitches to a run that
wrote exactly that ID; an unversioned URI stitches to the latest run that wrote the URI
and ended before the consumer started. Edges are computed here, at query time, from the
stored run I/O, so arrival order never matters.

Example::

    q = LineageQueries(open_store("lineage.db"))
    graph = q.trace("file:///work/predictions.csv@sha256:…")
"""

from __future__ import annotations

from typing import Any

from mltrace_collector.index.decode.checks import run_checks
from mltrace_collector.index.model import split_artifact_id
from mltrace_collector.index.queries import identify, review
from mltrace_collector.index.queries.jsonsafe import finite_or_text
from mltrace_collector.index.queries.lineage_walk import (
    Graph,
    iso,
    run_summary,
    walk_downstream,
    walk_upstream,
)
from mltrace_collector.index.queries.query_host import (
    NotFound as NotFound,  # re-exported: defined below us
)
from mltrace_collector.index.queries.records import is_record, trace_record
from mltrace_collector.index.queries.run_search import RunFilter, search_runs
from mltrace_collector.index.queries.stale import stale_runs
from mltrace_collector.index.store import run_starts
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Row
from mltrace_collector.index.store.extras import record_sets_of
from mltrace_collector.index.store.graph_reads import (
    find_run_summaries,
    latest_producers_by_uri,
    pick_producer,
    producers_for,
    run_summaries,
)
from otel_mltrace.metric_series import parse_series
from otel_mltrace.semconv import METRIC_SERIES

__all__ = ["MAX_DEPTH", "LineageQueries", "NotFound", "iso", "run_summary"]

MAX_DEPTH = 1000


class LineageQueries:
    """Queries over one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- resolution -----------------------------------------------------------------------
    def resolve_run(self, run_id: str) -> Row:
        row = self.store.get_run(run_id)
        if row is not None:
            return row
        matches = self.store.find_runs(run_id, limit=2) if len(run_id) >= 6 else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotFound(identify.ambiguous(self.store, run_id))
        short = " (a prefix needs at least 6 characters)" if len(run_id) < 6 else ""
        raise NotFound(f"no run {run_id!r} in the index{short}; list runs with `otel-mltrace runs`")

    def _resolve(self, ident: str) -> tuple[str, Row | None]:
        """``(kind, lean run row or None)`` of ``ident``: each lookup done once."""
        row = run_summaries(self.store, [ident]).get(ident)
        if row is not None:
            return "run", row
        if self.store.artifact(ident) is not None:
            return "artifact", None
        uri, version = split_artifact_id(ident)
        if (
            version is None
            and latest_producers_by_uri(self.store, [(uri, None, None)])[(uri, None, None)]
        ):
            return "artifact", None
        if is_record(self, ident):
            return "record", None
        matches = find_run_summaries(self.store, ident, limit=2) if len(ident) >= 6 else []
        if len(matches) == 1:
            return "run", matches[0]
        if len(matches) > 1:
            raise NotFound(identify.ambiguous(self.store, ident))
        raise NotFound(
            f"{ident!r} is neither a run ID, an artifact ID nor a record ID in the index; "
            "artifact IDs look like 'file:///path@sha256:…' (see `otel-mltrace inspect RUN`)"
            + identify.component_hint(ident, [c["component"] for c in self.store.components()])
        )

    def _located(self, ident: str) -> tuple[str, identify.Located | None]:
        """``ident``, or the indexed version it most likely means (``identify.locate``)."""
        if "://" not in ident:
            return ident, None
        if self.store.artifact(ident) is not None:
            return ident, identify.among_versions(self.store, ident)
        found = identify.locate(self.store, ident)
        return (found.artifact_id, found) if found is not None else (ident, None)

    def _kind(self, ident: str) -> str:
        return self._resolve(ident)[0]

    def producer_for(
        self, artifact_id: str, consumer_start_ns: int | None, reader: str | None = None
    ) -> Row | None:
        """The run the run ``reader``, started at ``consumer_start_ns``, got ``artifact_id``
        from (never ``reader`` itself)."""
        uri, version = split_artifact_id(artifact_id)
        if version is None:
            return self.store.latest_producer_by_uri(uri, consumer_start_ns, reader)
        return pick_producer(self.store.producers_exact(artifact_id), consumer_start_ns, reader)

    # -- lineage --------------------------------------------------------------------------
    def trace(self, ident: str, depth: int = MAX_DEPTH) -> dict[str, Any]:
        """Upstream closure of an artifact, run or record, down to raw artifacts (no producer).

        A location (bare URI, or an ID whose version the index lacks) answers for the
        version ``identify.locate`` picks; ``graph["resolved"]`` says which and why.
        """
        asked, (ident, located) = ident, self._located(ident)
        kind, row = self._resolve(ident)
        if kind == "record":
            return trace_record(self, ident, depth)
        if row is not None:
            return self.trace_run(row, depth)
        graph = Graph(kind, ident, "upstream")
        producer = producers_for(self.store, [(ident, None, None)])[(ident, None, None)]
        graph.artifact(ident, producer is not None)
        if producer is not None:
            graph.edge(producer["run_id"], ident, "output")
            walk_upstream(self.store, graph, [producer], 1, depth)
        if located is not None:
            graph.data["resolved"] = located.describe(asked)
        return graph.data

    def trace_run(self, row: Row, depth: int = MAX_DEPTH) -> dict[str, Any]:
        """``trace`` of a run already looked up (a lean or full run row)."""
        graph = Graph("run", row["run_id"], "upstream")
        walk_upstream(self.store, graph, [row], 0, depth)
        return graph.data

    def downstream(self, ident: str, depth: int = MAX_DEPTH) -> dict[str, Any]:
        """Everything derived from an artifact or run: consumers, their outputs, and so on."""
        asked, (ident, located) = ident, self._located(ident)
        kind, row = self._resolve(ident)
        if kind == "record":  # record-level consumers are not tracked: its output artifact's
            kind, ident = "artifact", record_sets_of(self.store, ident)[0]["output_artifact_id"]
        if row is not None:
            graph = Graph(kind, row["run_id"], "downstream")
            walk_downstream(self.store, graph, kind, [], depth, root_run=row)
            return graph.data
        graph = Graph(kind, ident, "downstream")
        producer = producers_for(self.store, [(ident, None, None)])[(ident, None, None)]
        graph.artifact(ident, producer is not None)
        walk_downstream(
            self.store, graph, kind, [(ident, producer["run_id"] if producer else None)], depth
        )
        if located is not None:
            graph.data["resolved"] = located.describe(asked)
        return graph.data

    # -- flags and review (see mltrace_collector.index.queries.review) --------------------
    def flag(self, ids: list[str], reason: str | None = None) -> list[dict[str, Any]]:
        return review.flag(self, ids, reason)

    def unflag(self, ids: list[str] | None) -> int:
        return review.unflag(self, ids)

    def flags(self) -> list[dict[str, Any]]:
        return review.list_flags(self)

    def review(self, limit: int = 20) -> dict[str, Any]:
        return review.review(self, limit)

    # -- runs and components --------------------------------------------------------------
    def inspect(self, run_id: str) -> dict[str, Any]:
        """Everything the index knows about one run (also one still ``running`` or
        ``abandoned``: see ``mltrace_collector.index.store.run_starts``)."""
        try:
            row = self.resolve_run(run_id)
        except NotFound:
            started = run_starts.find_open_run(self.store, run_id)
            if started is None:
                raise
            return run_starts.inspect_open(started)
        io = self.store.run_io(row["run_id"])
        read = [
            (e["artifact_id"], row["start_ns"], row["run_id"]) for e in io if e["direction"] == "in"
        ]
        producers = producers_for(self.store, read)  # one batch, not a query per input
        inputs = []
        for key in read:
            aid, producer = key[0], producers[key]
            inputs.append({"artifact_id": aid, "producer_run_id": producer and producer["run_id"]})
        return {
            **run_summary(row),
            "parent_span_id": row.get("parent_span_id"),
            "status_message": row.get("status_message"),
            "code_repository": row.get("code_repository"),
            "code_function": row.get("code_function"),
            "code_file": row.get("code_file"),
            "params": row["params"],
            "metrics": finite_or_text(row["metrics"]),
            "tags": row["tags"],
            "inputs": inputs,
            "outputs": [e["artifact_id"] for e in io if e["direction"] == "out"],
            "output_summaries": self.store.run_outputs(row["run_id"]),
            "checks": run_checks(self.store, row["run_id"]),
            "metric_series": finite_or_text(parse_series(row["attributes"], METRIC_SERIES)),
            "attributes": {k: v for k, v in row["attributes"].items() if k != METRIC_SERIES},
        }

    def history(
        self, component: str, since_ns: int = 0, until_ns: int = 2**62, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Runs of ``component``, newest first."""
        rows = self.store.history(component, since_ns, until_ns, limit)
        started = run_starts.open_run_summaries(
            self.store, component, since_ns=since_ns, until_ns=until_ns, limit=limit
        )
        if not rows and not started:
            known = [c["component"] for c in self.store.components()]
            if component not in known:
                raise NotFound(
                    f"no component {component!r}{identify.did_you_mean(component, known)}; "
                    "list them with `otel-mltrace components`"
                )
        done = [
            {**run_summary(r), "params": r["params"], "metrics": finite_or_text(r["metrics"])}
            for r in rows
        ]
        return run_starts.merge_newest(
            done, [{**s, "params": {}, "metrics": {}} for s in started], limit
        )

    def runs(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Recent runs, newest first, with those still running or abandoned."""
        window = min(offset + limit, 2**63 - 1)  # a SQL integer; offset may be that large
        started = run_starts.open_run_summaries(self.store, limit=window)
        if not started:
            return [run_summary(r) for r in self.store.recent_runs(limit, offset)]
        # An ended run at index j of its own order stands at j + (open runs newer) <= j + k
        # in the merged order (k open runs): the first offset - k ended runs all precede the
        # page, so skip them in SQL and merge only what can reach it.
        skip = max(0, offset - len(started))
        done = [run_summary(r) for r in self.store.recent_runs(window - skip, skip)]
        merged = run_starts.merge_newest(done, started, len(done) + len(started))
        return merged[offset - skip : offset - skip + limit]

    def search_runs(self, f: RunFilter) -> list[dict[str, Any]]:
        """Runs filtered and sorted by params, metrics, tags, status, time (run_search)."""
        return search_runs(self, f)

    def compare(self, run_ids: list[str], depth: int = MAX_DEPTH) -> dict[str, Any]:
        """Params, metrics, code and upstream-lineage diff of runs (see ``compare``)."""
        from mltrace_collector.index.queries.compare import compare

        return compare(self, run_ids, depth)

    def components(self) -> list[dict[str, Any]]:
        out = []
        for c in self.store.components():
            out.append({**c, "last_start": iso(c["last_start_ns"])})
        return out

    def stale(self, older_than_s: float, now_ns: int | None = None) -> list[dict[str, Any]]:
        """Every live run with whether it is stale, why, and the path to a stale upstream
        run (rules in docs/semantics.md; see
        :func:`mltrace_collector.index.queries.stale.stale_runs`)."""
        return stale_runs(self, older_than_s, now_ns)
