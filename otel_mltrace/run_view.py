"""The parts of a ``Run`` its helper modules use, as a protocol.

``run.py`` imports ``lifecycle``, ``records`` and ``_outputs``; typing their ``run``
parameters against this protocol instead of ``run.Run`` keeps those arrows one way.
``run.Run`` satisfies it (mypy checks that wherever a ``Run`` is passed).

Example::

    def describe(run: RunView) -> str:
        return f"{run.component} {run.id}: {len(run.outputs)} outputs"
"""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry import trace


class RunView(Protocol):
    """A component run as seen by lifecycle tracking, record logging and output lookup."""

    component: str
    id: str
    _initial: dict[str, Any]  # the run span's attributes at start (parent, params, tags)
    _span: trace.Span | None  # None once ended
    _record_bytes: list[int]  # record bytes / chunks carried by the run span itself
    _later: list[Any]  # outputs @component declares after the body

    @property
    def span(self) -> trace.Span: ...

    @property
    def outputs(self) -> tuple[str, ...]: ...

    def _terminate(self, message: str) -> None: ...
