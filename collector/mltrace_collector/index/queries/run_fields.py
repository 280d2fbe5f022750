"""Which ``params.*`` / ``metrics.*`` names the runs have: the hint behind an empty search.

``--where 'params.modle = rf'`` is well formed, yet no run has a param ``modle``: the
search would answer an empty table and exit 0, and a typo would look like "no such runs".
When a search finds nothing, ``unknown_names`` looks up each param or metric it names
(in ``--where`` and ``--sort``) among the runs searched (the component's, or all), and
``search_runs`` turns a name no run has into a ``BadQuery`` listing the names there are.
Runs only reach this on an empty answer, so a search that finds runs costs nothing more.

Example::

    unknown_names(queries, "train", [("params", "modle")])
    # [("params", "modle", ["C", "model"])]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mltrace_collector.index.queries.query_host import QueryHost

__all__ = ["escapes_spelt_out", "json_column", "unknown_names", "unknown_names_message"]

SHOWN_NAMES = 30
_NON_FINITE = ("NaN", "Infinity", "-Infinity")


def escapes_spelt_out(column: str) -> str:
    """SQL for ``column`` (JSON text) with every ``\\\\`` and ``\\"`` inside strings
    written as ``\\u005c`` / ``\\u0022`` — the same JSON values — so that the ``"`` left
    are the strings' own delimiters and a rewrite of ``": NaN`` can only meet a value.

    Without it a string holding that text (a param ``json.dumps({"lr": nan, "x": 1})``,
    stored as ``"{\\"lr\\": NaN, …}"``) was rewritten too, quotes and all, into malformed
    JSON, and every params / metrics filter failed on both dialects. Replacing ``\\\\``
    first, left to right, pairs backslashes as a JSON parser does.
    """
    return f"replace(replace({column}, '\\\\', '\\u005c'), '\\\"', '\\u0022')"


def json_column(column: str) -> str:
    """SQL for a ``params`` / ``metrics`` column as JSON both dialects can parse.

    Python's ``json`` writes NaN and ±inf as bare ``NaN`` / ``Infinity`` / ``-Infinity``
    (``log_metric("loss", float("nan"))`` is recorded, as MLflow does), which SQLite and
    PostgreSQL reject: one such run made every ``metrics.*`` filter and sort fail. The
    columns are flat objects written with ``": "`` between key and value, so the bare
    tokens are exactly ``": NaN,"`` or ``": NaN}"`` once the escapes inside strings are
    spelt out (:func:`escapes_spelt_out`); quoted, they become strings that ``=`` matches
    as text and ``<``/``>`` never match (like SQL NULL), as the answers spell them. Only
    these constants enter the SQL text.
    """
    expr = escapes_spelt_out(column)
    for token in _NON_FINITE:
        for end in (",", "}"):
            expr = f"replace({expr}, '\": {token}{end}', '\": \"{token}\"{end}')"
    return expr


def _names(queries: QueryHost, column: str, component: str | None) -> list[str]:
    """The distinct keys of ``column`` (``params`` or ``metrics``) over the runs searched."""
    where, args = ("WHERE r.component = ?", [component]) if component is not None else ("", [])
    if queries.store.backend == "postgres":
        statement = (
            f"SELECT DISTINCT jsonb_object_keys({json_column('r.' + column)}::jsonb) AS name "  # noqa: S608
            f"FROM runs r {where}"
        )
    else:
        statement = (
            f"SELECT DISTINCT j.key AS name FROM runs r, json_each({json_column('r.' + column)}) j "  # noqa: S608
            f"{where}"
        )
    return sorted(str(row["name"]) for row in queries.store.query(statement, args))


def unknown_names(
    queries: QueryHost, component: str | None, wanted: list[tuple[str, str]]
) -> list[tuple[str, str, list[str]]]:
    """``(kind, name, names the runs have)`` for each ``(kind, name)`` of ``wanted``
    (``kind``: ``params`` or ``metrics``, a closed list) that no run searched has."""
    known: dict[str, list[str]] = {}
    missing = []
    for column, name in dict.fromkeys(wanted):  # each once, in order
        if column not in known:
            known[column] = _names(queries, column, component)
        if name not in known[column]:
            missing.append((column, name, known[column]))
    return missing


def unknown_names_message(
    component: str | None, used: list[str], missing: list[tuple[str, str, list[str]]]
) -> str:
    """One sentence per unknown name: the expression (of ``used``, e.g. ``--where '…'``)
    naming it, and the names the runs do have."""
    runs = f"no run of {component!r}" if component is not None else "no run"
    parts = []
    for column, name, names in missing:
        field = f"{column}.{name}"
        where = ", ".join(u for u in used if field in u)
        shown = ", ".join(names[:SHOWN_NAMES]) + (" …" if len(names) > SHOWN_NAMES else "")
        parts.append(f"{runs} has {field} (in {where}); {column} there are: {shown or 'none'}")
    return "; ".join(parts)
