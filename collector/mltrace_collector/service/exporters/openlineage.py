"""OpenLineage export: a START and a COMPLETE/FAIL RunEvent per component run.

Installed by ``Collector.install_features`` when ``MLTRACE_OPENLINEAGE_URL`` (HTTP to
Marquez or any OpenLineage endpoint) or ``MLTRACE_OPENLINEAGE_TRANSPORT`` (``http``,
``file``, ``console``) is set. It observes the ingest pipeline *after* each commit and
hands runs to one background thread through a bounded queue: ingestion never waits on
it; a full queue drops (counted), a failed emit is logged once per burst and counted.

Mapping (``run_events``):

* job = component in ``MLTRACE_OPENLINEAGE_NAMESPACE``; job facets ``jobType`` and
  ``sourceCodeLocation`` (revision, repository, file);
* run ID = the mltrace run ID when it is a UUID (UUIDv7 from the SDK), else
  ``uuid5(NAMESPACE_URL, "otel-mltrace:run:" + id)`` — deterministic, so START and
  COMPLETE (and replicas) agree; facets ``parent`` (the enclosing run, from
  ``mltrace.parent.run.id``) and ``errorMessage`` on FAIL;
* datasets from artifact IDs: ``scheme://authority`` is the namespace (``file`` for local
  files), the path the name; the digest goes in the ``version`` facet; outputs carry
  ``dataQualityMetrics`` (row count, nulls, min/max, quantiles per output summary) and
  ``outputStatistics`` (row count).

Example::

    MLTRACE_OPENLINEAGE_URL=http://marquez:5000 otel-mltrace serve
    MLTRACE_OPENLINEAGE_TRANSPORT=file MLTRACE_OPENLINEAGE_FILE=/var/log/ol.jsonl otel-mltrace serve
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from openlineage.client.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_metrics_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    source_code_location_job,
)
from openlineage.client.transport import get_default_factory

from mltrace_collector.index.model import DecodedBatch, RunRecord, split_artifact_id
from otel_mltrace import semconv
from otel_mltrace.config import resolve
from otel_mltrace.distributions import OutputSummary

log = logging.getLogger("mltrace_collector.openlineage")
PRODUCER = "https://github.com/otel-mltrace/otel-mltrace"
QUANTILES = (0.5, 0.9, 0.99)


def ol_run_id(run_id: str) -> str:
    """An OpenLineage run ID (a UUID) for an mltrace run ID.

    >>> ol_run_id("0190c2a1-7a3b-7c3d-8e4f-123456789abc")
    '0190c2a1-7a3b-7c3d-8e4f-123456789abc'
    >>> ol_run_id("run-1") == ol_run_id("run-1")
    True
    """
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "otel-mltrace:run:" + run_id))


def dataset_name(artifact_id: str, default_namespace: str) -> tuple[str, str, str | None]:
    """``(namespace, name, version)`` of an artifact ID, per the OpenLineage naming spec.

    >>> dataset_name("s3://bucket/dir/x.parquet@sha256:ab", "ns")
    ('s3://bucket', 'dir/x.parquet', 'sha256:ab')
    >>> dataset_name("file:///data/x.csv", "ns")
    ('file', '/data/x.csv', None)
    """
    uri, version = split_artifact_id(artifact_id)
    parts = urlsplit(uri)
    if not parts.scheme or "://" not in uri:
        return default_namespace, uri, version
    if parts.scheme == "file" or not parts.netloc:
        return parts.scheme, parts.path or uri, version
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/", version


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def _quality(run: RunRecord) -> data_quality_metrics_dataset.DataQualityMetricsDatasetFacet | None:
    if not run.output_summaries:
        return None
    columns = {}
    rows = 0
    for out in run.output_summaries:
        quantiles: dict[str, float] = {}
        try:
            summary = OutputSummary.from_json(out.summary)
            for q in QUANTILES:
                value = summary.quantile(q) if out.kind == semconv.OUTPUT_KIND_NUMERIC else None
                if value is not None:
                    quantiles[str(q)] = float(value)
        except (ValueError, TypeError, KeyError):
            quantiles = {}
        distinct = out.summary.get("distinct_count")
        columns[out.name] = data_quality_metrics_dataset.ColumnMetrics(
            nullCount=out.null_count,
            distinctCount=distinct if isinstance(distinct, int) else None,
            sum=out.sum,
            count=float(out.count),
            min=out.min,
            max=out.max,
            quantiles=quantiles or None,
        )
        rows = max(rows, out.count + out.null_count + out.invalid_count)
    return data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
        columnMetrics=columns, rowCount=rows, producer=PRODUCER
    )


def _job(run: RunRecord, namespace: str) -> Job:
    facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="OTEL_MLTRACE",
            jobType="COMPONENT",
            producer=PRODUCER,
        )  # fmt: skip
    }
    if run.code_repository or run.code_file:
        facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
            type="git" if run.code_revision else "file",
            url=run.code_repository or f"file://{run.code_file}",
            repoUrl=run.code_repository,
            path=run.code_file,
            version=run.code_revision,
            producer=PRODUCER,
        )
    return Job(namespace=namespace, name=run.component, facets=facets)


def run_events(
    run: RunRecord, namespace: str, default_dataset_namespace: str | None = None
) -> list[RunEvent]:
    """The START and COMPLETE/FAIL events of one run (built with the client's models)."""
    ds_ns = default_dataset_namespace or namespace
    run_facets: dict[str, Any] = {}
    parent_id = run.attributes.get(semconv.PARENT_RUN_ID)
    parent_component = run.attributes.get(semconv.PARENT_COMPONENT)
    if isinstance(parent_id, str) and isinstance(parent_component, str):
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=ol_run_id(parent_id)),
            job=parent_run.Job(namespace=namespace, name=parent_component),
            producer=PRODUCER,
        )
    inputs = []
    for aid in run.inputs:
        ns, name, version = dataset_name(aid, ds_ns)
        facets: dict[str, Any] = {}
        if version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=version, producer=PRODUCER
            )
        inputs.append(InputDataset(namespace=ns, name=name, facets=facets))
    quality = _quality(run)
    outputs = []
    for aid in run.outputs:
        ns, name, version = dataset_name(aid, ds_ns)
        facets = {}
        out_facets: dict[str, Any] = {}
        if version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=version, producer=PRODUCER
            )
        if quality is not None:
            facets["dataQualityMetrics"] = quality
            out_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=quality.rowCount, producer=PRODUCER
                )
            )
        outputs.append(OutputDataset(namespace=ns, name=name, facets=facets,
                                     outputFacets=out_facets))  # fmt: skip
    job = _job(run, namespace)
    run_id = ol_run_id(run.run_id)
    start = RunEvent(
        eventType=RunState.START, eventTime=_iso(run.start_ns), run=Run(runId=run_id,
        facets=dict(run_facets)), job=job, inputs=inputs, producer=PRODUCER,
    )  # fmt: skip
    end_facets = dict(run_facets)
    state = RunState.COMPLETE
    if run.status == "error":
        state = RunState.FAIL
        end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=run.status_message or "run failed", programmingLanguage="python",
            producer=PRODUCER,
        )  # fmt: skip
    end = RunEvent(
        eventType=state, eventTime=_iso(run.end_ns), run=Run(runId=run_id, facets=end_facets),
        job=job, inputs=inputs, outputs=outputs, producer=PRODUCER,
    )  # fmt: skip
    return [start, end]


class OpenLineageExporter:
    """Pipeline observer: queues committed runs; one thread emits their RunEvents."""

    def __init__(
        self, client: OpenLineageClient, namespace: str, *, queue_size: int = 10_000
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.stats = {"events_sent": 0, "events_failed": 0, "runs_dropped": 0}
        self._queue: queue.Queue[RunRecord | None] = queue.Queue(maxsize=queue_size)
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="mltrace-openlineage", daemon=True)
        self._thread.start()

    def observe(self, _request: object, batch: DecodedBatch) -> None:
        for run in batch.runs:
            try:
                self._queue.put_nowait(run)
            except queue.Full:
                self.stats["runs_dropped"] += 1

    def _loop(self) -> None:
        while True:
            run = self._queue.get()
            if run is None:
                return
            try:
                events = run_events(run, self.namespace)
            except Exception:  # a run the mapping cannot express must not stop the thread
                log.exception("cannot map run %s to OpenLineage events", run.run_id)
                self.stats["events_failed"] += 2
                continue
            for event in events:
                try:
                    self.client.emit(event)
                except Exception as exc:
                    self.stats["events_failed"] += 1
                    if not self._failing:
                        log.warning("OpenLineage emit failed (%s); counting further failures", exc)
                    self._failing = True
                else:
                    self.stats["events_sent"] += 1
                    self._failing = False

    def close(self, timeout_s: float = 10.0) -> None:
        """Emit what is queued (up to ``timeout_s``), then stop. Idempotent."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
        try:
            self.client.close(timeout_s)
        except Exception:
            log.debug("OpenLineage client close failed", exc_info=True)


def transport_config(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The openlineage-python transport config for our settings (None: export is off)."""
    kind = settings.get("openlineage_transport") or ("http" if settings.get("openlineage_url")
                                                      else None)  # fmt: skip
    if kind is None:
        return None
    if kind == "http":
        if not settings.get("openlineage_url"):
            raise ValueError("MLTRACE_OPENLINEAGE_TRANSPORT=http needs MLTRACE_OPENLINEAGE_URL")
        config: dict[str, Any] = {"type": "http", "url": settings["openlineage_url"],
                                  "endpoint": settings.get("openlineage_endpoint") or
                                  "api/v1/lineage"}  # fmt: skip
        if settings.get("openlineage_api_key"):
            config["auth"] = {"type": "api_key", "apiKey": settings["openlineage_api_key"]}
        return config
    if kind == "file":
        path = settings.get("openlineage_file")
        if not path:
            raise ValueError("MLTRACE_OPENLINEAGE_TRANSPORT=file needs MLTRACE_OPENLINEAGE_FILE")
        return {"type": "file", "log_file_path": path, "append": True}
    if kind == "console":
        return {"type": "console"}
    raise ValueError(
        f"MLTRACE_OPENLINEAGE_TRANSPORT={kind!r} is not supported; use http, file or console"
    )


def install_openlineage(collector: Any, **explicit: Any) -> OpenLineageExporter | None:
    """Attach the exporter to ``collector`` when configured (settings or ``explicit``)."""
    names = ("openlineage_url", "openlineage_transport", "openlineage_file",
             "openlineage_endpoint", "openlineage_api_key", "openlineage_namespace",
             "openlineage_queue_size")  # fmt: skip
    settings = {n: resolve(n, explicit.get(n)) for n in names}
    config = transport_config(settings)
    if config is None:
        return None
    transport = get_default_factory().create(config=config)
    client = OpenLineageClient(transport=transport)
    exporter = OpenLineageExporter(
        client, settings["openlineage_namespace"], queue_size=settings["openlineage_queue_size"]
    )
    collector.pipeline.add_observer(exporter.observe)
    collector.on_stop.append(exporter.close)
    collector.openlineage = exporter
    return exporter
