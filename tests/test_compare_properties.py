"""Properties of ``compare`` on generated pipelines, stored in a real SQLite index.

A pipeline is a DAG of stages; stage ``i`` reads raw files and outputs of earlier stages and
writes one file whose version is a hash of (stage, params, input versions), as a
deterministic step would. Two variants run the same DAG with some raw versions and stage
params changed. For the last stages' runs A and B:

* ``compare(A, A)`` reports no difference;
* ``compare(A, B)`` is ``compare(B, A)`` with the sides swapped;
* every differing artifact is a first divergence or downstream of one, no first divergence
  is downstream of another difference, and the causes name what was changed.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrace_collector.index.model import RunRecord
from mltrace_collector.index.queries.compare import compare
from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store

S = 1_000_000_000


@dataclass(frozen=True)
class Stage:
    raw: tuple[int, ...]
    """Raw files read (indices)."""
    upstream: tuple[int, ...]
    """Earlier stages read."""


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[list[Stage], int, set[int], set[int]]:
    """(stages, number of raw files, raw files changed in B, stages whose params change)."""
    n_raw = draw(st.integers(1, 3))
    stages: list[Stage] = []
    for i in range(draw(st.integers(1, 5))):
        upstream = tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=2)))) if i else ()
        raw = tuple(sorted(draw(st.sets(st.integers(0, n_raw - 1), min_size=0 if upstream else 1,
                                        max_size=2))))  # fmt: skip
        stages.append(Stage(raw, upstream))
    changed_raw = draw(st.sets(st.integers(0, n_raw - 1)))
    changed_params = draw(st.sets(st.integers(0, len(stages) - 1)))
    return stages, n_raw, changed_raw, changed_params


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _run_variant(
    q: LineageQueries, stages: list[Stage], variant: str, changed_raw: set[int],
    changed_params: set[int], t0: int,
) -> str:  # fmt: skip
    """Ingest one execution of the pipeline; returns the last stage's run ID."""
    outputs: list[str] = []
    runs = []
    for i, stage in enumerate(stages):
        raw_ids = [
            f"file:///raw{r}.csv@sha256:{_digest('raw', r, variant if r in changed_raw else '')}"
            for r in stage.raw
        ]
        inputs = (*raw_ids, *(outputs[u] for u in stage.upstream))
        params = {"p": 2 if variant == "B" and i in changed_params else 1}
        out = f"file:///stage{i}.out@sha256:{_digest(i, params, inputs)}"
        outputs.append(out)
        start = t0 + i * 10
        runs.append(
            RunRecord(
                run_id=f"{variant}{i}",
                component=f"stage{i}",
                trace_id="cd" * 16,
                span_id=f"{start:016x}",
                parent_span_id=None,
                service="s",
                start_ns=start * S,
                end_ns=(start + 1) * S,
                status="ok",
                status_message=None,
                inputs=inputs,
                outputs=(out,),
                params=params,
            )  # fmt: skip
        )
    q.store.ingest(runs)
    return f"{variant}{len(stages) - 1}"


def _swap(result: dict[str, Any]) -> dict[str, Any]:
    (d,) = result["lineage"]
    return {
        "params": [(p["name"], p["values"][::-1], p["differs"]) for p in result["params"]],
        "artifacts": [(a["uri"], a["b"], a["a"], a["same"]) for a in d["artifacts"]],
        "first": [(f["uri"], f["b"], f["a"], f["read_by"]) for f in d["first_divergence"]],
        "shared": d["shared_runs"],
        "identical": d["identical"],
    }


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    (d,) = result["lineage"]
    return {
        "params": [(p["name"], p["values"], p["differs"]) for p in result["params"]],
        "artifacts": [(a["uri"], a["a"], a["b"], a["same"]) for a in d["artifacts"]],
        "first": [(f["uri"], f["a"], f["b"], f["read_by"]) for f in d["first_divergence"]],
        "shared": d["shared_runs"],
        "identical": d["identical"],
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_compare_properties(case: tuple[list[Stage], int, set[int], set[int]]) -> None:
    stages, _, changed_raw, changed_params = case
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "lineage.db"))
        try:
            q = LineageQueries(store)
            a = _run_variant(q, stages, "A", changed_raw, changed_params, 1000)
            b = _run_variant(q, stages, "B", changed_raw, changed_params, 2000)
            same = compare(q, [a, a])
            assert same["same_run"] and same["identical"]
            assert same["lineage"][0]["first_divergence"] == []

            ab, ba = compare(q, [a, b]), compare(q, [b, a])
            assert _plain(ba) == _swap(ab)

            (d,) = ab["lineage"]
            graph = q.trace(a)
            differing = {x["uri"] for x in d["artifacts"] if not x["same"]}
            first = {f["uri"] for f in d["first_divergence"]}
            assert first <= differing and bool(first) == bool(differing)
            up = _upstream_uris(graph)
            for uri in differing - first:  # downstream of some first divergence
                assert up[uri] & first, (uri, first)
            for uri in first:  # and no first divergence has a differing ancestor
                assert not up.get(uri, set()) & differing
            for f in d["first_divergence"]:
                if f["uri"].startswith("file:///raw"):
                    assert f["cause"] == "different raw data (no run produced either version)"
                else:
                    assert "params differ (p 1 vs 2)" in f["cause"]
            last = len(stages) - 1  # the compared runs: their own params are not lineage
            assert ab["params"][0]["differs"] == (last in changed_params)
            relevant = _relevant(stages, last)
            touched = {i for i in relevant["stages"] - {last} if i in changed_params} | {
                r for r in relevant["raw"] if r in changed_raw
            }
            assert d["identical"] == (not touched)
        finally:
            store.close()


def _upstream_uris(graph: dict[str, Any]) -> dict[str, set[str]]:
    """URI -> URIs upstream of it, from one trace graph (the DAG is the same in A and B)."""
    uri_of = {aid: art["uri"] for aid, art in graph["artifacts"].items()}
    producer = {e["target"]: e["source"] for e in graph["edges"] if e["relation"] == "output"}
    inputs: dict[str, list[str]] = {}
    for e in graph["edges"]:
        if e["relation"] == "input":
            inputs.setdefault(e["target"], []).append(e["source"])
    result: dict[str, set[str]] = {}

    def walk(aid: str) -> set[str]:
        found: set[str] = set()
        for src in inputs.get(producer.get(aid, ""), []):
            found |= {uri_of[src]} | walk(src)
        return found

    for aid in uri_of:
        result.setdefault(uri_of[aid], set()).update(walk(aid))
    return result


def _relevant(stages: list[Stage], last: int) -> dict[str, set[int]]:
    """Stages and raw files upstream of (and including) stage ``last``."""
    seen_stages, seen_raw, todo = set(), set(), [last]
    while todo:
        i = todo.pop()
        if i in seen_stages:
            continue
        seen_stages.add(i)
        seen_raw |= set(stages[i].raw)
        todo += stages[i].upstream
    return {"stages": seen_stages, "raw": seen_raw}
