"""Observers of ``Run.log_output`` (e.g. in-process Prometheus metrics), called after the
summary was added to the span. An observer that raises is logged once and never reaches
the pipeline.

Example::

    from otel_mltrace import _hooks
    _hooks.output_observers.append(lambda component, summary, span: print(summary.count))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from otel_mltrace.distributions import OutputSummary

log = logging.getLogger("otel_mltrace")

OutputObserver = Callable[[str, OutputSummary, Any], None]
"""``(component, summary, span)``; ``span`` is the run's OTel span."""
output_observers: list[OutputObserver] = []
_failed: set[int] = set()


def notify_output(component: str, summary: OutputSummary, span: Any) -> None:
    for observer in list(output_observers):
        try:
            observer(component, summary, span)
        except Exception:  # metrics must never break a pipeline
            if id(observer) not in _failed:
                _failed.add(id(observer))
                log.warning("otel-mltrace: output observer %r failed", observer, exc_info=True)
