"""``otel-mltrace stale``: every *live* run that is stale, with the reason and the path.

The rules are written down in ``docs/semantics.md``; in short:

* the **newest version** of a URI is what its latest writer (largest end, then run ID)
  wrote; a URI nobody wrote (raw data) has as newest version its versioned ID first seen
  last;
* a run is **live** when one of its outputs is still the newest version of its URI (a
  run without outputs: when it is its component's newest run) — so two variants of
  ``train`` writing two model URIs are both live;
* a run is **directly stale** when an input has a newer version than the one it got (a
  version the run wrote itself does not count), or an input was made (producer end; first
  seen, for raw data) more than the threshold ago;
* a live run is **stale** when it is directly stale or any run upstream of it (through the
  producers it actually read from) is; ``upstream`` names the nearest such run and the
  path to it.

The whole index is read once (lean rows and run I/O), so the answer does not depend on
which component ran last or on the order spans arrived in. The Prometheus gauges
``mltrace_component_stale`` / ``_stale_runs`` ask
:func:`mltrace_collector.index.queries.stale_live.live_staleness`: this module's
:class:`StaleIndex` and live runs, the verdict without the reasons and paths.

Example::

    rows = stale_runs(LineageQueries(store), older_than_s=7 * 86400)
    [r["run_id"] for r in rows if r["stale"]]
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.model import split_artifact_id
from mltrace_collector.index.queries.lineage_walk import iso, run_summary
from mltrace_collector.index.store.cursor import Row
from mltrace_collector.index.store.graph_reads import (
    SUMMARY_COLUMNS,
    Read,
    producers_for,
)

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost

_Input = tuple[str, str, bool]  # artifact ID, URI, versioned


class StaleIndex:
    """Runs, their I/O and the artifacts table, loaded once."""

    def __init__(self, q: QueryHost) -> None:
        store = q.store
        cols = ", ".join(SUMMARY_COLUMNS)
        self.runs: dict[str, Row] = {
            r["run_id"]: r
            for r in store.query(f"SELECT {cols} FROM runs")  # noqa: S608 - constant column list
        }
        self.ins: dict[str, list[_Input]] = {run_id: [] for run_id in self.runs}
        self.outs: dict[str, list[_Input]] = {run_id: [] for run_id in self.runs}
        rows = store.query(
            "SELECT run_id, direction, artifact_id, uri, versioned FROM run_io "
            "ORDER BY run_id, direction, artifact_id"
        )
        for row in rows:
            target = self.ins if row["direction"] == "in" else self.outs
            if row["run_id"] in target:
                target[row["run_id"]].append(
                    (row["artifact_id"], row["uri"], bool(row["versioned"]))
                )
        self.first_seen: dict[str, int] = {}
        self.raw_newest: dict[str, tuple[int, str]] = {}
        for art in store.query("SELECT artifact_id, uri, version, first_seen_ns FROM artifacts"):
            self.first_seen[art["artifact_id"]] = int(art["first_seen_ns"])
            if art["version"] is not None:
                key = (int(art["first_seen_ns"]), art["artifact_id"])
                self.raw_newest[art["uri"]] = max(self.raw_newest.get(art["uri"], key), key)
        # latest writer of each URI: (end_ns, run_id, artifact ID written)
        self.latest_write: dict[str, tuple[int, str, str]] = {}
        for run_id, outs in self.outs.items():
            end = int(self.runs[run_id]["end_ns"])
            for aid, uri, _ in outs:
                write = (end, run_id, aid)
                self.latest_write[uri] = max(self.latest_write.get(uri, write), write)
        self.store = store
        self.producer: dict[Read, Row | None] = {}
        newest_of: dict[str, tuple[int, str]] = {}
        for run_id, row in self.runs.items():
            key = (int(row["start_ns"]), run_id)
            newest_of[row["component"]] = max(newest_of.get(row["component"], key), key)
        self.component_newest = {run_id for _, run_id in newest_of.values()}

    def producer_of(self, run_id: str, aid: str) -> Row | None:
        key = (aid, self.runs[run_id]["start_ns"], run_id)
        if key not in self.producer:
            self.prefetch([run_id])
        return self.producer[key]

    def prefetch(self, run_ids: list[str]) -> list[str]:
        """Look up the producers of the inputs of ``run_ids`` in a few batched queries;
        returns the producers' run IDs (the next level upstream)."""
        pairs = [(aid, self.runs[r]["start_ns"], r) for r in run_ids for aid, _, _ in self.ins[r]]
        missing = [p for p in pairs if p not in self.producer]
        if missing:
            self.producer.update(producers_for(self.store, missing))
        found = (self.producer[p] for p in pairs)
        return sorted({p["run_id"] for p in found if p is not None and p["run_id"] in self.runs})

    def live(self, run_id: str) -> bool:
        if not self.outs[run_id]:
            return run_id in self.component_newest
        for aid, uri, versioned in self.outs[run_id]:
            _, writer, newest = self.latest_write[uri]
            if (versioned and newest == aid) or (not versioned and writer == run_id):
                return True
        return False

    def newer_version_reason(self, run_id: str, aid: str, uri: str, versioned: bool) -> str | None:
        """Rule 1 of "directly stale" for one input: it has a newer version than the one
        ``run_id`` got — the single implementation behind ``stale`` and the gauge."""
        producer = self.producer_of(run_id, aid)
        got_from = producer["run_id"] if producer else None
        latest = self.latest_write.get(uri)
        if latest is not None:
            end, writer, newest = latest
            # the newest version is another run's: not what it got, nor its own write
            if writer not in (got_from, run_id) and (not versioned or newest != aid):
                made_by = f"{self.runs[writer]['component']} run {writer} at {iso(end)}"
                if split_artifact_id(newest)[1] is None:  # an overwrite has no version to name
                    return f"input {uri} has a newer version (overwritten by {made_by})"
                return f"input {uri} has a newer version {_version(newest)} (written by {made_by})"
        elif versioned and uri in self.raw_newest:
            seen, newest = self.raw_newest[uri]
            if newest != aid and seen > self.first_seen.get(aid, seen):
                version = _version(newest)
                return f"input {uri} has a newer version {version} (first seen {iso(seen)})"
        return None

    def made_at(self, run_id: str, aid: str) -> int | None:
        """When the input ``aid`` of ``run_id`` was made: its producer's end, or first seen."""
        producer = self.producer_of(run_id, aid)
        return int(producer["end_ns"]) if producer else self.first_seen.get(aid)

    def direct_reasons(self, run_id: str, now_ns: int, older_than_s: float) -> list[str]:
        reasons: list[str] = []
        for aid, uri, versioned in self.ins[run_id]:
            newer = self.newer_version_reason(run_id, aid, uri, versioned)
            if newer is not None:
                reasons.append(newer)
            made = self.made_at(run_id, aid)
            if made is not None and too_old(made, now_ns, older_than_s):
                reasons.append(
                    f"input {aid} is {age_text((now_ns - made) / 1e9)} old "
                    f"(threshold {age_text(older_than_s)})"
                )
        return reasons

    def prefetch_upstream(self, run_ids: list[str]) -> None:
        """Fetch the producers of ``run_ids`` and of every run upstream of them, level by
        level, in batches, rather than one lookup per input of every run in the index."""
        level, seen = run_ids, set(run_ids)
        while level:
            level = [r for r in self.prefetch(level) if r not in seen]
            seen.update(level)

    def upstream(self, run_id: str) -> set[str]:
        """``run_id`` and every run upstream of it, through the producers it read from."""
        seen, todo = {run_id}, [run_id]
        while todo:
            current = todo.pop()
            for aid, _, _ in self.ins[current]:
                producer = self.producer_of(current, aid)
                if producer is not None and producer["run_id"] not in seen:
                    seen.add(producer["run_id"])
                    todo.append(producer["run_id"])
        return seen


def age_text(seconds: float) -> str:
    """``12 s``, ``5.5 min``, ``3.2 h``, ``1.5 days``: an age read at a glance.

    Always in days, a threshold of ``--older-than 1h`` read "(threshold 0.0 days)".
    """
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 0.0)):
        if seconds >= size:
            value = seconds / size if size else seconds
            # .3g would write 999.5 to 999.99 as "1e+03"
            text = f"{value:.3g}" if value < 999.5 else f"{value:.0f}"
            return f"{text} {'day' if unit == 'days' and text == '1' else unit}"
    return f"{seconds:.3g} s"  # negative (clock skew)


def too_old(made_ns: int, now_ns: int, older_than_s: float) -> bool:
    """Rule 2 of "directly stale": an input made at ``made_ns`` is older than the threshold."""
    return (now_ns - made_ns) / 1e9 > older_than_s


def stale_runs(
    q: QueryHost, older_than_s: float, now_ns: int | None = None
) -> list[dict[str, Any]]:
    """Every live run (see the module docstring), by component then start, with ``stale``,
    ``reasons`` (its own), ``upstream`` (nearest stale upstream run: ``run_id``,
    ``component``, ``reasons`` and ``path`` = [this run, input, producer, input, …, that
    run], or ``None``) and ``newest_input_age_s``."""
    now = now_ns if now_ns is not None else time.time_ns()
    index = StaleIndex(q)
    direct: dict[str, list[str]] = {}

    def reasons_of(run_id: str) -> list[str]:
        if run_id not in direct:
            direct[run_id] = index.direct_reasons(run_id, now, older_than_s)
        return direct[run_id]

    def nearest_stale_upstream(run_id: str) -> dict[str, Any] | None:
        parent: dict[str, tuple[str, str] | None] = {run_id: None}
        queue = deque([run_id])
        while queue:
            current = queue.popleft()
            for aid, _, _ in index.ins[current]:
                producer = index.producer_of(current, aid)
                if producer is None or producer["run_id"] in parent:
                    continue
                up = producer["run_id"]
                parent[up] = (current, aid)
                if reasons_of(up):
                    path = [up]
                    step = parent[up]
                    while step is not None:
                        path += [step[1], step[0]]
                        step = parent[step[0]]
                    return {
                        "run_id": up,
                        "component": index.runs[up]["component"],
                        "reasons": reasons_of(up),
                        "path": path[::-1],
                    }
                queue.append(up)
        return None

    live = [run_id for run_id in index.runs if index.live(run_id)]
    index.prefetch_upstream(live)  # only live runs and what is upstream of them matter
    result = []
    for run_id in live:
        row = index.runs[run_id]
        own = reasons_of(run_id)
        upstream = nearest_stale_upstream(run_id)
        made = [index.made_at(run_id, aid) for aid, _, _ in index.ins[run_id]]
        newest = max((m for m in made if m is not None), default=None)
        result.append(
            {
                **run_summary(row),
                "stale": bool(own) or upstream is not None,
                "reasons": own,
                "upstream": upstream,
                "newest_input_age_s": (now - newest) / 1e9 if newest is not None else None,
            }
        )
    result.sort(key=lambda r: (r["component"], r["start_ns"], r["run_id"]))
    return result


def why(row: dict[str, Any]) -> str:
    """One line for the CLI table: own reasons, then the upstream cause with its path."""
    from mltrace_collector.index.queries.render import short

    parts = list(row["reasons"])
    up = row.get("upstream")
    if up:
        hops = [p if i % 2 == 0 else short(p) for i, p in enumerate(up["path"])]
        parts.append(
            f"upstream {up['component']} run {up['run_id']} is stale "
            f"({'; '.join(up['reasons'])}); path: {' <- '.join(hops)}"
        )
    return "; ".join(parts) or "fresh"


def _version(artifact_id: str) -> str:
    """The version part of an ID, digest shortened (``sha256:7623e966506d``)."""
    uri, version = split_artifact_id(artifact_id)
    if version is None:
        return uri
    algo, _, rest = version.partition(":")
    return f"{algo}:{rest[:12]}" if len(rest) > 16 else version
