"""Compare runs: params, metrics and code side by side, and a diff of their upstream lineage.

Behind ``otel-mltrace compare A B [C …]``, ``GET /api/v1/compare`` and
``otel_mltrace.query.compare``. The lineage diff aligns the two upstream graphs by
artifact URI (the place, whatever its version) and by component, and reports:

* ``shared_runs``: upstream runs both lineages contain (the same run ID);
* ``differing_runs``: per component, the upstream runs only one side has (a re-run that
  wrote byte-identical outputs shows up here, while its artifacts stay ``same``);
* ``artifacts``: every URI either lineage touches, with the version each side has;
* ``first_divergence``: the differing URIs none of whose own upstream URIs differ, i.e.
  where the lineages part, with who read them and why they differ (different raw data,
  producer params or code, or a non-reproducible producer). Every other difference is
  downstream of one of them.

Properties (tests/test_compare.py): ``compare(A, A)`` reports no difference;
``compare(A, B)`` is ``compare(B, A)`` with the sides swapped.

Example::

    result = compare(LineageQueries(store), ["0193…a", "0193…b"])
    result["lineage"][0]["first_divergence"][0]["description"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.queries.render import short
from mltrace_collector.index.queries.run_search import BadQuery, run_row

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost

__all__ = ["MAX_RUNS", "compare", "lineage_diff"]

MAX_RUNS = 20
"""Most runs one ``compare`` takes (each costs an upstream walk)."""

_MISSING = "—"


def _side_by_side(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    names = sorted({n for r in rows for n in r[key]})
    out = []
    for name in names:
        values = [r[key].get(name) for r in rows]
        present = [name in r[key] for r in rows]
        differs = not all(present) or any(v != values[0] for v in values[1:])
        out.append({"name": name, "values": values, "present": present, "differs": differs})
    return out


class _Lineage:
    """One upstream graph indexed by URI: versions, producers, readers, upstream URIs."""

    def __init__(self, graph: dict[str, Any]) -> None:
        self.graph = graph
        self.runs: dict[str, dict[str, Any]] = graph["runs"]
        self.versions: dict[str, set[str]] = {}
        for aid, art in graph["artifacts"].items():
            self.versions.setdefault(art["uri"], set()).add(aid)
        self.producer: dict[str, str] = {}  # artifact ID -> run ID
        self.inputs: dict[str, set[str]] = {}  # run ID -> artifact IDs read
        self.readers: dict[str, set[str]] = {}  # artifact ID -> run IDs
        for e in graph["edges"]:
            if e["relation"] == "output":
                self.producer[e["target"]] = e["source"]
            elif e["relation"] == "input":
                self.inputs.setdefault(e["target"], set()).add(e["source"])
                self.readers.setdefault(e["source"], set()).add(e["target"])
        self._uri_of = {aid: art["uri"] for aid, art in graph["artifacts"].items()}
        self._up: dict[str, set[str]] = {}

    def upstream_uris(self, uri: str) -> set[str]:
        """URIs this URI's versions were made from, transitively (cycles are cut)."""
        if uri in self._up:
            return self._up[uri]
        self._up[uri] = set()  # guard against cycles while computing
        found: set[str] = set()
        for aid in self.versions.get(uri, ()):
            run = self.producer.get(aid)
            for src in self.inputs.get(run, ()) if run else ():
                src_uri = self._uri_of[src]
                found.add(src_uri)
                found |= self.upstream_uris(src_uri)
        self._up[uri] = found
        return found

    def readers_of(self, uri: str) -> set[str]:
        aids = self.versions.get(uri, set())
        return {self.runs[r]["component"] for a in aids for r in self.readers.get(a, ())}

    def producers_of(self, uri: str) -> list[str]:
        return sorted({self.producer[a] for a in self.versions.get(uri, ()) if a in self.producer})


def _one(ids: set[str]) -> str | None:
    return None if not ids else sorted(ids)[0] if len(ids) == 1 else ", ".join(sorted(ids))


def _cause(queries: QueryHost, uri: str, la: _Lineage, lb: _Lineage) -> str:
    if not la.versions.get(uri) or not lb.versions.get(uri):
        side = "first" if la.versions.get(uri) else "second"
        return f"only the {side} lineage reads {uri}"
    pa, pb = la.producers_of(uri), lb.producers_of(uri)
    if not pa and not pb:
        return "different raw data (no run produced either version)"
    if not pa or not pb:
        return "one version is raw data, the other was produced by a run"
    ra, rb = queries.store.get_run(pa[0]), queries.store.get_run(pb[0])
    if ra is None or rb is None:
        return "produced by different runs"
    what = [
        f"{name} {ra['params'].get(name, _MISSING)} vs {rb['params'].get(name, _MISSING)}"
        for name in sorted(set(ra["params"]) | set(rb["params"]))
        if ra["params"].get(name, _MISSING) != rb["params"].get(name, _MISSING)
    ]
    parts = [f"{ra['component']} params differ ({'; '.join(what)})"] if what else []
    if ra.get("code_revision") != rb.get("code_revision"):
        parts.append(
            f"code revision {(ra.get('code_revision') or '-')[:10]} vs "
            f"{(rb.get('code_revision') or '-')[:10]}"
        )
    if parts:
        return "same inputs; " + ", ".join(parts)
    return f"same inputs, params and code: {ra['component']} did not reproduce its output"


def lineage_diff(
    queries: QueryHost, graph_a: dict[str, Any], graph_b: dict[str, Any]
) -> dict[str, Any]:
    """Diff of two upstream graphs (``LineageQueries.trace_run`` results)."""
    la, lb = _Lineage(graph_a), _Lineage(graph_b)
    roots = {graph_a["root"]["id"], graph_b["root"]["id"]}  # compared in params/metrics
    shared = sorted(set(la.runs) & set(lb.runs) - roots)  # compare A A: A is not upstream
    components = sorted({r["component"] for r in (*la.runs.values(), *lb.runs.values())})
    differing_runs = []
    for comp in components:
        ia = {rid for rid, r in la.runs.items() if r["component"] == comp} - roots
        ib = {rid for rid, r in lb.runs.items() if r["component"] == comp} - roots
        if ia != ib:
            differing_runs.append({"component": comp, "a": sorted(ia - ib), "b": sorted(ib - ia)})
    artifacts = []
    differing: set[str] = set()
    for uri in sorted(set(la.versions) | set(lb.versions)):
        va, vb = la.versions.get(uri, set()), lb.versions.get(uri, set())
        if va != vb:
            differing.add(uri)
        artifacts.append({"uri": uri, "a": _one(va), "b": _one(vb), "same": va == vb})
    first = []
    for uri in sorted(differing):
        if (la.upstream_uris(uri) | lb.upstream_uris(uri)) & differing:
            continue
        a, b = _one(la.versions.get(uri, set())), _one(lb.versions.get(uri, set()))
        readers = sorted(la.readers_of(uri) | lb.readers_of(uri))
        cause = _cause(queries, uri, la, lb)
        tail = (
            short(b).rpartition("@")[1:] if a and b and "," not in b else (short(b),) if b else ()
        )
        shown = f"{short(a) if a else _MISSING} vs {''.join(tail) or _MISSING}"
        first.append(
            {
                "uri": uri,
                "a": a,
                "b": b,
                "read_by": readers,
                "produced_by": {"a": la.producers_of(uri), "b": lb.producers_of(uri)},
                "cause": cause,
                "description": f"{', '.join(readers) or 'the run'} read {shown}: {cause}; "
                "everything downstream of it differs because of that",
            }
        )
    return {
        "a": graph_a["root"]["id"],
        "b": graph_b["root"]["id"],
        "identical": not differing,  # the same data; re-runs with equal outputs don't count
        "shared_runs": [{"run_id": r, "component": la.runs[r]["component"]} for r in shared],
        "differing_runs": differing_runs,
        "artifacts": artifacts,
        "first_divergence": first,
        "truncated": bool(graph_a.get("truncated") or graph_b.get("truncated")),
    }


def compare(queries: QueryHost, run_ids: Sequence[str], depth: int = 1000) -> dict[str, Any]:
    """Params, metrics, code and upstream lineage of 2..``MAX_RUNS`` runs (ID prefixes ok).

    ``lineage`` holds one diff per run after the first, each against the first run.
    """
    if not 2 <= len(run_ids) <= MAX_RUNS:
        raise BadQuery(f"compare takes 2 to {MAX_RUNS} run IDs, got {len(run_ids)}")
    full = [queries.resolve_run(r) for r in run_ids]
    rows = [
        {**run_row(r), "code_repository": r.get("code_repository"), "tags": r["tags"]} for r in full
    ]
    graphs = [queries.trace_run(r, depth) for r in full]
    params, metrics = _side_by_side(rows, "params"), _side_by_side(rows, "metrics")
    revisions = [r["code_revision"] for r in rows]
    lineage = [lineage_diff(queries, graphs[0], g) for g in graphs[1:]]
    same_run = len({r["run_id"] for r in rows}) == 1
    code_differs = len(set(revisions)) > 1
    identical = (
        not code_differs
        and not any(p["differs"] for p in (*params, *metrics))
        and all(d["identical"] for d in lineage)
    )
    summary = []
    if same_run:
        summary.append("the same run compared with itself: no differences")
    elif identical:
        summary.append("no differences in params, metrics, code revision or upstream lineage")
    else:
        summary += [f"param {p['name']} differs" for p in params if p["differs"]]
        summary += [f"metric {m['name']} differs" for m in metrics if m["differs"]]
        if code_differs:
            summary.append("code revisions differ: " + " vs ".join(str(r) for r in revisions))
        for d in lineage:
            if d["identical"]:
                summary.append(f"upstream of {d['b']}: identical to {d['a']}")
            summary += [f["description"] for f in d["first_divergence"]]
            summary += [
                f"{r['component']}: different runs ({', '.join(r['a']) or '—'} vs "
                f"{', '.join(r['b']) or '—'})"
                + (" with identical outputs" if d["identical"] else "")
                for r in d["differing_runs"]
            ]
    return {
        "runs": rows,
        "same_run": same_run,
        "identical": identical,
        "params": params,
        "metrics": metrics,
        "code": {"revisions": revisions, "differs": code_differs},
        "lineage": lineage,
        "summary": summary,
    }
