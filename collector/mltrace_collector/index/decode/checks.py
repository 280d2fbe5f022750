"""Before/after check results on the collector side: decoding and the failure query.

The SDK (``otel_mltrace.checks``) records one ``mltrace.check`` span event per evaluated
check; the processor turns each into a ``CheckRecord`` and the store keeps them in
``run_checks``. ``check_failures`` feeds ``mltrace_check_failures_total{component,check}``.

Example::

    decode_check({"mltrace.check.name": "rows", "mltrace.check.phase": "after",
                  "mltrace.check.status": "fail", "mltrace.check.message": "0 rows < 1"})
    check_failures(store)   # [{"component": "predict", "check": "rows", "failures": 3}]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mltrace_collector.index.model import CheckRecord
from mltrace_collector.index.store.base import Store
from mltrace_collector.index.store.cursor import Row
from otel_mltrace import semconv

PHASES = ("before", "after")
STATUSES = ("pass", "fail", "error")
ON_FAIL = ("raise", "flag")
MAX_CHECK_NAME = 256
MAX_CHECK_MESSAGE = 4096


def decode_check(attrs: Mapping[str, Any]) -> CheckRecord:
    """One ``mltrace.check`` event's attributes -> ``CheckRecord``; ``ValueError`` if bad."""
    name = attrs.get(semconv.CHECK_NAME)
    if not isinstance(name, str) or not name or len(name) > MAX_CHECK_NAME:
        raise ValueError(f"{semconv.CHECK_NAME} must be a string of 1..{MAX_CHECK_NAME} chars")
    fields = {
        semconv.CHECK_PHASE: (attrs.get(semconv.CHECK_PHASE), PHASES),
        semconv.CHECK_STATUS: (attrs.get(semconv.CHECK_STATUS), STATUSES),
        semconv.CHECK_ON_FAIL: (attrs.get(semconv.CHECK_ON_FAIL, "raise"), ON_FAIL),
    }
    for key, (value, allowed) in fields.items():
        if value not in allowed:
            raise ValueError(f"{key} of check {name!r} is {value!r}; expected one of {allowed}")
    message = attrs.get(semconv.CHECK_MESSAGE, "")
    duration = attrs.get(semconv.CHECK_DURATION, 0.0)
    if not isinstance(message, str):
        raise ValueError(f"{semconv.CHECK_MESSAGE} of check {name!r} must be a string")
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError(f"{semconv.CHECK_DURATION} of check {name!r} must be a number")
    return CheckRecord(
        name=name,
        phase=str(fields[semconv.CHECK_PHASE][0]),
        status=str(fields[semconv.CHECK_STATUS][0]),
        message=message[:MAX_CHECK_MESSAGE],
        duration_s=float(duration) if math.isfinite(duration) else 0.0,
        on_fail=str(fields[semconv.CHECK_ON_FAIL][0]),
    )


def run_checks(store: Store, run_id: str) -> list[Row]:
    """The checks of one run, ``before`` first, in name order."""
    return store.query(
        "SELECT name, phase, status, message, duration_s, on_fail FROM run_checks "
        "WHERE run_id = ? ORDER BY phase DESC, name",
        (run_id,),
    )


def check_failures(store: Store) -> list[Row]:
    """Failed (status ``fail`` or ``error``) checks per component and check name, all time.

    The counter ``mltrace_check_failures_total{component,check}`` is this count.
    """
    return store.query(
        'SELECT component, name AS "check", COUNT(*) AS failures FROM run_checks '
        "WHERE status IN ('fail', 'error') GROUP BY component, name ORDER BY component, name"
    )
