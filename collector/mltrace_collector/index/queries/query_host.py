"""What the lineage query modules use of ``queries.LineageQueries``, and its ``NotFound``.

``LineageQueries`` delegates to ``compare``, ``records``, ``review``, ``run_search`` and
``stale``; they call back a few of its methods. Typing them against :class:`QueryHost`
(and raising :class:`NotFound` from here) keeps the arrows one way:
``queries`` -> those modules -> this one. ``queries.NotFound`` is this same class.

Example::

    def newest_upstream(q: QueryHost, run_id: str) -> dict[str, Any]:
        return q.trace_run(q.resolve_run(run_id), depth=1)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mltrace_collector.index.store.base import Store
    from mltrace_collector.index.store.cursor import Row


class NotFound(LookupError):
    """The ID names no run or artifact in the index (the message names the ID)."""


class QueryHost(Protocol):
    """The parts of ``LineageQueries`` its delegate modules call."""

    @property
    def store(self) -> Store: ...

    def resolve_run(self, run_id: str) -> Row: ...

    def producer_for(self, artifact_id: str, consumer_start_ns: int | None) -> Row | None: ...

    def trace_run(self, row: Row, depth: int = ...) -> dict[str, Any]: ...

    def _kind(self, ident: str) -> str: ...
