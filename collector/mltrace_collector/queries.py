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

import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from mltrace_collector import review
from mltrace_collector.checks import run_checks
from mltrace_collector.model import split_artifact_id
from mltrace_collector.records import is_record, trace_record
from mltrace_collector.store.base import Row, Store
from mltrace_collector.store.extras import record_sets_of

MAX_DEPTH = 1000


class NotFound(LookupError):
    """The ID names no run or artifact in the index (the message names the ID)."""


def iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def run_summary(row: Row) -> dict[str, Any]:
    """The compact form of a run used in graphs, lists and tables."""
    return {
        "run_id": row["run_id"],
        "component": row["component"],
        "status": row["status"],
        "start": iso(row["start_ns"]),
        "end": iso(row["end_ns"]),
        "start_ns": row["start_ns"],
        "end_ns": row["end_ns"],
        "duration_s": round(max(0, row["end_ns"] - row["start_ns"]) / 1e9, 6),
        "code_revision": row.get("code_revision"),
        "service": row.get("service"),
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
    }


class _Graph:
    def __init__(self, root_kind: str, root_id: str, direction: str) -> None:
        self.data: dict[str, Any] = {
            "root": {"kind": root_kind, "id": root_id},
            "direction": direction,
            "runs": {},
            "artifacts": {},
            "edges": [],
            "truncated": False,
        }
        self._edges: set[tuple[str, str, str]] = set()

    def run(self, row: Row) -> None:
        self.data["runs"].setdefault(row["run_id"], run_summary(row))

    def artifact(self, artifact_id: str, produced: bool) -> None:
        uri, version = split_artifact_id(artifact_id)
        entry = self.data["artifacts"].setdefault(
            artifact_id, {"id": artifact_id, "uri": uri, "version": version, "raw": True}
        )
        entry["raw"] = entry["raw"] and not produced

    def edge(self, source: str, target: str, relation: str) -> None:
        key = (source, target, relation)
        if key not in self._edges:
            self._edges.add(key)
            self.data["edges"].append({"source": source, "target": target, "relation": relation})


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
            raise NotFound(f"run ID prefix {run_id!r} is ambiguous; give more characters")
        raise NotFound(f"no run {run_id!r} in the index; list runs with `otel-mltrace runs`")

    def _kind(self, ident: str) -> str:
        if self.store.get_run(ident) is not None:
            return "run"
        if self.store.artifact(ident) is not None:
            return "artifact"
        uri, version = split_artifact_id(ident)
        if version is None and self.store.latest_producer_by_uri(uri, None) is not None:
            return "artifact"
        if is_record(self, ident):
            return "record"
        if len(ident) >= 6 and len(self.store.find_runs(ident, limit=2)) == 1:
            return "run"
        raise NotFound(
            f"{ident!r} is neither a run ID, an artifact ID nor a record ID in the index; "
            "artifact IDs look like 'file:///path@sha256:…' (see `otel-mltrace inspect RUN`)"
        )

    def producer_for(self, artifact_id: str, consumer_start_ns: int | None) -> Row | None:
        """The run a reader starting at ``consumer_start_ns`` got ``artifact_id`` from."""
        uri, version = split_artifact_id(artifact_id)
        if version is None:
            return self.store.latest_producer_by_uri(uri, consumer_start_ns)
        candidates = self.store.producers_exact(artifact_id)  # newest end first
        if not candidates:
            return None
        if consumer_start_ns is None:
            return candidates[0]
        for row in candidates:
            if row["end_ns"] <= consumer_start_ns:
                return row
        return candidates[-1]  # clock skew: the earliest producer is the best guess

    # -- lineage --------------------------------------------------------------------------
    def trace(self, ident: str, depth: int = MAX_DEPTH) -> dict[str, Any]:
        """Upstream closure of an artifact, run or record, down to raw artifacts (no producer)."""
        kind = self._kind(ident)
        if kind == "record":
            return trace_record(self, ident, depth)
        root = self.resolve_run(ident)["run_id"] if kind == "run" else ident
        graph = _Graph(kind, root, "upstream")
        queue: deque[tuple[Row, int]] = deque()
        seen_runs: set[str] = set()

        def visit_run(row: Row, level: int) -> None:
            graph.run(row)
            if row["run_id"] not in seen_runs:
                seen_runs.add(row["run_id"])
                queue.append((row, level))

        if kind == "run":
            visit_run(self.resolve_run(ident), 0)
        else:
            producer = self.producer_for(ident, None)
            graph.artifact(ident, producer is not None)
            if producer is not None:
                graph.edge(producer["run_id"], ident, "output")
                visit_run(producer, 1)
        while queue:
            row, level = queue.popleft()
            inputs = [io for io in self.store.run_io(row["run_id"]) if io["direction"] == "in"]
            if level >= depth:
                graph.data["truncated"] = graph.data["truncated"] or bool(inputs)
                continue
            for io in inputs:
                aid = io["artifact_id"]
                producer = self.producer_for(aid, row["start_ns"])
                graph.artifact(aid, producer is not None)
                graph.edge(aid, row["run_id"], "input")
                if producer is not None:
                    graph.edge(producer["run_id"], aid, "output")
                    visit_run(producer, level + 1)
        return graph.data

    def downstream(self, ident: str, depth: int = MAX_DEPTH) -> dict[str, Any]:
        """Everything derived from an artifact or run: consumers, their outputs, and so on."""
        kind = self._kind(ident)
        if kind == "record":  # record-level consumers are not tracked: its output artifact's
            kind, ident = "artifact", record_sets_of(self.store, ident)[0]["output_artifact_id"]
        root = self.resolve_run(ident)["run_id"] if kind == "run" else ident
        graph = _Graph(kind, root, "downstream")
        queue: deque[tuple[str, str | None, int]] = deque()  # (artifact, producer run, level)
        seen_runs: set[str] = set()
        seen_artifacts: set[tuple[str, str | None]] = set()

        def expand_run(row: Row, level: int) -> None:
            graph.run(row)
            if row["run_id"] in seen_runs:
                return
            seen_runs.add(row["run_id"])
            for io in self.store.run_io(row["run_id"]):
                if io["direction"] == "out":
                    graph.artifact(io["artifact_id"], True)
                    graph.edge(row["run_id"], io["artifact_id"], "output")
                    queue.append((io["artifact_id"], row["run_id"], level))

        if kind == "run":
            expand_run(self.resolve_run(ident), 0)
        else:
            producer = self.producer_for(ident, None)
            graph.artifact(ident, producer is not None)
            queue.append((ident, producer["run_id"] if producer else None, 0))
        while queue:
            aid, producer_id, level = queue.popleft()
            uri, version = split_artifact_id(aid)
            # An unversioned URI is a different thing per writer: visit it once per producer.
            key = (aid, producer_id if version is None else None)
            if key in seen_artifacts:
                continue
            seen_artifacts.add(key)
            # the root is an unversioned URI: every reader of it, whoever wrote what they read
            any_reader = kind == "artifact" and level == 0 and version is None
            for consumer in self.store.consumers(aid, uri):
                if split_artifact_id(consumer["read_as"])[1] is None and not any_reader:
                    # read the URI unversioned: only a reader that got it from this producer
                    got = self.producer_for(consumer["read_as"], consumer["start_ns"])
                    if (got["run_id"] if got else None) != producer_id:
                        continue
                if level >= depth:
                    graph.data["truncated"] = True
                    continue
                graph.artifact(consumer["read_as"], producer_id is not None)
                graph.edge(consumer["read_as"], consumer["run_id"], "input")
                expand_run(consumer, level + 1)
        return graph.data

    # -- flags and review (see mltrace_collector.review) -----------------------------------
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
        """Everything the index knows about one run."""
        row = self.resolve_run(run_id)
        io = self.store.run_io(row["run_id"])
        inputs = []
        for entry in io:
            if entry["direction"] != "in":
                continue
            producer = self.producer_for(entry["artifact_id"], row["start_ns"])
            inputs.append(
                {
                    "artifact_id": entry["artifact_id"],
                    "producer_run_id": producer and producer["run_id"],
                }
            )
        return {
            **run_summary(row),
            "parent_span_id": row.get("parent_span_id"),
            "status_message": row.get("status_message"),
            "code_repository": row.get("code_repository"),
            "code_function": row.get("code_function"),
            "code_file": row.get("code_file"),
            "params": row["params"],
            "metrics": row["metrics"],
            "tags": row["tags"],
            "inputs": inputs,
            "outputs": [e["artifact_id"] for e in io if e["direction"] == "out"],
            "output_summaries": self.store.run_outputs(row["run_id"]),
            "checks": run_checks(self.store, row["run_id"]),
            "attributes": row["attributes"],
        }

    def history(
        self, component: str, since_ns: int = 0, until_ns: int = 2**62, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Runs of ``component``, newest first."""
        rows = self.store.history(component, since_ns, until_ns, limit)
        if not rows and not any(c["component"] == component for c in self.store.components()):
            raise NotFound(f"no component {component!r}; list them with `otel-mltrace components`")
        return [{**run_summary(r), "params": r["params"], "metrics": r["metrics"]} for r in rows]

    def runs(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return [run_summary(r) for r in self.store.recent_runs(limit, offset)]

    def components(self) -> list[dict[str, Any]]:
        out = []
        for c in self.store.components():
            out.append({**c, "last_start": iso(c["last_start_ns"])})
        return out

    def stale(self, older_than_s: float, now_ns: int | None = None) -> list[dict[str, Any]]:
        """The newest run of each component, with why it is stale (if it is).

        Stale: an input has a newer version than the one read, or an input was produced
        (or first seen, for raw data) more than ``older_than_s`` seconds ago.
        """
        now = now_ns if now_ns is not None else time.time_ns()
        result = []
        for row in self.store.latest_runs():
            reasons: list[str] = []
            newest_input_ns: int | None = None
            for io in self.store.run_io(row["run_id"]):
                if io["direction"] != "in":
                    continue
                aid = io["artifact_id"]
                producer = self.producer_for(aid, row["start_ns"])
                known = self.store.artifact(aid)
                made_ns = producer["end_ns"] if producer else (known or {}).get("first_seen_ns")
                if made_ns is not None:
                    newest_input_ns = max(newest_input_ns or made_ns, made_ns)
                if io["versioned"]:
                    latest = self.store.latest_version(io["uri"])
                    if (
                        latest is not None
                        and latest["artifact_id"] != aid
                        and known is not None
                        and latest["first_seen_ns"] > known["first_seen_ns"]
                    ):
                        reasons.append(
                            f"input {io['uri']} has a newer version {latest['version']} "
                            f"(first seen {iso(latest['first_seen_ns'])})"
                        )
                if made_ns is not None and (now - made_ns) / 1e9 > older_than_s:
                    reasons.append(
                        f"input {aid} is {(now - made_ns) / 86400e9:.1f} days old "
                        f"(threshold {older_than_s / 86400:.1f} days)"
                    )
            result.append(
                {
                    **run_summary(row),
                    "stale": bool(reasons),
                    "reasons": reasons,
                    "newest_input_age_s": (now - newest_input_ns) / 1e9
                    if newest_input_ns is not None
                    else None,
                }
            )
        return result
