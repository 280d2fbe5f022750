"""What a user's ``ident`` may name, shared by the CLI and ``otel_mltrace.query``.

``otel-mltrace trace predictions/x.csv`` and ``query.trace("predictions/x.csv")`` must give
the same answer for the same path, so both ask through :func:`identified`:

* a path on this disk is identified by content (``file:///abs/x.csv@sha256:…``); if the
  file was edited or moved since it was logged, the index falls back to the versions at
  its location, else to the same content at another location
  (``mltrace_collector.index.queries.identify.locate``) and says so in ``"resolved"``;
* a path that is gone is tried as the ID it may be (a run ID, a record ID), then as its
  ``file://`` location, whose logged versions the index then lists;
* anything else (a URI, an artifact ID, a run ID) is passed on unchanged.

Example::

    graph = identified("predictions/x.csv", lambda i: queries.trace(i, 10))
    graph.get("resolved", {}).get("note")   # why that version was chosen, if one was
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mltrace_collector.index.queries.lineage_queries import NotFound
from otel_mltrace.artifacts import local_artifact

__all__ = ["first_found", "identified", "local_artifact", "local_candidates"]

T = TypeVar("T")


def local_candidates(ident: str | os.PathLike[str]) -> list[str]:
    """What ``ident`` may name, in order: a path on this disk is identified by content (the
    index then falls back to its location, see ``mltrace_collector.index.queries.identify``);
    a path that is gone is tried as the ID it may be, then as its ``file://`` location."""
    text = os.fspath(ident)
    if "://" in text or os.path.exists(text):
        return [local_artifact(text)]
    return [text, Path(os.path.realpath(text)).as_uri()]


def first_found(idents: list[str], query: Callable[[str], T]) -> T:
    """``query`` of the first of ``idents`` the index knows; the first NotFound otherwise,
    naming the other places tried."""
    first: NotFound | None = None
    for ident in idents:
        try:
            return query(ident)
        except NotFound as exc:
            first = first or exc
    assert first is not None
    message = str(first.args[0] if first.args else first)
    if len(idents) > 1 and "matches several runs" not in message:  # not for a listed prefix
        tried = ", ".join(idents[1:])
        raise NotFound(f"{message}; nothing was logged at {tried}")
    raise first


def identified(ident: str | os.PathLike[str], query: Callable[[str], T]) -> T:
    """``query`` of what ``ident`` names (:func:`local_candidates`, :func:`first_found`)."""
    return first_found(local_candidates(ident), query)
