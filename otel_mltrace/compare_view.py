"""``Comparison``: the typed result of ``compare`` and its tables (CLI, Jupyter, pandas).

Wraps ``mltrace_collector.index.queries.compare.compare``'s JSON (``to_dict()`` equals
``otel-mltrace compare … --format json``). Example::

    cmp = Comparison.from_dict(queries.compare([a, b]))
    cmp.identical, cmp.first_divergence()[0]["description"]
    cmp.to_pandas()       # one row per param/metric, one column per run, a "differs" column
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mltrace_collector.index.queries.render import short
from otel_mltrace.query_results import _cell, _pandas, html_table, printable

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Comparison"]

DIFF_MARK = "≠"
MIN_ID_CHARS = 13  # a UUIDv7's millisecond timestamp: "01a24296-5c43"


def id_prefix_length(run_ids: list[str], minimum: int = MIN_ID_CHARS) -> int:
    """The shortest prefix length (at least ``minimum``) that tells these run IDs apart.

    UUIDv7 run IDs begin with their start millisecond, so two runs started in the same
    millisecond (a loop in a notebook) share the first 13 characters.

    >>> id_prefix_length(["01a24296-5c43-77c1-9d21", "01a24296-5c43-78b9-bbc4"])
    16
    """
    distinct = set(run_ids)
    length = minimum
    while length < max(map(len, distinct), default=0):
        if len({i[:length] for i in distinct}) == len(distinct):
            break
        length += 1
    return length


def version(aid: str | None) -> str:
    """The version part of an artifact ID, shortened (the URI is its own column)."""
    if not aid:
        return "—"
    head, sep, tail = short(aid).rpartition("@")
    return "@" + tail if sep and "," not in aid else short(aid)


@printable
@dataclass(frozen=True)
class Comparison:
    """Runs side by side: params, metrics, code revisions and upstream-lineage diffs."""

    runs: list[dict[str, Any]]
    same_run: bool
    identical: bool
    params: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    code: dict[str, Any]
    lineage: list[dict[str, Any]]
    summary: list[str]
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        return cls(
            d["runs"], d["same_run"], d["identical"], d["params"], d["metrics"], d["code"],
            d["lineage"], d["summary"], d,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def first_divergence(self, index: int = 0) -> list[dict[str, Any]]:
        """Where the upstream of run ``index + 1`` parts from the first run's."""
        return list(self.lineage[index]["first_divergence"])

    def _id(self, run_id: str) -> str:
        """``run_id`` cut to a prefix that still tells apart every run shown."""
        shown = [r["run_id"] for r in self.runs]
        shown += [s["run_id"] for diff in self.lineage for s in diff["shared_runs"]]
        return run_id[: id_prefix_length(shown)]

    def _labels(self) -> list[str]:
        return [f"{r['component']} {self._id(r['run_id'])}" for r in self.runs]

    def value_rows(self) -> list[list[Any]]:
        """``[kind, name, value per run…, differs]`` rows: code revision, params, metrics."""
        rows: list[list[Any]] = [
            ["code", "revision", *self.code["revisions"], self.code["differs"]]
        ]
        for kind, items in (("params", self.params), ("metrics", self.metrics)):
            for item in items:
                pairs = zip(item["values"], item["present"], strict=True)
                values = [v if p else None for v, p in pairs]
                rows.append([kind, item["name"], *values, item["differs"]])
        return rows

    def to_pandas(self) -> pd.DataFrame:
        columns = ["kind", "name", *[r["run_id"] for r in self.runs], "differs"]
        frame: pd.DataFrame = _pandas().DataFrame(self.value_rows(), columns=columns)
        return frame

    def lineage_rows(self) -> list[list[Any]]:
        """``[uri, version in the first run's upstream, in the other's, same]`` per URI."""
        rows = []
        for diff in self.lineage:
            for art in diff["artifacts"]:
                a, b = version(art["a"]), version(art["b"])
                rows.append(
                    [self._id(diff["b"]), art["uri"], a, b, "" if art["same"] else DIFF_MARK]
                )
        return rows

    def tables(self) -> list[Table]:
        """Rich tables: values side by side (differences marked), then each lineage diff."""
        values = Table(title="compare: " + " vs ".join(self._labels()))
        for col in ("", "name", *self._labels(), ""):
            values.add_column(col)
        for row in self.value_rows():
            kind, name, *vals, differs = row
            if kind == "code":
                vals = [(v or "")[:10] or None for v in vals]
            style = "bold red" if differs else None
            values.add_row(
                kind, Text(name), *(Text(_cell(v)) if v is not None else "—" for v in vals),
                DIFF_MARK if differs else "", style=style,
            )  # fmt: skip
        out = [values]
        for diff in self.lineage:
            table = Table(title=f"upstream lineage: {self._id(diff['a'])} vs {self._id(diff['b'])}")
            for col in ("uri", "first run", "other run", ""):
                table.add_column(col)
            for art in diff["artifacts"]:
                table.add_row(
                    Text(art["uri"]), Text(version(art["a"])), Text(version(art["b"])),
                    "" if art["same"] else DIFF_MARK,
                    style=None if art["same"] else "red",
                )  # fmt: skip
            out.append(table)
        return out

    def __rich__(self) -> Group:
        notes: list[Any] = list(self.tables())
        for diff in self.lineage:
            shared = ", ".join(
                f"{s['component']} {self._id(s['run_id'])}" for s in diff["shared_runs"]
            )
            pair = (
                f" ({self._id(diff['a'])} vs {self._id(diff['b'])})"
                if len(self.lineage) > 1
                else ""
            )
            notes.append(f"shared upstream runs{pair}: {shared or 'none'}")
        notes += [f"• {line}" for line in self.summary]
        return Group(*notes)

    def _repr_html_(self) -> str:
        cols = ["", "name", *self._labels(), ""]
        rows = [[*r[:-1], DIFF_MARK if r[-1] else ""] for r in self.value_rows()]
        parts = [html_table("compare", cols, rows)]
        if self.lineage:
            parts.append(
                html_table(
                    "upstream lineage",
                    ("vs run", "uri", "first run", "other run", ""),
                    self.lineage_rows(),
                )  # fmt: skip
            )
        items = "".join(f"<li>{_escape(s)}</li>" for s in self.summary)
        return "".join(parts) + f"<ul>{items}</ul>"


def _escape(text: str) -> str:
    import html

    return html.escape(text)
