"""Where scripts/bootstrap.sh puts the tools it builds (Jaeger, the OTel Collector).

Example::

    binary = cache_dir() / "bin" / "otelcol-mltrace"
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MLTRACE_CACHE`` or ``~/.cache/otel-mltrace``: where bootstrap puts built tools."""
    return Path(os.environ.get("MLTRACE_CACHE") or Path.home() / ".cache" / "otel-mltrace")
