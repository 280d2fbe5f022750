"""The SDK's run API: span shape (the wire contract), errors, nesting, decorator forms."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel_mltrace as mlt
from otel_mltrace import semconv


def _only(spans: InMemorySpanExporter, name: str) -> dict[str, object]:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return dict(found[0].attributes or {})


def test_run_span_carries_wire_contract(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("a,b\n1,2\n")
    out = tmp_path / "clean.csv"
    with mlt.run(
        "clean", inputs=[raw, "s3://bucket/ref.parquet"], params={"k": 3}, tags=["t"]
    ) as r:
        out.write_text("A,B\n1,2\n")
        out_id = r.add_output(out)
        r.log_param("mode", "fast")
        r.log_metric("rows", 1)
        r.log_output("values", [1.0, 2.0, None])
        run_id = r.id
    attrs = _only(spans, "clean")
    assert attrs[semconv.COMPONENT] == "clean"
    assert attrs[semconv.RUN_ID] == run_id and len(run_id) == 36 and run_id[14] == "7"
    assert attrs[semconv.INPUTS] == (mlt.artifact_id(raw), "s3://bucket/ref.parquet")
    assert attrs[semconv.OUTPUTS] == (out_id,)
    assert out_id.startswith(f"file://{out.resolve()}@sha256:")
    assert attrs[semconv.PARAM_PREFIX + "k"] == 3
    assert attrs[semconv.PARAM_PREFIX + "mode"] == "fast"
    assert attrs[semconv.METRIC_PREFIX + "rows"] == 1.0
    assert attrs[semconv.TAGS] == ("t",)
    assert attrs[semconv.CODE_FUNCTION] == "test_run_span_carries_wire_contract"
    [span] = [s for s in spans.get_finished_spans() if s.name == "clean"]  # not its start record
    assert span.status.status_code is StatusCode.OK
    events = [e for e in span.events if e.name == semconv.OUTPUT_EVENT]
    assert len(events) == 1 and events[0].attributes is not None
    assert events[0].attributes[semconv.OUT_NULL_COUNT] == 1
    assert events[0].attributes[semconv.OUT_COUNT] == 2


def test_exception_is_recorded_and_reraised(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ZeroDivisionError), mlt.run("train"):
        _ = 1 / 0
    [span] = [s for s in spans.get_finished_spans() if s.name == "train"]
    assert span.status.status_code is StatusCode.ERROR
    assert "ZeroDivisionError" in (span.status.description or "")
    assert [e.name for e in span.events] == ["exception"]


def test_nested_runs_are_parent_and_child(spans: InMemorySpanExporter) -> None:
    with mlt.run("pipeline") as outer:
        with mlt.run("step") as inner:
            assert mlt.current_run() is inner
        assert mlt.current_run() is outer
    assert mlt.current_run() is None
    by_name = {s.name: s for s in spans.get_finished_spans()}
    step, pipeline = by_name["step"], by_name["pipeline"]
    assert step.parent is not None and pipeline.context is not None
    assert step.parent.span_id == pipeline.context.span_id
    assert step.context is not None and step.context.trace_id == pipeline.context.trace_id


def test_decorator_on_function_method_and_async(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("x")

    @mlt.component("copy", inputs=["source"], outputs=["target"], params=["upper"])
    def copy(source: Path, target: Path, upper: bool = False) -> int:
        text = source.read_text()
        target.write_text(text.upper() if upper else text)
        return len(text)

    class Trainer:
        @mlt.component(outputs=["return"])
        def fit(self, data: bytes) -> bytes:
            return data[::-1]

    @mlt.component("score")
    async def score(x: float) -> float:
        await asyncio.sleep(0)
        run = mlt.current_run()
        assert run is not None
        run.log_metric("x", x)
        return x * 2

    assert copy(src, tmp_path / "out.txt", upper=True) == 1
    assert Trainer().fit(b"ab") == b"ba"
    assert asyncio.run(score(2.0)) == 4.0
    copy_attrs = _only(spans, "copy")
    assert copy_attrs[semconv.INPUTS] == (mlt.artifact_id(src),)
    assert copy_attrs[semconv.OUTPUTS] == (mlt.artifact_id(tmp_path / "out.txt"),)
    assert copy_attrs[semconv.PARAM_PREFIX + "upper"] is True
    assert _only(spans, "fit")[semconv.OUTPUTS] == (mlt.artifact_id(b"ba"),)
    assert _only(spans, "score")[semconv.METRIC_PREFIX + "x"] == 2.0
    assert str(_only(spans, "fit")[semconv.CODE_FUNCTION]).endswith("Trainer.fit")


def test_bad_input_names_the_value_and_the_fix(spans: InMemorySpanExporter) -> None:
    with pytest.raises(TypeError, match=r"component name must be a str, got int 42"):
        mlt.run(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        mlt.run("  ")
    with pytest.raises(FileNotFoundError, match="no/such/file.csv"):
        mlt.run("x", inputs=["no/such/file.csv"])
    with pytest.raises(TypeError, match=r"inputs must be a list.*inputs=\[item\]"):
        mlt.run("x", inputs="s3://b/k")
    with pytest.raises(TypeError, match=r"param 'cfg' has a dict value.*json.dumps"):
        mlt.run("x", params={"cfg": {"a": 1}})
    with mlt.run("x") as r:
        with pytest.raises(TypeError, match=r"metric 'acc' must be a number, got str"):
            r.log_metric("acc", "high")
        with pytest.raises(TypeError, match="object"):
            r.add_output(object())
    with pytest.raises(ValueError, match=r"names argument 'nope'.*fix the name"):

        @mlt.component("bad", inputs=["nope"])
        def bad(a: int) -> None: ...


def test_run_outside_with_is_not_active(spans: InMemorySpanExporter) -> None:
    r = mlt.run("idle")
    with pytest.raises(RuntimeError, match="not active"):
        r.log_metric("x", 1)
