"""SDK ``flag()`` / ``unflag()``: mark outputs as wrong, from inside Python.

They act on a running collector when ``server`` (or ``MLTRACE_SERVER``) is set, else on
the local index (``db`` / ``MLTRACE_DB`` / the embedded ``MLTRACE_INDEX``). Pending run
spans of this process are flushed first, so an output written a moment ago is known.

Example::

    import otel_mltrace as mlt
    mlt.flag(["pred-000042", "pred-000097"], reason="customer complaint #123")
    mlt.unflag(all=True)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from otel_mltrace.artifacts import local_artifact

Ids = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


def _ids(ids: Ids) -> list[str]:
    """One ID or many; a local path is identified by its content, as the CLI does."""
    many = [ids] if isinstance(ids, (str, os.PathLike)) else list(ids)
    return [local_artifact(i) for i in many]


def _queries(db: str | None, server: str | None, token: str | None) -> tuple[Any, Any]:
    """``(queries, store or None)``: ``otel_mltrace.query.queries_for_flags``, found by
    name (``otel_mltrace.plugins``) because the SDK does not import the query front end."""
    from otel_mltrace import plugins

    opener: Callable[[str | None, str | None, str | None], tuple[Any, Any]]
    opener = plugins.load("flag_queries")
    return opener(db, server, token)


def flag(
    ids: Ids,
    reason: str | None = None,
    *,
    db: str | None = None,
    server: str | None = None,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """Flag record IDs, artifact IDs or run IDs; returns what was flagged with its kind.

    Raises ``mltrace_collector.index.queries.lineage_queries.NotFound`` naming the first
    unknown ID (and then flags nothing).
    """
    id_list = _ids(ids)
    queries, store = _queries(db, server, token)
    try:
        return list(queries.flag(id_list, reason))
    finally:
        if store is not None:
            store.close()


def unflag(
    ids: Ids | None = None,
    *,
    all: bool = False,
    db: str | None = None,
    server: str | None = None,
    token: str | None = None,
) -> int:
    """Remove flags of ``ids`` (or every flag with ``all=True``); returns how many."""
    if ids is None and not all:
        raise ValueError("give IDs to unflag, or all=True to remove every flag")
    id_list = None if all else _ids(ids or [])
    queries, store = _queries(db, server, token)
    try:
        return int(queries.unflag(id_list))
    finally:
        if store is not None:
            store.close()
