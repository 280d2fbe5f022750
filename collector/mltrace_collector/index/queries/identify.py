"""Identify by what the user has: a location, an old version, a run-ID prefix, a near name.

People type what they have at hand, not the exact artifact ID the index holds:

* a bare URI (``s3://lake/wine.parquet``) of which the index holds versions
  (``…@v:1``, ``…@v:2``): the newest is chosen, and the answer says so and how many others
  exist;
* a file's current ID (``file:///abs/preds.csv@sha256:NEW``) after the file was edited,
  or moved, since it was logged: the versions at that location, else the same content
  logged at another location (the file moved), are used — saying so;
* a run-ID prefix shared by several runs (time-ordered IDs share 8 characters for about
  a minute): the candidates are listed;
* a component name with a typo: the nearest names are suggested.

Example::

    found = locate(store, "s3://lake/wine.parquet")
    found.artifact_id   # 's3://lake/wine.parquet@v:2'
    found.note          # 'showing version v:2, the newest of 2 versions of s3://…'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mltrace_collector.index.model import split_artifact_id
from mltrace_collector.index.queries.lineage_walk import iso
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Row

MAX_CANDIDATES = 10


@dataclass
class Located:
    """The artifact ID to answer for, why it was chosen, and the other versions known."""

    artifact_id: str
    note: str
    versions: list[dict[str, Any]] = field(default_factory=list)

    def describe(self, asked: str) -> dict[str, Any]:
        """JSON-able: what was asked, what was chosen, why, every version (newest first)."""
        return {
            "asked": asked,
            "chosen": self.artifact_id,
            "note": self.note,
            "versions": self.versions,
        }


def versions_at(store: Store, uri: str) -> list[Row]:
    """Every artifact the index holds at ``uri``, newest first."""
    return store.query(
        "SELECT artifact_id, uri, version, first_seen_ns FROM artifacts WHERE uri = ? "
        "ORDER BY first_seen_ns DESC, artifact_id DESC",
        (uri,),
    )


def same_content(store: Store, version: str) -> list[Row]:
    """Artifacts at any location with content version ``version`` (a file that moved).

    A scan of ``artifacts`` (there is no index on ``version``); it only runs after the
    exact and the location lookups found nothing.
    """
    return store.query(
        "SELECT artifact_id, uri, version, first_seen_ns FROM artifacts WHERE version = ? "
        "ORDER BY first_seen_ns DESC, artifact_id DESC LIMIT ?",
        (version, MAX_CANDIDATES),
    )


def _listing(rows: Iterable[Row]) -> list[dict[str, Any]]:
    return [
        {
            "artifact_id": r["artifact_id"],
            "version": r["version"],
            "first_seen": iso(r["first_seen_ns"]),
        }
        for r in rows
    ]


def _short(version: str | None) -> str:
    if version is None:
        return "(unversioned)"
    algo, _, rest = version.partition(":")
    return f"{algo}:{rest[:12]}" if len(rest) > 16 else version


def locate(store: Store, ident: str) -> Located | None:
    """The indexed artifact ``ident`` most likely means, when it is not itself indexed."""
    uri, version = split_artifact_id(ident)
    at_uri = versions_at(store, uri)
    if at_uri:
        chosen = at_uri[0]
        others = len(at_uri) - 1
        more = f"; {others} other version(s) (--all-versions lists them)" if others else ""
        if version is None:
            why = (
                f"showing version {_short(chosen['version'])}, the newest of {len(at_uri)} at {uri}"
            )
        else:
            why = (
                f"{uri} is not in the index with version {_short(version)} (changed since it "
                f"was logged?); showing the newest logged version {_short(chosen['version'])}"
            )
        return Located(chosen["artifact_id"], why + more, _listing(at_uri))
    if version is not None:
        moved = same_content(store, version)
        if moved:
            chosen = moved[0]
            return Located(
                chosen["artifact_id"],
                f"{uri} is not in the index, but the same content ({_short(version)}) was "
                f"logged at {chosen['uri']} (moved or copied?)",
                _listing(moved),
            )
    return None


def among_versions(store: Store, ident: str) -> Located | None:
    """For an indexed versioned ID (a path whose content is as logged): where it stands
    among the versions at its location, when there are others; ``None`` when it is alone.

    Without this, ``trace raw/wine.csv`` of an unchanged file never said that the index
    holds two older versions there, and ``--all-versions`` listed nothing.
    """
    uri, version = split_artifact_id(ident)
    if version is None:
        return None
    at_uri = versions_at(store, uri)
    if len(at_uri) < 2:
        return None
    n, newest = len(at_uri), at_uri[0]
    if newest["artifact_id"] == ident:
        why = f"showing version {_short(version)}, the newest of {n} at {uri}"
    else:
        why = (
            f"showing version {_short(version)} as asked, not the newest of {n} at {uri}: "
            f"that is {_short(newest['version'])} (first seen {iso(newest['first_seen_ns'])})"
        )
    why += f"; {n - 1} other version(s) (--all-versions lists them)"
    return Located(ident, why, _listing(at_uri))


def run_candidates(store: Store, prefix: str) -> str:
    """A listing of up to ``MAX_CANDIDATES`` runs whose ID starts with ``prefix``."""
    from mltrace_collector.index.store.graph_reads import find_run_summaries

    rows = find_run_summaries(store, prefix, limit=MAX_CANDIDATES + 1)
    lines = [
        f"  {r['run_id']}  {r['component']}  {iso(r['start_ns'])}" for r in rows[:MAX_CANDIDATES]
    ]
    if len(rows) > MAX_CANDIDATES:
        lines.append("  … and more; give more characters")
    return "\n".join(lines)


def ambiguous(store: Store, prefix: str) -> str:
    """The message for a run-ID prefix that several runs share."""
    return (
        f"run ID prefix {prefix!r} matches several runs; give more characters:\n"
        + run_candidates(store, prefix)
    )


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'train'?)`` for the nearest known names, or ``''``."""
    near = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if not near:
        return ""
    return " (did you mean " + " or ".join(repr(n) for n in near) + "?)"


def component_hint(ident: str, components: Iterable[str]) -> str:
    """For a lineage query given a component's name: point at ``history``."""
    known = list(components)
    if ident in known:
        return f"; {ident!r} is a component: its runs are in `otel-mltrace history {ident}`"
    near = difflib.get_close_matches(ident, known, n=1, cutoff=0.75)
    return f" (did you mean `otel-mltrace history {near[0]}`?)" if near else ""
