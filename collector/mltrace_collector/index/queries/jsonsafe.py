"""JSON has no NaN or infinity: query answers spell them as strings.

A run metric may be NaN or ±inf (``log_metric("loss", float("nan"))``, as MLflow records
it). The index stores the float; every JSON answer (HTTP API, ``--format json``) carries
``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` instead — the spelling of protobuf's JSON
mapping and of OTLP/JSON — so strict JSON parsers accept the answer and no value is lost.
``float("Infinity")`` / ``float("NaN")`` read them back in Python.

Example::

    finite_or_text({"loss": float("nan"), "acc": 0.9})   # {"loss": "NaN", "acc": 0.9}
"""

from __future__ import annotations

import math
from typing import Any


def finite_or_text(value: Any) -> Any:
    """``value`` with every non-finite float (also nested in lists/dicts) as its JSON text."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: finite_or_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_text(v) for v in value]
    return value
