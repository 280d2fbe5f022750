"""Typed results of ``otel_mltrace.query``: dataclasses with ``to_dict()``, ``to_pandas()``
(where tabular) and readable reprs in Jupyter (``_repr_html_``) and rich (``__rich__``).

Each wraps the JSON structure the CLI and the HTTP API produce, so ``to_dict()`` equals
``otel-mltrace … --format json`` output. Example::

    table = RunTable.from_rows("train", rows)
    df = table.to_pandas()            # params.*, metrics.*, tags columns
"""

from __future__ import annotations

import html
import io
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mltrace_collector.index.queries import render
from mltrace_collector.index.queries.query_host import NotFound

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Lineage", "Records", "Review", "Run", "RunDetails", "RunTable"]


def _pandas() -> Any:
    try:
        import pandas
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "to_pandas() needs pandas: pip install 'otel-mltrace[pandas]'", name="pandas"
        ) from None
    return pandas


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def html_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small escaped HTML table (what notebooks show)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return (
        f"<table><caption>{html.escape(title)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(Text(_cell(v)) for v in row))
    return table


MAX_TEXT_WIDTH = 240


def _rich_text(self: Any) -> str:
    out = io.StringIO()
    console = Console(file=out, color_system=None, width=MAX_TEXT_WIDTH)
    # as wide as the tables need (IDs cut short are no use), at least the terminal's
    natural = console.measure(self).maximum
    console.width = max(shutil.get_terminal_size((120, 24)).columns, min(natural, MAX_TEXT_WIDTH))
    console.print(self)
    return out.getvalue().rstrip("\n")


def _repr_pretty(self: Any, printer: Any, cycle: bool) -> None:
    printer.text(_rich_text(self))


T = TypeVar("T", bound=type)


def printable(cls: T) -> T:
    """``print(result)`` and IPython's terminal show the CLI's tables (``__rich__``), not a
    dump of the dataclass's fields; ``repr()`` stays the dataclass's, for debugging. Set on
    the class itself: IPython prefers a ``__repr__`` found earlier in the MRO to a
    ``_repr_pretty_`` inherited from a mixin."""
    setattr(cls, "__str__", _rich_text)  # noqa: B010
    setattr(cls, "_repr_pretty_", _repr_pretty)  # noqa: B010
    return cls


@dataclass(frozen=True)
class Run:
    """One run as lists show it (``runs()``, ``history()``)."""

    run_id: str
    component: str
    status: str
    start: str | None
    end: str | None
    duration_s: float
    code_revision: str | None
    service: str | None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        return cls(
            d["run_id"], d["component"], d["status"], d.get("start"), d.get("end"),
            d.get("duration_s", 0.0), d.get("code_revision"), d.get("service"),
            dict(d.get("params") or {}), dict(d.get("metrics") or {}), list(d.get("tags") or []),
            d,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


BASE_COLUMNS = ("run_id", "component", "start", "status", "duration_s", "code_revision")


@printable
@dataclass(frozen=True)
class RunTable(Sequence[Run]):
    """Runs in a table: ``to_pandas()`` is like ``mlflow.search_runs`` (``params.*``,
    ``metrics.*`` and ``tags`` columns)."""

    title: str
    runs: list[Run]

    @classmethod
    def from_rows(cls, title: str, rows: Sequence[dict[str, Any]]) -> RunTable:
        return cls(title, [Run.from_dict(r) for r in rows])

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: Any) -> Any:
        return self.runs[index]

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs)

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.runs]

    def columns(self, extra: Sequence[str] | None = None) -> list[str]:
        """Base columns plus ``params.*``/``metrics.*`` seen in these runs (or ``extra``)."""
        if extra is None:
            params = sorted({f"params.{k}" for r in self.runs for k in r.params})
            metrics = sorted({f"metrics.{k}" for r in self.runs for k in r.metrics})
            extra = [*params, *metrics, *(["tags"] if any(r.tags for r in self.runs) else [])]
        return [*BASE_COLUMNS, *extra]

    def value(self, run: Run, column: str) -> Any:
        kind, _, key = column.partition(".")
        if kind == "params" and key:
            return run.params.get(key)
        if kind == "metrics" and key:
            return run.metrics.get(key)
        if column == "tags":
            return run.tags
        return getattr(run, column, None) if column != "data" else None

    def to_pandas(self) -> pd.DataFrame:
        pandas = _pandas()
        cols = self.columns()
        frame: pd.DataFrame = pandas.DataFrame(
            [{c: self.value(r, c) for c in cols} for r in self.runs], columns=cols
        )
        for c in ("start",):
            frame[c] = pandas.to_datetime(frame[c], utc=True)
        return frame

    def _rows(self) -> tuple[list[str], list[list[Any]]]:
        cols = self.columns()
        return cols, [[self.value(r, c) for c in cols] for r in self.runs]

    def _repr_html_(self) -> str:
        return html_table(f"{self.title} ({len(self)} runs)", *self._rows())

    def __rich__(self) -> Table:
        return rich_table(self.title, *self._rows())


def series_summary(series: dict[str, Any]) -> str:
    """``last=0.12 min=0.1 max=2.3 count=100``; a NaN / ±inf (spelt ``"NaN"``) as is."""

    def g(value: Any) -> str:
        return f"{value:.6g}" if isinstance(value, int | float) else str(value)

    s = series
    return f"last={g(s['last'])} min={g(s['min'])} max={g(s['max'])} count={s['count']}"


@printable
@dataclass(frozen=True)
class RunDetails:
    """``inspect()``: everything known about one run."""

    run_id: str
    component: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    tags: list[str]
    code_revision: str | None
    inputs: list[dict[str, Any]]
    outputs: list[str]
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunDetails:
        return cls(
            d["run_id"], d["component"], d["status"], d["params"], d["metrics"], d["tags"],
            d.get("code_revision"), d["inputs"], d["outputs"], d,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    @property
    def metric_series(self) -> dict[str, Any]:
        """Metric name -> ``{count, min, max, last, thinned, steps, timestamps_ns, values}``."""
        return dict(self.data.get("metric_series") or {})

    def metric_history(self, name: str) -> pd.DataFrame:
        """One logged metric's series as a DataFrame: ``step``, ``timestamp`` (UTC) and
        ``value`` per point, in logging order (like ``MlflowClient.get_metric_history``).

        >>> idx.inspect(run_id).metric_history("loss").plot(x="step", y="value")  # doctest: +SKIP
        """
        series = self.metric_series.get(name)
        if not isinstance(series, dict):
            known = ", ".join(sorted(self.metric_series)) or "none"
            raise NotFound(f"run {self.run_id} has no series {name!r}; its series: {known}")
        pandas = _pandas()
        frame: pd.DataFrame = pandas.DataFrame(
            {
                "step": series["steps"],
                "timestamp": pandas.to_datetime(series["timestamps_ns"], unit="ns", utc=True),
                "value": [float(v) for v in series["values"]],  # "NaN" / "Infinity" too
            }
        )
        return frame

    def _pairs(self) -> list[tuple[str, Any]]:
        pairs: list[tuple[str, Any]] = [
            ("run", f"{self.component} {self.run_id}"),
            ("status", self.status),
            ("start", self.data.get("start")),
            ("code revision", self.code_revision),
        ]
        pairs += [(f"params.{k}", v) for k, v in sorted(self.params.items())]
        pairs += [(f"metrics.{k}", v) for k, v in sorted(self.metrics.items())]
        pairs += [
            (f"series {k}", series_summary(v))
            for k, v in sorted(self.metric_series.items()) if isinstance(v, dict)
        ]  # fmt: skip
        pairs += [("input", f"{i['artifact_id']} <- {i['producer_run_id'] or 'raw'}")
                  for i in self.inputs]  # fmt: skip
        pairs += [("output", o) for o in self.outputs]
        return pairs

    def _repr_html_(self) -> str:
        return html_table(f"run {self.run_id}", ("field", "value"), self._pairs())

    def __rich__(self) -> Table:
        return rich_table(f"run {self.run_id}", ("field", "value"), self._pairs())


@printable
@dataclass(frozen=True)
class Lineage:
    """``trace()`` / ``downstream()``: a lineage graph of runs and artifacts."""

    root: dict[str, str]
    direction: str
    runs: dict[str, dict[str, Any]]
    artifacts: dict[str, dict[str, Any]]
    edges: list[dict[str, str]]
    truncated: bool
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lineage:
        return cls(
            d["root"], d["direction"], d["runs"], d["artifacts"], d["edges"],
            bool(d.get("truncated")), d,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    @property
    def resolved(self) -> dict[str, Any] | None:
        """When the index answered for another ID than the one asked (a bare URI, an edited,
        moved or deleted file): ``asked``, ``chosen``, ``note`` (why) and ``versions``."""
        found = self.data.get("resolved")
        return dict(found) if found else None

    def to_dot(self) -> str:
        return render.to_dot(self.data)

    def to_mermaid(self) -> str:
        return render.to_mermaid(self.data)

    def run_table(self) -> RunTable:
        """The graph's runs as a table (oldest first)."""
        rows = sorted(self.runs.values(), key=lambda r: (r.get("start_ns") or 0, r["run_id"]))
        return RunTable.from_rows(f"{self.direction} of {self.root['id']}", rows)

    def to_pandas(self) -> pd.DataFrame:
        return self.run_table().to_pandas()

    def _repr_html_(self) -> str:
        raw = sorted(a["id"] for a in self.artifacts.values() if a.get("raw"))
        return (
            f"<p>{html.escape(self.direction)} lineage of <code>{html.escape(self.root['id'])}"
            f"</code>: {len(self.runs)} runs, {len(self.artifacts)} artifacts "
            f"({len(raw)} raw)</p>"
            + (f"<p>note: {html.escape(self.resolved['note'])}</p>" if self.resolved else "")
            + self.run_table()._repr_html_()
        )

    def __rich__(self) -> Any:
        return render.lineage_tree(self.data)


@printable
@dataclass(frozen=True)
class Records:
    """Rows of ``components()``, ``stale()``, ``flags()``: a titled list of dicts. Printed
    (terminal, notebook), only the first ``preview`` rows show (0: all) followed by
    ``notes`` (what was left out); ``rows`` and ``len()`` are always complete."""

    title: str
    rows: list[dict[str, Any]]
    columns: tuple[str, ...]
    preview: int = 0
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def to_dict(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def to_pandas(self) -> pd.DataFrame:
        frame: pd.DataFrame = _pandas().DataFrame(self.rows)
        return frame

    def _shown(self) -> list[dict[str, Any]]:
        return self.rows[: self.preview] if self.preview else self.rows

    def _repr_html_(self) -> str:
        rows = [[r.get(c) for c in self.columns] for r in self._shown()]
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return html_table(self.title, self.columns, rows) + notes

    def __rich__(self) -> Any:
        table = render.rows_table(self.title, self._shown(), self.columns)
        return Group(table, *(Text(n) for n in self.notes)) if self.notes else table


@dataclass(frozen=True)
class Review:
    """``review()``: upstream runs, components and revisions ranked by association with flags."""

    flagged: int
    unflagged: int
    runs: list[dict[str, Any]]
    components: list[dict[str, Any]]
    revisions: list[dict[str, Any]]
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Review:
        return cls(d["flagged"], d["unflagged"], d["runs"], d["components"], d["revisions"], d)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def to_pandas(self) -> pd.DataFrame:
        """The ranked upstream runs."""
        frame: pd.DataFrame = _pandas().DataFrame(self.runs)
        return frame

    def _repr_html_(self) -> str:
        cols = ("rank", "component", "run_id", "flagged_count", "coverage", "lift", "score")
        title = f"review: runs (flagged {self.flagged} / unflagged {self.unflagged})"
        return html_table(title, cols, [[r.get(c) for c in cols] for r in self.runs])
