"""One component run: the :class:`Run` context manager, :func:`run` and :func:`current_run`.

One component run is one OTel span carrying the attributes of the wire contract
(``otel_mltrace.semconv``). The decorator form is :mod:`otel_mltrace.component_decorator`;
:mod:`otel_mltrace.run` re-exports both. Example::

    import otel_mltrace as mlt

    with mlt.run("featurize", inputs=["data/clean.csv"], params={"scale": True}) as run:
        X = featurize("data/clean.csv", "data/features.npz")
        run.add_output("data/features.npz")
        run.log_metric("n_features", X.shape[1])
        run.log_output("feature_mean", X.mean(axis=1))
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_mltrace import _hooks, _validate, lifecycle, semconv
from otel_mltrace._ids import uuid7
from otel_mltrace.artifacts import artifact_id
from otel_mltrace.checks import Check, CheckContext, CheckFailed, CheckResult, as_check, run_phase
from otel_mltrace.distributions import OutputSummary, summarize, to_event_attributes
from otel_mltrace.provider import get_tracer

if TYPE_CHECKING:
    from otel_mltrace.metric_series import SeriesSet


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "otel_mltrace_current_run", default=None
)


def current_run() -> Run | None:
    """The innermost active run in this context (thread / asyncio task), or None.

    >>> with run("train") as r:
    ...     assert current_run() is r
    """
    return _current.get()


def _to_id(obj: object) -> str:
    return artifact_id(obj)


class Run:
    """One component run (one span). Create it with :func:`run`; use it as a context manager.

    Attributes become visible on the span when the run ends; ``id`` is known at once.
    """

    __slots__ = (
        "component",
        "id",
        "_inputs",
        "_outputs",
        "_initial",
        "_kind",
        "_span",
        "_token",
        "_run_token",
        "_code_function",
        "_code_file",
        "_series",
        "_checks",
        "_data_in",
        "_data_out",
        "check_results",
        "_record_bytes",
        "_later",
    )

    def __init__(
        self,
        component: str,
        inputs: Iterable[Any] | None = None,
        outputs: Iterable[Any] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        run_id: str | None = None,
        code_function: str | None = None,
        code_file: str | None = None,
        checks: Sequence[Check | Callable[[CheckContext], Any]] | None = None,
    ) -> None:
        self.component = _validate.component_name(component)
        self.id = run_id if run_id is not None else uuid7()
        self._checks = [as_check(c) for c in _validate.string_list("checks", checks)]
        self.check_results: list[CheckResult] = []
        """Results of the checks evaluated so far (see ``otel_mltrace.checks``)."""
        self._data_in: dict[str, Any] = {}
        self._data_out: dict[str, Any] = {}
        self._record_bytes = [0, 0]  # record bytes / chunks carried by the run span itself
        self._later: list[Any] = []  # outputs @component declares after the body
        input_list = _validate.string_list("inputs", inputs)
        self._inputs: list[str] = [_to_id(x) for x in input_list]
        if self._checks:
            self._data_in.update(zip(self._inputs, input_list, strict=True))
        output_list = _validate.string_list("outputs", outputs)
        self._outputs: list[str] = [_to_id(x) for x in output_list]
        if self._checks:
            self._data_out.update(zip(self._outputs, output_list, strict=True))
        initial: dict[str, Any] = {semconv.COMPONENT: self.component, semconv.RUN_ID: self.id}
        for k, v in _validate.mapping("params", params).items():
            initial[semconv.PARAM_PREFIX + _validate.key("param", k)] = _validate.param_value(k, v)
        tag_list = _validate.string_list("tags", tags)
        if tag_list:
            initial[semconv.TAGS] = [str(t) for t in tag_list]
        self._initial = initial
        self._kind = kind
        self._span: trace.Span | None = None
        self._token: object | None = None
        self._run_token: contextvars.Token[Run | None] | None = None
        self._code_function = code_function
        self._code_file = code_file
        self._series: SeriesSet | None = None

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Run:
        if self._code_function is None:
            frame = sys._getframe(1)
            self._code_function = frame.f_code.co_name
            self._code_file = frame.f_code.co_filename
        attrs = self._initial
        attrs[semconv.CODE_FUNCTION] = self._code_function
        if self._code_file:
            attrs[semconv.CODE_FILE] = self._code_file
        parent = _current.get()
        if parent is not None:
            attrs[semconv.PARENT_RUN_ID] = parent.id
            attrs[semconv.PARENT_COMPONENT] = parent.component
        self._span = get_tracer().start_span(self.component, kind=self._kind, attributes=attrs)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._run_token = _current.set(self)
        lifecycle.run_started(self, self._span)  # start record; SIGTERM handler
        if self._checks:
            try:
                run_phase(self, self._checks, "before", self._check_context("before"))
            except CheckFailed as failed:
                self.__exit__(CheckFailed, failed, None)
                raise
        return self

    def _check_context(self, phase: str) -> CheckContext:
        return CheckContext(self, phase, dict(self._data_in), dict(self._data_out))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:  # ended already (SIGTERM, see _terminate): only the context is left
            self._reset_context()
            return
        if exc is None and self._checks:
            try:
                run_phase(self, self._checks, "after", self._check_context("after"))
            except CheckFailed as failed:
                self.__exit__(CheckFailed, failed, None)
                raise
        if self._inputs:
            span.set_attribute(semconv.INPUTS, self._inputs)
        if self._outputs:
            span.set_attribute(semconv.OUTPUTS, self._outputs)
        series = self._series.to_json() if self._series is not None else None
        if series is not None:
            span.set_attribute(semconv.METRIC_SERIES, series)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        else:
            span.set_status(Status(StatusCode.OK))
        self._reset_context()
        span.end()  # then forget it: a SIGTERM between the two ends it twice, never not at all
        lifecycle.run_ended(self)
        self._span = None

    def _reset_context(self) -> None:
        if self._run_token is not None:
            _current.reset(self._run_token)
            self._run_token = None
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def _terminate(self, message: str) -> None:
        """End the run now with status error and ``message`` (the process is being killed:
        see ``otel_mltrace.lifecycle``). The ``with`` block, if it still unwinds, only
        restores the context."""
        span, self._span = self._span, None
        lifecycle.run_ended(self)
        if span is None:
            return
        if self._inputs:
            span.set_attribute(semconv.INPUTS, self._inputs)
        if self._outputs:
            span.set_attribute(semconv.OUTPUTS, self._outputs)
        span.set_status(Status(StatusCode.ERROR, message))
        span.end()

    # -- recording -------------------------------------------------------------------------
    @property
    def span(self) -> trace.Span:
        """The underlying OTel span (only while the run is active)."""
        if self._span is None:
            raise RuntimeError(f"run {self.component!r} is not active; use it inside `with`")
        return self._span

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self._outputs)

    def add_input(self, obj: object, uri: str | None = None, version: str | None = None) -> str:
        """Declare an artifact the run read; returns its artifact ID.

        >>> run.add_input("data/raw.csv")            # doctest: +SKIP
        'file:///…/data/raw.csv@sha256:…'
        """
        aid = artifact_id(obj, uri=uri, version=version)
        self._inputs.append(aid)
        if self._checks:
            self._data_in[aid] = obj
        return aid

    def add_output(self, obj: object, uri: str | None = None, version: str | None = None) -> str:
        """Declare an artifact the run wrote (after writing it); returns its artifact ID."""
        aid = artifact_id(obj, uri=uri, version=version)
        self._outputs.append(aid)
        if self._checks:
            self._data_out[aid] = obj
        return aid

    def log_records(
        self, output: str, ids: Iterable[Any], sources: Iterable[Any] | None = None
    ) -> int:
        """Declare the IDs of the records the run wrote to ``output`` (an artifact ID).

        ``sources`` (optional, parallel to ``ids``) names the input record each came from
        (None/'' for none). IDs travel in bounded chunks (``otel_mltrace.records``); any
        number is fine. Returns the number of IDs sent.

        >>> out = run.add_output("predictions.csv")                       # doctest: +SKIP
        >>> run.log_records(out, pred_ids, sources=feature_row_ids)      # doctest: +SKIP
        """
        from otel_mltrace._outputs import output_of
        from otel_mltrace.records import emit_records

        return emit_records(self, output_of(self, output), ids, sources)

    def log_param(self, key: str, value: Any) -> None:
        """Record a scalar parameter (str, bool, int, float) as ``mltrace.param.<key>``."""
        k = _validate.key("param", key)
        self.span.set_attribute(semconv.PARAM_PREFIX + k, _validate.param_value(k, value))

    def log_metric(
        self, key: str, value: Any, step: int | None = None, timestamp: Any = None
    ) -> None:
        """Record a numeric metric as ``mltrace.metric.<key>`` (the last value wins there).

        Logged more than once, the series (``step``: int, default the call number;
        ``timestamp``: datetime or Unix seconds, default now) is kept, bounded per run:
        see ``otel_mltrace.metric_series``.

        >>> for epoch in range(10):                                   # doctest: +SKIP
        ...     run.log_metric("loss", train_epoch(), step=epoch)
        """
        k = _validate.key("metric", key)
        number = _validate.metric_value(k, value)
        if self._series is None:
            from otel_mltrace.config import resolve
            from otel_mltrace.metric_series import SeriesSet

            self._series = SeriesSet(int(resolve("metric_series_points")))
        self._series.add(k, number, step, timestamp)
        self.span.set_attribute(semconv.METRIC_PREFIX + k, number)

    def log_output(self, name: str, values: Any, kind: str | None = None) -> OutputSummary:
        """Summarize an output's values (numbers or categories; nulls counted) as a span event.

        The summary is a mergeable sketch, not the values: a million predictions cost a
        few kilobytes on the wire.

        >>> run.log_output("predicted_label", y_pred)   # doctest: +SKIP
        """
        summary = summarize(name, values, kind=kind)
        self.span.add_event(semconv.OUTPUT_EVENT, to_event_attributes(summary))
        _hooks.notify_output(self.component, summary, self.span)  # otel_mltrace.metrics
        return summary


def run(
    component: str,
    inputs: Iterable[Any] | None = None,
    outputs: Iterable[Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    checks: Sequence[Check | Callable[[CheckContext], Any]] | None = None,
) -> Run:
    """Start a component run: use as ``with otel_mltrace.run("train", inputs=[...]) as run:``.

    ``inputs``/``outputs`` take anything :func:`otel_mltrace.artifact_id` takes (paths,
    URIs, bytes, arrays, data frames). Exceptions inside the block are recorded on the
    span with status ERROR and re-raised. Runs nest: a run started inside another is its
    child span. ``checks`` run before (on inputs) and after (on outputs) the block; see
    :mod:`otel_mltrace.checks`.
    """
    return Run(component, inputs, outputs, params, tags, kind=kind, checks=checks)
