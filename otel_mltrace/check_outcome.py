"""The fields of one ``mltrace.check`` event (``semconv.CHECK_*``), shared by the SDK's
:class:`otel_mltrace.checks.CheckResult` (what it records) and the index's
``CheckRecord`` (what the collector reads back), so the two sides cannot drift apart.

Example::

    from otel_mltrace.check_outcome import CheckOutcome

    outcome = CheckOutcome("rows", "after", "pass", "ok", 0.002, "raise")
    outcome.status  # 'pass'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckOutcome:
    """One before/after check result, as the ``mltrace.check`` event carries it."""

    name: str
    phase: str
    """``before`` or ``after``."""
    status: str
    """``pass``, ``fail`` or ``error``."""
    message: str
    duration_s: float
    on_fail: str
    """``raise`` or ``flag``."""

    def warning(self, component: str, run_id: str, evaluated: bool) -> str | None:
        """The line to log at run time, or ``None``: a check that could not be evaluated,
        or one that failed and only flags (no exception says so; the run ends ``ok``)."""
        who = f"check {self.name} ({self.phase}) of run {component} {run_id}"
        if not evaluated:  # with on_error="fail" the message already says so
            prefix = (
                ""
                if self.message.startswith("could not be evaluated")
                else "could not be evaluated: "
            )
            return f"{who} {prefix}{self.message}"
        if self.status == "fail" and self.on_fail == "flag":
            return (
                f"{who} failed: {self.message}; the run's outputs are flagged "
                "(`otel-mltrace flags`, `otel-mltrace review`)"
            )
        return None
