"""The parts above the SDK that SDK functions call at run time, looked up by name.

The SDK imports nothing of the lineage index or of the query front end (ARCHITECTURE.md,
checked by ``tests/test_layering.py``), yet two public SDK names need them when called:
``configure()`` without an endpoint runs the index in-process (embedded mode), and
``flag()`` / ``unflag()`` write flags into an index or a collector. They find what they
need here: an entry point of the ``otel_mltrace.plugins`` group (declared in
``pyproject.toml``, so a distribution can provide its own), else the default below (a
source checkout that was never installed has no entry points). Loaded once, on first use.

Example::

    from otel_mltrace import plugins
    exporter_class = plugins.load("embedded_index")
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Any

GROUP = "otel_mltrace.plugins"
DEFAULTS = {
    "embedded_index": "mltrace_collector.index.embedded:EmbeddedIndexExporter",
    "flag_queries": "otel_mltrace.query:queries_for_flags",
}
"""Plugin name -> ``module:attribute``; ``pyproject.toml`` declares the same entry points."""


@functools.cache
def load(name: str) -> Any:
    """The object registered as ``name`` (an entry point of :data:`GROUP`, else the default).

    Raises ``KeyError`` for a name nobody registered.
    """
    target = next((ep.value for ep in entry_points(group=GROUP, name=name)), None)
    if target is None:
        target = DEFAULTS[name]
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
