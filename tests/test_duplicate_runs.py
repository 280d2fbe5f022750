"""Two spans with one run ID: the second is rejected, and the sender hears about it.

The index keeps the first span of a run ID. A later span with another span ID used to be
dropped silently (``ON CONFLICT DO NOTHING``) while the forwarder linked consumers to it;
now it is an OTLP partial-success rejection naming both spans, observers (forwarder,
OpenLineage) only see indexed spans, and the same span sent again stays idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.service.collector import Collector
from tests.collector_variants import variant_collector
from tests.otlp_builders import request, run_span
from tests.otlp_builders import send_http as _send


@pytest.fixture(params=["sqlite-in-process", "sqlite-workers", "postgres-in-process"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collector]:
    with variant_collector(request, tmp_path) as collector:
        yield collector


def _stored_span(service: Collector, run_id: str) -> str:
    row = service.store.get_run(run_id)
    assert row is not None
    return str(row["span_id"])


def test_second_span_with_an_indexed_run_id_is_rejected(service: Collector) -> None:
    first = run_span("train", run_id="run-1", outputs=["s3://b/model@v:1"])
    second = run_span("train", run_id="run-1", outputs=["s3://b/model@v:2"])
    seen: list[DecodedBatch] = []
    service.pipeline.add_observer(lambda _req, batch: seen.append(batch))

    assert not _send(service, request([first])).HasField("partial_success")
    partial = _send(service, request([second])).partial_success
    assert partial.rejected_spans == 1
    assert first.span_id.hex() in partial.error_message  # the indexed span
    assert second.span_id.hex() in partial.error_message  # the rejected one
    assert "run-1" in partial.error_message
    assert _stored_span(service, "run-1") == first.span_id.hex()
    # Observers (the forwarder's producer links, OpenLineage) never see the rejected span.
    assert [r.span_id for r in seen[1].runs] == []
    assert [r.span_id for r in seen[0].runs] == [first.span_id.hex()]

    # An exporter's retry of the indexed span is not a duplicate: idempotent, no note.
    assert not _send(service, request([first])).HasField("partial_success")
    assert service.store.counts()["runs"] == 1


def test_two_spans_with_one_run_id_in_one_request(service: Collector) -> None:
    spans = [run_span("a", run_id="run-2"), run_span("a", run_id="run-2"), run_span("b")]
    partial = _send(service, request(spans)).partial_success
    assert partial.rejected_spans == 1
    assert spans[0].span_id.hex() in partial.error_message
    assert spans[1].span_id.hex() in partial.error_message
    assert _stored_span(service, "run-2") == spans[0].span_id.hex()
    assert service.store.counts()["runs"] == 2

    # The same request again (a retry): the stored span is itself, the other is still
    # the duplicate; nothing new is stored.
    again = _send(service, request(spans)).partial_success
    assert again.rejected_spans == 1
    assert spans[1].span_id.hex() in again.error_message
    assert service.store.counts()["runs"] == 2


def test_the_same_span_twice_in_one_request_is_not_a_duplicate(service: Collector) -> None:
    span = run_span("c", run_id="run-3")
    copy = Span()
    copy.CopyFrom(span)
    assert not _send(service, request([span, copy])).HasField("partial_success")
    assert _stored_span(service, "run-3") == span.span_id.hex()
