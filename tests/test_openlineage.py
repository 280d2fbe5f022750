"""OpenLineage export: events valid per the client's spec-generated models, sent over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openlineage.client import facet_v2
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.serde import Serde
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_mltrace as mlt
from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.model import RunRecord
from mltrace_collector.service.collector import Collector, CollectorSettings
from mltrace_collector.service.exporters.openlineage import (
    OpenLineageExporter,
    dataset_name,
    ol_run_id,
    run_events,
)

FACETS: dict[str, Any] = {
    "parent": facet_v2.parent_run.ParentRunFacet,
    "errorMessage": facet_v2.error_message_run.ErrorMessageRunFacet,
    "jobType": facet_v2.job_type_job.JobTypeJobFacet,
    "sourceCodeLocation": facet_v2.source_code_location_job.SourceCodeLocationJobFacet,
    "version": facet_v2.dataset_version_dataset.DatasetVersionDatasetFacet,
    "dataQualityMetrics": facet_v2.data_quality_metrics_dataset.DataQualityMetricsDatasetFacet,
    "outputStatistics": (
        facet_v2.output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
    ),
}


TAGS: dict[str, Any] = {
    # "run" tags are added by the client
    "run": (facet_v2.tags_run.TagsRunFacet, facet_v2.tags_run.TagsRunFacetFields),
    "job": (facet_v2.tags_job.TagsJobFacet, facet_v2.tags_job.TagsJobFacetFields),
}


def _facet(key: str, data: dict[str, Any], where: str) -> Any:
    """Rebuild one facet with its attrs class: unknown or missing fields raise TypeError,
    validators (UUIDs, times) run, and the schema URL must be the class's own."""
    cls = TAGS[where][0] if key == "tags" else FACETS[key]
    fields = {k: v for k, v in data.items() if not k.startswith("_")}
    if key == "tags":
        fields["tags"] = [TAGS[where][1](**t) for t in fields["tags"]]
    assert data["_schemaURL"] == cls._get_schema(), key
    if key == "parent":
        fields = {
            "run": facet_v2.parent_run.Run(**fields["run"]),
            "job": facet_v2.parent_run.Job(**fields["job"]),
        }
    if key == "dataQualityMetrics":
        cols = facet_v2.data_quality_metrics_dataset.ColumnMetrics
        fields["columnMetrics"] = {c: cols(**m) for c, m in fields["columnMetrics"].items()}
    return cls(**fields, producer=data["_producer"])


def _facets(data: dict[str, Any] | None, where: str = "dataset") -> dict[str, Any]:
    return {k: _facet(k, v, where) for k, v in (data or {}).items()}


def validate(event: dict[str, Any]) -> RunEvent:
    """Parse a serialized RunEvent back into the client's models; it must round-trip."""
    assert event["schemaURL"] == RunEvent._get_schema()
    rebuilt = RunEvent(
        eventTime=event["eventTime"],
        producer=event["producer"],
        eventType=RunState(event["eventType"]),
        run=Run(runId=event["run"]["runId"], facets=_facets(event["run"].get("facets"), "run")),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"],
                facets=_facets(event["job"].get("facets"), "job")),
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"],
                             facets=_facets(d.get("facets"))) for d in event.get("inputs", [])],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"],
                               facets=_facets(d.get("facets")),
                               outputFacets=_facets(d.get("outputFacets")))
                 for d in event.get("outputs", [])],
    )  # fmt: skip
    assert Serde.to_dict(rebuilt) == event
    return rebuilt


def _record(**extra: Any) -> RunRecord:
    base: dict[str, Any] = dict(
        run_id="run-7", component="train", trace_id="c" * 32, span_id="d" * 16,
        parent_span_id="e" * 16, service="svc", start_ns=1_700_000_000_000_000_000,
        end_ns=1_700_000_005_000_000_000, status="ok", status_message=None,
        inputs=("s3://lake/features/day=1/x.parquet@sha256:abc", "raw-table"),
        outputs=("file:///models/model.pkl@sha256:def",), code_revision="1a2b3c",
        code_repository="https://git.example/ml.git", code_file="pipelines/train.py",
        attributes={"mltrace.parent.run.id": "0190c2a1-7a3b-7c3d-8e4f-123456789abc",
                    "mltrace.parent.component": "nightly"},
    )  # fmt: skip
    base.update(extra)
    return RunRecord(**base)


def test_mapping_is_valid_and_complete() -> None:
    start, end = (Serde.to_dict(e) for e in run_events(_record(), "ml"))
    for event in (start, end):
        validate(event)
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == end["run"]["runId"] == ol_run_id("run-7")
    assert end["job"] == {**end["job"], "namespace": "ml", "name": "train"}
    code = end["job"]["facets"]["sourceCodeLocation"]
    assert (code["version"], code["path"], code["type"]) == ("1a2b3c", "pipelines/train.py", "git")
    parent = end["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == "0190c2a1-7a3b-7c3d-8e4f-123456789abc"
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("ml", "nightly")
    assert [(d["namespace"], d["name"]) for d in end["inputs"]] == [
        ("s3://lake", "features/day=1/x.parquet"), ("ml", "raw-table")]  # fmt: skip
    assert end["inputs"][0]["facets"]["version"]["datasetVersion"] == "sha256:abc"
    assert end["outputs"][0]["name"] == "/models/model.pkl"
    assert dataset_name("bq://proj/ds/t", "x") == ("bq://proj", "ds/t", None)


def test_failed_run_and_quality_metrics(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError):
        with mlt.run("predict", inputs=["s3://b/in.parquet"]) as r:
            r.add_output("s3://b/preds.parquet", version="v:3")
            r.log_output("score", np.linspace(0.0, 1.0, 101))
            raise RuntimeError("GPU fell off the bus")
    run = decode_request(encode_spans(spans.get_finished_spans())).runs[0]
    start, end = (Serde.to_dict(e) for e in run_events(run, "ml"))
    validate(start)
    validate(end)
    assert end["eventType"] == "FAIL"
    assert "GPU fell off the bus" in end["run"]["facets"]["errorMessage"]["message"]
    quality = end["outputs"][0]["facets"]["dataQualityMetrics"]
    score = quality["columnMetrics"]["score"]
    assert quality["rowCount"] == 101 and score["min"] == 0.0 and score["max"] == 1.0
    assert score["quantiles"]["0.5"] == pytest.approx(0.5, rel=0.03)
    assert end["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 101


class LineageEndpoint(BaseHTTPRequestHandler):
    """A real OpenLineage HTTP endpoint (Marquez's ``POST /api/v1/lineage``) that keeps
    what it receives and rejects anything that is not a valid RunEvent with 400."""

    received: list[dict[str, Any]] = []
    rejected: list[str] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            assert self.path == "/api/v1/lineage"
            assert self.headers["Authorization"] == "Bearer k3y"
            validate(body)
        except (AssertionError, TypeError, ValueError, KeyError) as exc:
            self.rejected.append(repr(exc))
            self.send_response(400)
            self.end_headers()
            self.wfile.write(str(exc).encode())
            return
        self.received.append(body)
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    LineageEndpoint.received, LineageEndpoint.rejected = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), LineageEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_collector_sends_events_over_http(
    endpoint: str, tmp_path: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_URL", endpoint)
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_API_KEY", "k3y")
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_NAMESPACE", "prod-ml")
    collector = Collector(CollectorSettings.resolve(db=str(tmp_path / "c.db")))
    try:
        with mlt.run("pipeline") as outer:
            with mlt.run("clean", inputs=["s3://lake/raw.csv"]) as inner:
                inner.add_output("s3://lake/clean.csv", version="1")
        outcome = collector.pipeline.export(encode_spans(spans.get_finished_spans()))
        assert outcome.rejected_spans == 0
        deadline = time.monotonic() + 20
        while len(LineageEndpoint.received) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        collector.stop()
    got = LineageEndpoint.received
    assert LineageEndpoint.rejected == []
    assert sorted((e["job"]["name"], e["eventType"]) for e in got) == [
        ("clean", "COMPLETE"), ("clean", "START"), ("pipeline", "COMPLETE"), ("pipeline", "START")
    ]  # fmt: skip
    clean = next(e for e in got if e["job"]["name"] == "clean" and e["eventType"] == "COMPLETE")
    assert clean["job"]["namespace"] == "prod-ml" and clean["run"]["runId"] == inner.id
    assert clean["run"]["facets"]["parent"]["run"]["runId"] == outer.id
    assert clean["outputs"][0]["facets"]["version"]["datasetVersion"] == "v:1"


def test_file_transport_and_unreachable_endpoint_never_block(
    tmp_path: Path, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ol.jsonl"
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_TRANSPORT", "file")
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_FILE", str(out))
    collector = Collector(CollectorSettings.resolve(db=str(tmp_path / "c.db")))
    with mlt.run("train"):
        pass
    collector.pipeline.export(encode_spans(spans.get_finished_spans()))
    collector.stop()  # drains the queue
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"]
    for event in lines:
        validate(event)
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_TRANSPORT", "http")
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_URL", "http://127.0.0.1:9")  # discard port: refused
    collector = Collector(CollectorSettings.resolve(db=str(tmp_path / "d.db")))
    t0 = time.perf_counter()
    collector.pipeline.export(encode_spans(spans.get_finished_spans()))
    assert time.perf_counter() - t0 < 2.0  # ingestion does not wait for the exporter
    exporter: OpenLineageExporter = collector.__dict__["openlineage"]
    deadline = time.monotonic() + 60
    while exporter.stats["events_failed"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    collector.stop()
    assert exporter.stats["events_failed"] == 2 and exporter.stats["events_sent"] == 0
    monkeypatch.setenv("MLTRACE_OPENLINEAGE_TRANSPORT", "kafka")
    with pytest.raises(ValueError, match="'kafka' is not supported"):
        Collector(CollectorSettings.resolve(db=str(tmp_path / "e.db")))
