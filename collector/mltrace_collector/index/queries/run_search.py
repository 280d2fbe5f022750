"""Run search: filter runs by params, metrics, tags, status and time; sort by any of them.

Behind ``otel-mltrace history`` / ``runs`` (``--where``, ``--tag``, ``--status``,
``--since/--until``, ``--sort``), ``GET /api/v1/search/runs`` and
``otel_mltrace.query.runs()``. Every value is a SQL parameter; field names are checked
against a closed grammar and go into the JSON path *parameter*, never into the SQL text.

``--where`` grammar: ``FIELD OP VALUE`` with ``FIELD`` one of ``params.<name>``,
``metrics.<name>``, ``component``, ``status``, ``code_revision``, ``service``; ``OP`` one of
``= != < <= > >=``; ``VALUE`` a number or a string (quotes optional). ``=``/``!=`` match a
number or its text (``params.C = 1`` matches ``1``, ``1.0`` and ``"1"``); ``<``/``>`` need a
number and compare numerically. A run without the field never matches (like SQL ``NULL``).

Example::

    f = RunFilter(component="train", where=("params.model = rf", "metrics.accuracy > 0.9"),
                  sort="metrics.accuracy desc", limit=10)
    rows = search_runs(LineageQueries(open_store("lineage.db")), f)
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from mltrace_collector.index.queries import identify, run_fields
from mltrace_collector.index.queries.jsonsafe import finite_or_text
from mltrace_collector.index.queries.lineage_walk import run_summary
from mltrace_collector.index.store import run_starts
from mltrace_collector.index.store.base import _run_row
from mltrace_collector.index.store.writes import RUN_COLUMNS

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost
    from mltrace_collector.index.store.base import Store

__all__ = ["BadQuery", "RUN_STATUSES", "RunFilter", "parse_where", "search_runs", "VALID_FIELDS"]

NO_BOUND = 2**62
MAX_LIMIT = 10_000
PLAIN_FIELDS = ("component", "status", "code_revision", "service")
SORT_FIELDS = ("start", "end", "duration", "component", "status")
VALID_FIELDS = "params.<name>, metrics.<name>, " + ", ".join(PLAIN_FIELDS)
_WHERE = re.compile(r"^\s*([A-Za-z_][\w]*)(?:\.(\S+?))?\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")
_NUMERIC_OPS = ("<", "<=", ">", ">=")
# "unset": a span ended without a status (not through run()); open runs from start records
RUN_STATUSES = ("ok", "error", *run_starts.OPEN_STATUSES, "unset")
_STATUS_HINTS = {"finished": "ok", "success": "ok", "failed": "error", "killed": "error"}


class BadQuery(ValueError):
    """A malformed filter, sort or column expression (the message names it and the fix)."""


def check_status(value: str, what: str) -> None:
    """``BadQuery`` unless ``value`` is a run status (a status no run can have would
    silently match nothing: MLflow's ``FAILED`` is ``error`` here)."""
    if value in RUN_STATUSES:
        return
    near = _STATUS_HINTS.get(value.strip().lower(), value.strip().lower())
    hint = f" (did you mean {near!r}?)" if near in RUN_STATUSES else ""
    raise BadQuery(
        f"unknown status {value!r} in {what}{hint}; run statuses: {', '.join(RUN_STATUSES)}"
    )


@dataclass(frozen=True)
class Condition:
    """One parsed ``--where`` expression."""

    field: str
    key: str | None
    op: str
    value: str
    number: float | None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN compares to nothing


def parse_field(text: str, what: str) -> tuple[str, str | None]:
    """``"params.C"`` -> ``("params", "C")``; ``"status"`` -> ``("status", None)``."""
    field, _, key = text.strip().partition(".")
    if field in ("params", "metrics") and key and '"' not in key:
        return field, key
    if field in PLAIN_FIELDS and not key:
        return field, None
    raise BadQuery(f"unknown field {text.strip()!r} in {what}; valid fields: {VALID_FIELDS}")


def parse_where(expression: str) -> Condition:
    """Parse ``params.model = rf`` (see the module docstring); ``BadQuery`` names the error."""
    what = f"--where {expression!r}"
    match = _WHERE.match(expression)
    if not match or not match.group(4) or match.group(4)[0] in "<>=!":
        raise BadQuery(
            f"malformed {what}: write FIELD OP VALUE, e.g. 'params.model = rf' or "
            f"'metrics.accuracy > 0.9' (OP: = != < <= > >=; fields: {VALID_FIELDS})"
        )
    name = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    field, key = parse_field(name, what)
    op, raw = match.group(3), match.group(4)
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
    value = raw[1:-1] if quoted else raw
    number = None if quoted else _number(value)
    if op in _NUMERIC_OPS and number is None:
        raise BadQuery(f"{what}: {op!r} compares numbers but {raw!r} is not a number")
    if op in _NUMERIC_OPS and key is None:
        raise BadQuery(f"{what}: {op!r} works on params.* and metrics.*, not on {field!r}")
    if field == "status":
        check_status(value, what)
    return Condition(field, key, op, value, number)


@dataclass(frozen=True)
class RunFilter:
    """What ``search_runs`` selects; every part optional. Also the HTTP query parameters."""

    component: str | None = None
    where: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    since_ns: int = 0
    until_ns: int = NO_BOUND
    sort: str | None = None
    limit: int = 50
    offset: int = 0

    def to_params(self) -> dict[str, Any]:
        """As query parameters of ``GET /api/v1/search/runs``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def validate(self) -> RunFilter:
        """Raise ``BadQuery`` for anything malformed; returns ``self``."""
        for expression in self.where:
            parse_where(expression)
        parse_sort(self.sort)
        if not 1 <= self.limit <= MAX_LIMIT:
            raise BadQuery(f"limit {self.limit} is out of range; use 1..{MAX_LIMIT}")
        if self.offset < 0 or self.since_ns < 0 or self.until_ns < 0:
            raise BadQuery("offset, since and until must not be negative")
        if any(not t.strip() for t in (*self.tags, *self.status)):
            raise BadQuery("an empty --tag or --status; give a value, e.g. --status error")
        for status in self.status:
            check_status(status, f"--status {status!r}")
        return self


def parse_sort(sort: str | None) -> tuple[str, str | None, bool]:
    """``"metrics.accuracy desc"`` -> ``("metrics", "accuracy", True)``; default newest first."""
    if not sort or not sort.strip():
        return "start", None, True
    parts = sort.split()
    direction = parts[1].lower() if len(parts) == 2 else "desc"
    if len(parts) > 2 or direction not in ("asc", "desc"):
        raise BadQuery(f"malformed --sort {sort!r}: write FIELD [asc|desc], e.g. 'metrics.f1 desc'")
    if parts[0] in SORT_FIELDS:
        return parts[0], None, direction == "desc"
    try:
        field, key = parse_field(parts[0], f"--sort {sort!r}")
    except BadQuery:
        raise BadQuery(
            f"unknown field {parts[0]!r} in --sort {sort!r}; valid fields: "
            f"{', '.join(SORT_FIELDS)}, params.<name>, metrics.<name>"
        ) from None
    if key is None:
        return field, None, direction == "desc"
    return field, key, direction == "desc"


class _Sql:
    """JSON access in the store's dialect; the key is always a parameter.

    Metrics may hold NaN and ±Infinity (``log_metric`` records them, as MLflow does),
    stored as Python's JSON spelling (``{"loss": NaN}``), which neither SQLite's JSON
    functions nor PostgreSQL's ``jsonb`` accept: one such run made every metrics filter or
    sort fail. The stored text is rewritten before it is parsed: NaN becomes null (it
    compares to nothing and sorts with the runs without the metric); ±Infinity becomes
    ±9e999 on SQLite (read as ±inf) and the strings "Infinity" / "-Infinity" on PostgreSQL
    (``jsonb`` numbers are decimals; the cast to double precision reads them as ±inf).
    ``ingest_rows.dumps_sorted`` writes every value after ``": "``, which is what is
    matched once the escapes inside strings are spelt out (``run_fields.escapes_spelt_out``:
    a metric name holding ``": Infinity`` is left alone).
    """

    def __init__(self, store: Store) -> None:
        self.pg = store.backend == "postgres"

    def doc(self, col: str) -> str:
        if col != "metrics":  # params are compared as text: NaN is the string "NaN"
            quoted = run_fields.json_column(col)
            return f"({quoted})::jsonb" if self.pg else quoted
        inf = ("'\"Infinity\"'", "'\"-Infinity\"'") if self.pg else ("'9e999'", "'-9e999'")
        text = (
            f"replace(replace(replace({run_fields.escapes_spelt_out(col)}, '\": NaN', '\": null'), "
            f"'\": -Infinity', '\": ' || {inf[1]}), '\": Infinity', '\": ' || {inf[0]})"
        )
        return f"({text})::jsonb" if self.pg else text

    def text(self, col: str, key: str) -> tuple[str, list[Any]]:
        if self.pg:
            return f"({self.doc(col)} ->> ?)", [key]
        return f"json_extract({self.doc(col)}, ?)", [f'$."{key}"']

    def number(self, col: str, key: str) -> tuple[str, list[Any]]:
        doc = self.doc(col)
        if self.pg:
            return (
                f"(CASE WHEN jsonb_typeof({doc} -> ?) = 'number' "
                f"OR ({doc} ->> ?) IN ('Infinity', '-Infinity') "
                f"THEN ({doc} ->> ?)::double precision END)",
                [key, key, key],
            )
        path = f'$."{key}"'
        return (
            f"(CASE WHEN json_type({doc}, ?) IN ('integer', 'real') "
            f"THEN json_extract({doc}, ?) END)",
            [path, path],
        )

    def has_tag(self) -> str:
        if self.pg:
            return "tags::jsonb @> CAST(? AS jsonb)"
        return "EXISTS (SELECT 1 FROM json_each(tags) WHERE json_each.value = ?)"

    def tag_param(self, tag: str) -> str:
        return json.dumps([tag]) if self.pg else tag


def _condition_sql(sql: _Sql, cond: Condition) -> tuple[str, list[Any]]:
    if cond.key is None:  # a plain column: = or !=
        op = "=" if cond.op == "=" else "<>"
        return f"{cond.field} {op} ?", [cond.value]
    num, num_params = sql.number(cond.field, cond.key)
    if cond.op in _NUMERIC_OPS:
        return f"{num} {cond.op} ?", [*num_params, cond.number]
    text, text_params = sql.text(cond.field, cond.key)
    match_sql, match_params = f"{text} = ?", [*text_params, cond.value]
    if cond.number is not None:
        match_sql = f"({num} = ? OR {match_sql})"
        match_params = [*num_params, cond.number, *match_params]
    if cond.op == "=":
        return match_sql, match_params
    return f"({text} IS NOT NULL AND NOT {match_sql})", [*text_params, *match_params]


def build_sql(store: Store, f: RunFilter) -> tuple[str, list[Any]]:
    """The parameterised ``SELECT`` for ``f`` (exposed for tests and EXPLAIN)."""
    sql = _Sql(store)
    clauses = ["start_ns >= ?", "start_ns <= ?"]
    params: list[Any] = [f.since_ns, f.until_ns]
    if f.component is not None:
        clauses.append("component = ?")
        params.append(f.component)
    if f.status:
        clauses.append("status IN (" + ", ".join("?" for _ in f.status) + ")")
        params.extend(f.status)
    for tag in f.tags:
        clauses.append(sql.has_tag())
        params.append(sql.tag_param(tag))
    for expression in f.where:
        clause, clause_params = _condition_sql(sql, parse_where(expression))
        clauses.append(clause)
        params.extend(clause_params)
    field, key, desc = parse_sort(f.sort)
    order = " DESC" if desc else " ASC"
    if key is not None:
        expr, expr_params = sql.number(field, key)
        sort_sql = f"CASE WHEN {expr} IS NULL THEN 1 ELSE 0 END, {expr}{order}, "
        params_sort = [*expr_params, *expr_params]
    else:
        column = {"start": "start_ns", "end": "end_ns", "duration": "end_ns - start_ns"}
        sort_sql, params_sort = f"{column.get(field, field)}{order}, ", []
    # Only fixed SQL fragments are joined here (columns from a closed list, JSON keys and
    # every value as parameters), so the f-string carries no user text.
    statement = (
        f"SELECT {RUN_COLUMNS} FROM runs WHERE {' AND '.join(clauses)} "  # noqa: S608
        f"ORDER BY {sort_sql}start_ns DESC, run_id DESC LIMIT ? OFFSET ?"
    )
    return statement, [*params, *params_sort, f.limit, f.offset]


def run_row(row: dict[str, Any]) -> dict[str, Any]:
    """A run as lists and tables show it: the summary plus params, metrics and tags."""
    return {**run_summary(row), "params": row["params"],
            "metrics": finite_or_text(row["metrics"]), "tags": row["tags"]}  # fmt: skip


def search_runs(queries: QueryHost, f: RunFilter) -> list[dict[str, Any]]:
    """Runs matching ``f`` (see ``RunFilter``); ``NotFound`` for an unknown component.

    Runs still open (``running``) or never ended (``abandoned``), known only from their
    start records, are listed too when the filter can match them: no ``--where`` or
    ``--tag`` (they have no params, metrics or tags yet), a status filter naming theirs,
    and the default order (newest first)."""
    from mltrace_collector.index.queries.query_host import NotFound

    f.validate()
    statement, params = build_sql(queries.store, f)
    rows = [run_row(_run_row(r)) for r in queries.store.query(statement, params)]
    started = _open_runs(queries, f)
    if not rows and not started and f.component is not None:
        known = [c["component"] for c in queries.store.components()]
        if f.component not in known:
            raise NotFound(
                f"no component {f.component!r}{identify.did_you_mean(f.component, known)}; "
                "list them with `otel-mltrace components`"
            )
    if _names_to_check(f, rows, started):
        missing = run_fields.unknown_names(queries, f.component, _named(f))
        if missing:
            used = [*(f"--where {w!r}" for w in f.where), *([f"--sort {f.sort!r}"] * bool(f.sort))]
            raise BadQuery(run_fields.unknown_names_message(f.component, used, missing))
    if not started:
        return rows
    # both lists are newest first and each holds its first offset + limit: merge, then page
    rows = [run_row(_run_row(r)) for r in queries.store.query(*_unpaged(queries, f))]
    merged = run_starts.merge_newest(rows, started, f.offset + f.limit)
    return merged[f.offset :]


def _named(f: RunFilter) -> list[tuple[str, str]]:
    """The ``(params|metrics, name)`` pairs ``f`` filters or sorts by."""
    named = [(c.field, c.key) for c in map(parse_where, f.where) if c.key is not None]
    kind, key, _ = parse_sort(f.sort)
    return [*named, *([(kind, key)] if key is not None else [])]


def _names_to_check(f: RunFilter, rows: list[dict[str, Any]], started: list[Any]) -> bool:
    """Whether an answer may come from a misspelt param/metric name: nothing found with a
    ``--where`` on one, or a ``--sort`` by one that no run found has."""
    if not rows and not started:
        return any(parse_where(w).key is not None for w in f.where)
    kind, key, _ = parse_sort(f.sort)
    return key is not None and not any(key in (r.get(kind) or {}) for r in rows)


def _open_runs(queries: QueryHost, f: RunFilter) -> list[dict[str, Any]]:
    if f.where or f.tags or f.sort is not None:
        return []
    open_wanted = set(f.status or (run_starts.RUNNING, run_starts.ABANDONED)) & {
        run_starts.RUNNING,
        run_starts.ABANDONED,
    }
    if not open_wanted:
        return []
    started = run_starts.open_run_summaries(
        queries.store, f.component, since_ns=f.since_ns, until_ns=f.until_ns,
        limit=f.offset + f.limit,
        status=next(iter(open_wanted)) if len(open_wanted) == 1 else None,
    )  # fmt: skip
    return [{**s, "params": {}, "metrics": {}, "tags": []} for s in started]


def _unpaged(queries: QueryHost, f: RunFilter) -> tuple[str, list[Any]]:
    """The ended runs' statement for the first ``offset + limit`` rows (merged in Python)."""
    return build_sql(queries.store, replace(f, limit=f.offset + f.limit, offset=0))
