"""The harness of test_scale_out.py: the synthetic pipeline recorded once through the
SDK and encoded as OTLP requests, plain-HTTP helpers to feed and ask a replica, the
order-insensitive form of API answers, and Prometheus scrapes compared series by series.

Usage::

    from tests.support_scale_out import diff, only, record_pipeline, scrape, store_derived

    recorded = record_pipeline()  # recorded.requests: the OTLP bodies to send
    problems = diff(only(scrape(single), store_derived), only(scrape(a), store_derived))
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

import otel_mltrace
from tests.serve_process import ServeProcess

SHARDS = 12
BATCHES = 10
SPANS_PER_REQUEST = 7
WAIT_S = 90.0


# -- the pipeline, recorded once --------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _versioned(uri: str) -> str:
    return f"{uri}@sha256:{_digest(uri)}"


@dataclass(frozen=True)
class Recorded:
    requests: list[bytes]
    """Serialized ``ExportTraceServiceRequest`` bodies, in the order they are sent."""
    spans: int
    runs: int
    traces: int
    finals: list[str]
    """Artifact IDs at the end of the pipeline (predictions, evaluation report)."""
    raws: list[str]
    """Raw artifact IDs (no producer) at the start."""


def record_pipeline() -> Recorded:
    """Run the synthetic pipeline through the SDK into memory and encode it as OTLP."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel_mltrace.configure(service_name="scale-out", tracer_provider=provider, add_exporter=False)
    tracer = provider.get_tracer("tests.scale_out")
    finals: list[str] = []
    raws: list[str] = []
    features: list[str] = []
    try:
        for i in range(SHARDS):
            raw = _versioned(f"https://source.example/digits/shard-{i}.csv")
            raws.append(raw)
            clean = _versioned(f"s3://lake/clean/shard-{i}.parquet")
            with otel_mltrace.run(
                "ingest", inputs=[raw], outputs=[clean], params={"shard": i}
            ) as r:
                with tracer.start_as_current_span("read-csv"):  # an ordinary child span
                    r.log_output("rows", [float(100 + i + k) for k in range(50)])
            feats = _versioned(f"s3://lake/features/shard-{i}.npy")
            features.append(feats)
            with otel_mltrace.run("featurize", inputs=[clean], outputs=[feats]) as r:
                r.log_output("pixel_mean", [i * 0.1 + k * 0.01 for k in range(64)])
        for version in (1, 2):
            model = _versioned(f"s3://lake/models/digits-v{version}.pkl")
            with otel_mltrace.run(
                "train",
                inputs=features[: SHARDS - 2 + version],
                outputs=[model, "s3://lake/models/digits-current"],
                params={"C": float(version)},
            ) as r:
                r.log_metric("train_accuracy", 0.9 + version / 100)
        for j in range(BATCHES):
            batch_in = _versioned(f"s3://lake/requests/batch-{j}.csv")
            raws.append(batch_in)
            preds = _versioned(f"s3://lake/predictions/batch-{j}.csv")
            finals.append(preds)
            # unversioned model input: stitches to the latest train that ended before
            with otel_mltrace.run(
                "predict", inputs=["s3://lake/models/digits-current", batch_in], outputs=[preds]
            ) as r:
                r.log_output(
                    "predicted_label", [str((j + k) % 10) for k in range(40)], "categorical"
                )
                r.log_output("score", [0.5 + ((j * 7 + k) % 50) / 100 for k in range(40)])
        report = _versioned("s3://lake/reports/eval.json")
        finals.append(report)
        with otel_mltrace.run("evaluate", inputs=finals[:-1], outputs=[report]) as r:
            r.log_metric("accuracy", 0.93)
        provider.force_flush()
    finally:
        otel_mltrace.shutdown()
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    requests = [
        encode_spans(spans[k : k + SPANS_PER_REQUEST]).SerializeToString()
        for k in range(0, len(spans), SPANS_PER_REQUEST)
    ]
    runs = sum(1 for s in spans if s.attributes and "mltrace.component" in s.attributes)
    traces = len({s.context.trace_id for s in spans if s.context is not None})
    return Recorded(requests, len(spans), runs, traces, finals, raws)


def post_otlp(base_url: str, body: bytes) -> None:
    req = urllib.request.Request(
        base_url + "/v1/traces",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, f"{base_url}: OTLP export answered {resp.status}"


def get_json(replica: ServeProcess, path: str) -> Any:
    """GET ``path`` (e.g. ``/api/v1/runs?limit=5``) on a replica's HTTP listener."""
    with urllib.request.urlopen(replica.http_url + path, timeout=10) as resp:
        return json.loads(resp.read())


def health(replica: ServeProcess) -> dict[str, Any]:
    data = get_json(replica, "/healthz")
    assert isinstance(data, dict)
    return data


def wait_for(what: str, check: Callable[[], bool], describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S:.0f}s waiting for {what}: {describe()}")
        time.sleep(0.25)


# -- normalization of API answers --------------------------------------------------------
def canonical(value: Any) -> Any:
    """Order-insensitive form of a JSON answer: lists sorted by their canonical JSON."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def q(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


# -- metrics ----------------------------------------------------------------------------
PER_REPLICA = (
    "mltrace_ingest_",
    "mltrace_records_dropped_",
    "mltrace_forward_",
    "mltrace_receiver_",
    "mltrace_exporter_leader",
)
TIME_DEPENDENT = ("mltrace_component_input_age_seconds",)

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(replica: ServeProcess) -> Series:
    with urllib.request.urlopen(replica.http_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode("utf-8")
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("mltrace_") or sample.name.endswith("_created"):
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            out[key] = float(sample.value)
    return out


def add(*series: Series) -> Series:
    total: Series = {}
    for s in series:
        for key, value in s.items():
            total[key] = total.get(key, 0.0) + value
    return total


def only(series: Series, keep: Callable[[str], bool]) -> Series:
    return {k: v for k, v in series.items() if keep(k[0])}


def store_derived(name: str) -> bool:
    return not name.startswith(PER_REPLICA)


def close(a: float, b: float, name: str) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if name in TIME_DEPENDENT:
        return abs(a - b) <= 60.0  # scraped moments apart; the age itself is hours/seconds
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def diff(expected: Series, got: Series) -> list[str]:
    problems = []
    for key in sorted(set(expected) | set(got)):
        e, g = expected.get(key), got.get(key)
        if e is None or g is None or not close(e, g, key[0]):
            problems.append(f"{key[0]}{dict(key[1])}: single={e} summed={g}")
    return problems
