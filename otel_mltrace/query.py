"""Ask the lineage index from Python (notebooks, scripts): the CLI's queries, typed.

The index is chosen as the CLI chooses it: ``server=`` (or ``MLTRACE_SERVER``) asks a
running collector, ``db=`` (or ``MLTRACE_DB``) opens a SQLite file or ``postgresql://``
URL, and otherwise the embedded index (``MLTRACE_INDEX``) is read. The answers come from
the same ``LineageQueries`` the CLI and the HTTP API use; errors are the same typed
exceptions (``NotFound``, ``BadQuery``, ``RemoteError``) the CLI turns into messages.

Example::

    from otel_mltrace import query

    runs = query.runs(component="train", where=["metrics.accuracy > 0.9"],
                      sort="metrics.accuracy desc")
    runs.to_pandas()                          # params.*, metrics.*, tags columns
    query.trace("predictions/predictions.csv")  # a local path is identified by content
    query.compare(runs[0].run_id, runs[1].run_id).summary

    idx = query.connect(server="http://127.0.0.1:4318")   # or db="lineage.db"
    idx.history("train", status=["error"])
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mltrace_collector.index.queries.client import RemoteError, RemoteQueries
from mltrace_collector.index.queries.lineage_queries import MAX_DEPTH, LineageQueries, NotFound
from mltrace_collector.index.queries.run_search import BadQuery, RunFilter
from mltrace_collector.index.store import Store
from otel_mltrace.compare_view import Comparison
from otel_mltrace.config import SETTINGS, resolve
from otel_mltrace.idents import identified
from otel_mltrace.query_results import Lineage, Records, Review, RunDetails, RunTable
from otel_mltrace.stale_view import shorten

__all__ = [
    "BadQuery",
    "Comparison",
    "Index",
    "Lineage",
    "NotFound",
    "RemoteError",
    "RunDetails",
    "RunTable",
    "compare",
    "components",
    "connect",
    "downstream",
    "flags",
    "history",
    "inspect",
    "open_queries",
    "review",
    "runs",
    "stale",
    "duration_seconds",
    "to_ns",
    "trace",
]

TimeArg = int | float | str | datetime | None
STALE_PREVIEW = 50
"""Rows of ``Index.stale()`` shown when printed (all are in ``.rows``)."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float | None:
    """``90``, ``90s``, ``15m``, ``6h``, ``7d``, ``2w`` -> seconds; None if not a duration."""
    match = _DURATION.match(text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def to_ns(value: TimeArg, what: str = "time") -> int | None:
    """A ``datetime``, ISO-8601 text (``Z`` allowed), a duration ago (``"7d"``) or Unix ns
    -> Unix ns. A number that can only be seconds (``time.time()``) is refused, not read as
    nanoseconds of 1970.

    >>> to_ns("2026-01-01T00:00:00Z")
    1767225600000000000
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    if isinstance(value, (int, float)):
        if 0 < value < 10**12:
            raise BadQuery(
                f"{what} {value!r} looks like seconds; give Unix nanoseconds, a datetime, "
                "ISO text or a duration like '7d'"
            )
        return int(value)
    iso = value.strip()
    if iso[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read the Z suffix
        iso = iso[:-1] + "+00:00"
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1e9)
    except ValueError:
        pass
    seconds = duration_seconds(value)
    if seconds is None:
        raise BadQuery(f"{what} {value!r} is neither an ISO time nor a duration like 30m, 6h, 7d")
    return int((datetime.now().timestamp() - seconds) * 1e9)


def open_queries(db: str | None = None, server: str | None = None, token: str | None = None) -> Any:
    """``LineageQueries`` on a local index or ``RemoteQueries`` on a collector (CLI rules:
    an explicit ``server`` wins, then ``db``; then ``MLTRACE_SERVER``, ``MLTRACE_DB``,
    and the embedded index ``MLTRACE_INDEX``)."""
    if server is None and db is None:
        server = os.environ.get(SETTINGS["server"].env) or None
        db = os.environ.get(SETTINGS["db"].env) or None
        if server and db:  # as the CLI: two variables of equal rank are no silent pick
            raise ValueError(
                f"both {SETTINGS['db'].env}={db} and {SETTINGS['server'].env}={server} are set; "
                "unset one, or pass db= or server= explicitly"
            )
    if server:
        return RemoteQueries(server, token=token or os.environ.get("MLTRACE_AUTH_TOKEN"))
    from mltrace_collector.index.store import open_store

    target = str(db) if db else str(resolve("index"))
    if "://" not in target and not os.path.exists(target):
        raise NotFound(
            f"no lineage index at {target}; run an instrumented pipeline first, "
            "or point at one with --db PATH / --server URL "
            "(in Python: query.connect(db=PATH) / query.connect(server=URL))"
        )
    return LineageQueries(open_store(target))


def queries_for_flags(
    db: str | None, server: str | None, token: str | None
) -> tuple[Any, Store | None]:
    """What ``otel_mltrace.flag()`` / ``unflag()`` act on: ``(queries, store to close)``.

    Pending run spans of this process are flushed first. ``server`` (or ``MLTRACE_SERVER``)
    wins; else ``db``, ``MLTRACE_DB``, the index this process's embedded mode writes, or
    ``MLTRACE_INDEX``.
    """
    from otel_mltrace.provider import current_configuration, flush

    flush()
    url = server or resolve("server")
    if url:
        return RemoteQueries(url, token=token or resolve("auth_token")), None
    from mltrace_collector.index.store import open_store

    target = db or os.environ.get("MLTRACE_DB") or None
    if target is None:
        config = current_configuration()
        target = config.destination if config and config.mode == "embedded" else resolve("index")
    store = open_store(str(target))
    return LineageQueries(store), store


class Index:
    """One lineage index (local or a collector); every query returns a typed result."""

    def __init__(self, queries: Any) -> None:
        self.queries = queries

    def close(self) -> None:
        store = getattr(self.queries, "store", None)
        if store is not None:
            store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def trace(self, ident: str | os.PathLike[str], depth: int = MAX_DEPTH) -> Lineage:
        """Upstream lineage of an artifact ID, URI, local path, run ID or record ID."""
        return Lineage.from_dict(identified(ident, lambda i: self.queries.trace(i, depth)))

    def downstream(self, ident: str | os.PathLike[str], depth: int = MAX_DEPTH) -> Lineage:
        """Everything derived from an artifact, run or record."""
        return Lineage.from_dict(identified(ident, lambda i: self.queries.downstream(i, depth)))

    def runs(
        self,
        component: str | None = None,
        *,
        where: Sequence[str] = (),
        tags: Sequence[str] = (),
        status: Sequence[str] | str = (),
        since: TimeArg = None,
        until: TimeArg = None,
        sort: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RunTable:
        """Runs, newest first, filtered like ``otel-mltrace runs --where … --tag …``."""
        if isinstance(status, str):
            status = (status,)
        if isinstance(where, str) or isinstance(tags, str):
            raise BadQuery("where= and tags= take a list of strings, e.g. where=['params.C = 1']")
        f = RunFilter(
            component, tuple(where), tuple(tags), tuple(status),
            to_ns(since, "since") or 0, to_ns(until, "until") or RunFilter.until_ns,
            sort, limit, offset,
        )  # fmt: skip
        return RunTable.from_rows(component or "runs", self.queries.search_runs(f.validate()))

    def history(self, component: str, **filters: Any) -> RunTable:
        """Runs of one component, newest first (same filters as ``runs``)."""
        return self.runs(component, **filters)

    def inspect(self, run_id: str) -> RunDetails:
        """Everything known about one run (a unique ID prefix is enough)."""
        return RunDetails.from_dict(self.queries.inspect(run_id))

    def components(self) -> Records:
        return Records(
            "components", self.queries.components(), ("component", "runs", "failures", "last_start")
        )

    def stale(self, older_than: float | str | None = None) -> Records:
        """Every live run (every variant), stale or not, with why (``older_than``: s or
        ``"7d"``). All rows are in ``.rows`` (``len()`` is the total); printed, the first
        50 show, then how many more and the stale runs by component.

        >>> idx.stale("7d").to_pandas().query("stale").groupby("component").size()
        """
        if older_than is None:
            seconds = float(resolve("stale_after_seconds"))
        elif isinstance(older_than, str):
            seconds = (datetime.now().timestamp() * 1e9 - (to_ns(older_than) or 0)) / 1e9
        else:
            seconds = float(older_than)
        columns = ("component", "run_id", "stale", "reasons")
        rows = self.queries.stale(seconds)
        shown, notes = shorten(rows, STALE_PREVIEW, hint="all are in .rows and .to_pandas()")
        return Records("stale", rows, columns, preview=len(shown), notes=tuple(notes))

    def flags(self) -> Records:
        return Records("flags", self.queries.flags(), ("target_id", "kind", "reason", "origin"))

    def review(self, limit: int = 20) -> Review:
        return Review.from_dict(self.queries.review(limit))

    def compare(self, *run_ids: str, depth: int = MAX_DEPTH) -> Comparison:
        """Params, metrics and code side by side, and upstream-lineage diffs (vs the first)."""
        if len(run_ids) == 1 and not isinstance(run_ids[0], str):
            run_ids = tuple(run_ids[0])
        return Comparison.from_dict(self.queries.compare(list(run_ids), depth))


def connect(db: str | None = None, server: str | None = None, token: str | None = None) -> Index:
    """An ``Index`` on ``db`` (path or URL), ``server`` (collector URL) or the default."""
    return Index(open_queries(db, server, token))


def _default(kwargs: dict[str, Any]) -> Index:
    return connect(kwargs.pop("db", None), kwargs.pop("server", None), kwargs.pop("token", None))


def _call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with _default(kwargs) as index:
        return getattr(index, name)(*args, **kwargs)


def trace(*args: Any, **kwargs: Any) -> Lineage:
    """``Index.trace`` on the default index (or ``db=``/``server=``)."""
    return _call("trace", args, kwargs)  # type: ignore[no-any-return]


def downstream(*args: Any, **kwargs: Any) -> Lineage:
    """``Index.downstream`` on the default index (or ``db=``/``server=``)."""
    return _call("downstream", args, kwargs)  # type: ignore[no-any-return]


def runs(*args: Any, **kwargs: Any) -> RunTable:
    """``Index.runs`` on the default index (or ``db=``/``server=``)."""
    return _call("runs", args, kwargs)  # type: ignore[no-any-return]


def history(*args: Any, **kwargs: Any) -> RunTable:
    """``Index.history`` on the default index (or ``db=``/``server=``)."""
    return _call("history", args, kwargs)  # type: ignore[no-any-return]


def inspect(*args: Any, **kwargs: Any) -> RunDetails:
    """``Index.inspect`` on the default index (or ``db=``/``server=``)."""
    return _call("inspect", args, kwargs)  # type: ignore[no-any-return]


def components(**kwargs: Any) -> Records:
    """``Index.components`` on the default index (or ``db=``/``server=``)."""
    return _call("components", (), kwargs)  # type: ignore[no-any-return]


def stale(*args: Any, **kwargs: Any) -> Records:
    """``Index.stale`` on the default index (or ``db=``/``server=``)."""
    return _call("stale", args, kwargs)  # type: ignore[no-any-return]


def flags(**kwargs: Any) -> Records:
    """``Index.flags`` on the default index (or ``db=``/``server=``)."""
    return _call("flags", (), kwargs)  # type: ignore[no-any-return]


def review(*args: Any, **kwargs: Any) -> Review:
    """``Index.review`` on the default index (or ``db=``/``server=``)."""
    return _call("review", args, kwargs)  # type: ignore[no-any-return]


def compare(*run_ids: str, **kwargs: Any) -> Comparison:
    """``Index.compare`` on the default index (or ``db=``/``server=``)."""
    return _call("compare", run_ids, kwargs)  # type: ignore[no-any-return]
