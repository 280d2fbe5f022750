"""The reference model of docs/semantics.md: obviously correct, in memory, slow on purpose.

Every rule is a direct transcription of a paragraph of docs/semantics.md over a plain
list of runs — no SQL, no batching, no caches — so that the property tests in
``tests/test_semantics_properties.py`` can compare the real queries against it.

Example::

    model = Model([MRun("r1", "ingest", 10, 20, ("raw@v:1",), ("clean@v:1",))])
    model.trace_run("r1")       # (run IDs, edges)
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

Edge = tuple[str, str, str]
SetKey = tuple[str, str]


def split(aid: str) -> tuple[str, str | None]:
    """``"u@v:1"`` -> ``("u", "v:1")``; the model only uses ``@v:`` and ``@sha256:``."""
    head, sep, tail = aid.rpartition("@")
    if sep and ":" in tail:
        return head, tail
    return aid, None


@dataclass(frozen=True)
class MRun:
    run_id: str
    component: str
    start: int
    end: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    records: tuple[tuple[str, str, str], ...] = ()
    """(output artifact ID, record ID, source record ID or '')."""
    params: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class Model:
    def __init__(self, runs: list[MRun]) -> None:
        self.runs = {r.run_id: r for r in runs}

    # -- stitching ------------------------------------------------------------------------
    def producer(self, aid: str, t: int | None, reader: str | None = None) -> MRun | None:
        uri, version = split(aid)
        if version is not None:
            writers = [r for r in self.runs.values() if aid in r.outputs]
        else:
            writers = [r for r in self.runs.values() if any(split(o)[0] == uri for o in r.outputs)]
        if not writers:
            return None
        if t is None:
            return max(writers, key=lambda r: (r.end, r.run_id))
        # only a run that comes before the reader in (start, run ID) order: never the
        # reader itself, never a cycle (without a reader: any that started by t)
        if reader is None:
            writers = [r for r in writers if r.start <= t]
        else:
            writers = [r for r in writers if (r.start, r.run_id) < (t, reader)]
        by_end = sorted(writers, key=lambda r: (r.end, r.run_id))
        if not by_end:
            return None
        ended = [r for r in by_end if r.end <= t]
        if ended:
            return ended[-1]
        return None if version is None else by_end[0]

    def input_producer(self, run: MRun, aid: str) -> MRun | None:
        return self.producer(aid, run.start, run.run_id)

    # -- trace / downstream ----------------------------------------------------------------
    def _upstream(self, start: list[MRun], runs: set[str], edges: set[Edge]) -> None:
        todo = list(start)
        while todo:
            run = todo.pop()
            if run.run_id in runs:
                continue
            runs.add(run.run_id)
            for aid in run.inputs:
                edges.add((aid, run.run_id, "input"))
                p = self.input_producer(run, aid)
                if p is not None:
                    edges.add((p.run_id, aid, "output"))
                    todo.append(p)

    def trace_run(self, run_id: str) -> tuple[set[str], set[Edge]]:
        runs: set[str] = set()
        edges: set[Edge] = set()
        self._upstream([self.runs[run_id]], runs, edges)
        return runs, edges

    def trace_artifact(self, aid: str) -> tuple[set[str], set[Edge]]:
        runs: set[str] = set()
        edges: set[Edge] = set()
        p = self.producer(aid, None)
        if p is not None:
            edges.add((p.run_id, aid, "output"))
            self._upstream([p], runs, edges)
        return runs, edges

    def upstream_ids(self, run_id: str, skip: frozenset[str] = frozenset()) -> set[str]:
        """``run_id`` and every run upstream of it, not through the inputs in ``skip``."""
        run = self.runs[run_id]
        result = {run_id}
        for aid in run.inputs:
            p = None if aid in skip else self.input_producer(run, aid)
            if p is not None:
                result |= self.trace_run(p.run_id)[0]
        return result

    def readers_of(self, producer: MRun, out: str) -> list[tuple[str, MRun]]:
        """(ID as read, reader) pairs that got ``out`` from ``producer``."""
        uri, version = split(out)
        found = []
        for r in self.runs.values():
            if r.run_id == producer.run_id:
                continue  # a run is never its own reader
            for aid in r.inputs:
                if version is not None and aid == out:
                    # a reader that comes first read it before ``producer`` wrote it
                    if (producer.start, producer.run_id) < (r.start, r.run_id):
                        found.append((aid, r))
                elif aid == uri:
                    p = self.input_producer(r, aid)
                    if p is not None and p.run_id == producer.run_id:
                        found.append((aid, r))
        return found

    def downstream_run(self, run_id: str) -> tuple[set[str], set[Edge]]:
        runs: set[str] = set()
        edges: set[Edge] = set()
        todo = [self.runs[run_id]]
        while todo:
            run = todo.pop()
            if run.run_id in runs:
                continue
            runs.add(run.run_id)
            for out in run.outputs:
                edges.add((run.run_id, out, "output"))
                for read_as, reader in self.readers_of(run, out):
                    edges.add((read_as, reader.run_id, "input"))
                    todo.append(reader)
        return runs, edges

    # -- newest versions, live, stale ---------------------------------------------------------
    def latest_writer(self, uri: str) -> tuple[MRun, str] | None:
        writes = [(r.end, r.run_id, o) for r in self.runs.values() for o in r.outputs]
        best = max((w for w in writes if split(w[2])[0] == uri), default=None)
        return None if best is None else (self.runs[best[1]], best[2])

    def first_seen(self, aid: str) -> int | None:
        times = [r.start for r in self.runs.values() if aid in r.inputs]
        times += [r.end for r in self.runs.values() if aid in r.outputs]
        return min(times) if times else None

    def newest_raw(self, uri: str) -> tuple[int, str] | None:
        ids = {a for r in self.runs.values() for a in r.inputs if split(a) == (uri, split(a)[1])}
        seen = [(self.first_seen(a) or 0, a) for a in ids if split(a)[1] is not None]
        return max(seen) if seen else None

    def live(self, run_id: str) -> bool:
        run = self.runs[run_id]
        if not run.outputs:
            same = [r for r in self.runs.values() if r.component == run.component]
            return max(same, key=lambda r: (r.start, r.run_id)).run_id == run_id
        for o in run.outputs:
            uri, version = split(o)
            latest = self.latest_writer(uri)
            assert latest is not None
            if (version is not None and latest[1] == o) or (
                version is None and latest[0].run_id == run_id
            ):
                return True
        return False

    def direct_stale(self, run_id: str, now: int, older_than_ns: int) -> bool:
        run = self.runs[run_id]
        for aid in run.inputs:
            uri, version = split(aid)
            p = self.input_producer(run, aid)
            latest = self.latest_writer(uri)
            if latest is not None:
                if latest[0].run_id == run_id:
                    pass  # the newest version is its own write: not a newer input
                elif (p is None or latest[0].run_id != p.run_id) and (
                    version is None or latest[1] != aid
                ):
                    return True
            elif version is not None:
                newest = self.newest_raw(uri)
                mine = self.first_seen(aid)
                if (
                    newest is not None
                    and newest[1] != aid
                    and mine is not None
                    and newest[0] > mine
                ):
                    return True
            made = p.end if p is not None else self.first_seen(aid)
            if made is not None and now - made > older_than_ns:
                return True
        return False

    def stale(self, now: int, older_than_ns: int) -> dict[str, tuple[bool, bool]]:
        """live run ID -> (stale, directly stale)."""
        result = {}
        for run_id in self.runs:
            if not self.live(run_id):
                continue
            direct = self.direct_stale(run_id, now, older_than_ns)
            upstream = self.trace_run(run_id)[0] - {run_id}
            transitive = any(self.direct_stale(u, now, older_than_ns) for u in upstream)
            result[run_id] = (direct or transitive, direct)
        return result

    # -- records ------------------------------------------------------------------------------
    def record_sets(self, record_id: str) -> list[SetKey]:
        """Sets holding ``record_id``, newest run (end, then run ID) first."""
        found = {
            (r.run_id, o) for r in self.runs.values() for o, rid, _ in r.records if rid == record_id
        }
        return sorted(found, key=lambda k: (-self.runs[k[0]].end, _neg(k[0]), k[1]))

    def input_sets(self, run_id: str) -> dict[str, SetKey | None]:
        run = self.runs[run_id]
        found: dict[str, SetKey | None] = {}
        for aid in run.inputs:
            p = self.input_producer(run, aid)
            uri, version = split(aid)
            if p is None:
                found[aid] = None
            elif version is not None:
                found[aid] = (p.run_id, aid)
            else:
                same = sorted(o for o in p.outputs if split(o)[0] == uri)
                found[aid] = (p.run_id, same[0]) if same else None
        return found

    def has_set(self, key: SetKey) -> bool:
        return any(o == key[1] for o, _, _ in self.runs[key[0]].records)

    def sources(self, record_id: str, key: SetKey) -> list[str]:
        rows = self.runs[key[0]].records
        return sorted({s for o, rid, s in rows if o == key[1] and rid == record_id and s})

    def resolve(self, run_id: str, source: str) -> list[SetKey]:
        allowed = {k for k in self.input_sets(run_id).values() if k is not None}
        return sorted(
            k
            for k in allowed
            if any(o == k[1] and rid == source for o, rid, _ in self.runs[k[0]].records)
        )

    def trace_record(self, record_id: str) -> tuple[set[str], set[tuple[str, tuple[SetKey, ...]]]]:
        """(run IDs in the graph, {(record ID, its sets)} for every record occurrence)."""
        sets = self.record_sets(record_id)
        root = [k for k in sets if k[0] == sets[0][0]] if sets else []
        runs: set[str] = set()
        occurrences: set[tuple[str, tuple[SetKey, ...]]] = set()
        todo: list[tuple[str, tuple[SetKey, ...]]] = [(record_id, tuple(root))]
        while todo:
            rid, keys = todo.pop()
            if (rid, keys) in occurrences:
                continue
            occurrences.add((rid, keys))
            for key in keys:
                runs |= self.trace_run(key[0])[0]
                for src in self.sources(rid, key):
                    found = self.resolve(key[0], src)
                    todo += [(src, (k,)) for k in found] or [(src, ())]
        return runs, occurrences

    def record_lineage(
        self, key: SetKey, record_id: str, seen: frozenset[SetKey] = frozenset()
    ) -> set[str]:
        """docs/semantics.md, "The lineage of a record", recursively."""
        run_id = key[0]
        found = {
            (k, src) for src in self.sources(record_id, key) for k in self.resolve(run_id, src)
        }
        if not found:
            return self.upstream_ids(run_id)
        indexed = frozenset(
            a for a, k in self.input_sets(run_id).items() if k is not None and self.has_set(k)
        )
        result = self.upstream_ids(run_id, indexed)
        for k, src in found:
            if k in seen | {key}:
                result |= self.upstream_ids(k[0])
            else:
                result |= self.record_lineage(k, src, seen | {key})
        return result

    # -- review -----------------------------------------------------------------------------
    def review_runs(self, flags: list[str]) -> list[tuple[str, int, int, float]]:
        """(run ID, flagged count, unflagged count, score) of the listed suspects, ranked.
        A flag names a run, else an artifact, else a record (docs/semantics.md, Review)."""
        groups: dict[SetKey, set[str]] = defaultdict(set)
        by_component: dict[tuple[str, str], set[str]] = defaultdict(set)
        outputs = {o for r in self.runs.values() for o in r.outputs}
        for target in flags:
            if target in self.runs:
                by_component[(self.runs[target].component, "run")].add(target)
            elif target in outputs:
                p = self.producer(target, None)
                assert p is not None
                by_component[(p.component, "artifact")].add(target)
            elif self.record_sets(target):
                groups[self.record_sets(target)[0]].add(target)
        items: list[tuple[frozenset[str], int, int]] = []
        for (run_id, out), flagged in groups.items():
            for rid in sorted({rid for o, rid, _ in self.runs[run_id].records if o == out}):
                is_bad = rid in flagged
                lineage = frozenset(self.record_lineage((run_id, out), rid))
                items.append((lineage, int(is_bad), int(not is_bad)))
        for (component, kind), flagged in by_component.items():
            same = [r for r in self.runs.values() if r.component == component]
            same.sort(key=lambda r: (r.start, r.run_id), reverse=True)
            population = same[:200]
            if kind == "run":
                population += [
                    self.runs[f] for f in sorted(flagged) if self.runs[f] not in population
                ]
            seen: set[str] = set()
            for run in population:
                lineage = frozenset(self.upstream_ids(run.run_id))
                for target in [run.run_id] if kind == "run" else sorted(run.outputs):
                    if target not in seen:
                        seen.add(target)
                        items.append((lineage, int(target in flagged), int(target not in flagged)))
        n_f = sum(i[1] for i in items)
        n_u = sum(i[2] for i in items)
        a: dict[str, int] = defaultdict(int)
        b: dict[str, int] = defaultdict(int)
        for lin, n_bad, n_good in items:
            for u in lin:
                a[u] += n_bad
                b[u] += n_good
        rows = []
        for u in a:
            lift = ((a[u] + 1) / (n_f + 2)) / ((b[u] + 1) / (n_u + 2))
            score = round((a[u] / n_f) * math.log(lift), 6) if n_f else 0.0
            if a[u] > 0 and score > 0:
                rows.append((u, a[u], b[u], score))
        rows.sort(key=lambda r: (-r[3], r[0]))
        return rows


def _neg(text: str) -> tuple[int, ...]:
    """Sort key that orders strings descending."""
    return tuple(-ord(c) for c in text) + (1,)
