"""Run records whose outputs carry summaries, for the tests and benchmarks of ``/metrics``.

Example::

    run = summarized_run("train-0", "train", 0, {"loss": summarize("loss", [1.5]).to_json()},
                         start_ns=1_700_000_000_000_000_000, duration_ns=500_000, service="t")
    store.ingest([run])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mltrace_collector.index.model import OutputRecord, RunRecord


def summarized_run(
    run_id: str,
    component: str,
    i: int,
    outputs: Mapping[str, Mapping[str, Any]],
    *,
    start_ns: int,
    duration_ns: int,
    service: str,
    status: str = "ok",
    artifacts: str | None = None,
) -> RunRecord:
    """A finished run of ``component`` whose outputs are ``outputs`` (name -> the summary's
    ``to_json()``); trace and span IDs from ``i``; with ``artifacts``, it reads
    ``{artifacts}/{component}/in`` and writes ``{artifacts}/{component}/out``."""
    return RunRecord(
        run_id=run_id,
        component=component,
        trace_id=f"{i + 1:032x}",
        span_id=f"{i + 1:016x}",
        parent_span_id=None,
        service=service,
        start_ns=start_ns,
        end_ns=start_ns + duration_ns,
        status=status,
        status_message=None,
        inputs=() if artifacts is None else (f"{artifacts}/{component}/in",),
        outputs=() if artifacts is None else (f"{artifacts}/{component}/out",),
        output_summaries=tuple(
            OutputRecord(name, str(s.get("kind")), 0, 0, 0, None, None, None, dict(s))
            for name, s in outputs.items()
        ),
    )
