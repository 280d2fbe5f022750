"""Before/after checks: expectations on a run's inputs (before the body) and outputs (after).

A check is a callable taking a :class:`CheckContext` or a declarative expectation
(:func:`expect_rows`, :func:`expect_null_ratio`, :func:`expect_range`,
:func:`expect_schema`). Each result (name, phase, pass/fail/error, message, duration) is
recorded on the run span as an ``mltrace.check`` event and indexed by the collector.

* ``on_fail="raise"`` (default): a failed check fails the run with :class:`CheckFailed`
  (before-checks stop the body from running).
* ``on_fail="flag"``: the run goes on; the collector flags the run's outputs, which then
  count as flagged items in ``otel-mltrace review``.
* A check that cannot be evaluated (it raises something other than ``AssertionError``,
  e.g. a column missing from a CSV output) is logged as a warning naming the check and
  the error, and recorded with status ``error`` (counted in
  ``mltrace_check_failures_total``, shown by ``inspect``). ``on_error="fail"`` (or
  ``MLTRACE_CHECK_ERRORS=fail`` for every check) makes it a failed check instead, handled
  by ``on_fail``. After-checks are skipped when the body raised.
* Outputs and inputs given as file paths (CSV, Parquet, NPY/NPZ, JSON lines, JSON) are read for
  the declarative checks (:mod:`otel_mltrace.check_data`).

Example::

    import otel_mltrace as mlt
    from otel_mltrace.checks import expect_rows, expect_null_ratio, expect_range

    with mlt.run("predict", inputs=[features], checks=[
        expect_rows(min=1, phase="before"),
        expect_null_ratio("score", max=0.01),
        expect_range("score", min=0.0, max=1.0, on_fail="flag"),
        lambda ctx: len(ctx.outputs) == 1,
    ]) as run:
        run.add_output(predictions)        # the object is what after-checks see
"""

from __future__ import annotations

import builtins
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opentelemetry import trace

from otel_mltrace import check_data, semconv
from otel_mltrace.check_outcome import CheckOutcome
from otel_mltrace.config import resolve

PHASES = ("before", "after")
ON_FAIL = ("raise", "flag")
ON_ERROR = ("warn", "fail")
log = logging.getLogger("otel_mltrace.checks")


class CheckFailed(Exception):
    """A check with ``on_fail="raise"`` failed; ``results`` holds the failed results."""

    def __init__(self, component: str, results: Sequence[CheckResult]) -> None:
        self.results = list(results)
        detail = "; ".join(f"{r.name} ({r.phase}): {r.message}" for r in results)
        super().__init__(f"run of {component!r} failed {len(results)} check(s): {detail}")


@dataclass(frozen=True)
class CheckResult(CheckOutcome):
    """One check's result in the SDK: the event's fields, and whether it could be run."""

    evaluated: bool = True
    """False when the check could not be evaluated (it raised; see ``on_error``)."""


class Run(Protocol):
    """What a check sees of its run: ``otel_mltrace.run_span.Run`` (what ``run()`` and
    ``@component`` give) has all of it. A protocol here, so that this module, which the run
    imports, does not import the run back.
    """

    @property
    def id(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def span(self) -> trace.Span: ...
    @property
    def inputs(self) -> tuple[str, ...]: ...
    @property
    def outputs(self) -> tuple[str, ...]: ...
    @property
    def check_results(self) -> list[CheckResult]: ...
    def log_param(self, key: str, value: Any) -> None: ...
    def log_metric(
        self, key: str, value: Any, step: int | None = None, timestamp: Any = None
    ) -> None: ...


@dataclass
class CheckContext:
    """What a check sees: the run, the phase, and the data objects by name.

    Names are argument names for ``@component`` (``"return"`` for the return value) and
    artifact IDs for ``run()`` / ``add_input`` / ``add_output``.
    """

    run: Run
    phase: str
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    loaded: dict[str, Any] = field(default_factory=dict, repr=False)
    """Files already read for this phase, by name (each file is read once per phase)."""

    @property
    def data(self) -> dict[str, Any]:
        """``inputs`` before the body, ``outputs`` after it."""
        return self.inputs if self.phase == "before" else self.outputs

    def table(self, name: str) -> Any:
        """The data object of ``name``; a file path is read (CSV, Parquet, NPY/NPZ, JSONL).

        >>> expect = lambda ctx: len(ctx.table(ctx.run.outputs[0])) > 0   # doctest: +SKIP
        """
        obj = self.data[name]
        if not check_data.is_location(obj):
            return obj
        if name not in self.loaded:
            self.loaded[name] = check_data.load(obj)
        return self.loaded[name]


class Check:
    """A named check. ``fn(ctx)`` returns True/None (pass), False (fail), ``(ok, message)``,
    or raises ``AssertionError`` (fail, its message); any other exception is an ``error``.
    """

    def __init__(
        self,
        fn: Callable[[CheckContext], Any],
        *,
        name: str | None = None,
        phase: str = "after",
        on_fail: str = "raise",
        on_error: str | None = None,
    ) -> None:
        if phase not in PHASES:
            raise ValueError(f"check phase {phase!r} is not one of {PHASES}")
        if on_fail not in ON_FAIL:
            raise ValueError(f"check on_fail {on_fail!r} is not one of {ON_FAIL}")
        if on_error is not None and on_error not in ON_ERROR:
            raise ValueError(f"check on_error {on_error!r} is not one of {ON_ERROR}")
        if on_error is None:
            resolve("check_errors")  # a bad MLTRACE_CHECK_ERRORS fails here, not mid-run
        self.on_error = on_error
        """``warn`` / ``fail`` when the check cannot be evaluated; None: MLTRACE_CHECK_ERRORS."""
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "check"))
        if self.name == "<lambda>":
            code = getattr(fn, "__code__", None)
            self.name = f"lambda@{code.co_firstlineno}" if code is not None else "lambda"
        self.phase = phase
        self.on_fail = on_fail

    def _error_policy(self) -> str:
        if self.on_error is not None:
            return self.on_error
        try:
            return str(resolve("check_errors"))
        except ValueError as exc:  # changed since the check was made: say so, fail safe
            log.warning("%s; treating checks that cannot run as failed", exc)
            return "fail"

    def evaluate(self, ctx: CheckContext) -> CheckResult:
        t0 = time.perf_counter()
        evaluated = True
        try:
            value = self.fn(ctx)
            if isinstance(value, tuple):
                ok, message = bool(value[0]), str(value[1])
            else:
                ok, message = value is None or bool(value), ""
            status = "pass" if ok else "fail"
            message = message or ("ok" if ok else f"{self.name} returned {value!r}")
        except AssertionError as exc:
            status, message = "fail", str(exc) or "assertion failed"
        except Exception as exc:  # a broken check is recorded, never crashes the pipeline
            status, message, evaluated = "error", f"{type(exc).__name__}: {exc}", False
            if self._error_policy() == "fail":
                status, message = "fail", f"could not be evaluated: {message}"
        return CheckResult(
            self.name,
            self.phase,
            status,
            message,
            time.perf_counter() - t0,
            self.on_fail,
            evaluated,
        )


def as_check(obj: Check | Callable[[CheckContext], Any]) -> Check:
    if isinstance(obj, Check):
        return obj
    if callable(obj):
        return Check(obj)
    raise TypeError(f"checks must be callables or Check objects, got {type(obj).__name__}")


# -- data access --------------------------------------------------------------------------
def _select_raw(ctx: CheckContext, target: str | int | None) -> list[tuple[str, Any]]:
    items = list(ctx.data.items())
    if target is None:
        if not items:
            raise ValueError(f"no {ctx.phase} data to check: declare inputs/outputs with objects")
        return items
    if isinstance(target, int):
        if not -len(items) <= target < len(items):
            raise ValueError(f"target index {target} out of range: {len(items)} items")
        return [items[target]]
    hits = [(k, v) for k, v in items if k == target or k.split("@")[0].endswith(target)]
    if not hits:
        raise ValueError(f"target {target!r} matches none of {[k for k, _ in items]}")
    return hits


def _select(ctx: CheckContext, target: str | int | None) -> list[tuple[str, Any]]:
    """The targeted data objects, files read (``CheckContext.table``)."""
    return [(key, ctx.table(key)) for key, _ in _select_raw(ctx, target)]


def _counted_by_lines(obj: Any) -> bool:
    # only text formats: the lines of a pickle or a JSON array are not its rows
    return (
        isinstance(obj, str | Path)
        and str(obj).lower().endswith(check_data.LINE_COUNTED)
        and Path(obj).is_file()
    )


def row_count(obj: Any) -> int:
    """Rows of a data frame, array, mapping of columns, sequence, or CSV/JSONL file path."""
    shape = getattr(obj, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    if isinstance(obj, str | Path) and Path(obj).is_file():
        with open(obj, "rb") as fh:
            lines = sum(1 for line in fh if line.strip())
        return max(0, lines - 1) if str(obj).endswith((".csv", ".tsv")) else lines
    if isinstance(obj, Mapping):
        return len(next(iter(obj.values()))) if obj else 0
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return len(obj)
    raise TypeError(f"cannot count rows of a {type(obj).__name__}; pass the data object")


column = check_data.column


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v != v


def _numbers(values: Any) -> list[float]:
    return [float(v) for v in values if not _is_null(v)]


def _describe(key: str) -> str:
    return key.split("@")[0].rsplit("/", 1)[-1]


def expect_rows(
    target: str | int | None = None,
    *,
    min: int | None = None,
    max: int | None = None,
    phase: str = "after",
    on_fail: str = "raise",
    on_error: str | None = None,
) -> Check:
    """Row count of each targeted object within ``[min, max]``."""

    def rows(ctx: CheckContext) -> tuple[bool, str]:
        problems, seen = [], []
        for key, raw in _select_raw(ctx, target):
            # a text file (CSV, TSV, JSON lines, a log) is counted line by line, streamed
            n = row_count(raw if _counted_by_lines(raw) else ctx.table(key))
            seen.append(f"{_describe(key)}={n}")
            if min is not None and n < min:
                problems.append(f"{_describe(key)} has {n} rows < min {min}")
            if max is not None and n > max:
                problems.append(f"{_describe(key)} has {n} rows > max {max}")
        return not problems, "; ".join(problems) or "rows " + ", ".join(seen)

    return Check(rows, name=f"rows[{target}]" if target is not None else "rows",
                 phase=phase, on_fail=on_fail, on_error=on_error)  # fmt: skip


def expect_null_ratio(
    col: str | int | None = None,
    *,
    max: float,
    target: str | int | None = None,
    phase: str = "after",
    on_fail: str = "raise",
    on_error: str | None = None,
) -> Check:
    """Share of nulls (None/NaN) in ``col`` (or the whole 1-D object) at most ``max``."""

    def nulls(ctx: CheckContext) -> tuple[bool, str]:
        problems, seen = [], []
        for key, obj in _select(ctx, target):
            values = list(column(obj, col))
            ratio = sum(map(_is_null, values)) / len(values) if values else 0.0
            seen.append(f"{_describe(key)}={ratio:.4g}")
            if ratio > max:
                problems.append(f"{_describe(key)}[{col}] null ratio {ratio:.4g} > max {max}")
        return not problems, "; ".join(problems) or "null ratio " + ", ".join(seen)

    return Check(nulls, name=f"null_ratio[{col}]", phase=phase, on_fail=on_fail, on_error=on_error)


def expect_range(
    col: str | int | None = None,
    *,
    min: float | None = None,
    max: float | None = None,
    target: str | int | None = None,
    phase: str = "after",
    on_fail: str = "raise",
    on_error: str | None = None,
) -> Check:
    """Every non-null value of ``col`` within ``[min, max]``."""

    def in_range(ctx: CheckContext) -> tuple[bool, str]:
        problems, seen = [], []
        for key, obj in _select(ctx, target):
            values = _numbers(column(obj, col))
            if not values:
                seen.append(f"{_describe(key)}: no values")
                continue
            lo, hi = builtins.min(values), builtins.max(values)
            seen.append(f"{_describe(key)} in [{lo:.6g}, {hi:.6g}]")
            if min is not None and lo < min:
                problems.append(f"{_describe(key)}[{col}] min {lo:.6g} < {min}")
            if max is not None and hi > max:
                problems.append(f"{_describe(key)}[{col}] max {hi:.6g} > {max}")
        return not problems, "; ".join(problems) or ", ".join(seen)

    return Check(in_range, name=f"range[{col}]", phase=phase, on_fail=on_fail, on_error=on_error)


def expect_schema(
    columns: Sequence[str] | Mapping[str, str],
    *,
    exact: bool = False,
    target: str | int | None = None,
    phase: str = "after",
    on_fail: str = "raise",
    on_error: str | None = None,
) -> Check:
    """Columns present (``exact``: and no others); a mapping also checks dtype names
    (``{"score": "float"}`` passes for ``float64``)."""

    def schema(ctx: CheckContext) -> tuple[bool, str]:
        problems = []
        for key, obj in _select(ctx, target):
            if hasattr(obj, "dtypes") and hasattr(obj, "columns"):
                actual = {str(c): str(t) for c, t in zip(obj.columns, obj.dtypes, strict=True)}
            elif isinstance(obj, Mapping):
                actual = {str(c): type(v).__name__ for c, v in obj.items()}
            else:
                raise TypeError(f"cannot read the schema of a {type(obj).__name__}")
            missing = [c for c in columns if c not in actual]
            if missing:
                problems.append(f"{_describe(key)} lacks columns {missing}")
            if exact and (extra := sorted(set(actual) - set(columns))):
                problems.append(f"{_describe(key)} has unexpected columns {extra}")
            if isinstance(columns, Mapping):
                for c, want in columns.items():
                    if c in actual and want not in actual[c]:
                        problems.append(f"{_describe(key)}[{c}] is {actual[c]}, expected {want}")
        return not problems, "; ".join(problems) or "schema ok"

    return Check(schema, name="schema", phase=phase, on_fail=on_fail, on_error=on_error)


# -- evaluation on a run ------------------------------------------------------------------
def run_phase(run: Run, checks: Sequence[Check], phase: str, ctx: CheckContext) -> None:
    """Evaluate ``checks`` of ``phase``, record each on the run span, raise if one must."""
    failed: list[CheckResult] = []
    for check in checks:
        if check.phase != phase:
            continue
        result = check.evaluate(ctx)
        run.check_results.append(result)
        warning = result.warning(run.component, run.id, result.evaluated)
        if warning is not None:
            log.warning("%s", warning)
        run.span.add_event(
            semconv.CHECK_EVENT,
            {
                semconv.CHECK_NAME: result.name,
                semconv.CHECK_PHASE: result.phase,
                semconv.CHECK_STATUS: result.status,
                semconv.CHECK_MESSAGE: result.message[:4096],
                semconv.CHECK_DURATION: result.duration_s,
                semconv.CHECK_ON_FAIL: result.on_fail,
            },
        )
        if result.status == "fail" and result.on_fail == "raise":
            failed.append(result)
    if failed:
        raise CheckFailed(run.component, failed)
