"""Flag outputs and review which upstream runs, components and code revisions to blame.

Flagged items are records, artifacts or runs. For each flagged item, ``review`` builds a
*population of the same kind* and compares lineages inside it:

* a record: every record of the same output artifact of the same run (grouped by the run
  their source record came from, so a million records cost one GROUP BY);
* an artifact: the outputs of the latest ``POPULATION_RUNS`` runs of its component;
* a run: the latest ``POPULATION_RUNS`` runs of its component.

For every upstream run *u* (then component, then code revision) with ``a`` of the ``nF``
flagged and ``b`` of the ``nU`` unflagged items having *u* in their lineage:

    coverage = a / nF
    lift     = ((a + 1) / (nF + 2)) / ((b + 1) / (nU + 2))        add-one (Laplace) smoothing
    p_value  = P(X >= a), X ~ Hypergeometric(nF + nU, a + b, nF)   one-sided Fisher exact test
    score    = coverage * ln(lift)                                 the ranking key

A run that feeds every output has lift ≈ 1, so score ≈ 0 however common it is; a run
feeding the flagged outputs far more often than the unflagged ones ranks first. Only
runs (components, revisions) with ``flagged_count > 0`` and ``score > 0`` are listed;
when none is, ``verdict`` says so in words instead of listing noise.

Example::

    q = LineageQueries(store)
    q.flag(["pred-000042"], reason="wrong label")
    q.review()["runs"][0]        # {"run_id": ..., "lift": 14.2, "p_value": 3e-9, ...}
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.queries.records import LineageCache
from mltrace_collector.index.store import extras

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost

POPULATION_RUNS = 200
MAX_FLAGS = 100_000


# -- flags --------------------------------------------------------------------------------
def _identify(q: QueryHost, ident: str) -> tuple[str, str]:
    """``(kind, canonical ID)`` of a flaggable ID; ``NotFound`` names the ID otherwise."""
    kind = q._kind(ident)
    if kind == "run":
        return "run", q.resolve_run(ident)["run_id"]
    return kind, ident


def flag(q: QueryHost, ids: Sequence[str], reason: str | None = None) -> list[dict[str, Any]]:
    """Flag records, artifacts or runs. All IDs are checked first: one unknown ID flags none."""
    if not ids:
        raise ValueError("give at least one ID to flag")
    resolved = [_identify(q, i) for i in ids]  # raises NotFound naming the first unknown ID
    extras.add_flags(q.store, [(target, kind, reason) for kind, target in resolved])
    return [{"id": t, "kind": k, "reason": reason} for k, t in resolved]


def unflag(q: QueryHost, ids: Sequence[str] | None) -> int:
    """Remove flags of ``ids`` (``None``: all); ``NotFound`` names an ID that is not flagged."""
    from mltrace_collector.index.queries.query_host import NotFound

    if ids is not None:
        flagged = {f["target_id"] for f in extras.flags(q.store)}
        targets = []
        for ident in ids:
            target = ident if ident in flagged else None
            if target is None and len(ident) >= 6:
                matches = [f for f in flagged if f.startswith(ident)]
                target = matches[0] if len(matches) == 1 else None
            if target is None:
                raise NotFound(f"{ident!r} is not flagged; list flags with `otel-mltrace flags`")
            targets.append(target)
        return extras.remove_flags(q.store, targets)
    return extras.remove_flags(q.store, None)


def list_flags(q: QueryHost) -> list[dict[str, Any]]:
    from mltrace_collector.index.queries.lineage_walk import iso

    return [{**f, "flagged": iso(f["flagged_ns"])} for f in extras.flags(q.store)]


# -- statistics ---------------------------------------------------------------------------
def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(a: int, n_flagged: int, b: int, n_unflagged: int) -> float:
    """One-sided Fisher exact p-value that *u* is over-represented among flagged items.

    >>> round(fisher_greater(10, 10, 0, 90), 12) < 1e-12
    True
    >>> fisher_greater(10, 10, 90, 90)
    1.0
    """
    total, with_u = n_flagged + n_unflagged, a + b
    if total == 0 or with_u == 0:
        return 1.0
    denom = _log_comb(total, n_flagged)
    hi = min(with_u, n_flagged)
    p = 0.0
    for x in range(a, hi + 1):
        if n_flagged - x > total - with_u:
            continue
        p += math.exp(_log_comb(with_u, x) + _log_comb(total - with_u, n_flagged - x) - denom)
    return min(1.0, p)


def score_row(a: int, n_flagged: int, b: int, n_unflagged: int) -> dict[str, Any]:
    lift = ((a + 1) / (n_flagged + 2)) / ((b + 1) / (n_unflagged + 2))
    coverage = a / n_flagged if n_flagged else 0.0
    return {
        "flagged_count": a,
        "unflagged_count": b,
        "coverage": round(coverage, 6),
        "unflagged_coverage": round(b / n_unflagged, 6) if n_unflagged else 0.0,
        "lift": round(lift, 6),
        "p_value": fisher_greater(a, n_flagged, b, n_unflagged),
        "score": round(coverage * math.log(lift), 6),
    }


def verdict(n_flagged: int, n_unflagged: int, suspects: bool) -> str:
    """One plain sentence on what the ranking means (shown above the tables)."""
    if not n_flagged:
        return "no flagged item has lineage: flag outputs, records or runs with `otel-mltrace flag`"
    if not n_unflagged:
        return (
            f"all {n_flagged} items compared are flagged: there are no unflagged items of the "
            "same kind to compare with, so no upstream run can be singled out"
        )
    if not suspects:
        return (
            f"no upstream run is over-represented among the {n_flagged} flagged items: every "
            f"run in their lineage feeds the {n_unflagged} unflagged items at least as often"
        )
    return (
        f"upstream runs ranked by how much more often they feed the {n_flagged} flagged "
        f"items than the {n_unflagged} unflagged ones"
    )


# -- populations --------------------------------------------------------------------------
Item = tuple[frozenset[str], int, int]
"""(lineage run IDs, flagged weight, unflagged weight)."""


def _record_population(
    cache: LineageCache, run_id: str, output: str, flagged: set[str]
) -> list[Item]:
    """Records of one set, grouped by their record-level lineage."""
    bad: dict[frozenset[str], int] = defaultdict(int)
    good: dict[frozenset[str], int] = defaultdict(int)
    for record_id, lineage in cache.set_lineages((run_id, output)).items():
        if record_id in flagged:
            bad[lineage] += 1
        else:
            good[lineage] += 1
    return [(lineage, bad[lineage], good[lineage]) for lineage in set(bad) | set(good)]


def _component_population(
    cache: LineageCache, component: str, kind: str, flagged: set[str]
) -> list[Item]:
    store = cache.q.store
    items: list[Item] = []
    runs = store.history(component, limit=POPULATION_RUNS)
    runs += [r for r in (cache.row(f) for f in flagged if kind == "run") if r is not None]
    seen: set[str] = set()
    for row in runs:
        cache.runs.setdefault(row["run_id"], row)
        if kind == "run":
            if row["run_id"] in seen:
                continue
            seen.add(row["run_id"])
            bad = row["run_id"] in flagged
            items.append((cache.upstream(row["run_id"]), int(bad), int(not bad)))
            continue
        for io in store.run_io(row["run_id"]):
            if io["direction"] == "out" and io["artifact_id"] not in seen:
                seen.add(io["artifact_id"])
                bad = io["artifact_id"] in flagged
                items.append((cache.upstream(row["run_id"]), int(bad), int(not bad)))
    return items


def _rank(
    items: Sequence[Item], keys: Callable[[frozenset[str]], Iterable[Hashable]]
) -> list[tuple[Hashable, dict[str, Any]]]:
    n_f = sum(i[1] for i in items)
    n_u = sum(i[2] for i in items)
    a: dict[Hashable, int] = defaultdict(int)
    b: dict[Hashable, int] = defaultdict(int)
    for lineage, bad, good in items:
        for key in set(keys(lineage)):
            a[key] += bad
            b[key] += good
    rows = [(key, score_row(a[key], n_f, b[key], n_u)) for key in a]
    # Only what covers flagged items and is over-represented among them is a suspect: a
    # run with coverage 0 (score 0) or lift <= 1 (score <= 0) explains nothing.
    rows = [kr for kr in rows if kr[1]["flagged_count"] > 0 and kr[1]["score"] > 0]
    rows.sort(key=lambda kr: (-kr[1]["score"], kr[1]["p_value"], str(kr[0])))
    return rows


def review(q: QueryHost, limit: int = 20) -> dict[str, Any]:
    """Rank upstream runs, components and code revisions by association with flags."""
    from mltrace_collector.index.queries.lineage_walk import run_summary

    cache = LineageCache(q)
    flags = extras.flags(q.store)[:MAX_FLAGS]
    record_groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    component_groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    unresolved: list[str] = []
    for f in flags:
        target, kind = f["target_id"], f["kind"]
        group: set[str] | None = None
        if kind == "record":
            sets = extras.record_sets_of(q.store, target)
            if sets:
                group = record_groups[(sets[0]["run_id"], sets[0]["output_artifact_id"])]
        elif kind == "artifact":
            producer = q.producer_for(target, None)
            if producer is not None:
                cache.runs.setdefault(producer["run_id"], producer)
                group = component_groups[(producer["component"], "artifact")]
        elif kind == "run":
            row = cache.row(target)
            if row is not None:
                group = component_groups[(row["component"], "run")]
        if group is None:
            unresolved.append(target)  # e.g. a raw artifact: nothing upstream to blame
        else:
            group.add(target)
    items: list[Item] = []
    for (run_id, output), targets in sorted(record_groups.items()):
        items += _record_population(cache, run_id, output, targets)
    for (component, kind), targets in sorted(component_groups.items()):
        items += _component_population(cache, component, kind, targets)

    def component_of(run_id: str) -> str:
        return str(cache.runs[run_id]["component"])

    def revision_of(run_id: str) -> str | None:
        rev = cache.runs[run_id].get("code_revision")
        return str(rev) if rev else None

    runs = []
    for key, stats in _rank(items, lambda lineage: lineage)[:limit]:
        summary = run_summary(cache.runs[str(key)])
        runs.append({**summary, **stats})
    components = [
        {"component": key, **stats}
        for key, stats in _rank(items, lambda lin: (component_of(r) for r in lin))[:limit]
    ]
    revisions = []
    revs = _rank(items, lambda lin: (r for r in map(revision_of, lin) if r is not None))
    for key, stats in revs[:limit]:
        comps = sorted({component_of(r) for r in cache.runs if revision_of(r) == key})
        revisions.append({"code_revision": key, "components": comps, **stats})
    n_flagged = sum(i[1] for i in items)
    return {
        "verdict": verdict(n_flagged, sum(i[2] for i in items), bool(runs)),
        "flagged": n_flagged,
        "unflagged": sum(i[2] for i in items),
        "unresolved_flags": unresolved,
        "runs": [{"rank": i + 1, **r} for i, r in enumerate(runs)],
        "components": [{"rank": i + 1, **c} for i, c in enumerate(components)],
        "revisions": [{"rank": i + 1, **r} for i, r in enumerate(revisions)],
    }
