"""The first step the CLI and query API tests index: an embedded index with raw -> clean.

Example::

    step = clean_step(tmp_path, "cli-test")
    with mlt.run("train", inputs=[step.clean]) as r:
        step.model.write_bytes(b"w")
        r.add_output(step.model)
    mlt.shutdown()
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import otel_mltrace as mlt


class CleanStep(NamedTuple):
    db: str
    """The embedded index the SDK is configured to write."""
    clean: Path
    """The clean step's output, for later steps to read."""
    model: Path
    """Where a later train step may write its model (not written yet)."""
    run_id: str
    """The clean run's ID."""


def clean_step(tmp: Path, service_name: str) -> CleanStep:
    """Configure the SDK to index into ``tmp/index.db`` and run ``clean`` on ``raw.csv``."""
    db = str(tmp / "index.db")
    mlt.configure(service_name=service_name, index=db)
    raw, clean, model = tmp / "raw.csv", tmp / "clean.csv", tmp / "model.bin"
    raw.write_text("x\n1\n")
    with mlt.run("clean", inputs=[raw]) as r:
        clean.write_text("x\n1\n\n")
        r.add_output(clean)
    return CleanStep(db, clean, model, r.id)
