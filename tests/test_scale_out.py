"""The large deployment, for real: OTel Collector gateway -> 2 replicas -> one PostgreSQL.

Topology under test (every box a real process on loopback)::

    OTLP/HTTP --> otelcol-mltrace (deploy/otelcol/gateway.yaml: batch + loadbalancing by
                  traceID) --OTLP/gRPC--> `otel-mltrace serve` A ┐
                                      --> `otel-mltrace serve` B ┴--> PostgreSQL db "shared"
    OTLP/HTTP --> `otel-mltrace serve` S (single replica)     -----> PostgreSQL db "single"

A synthetic pipeline (ingest/featurize per shard, train, predict per batch, evaluate:
every run its own trace) is recorded once with the SDK and encoded to OTLP requests;
the *identical bytes* go to the gateway and to S. Then:

* both A and B received spans (the gateway really split the pipeline);
* every lineage answer (trace, downstream, runs, components) from A and from B equals S's;
* summing the store-derived Prometheus series over A and B equals S's value (only the
  leader replica exports them, docs/metrics.md), and per-replica series add up.

Skips (with the reason) only when the collector build or PostgreSQL is unavailable.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serve_process import ServeProcess
from tests.servers.otelcol import OtelcolServer, gateway_config
from tests.servers.postgres import PostgresServer
from tests.servers.prometheus import PrometheusServer, PrometheusUnavailable
from tests.support_scale_out import (
    WAIT_S,
    Recorded,
    Series,
    add,
    canonical,
    diff,
    get_json,
    health,
    only,
    post_otlp,
    q,
    record_pipeline,
    scrape,
    store_derived,
    wait_for,
)


# -- the deployment ----------------------------------------------------------------------
@dataclass
class Deployment:
    a: ServeProcess
    b: ServeProcess
    single: ServeProcess
    gateway: OtelcolServer
    recorded: Recorded


@pytest.fixture(scope="module")
def deployment(
    otelcol_binary: Path, postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    recorded = record_pipeline()
    shared = postgres_server.create_database()
    single_db = postgres_server.create_database()
    with contextlib.ExitStack() as stack:
        for url in (shared, single_db):
            stack.callback(postgres_server.drop_database, url.rsplit("/", 1)[1])
        # A and B start together: the schema migration lock is exercised too
        with ThreadPoolExecutor(3) as pool:
            logs = tmp_path_factory.mktemp("scale-out")
            futures = [
                pool.submit(ServeProcess.start, db, logs / f"{name}.log")
                for name, db in (("a", shared), ("b", shared), ("single", single_db))
            ]
            replicas = []
            for f in futures:
                with contextlib.suppress(Exception):
                    replicas.append(stack.enter_context(f.result()))
            for f in futures:
                f.result()  # re-raise the first start failure (all started ones get stopped)
        a, b, single = replicas
        cfg = gateway_config([f"127.0.0.1:{r.grpc_port}" for r in (a, b)])
        gateway = stack.enter_context(OtelcolServer.start(cfg, binary=otelcol_binary))
        for body in recorded.requests:
            post_otlp(gateway.http_endpoint, body)
            post_otlp(single.http_url, body)

        def counts() -> tuple[int, int, int, int, int]:
            ha, hb, hs = health(a), health(b), health(single)
            return (ha["spans_received"], hb["spans_received"], hs["spans_received"],
                    ha["runs"], hs["runs"])  # fmt: skip

        def arrived() -> bool:
            ra, rb, rs, runs_shared, runs_single = counts()
            return (ra + rb >= recorded.spans and rs >= recorded.spans
                    and runs_shared == runs_single == recorded.runs)  # fmt: skip

        wait_for(
            f"{recorded.spans} spans / {recorded.runs} runs on both setups",
            arrived,
            lambda: (
                f"(A, B, single spans; shared, single runs) = {counts()}\n"
                f"gateway log:\n{gateway.log_tail()}"
            ),
        )
        yield Deployment(a, b, single, gateway, recorded)


# -- the tests --------------------------------------------------------------------------
def test_gateway_splits_one_pipeline_over_both_replicas(deployment: Deployment) -> None:
    rec = deployment.recorded
    assert rec.traces >= 30, "the pipeline must have many traces for the balancer to split"
    ha, hb = health(deployment.a), health(deployment.b)
    print(f"spans: A={ha['spans_received']} B={hb['spans_received']} of {rec.spans}")
    assert ha["spans_received"] > 0 and hb["spans_received"] > 0, (ha, hb)
    assert ha["spans_received"] + hb["spans_received"] == rec.spans, "lost or duplicated spans"
    assert ha["store"] == hb["store"] == "postgres"
    assert ha["runs"] == hb["runs"] == rec.runs  # both read the one shared index


def test_lineage_equals_single_replica(deployment: Deployment) -> None:
    rec = deployment.recorded
    paths = [f"/api/v1/trace?id={q(x)}" for x in rec.finals]
    paths += [f"/api/v1/downstream?id={q(x)}" for x in rec.raws[:3] + rec.raws[-2:]]
    paths += ["/api/v1/runs?limit=1000", "/api/v1/components"]
    report = get_json(deployment.single, f"/api/v1/trace?id={q(rec.finals[-1])}")
    # the evaluation report's upstream holds every run but train v1: predict reads the
    # unversioned current model, which stitches to the latest train (v2, all 12 shards)
    assert len(report["runs"]) == rec.runs - 1, sorted(
        r["component"] for r in report["runs"].values()
    )
    for path in paths:
        expected = canonical(get_json(deployment.single, path))
        assert expected, f"{path}: empty answer from the single replica"
        for name, replica in (("A", deployment.a), ("B", deployment.b)):
            got = canonical(get_json(replica, path))
            assert got == expected, f"{path}: replica {name} differs from the single replica"
    # the graph is really cross-trace: a prediction's upstream holds runs of other traces
    trace = get_json(deployment.a, f"/api/v1/trace?id={q(rec.finals[0])}")
    text = json.dumps(trace)
    for component in ("ingest", "featurize", "train", "predict"):
        assert f'"{component}"' in text, f"{component} missing from a prediction's lineage"


def test_metrics_summed_over_replicas_equal_single_replica(deployment: Deployment) -> None:
    a, b, single = deployment.a, deployment.b, deployment.single
    # scrape twice: leadership is taken at the first scrape, and the series must be stable
    for _ in range(2):
        sa, sb, ss = scrape(a), scrape(b), scrape(single)
    leaders = [s.get(("mltrace_exporter_leader", ()), -1.0) for s in (sa, sb)]
    assert sorted(leaders) == [0.0, 1.0], f"exactly one leader expected, got A,B={leaders}"
    assert ss.get(("mltrace_exporter_leader", ())) == 1.0
    follower = sb if leaders[0] == 1.0 else sa
    exported = only(follower, store_derived)
    # the cardinality-cap counter is per replica in practice (a follower drops nothing, as it
    # exports no labelled store series): allowed on the follower, but only at zero
    dropped = only(exported, lambda n: n == "mltrace_label_values_dropped_total")
    assert all(v == 0.0 for v in dropped.values()), dropped
    assert not exported.keys() - dropped.keys(), "the follower must not export store series"

    single_store = only(ss, store_derived)
    names = {k[0] for k in single_store}
    for expected_name in (
        "mltrace_runs_total",
        "mltrace_output_value_bucket",
        "mltrace_output_drift",
        "mltrace_component_stale",
        "mltrace_lineage_edge",
    ):
        assert expected_name in names, f"{expected_name} missing from the single replica"
    problems = diff(single_store, only(add(sa, sb), store_derived))
    assert not problems, "summed store series differ:\n" + "\n".join(problems[:20])

    # per-replica series add up: spans ingested as runs / passthrough over A + B = single
    def ingest(s: Series) -> Series:
        return only(s, lambda n: n.startswith("mltrace_ingest_spans"))

    problems = diff(ingest(ss), add(ingest(sa), ingest(sb)))
    assert not problems, "per-replica ingest counters do not add up:\n" + "\n".join(problems)


SUM_QUERIES = (
    "sum by (component, status) (mltrace_runs_total)",
    "sum by (component, output, le) (mltrace_output_value_bucket)",
    "sum by (component, output) (mltrace_output_value_sum)",
    "sum by (component, output, method) (mltrace_output_drift)",
    "sum by (component, output, q) (mltrace_output_quantile)",
    "sum by (component) (mltrace_component_stale)",
    "sum by (component) (mltrace_component_last_run_timestamp_seconds)",
    "sum by (source, target) (mltrace_lineage_edge)",
    "sum by (outcome) (mltrace_ingest_spans_total)",
    "sum(mltrace_exporter_leader)",
    # the shipped recording rules
    "mltrace:output_drift:max",
    "mltrace:output_values:max",
    "mltrace:component_stale:max",
)


def test_promql_sums_over_replicas_equal_single_replica(deployment: Deployment) -> None:
    """A real Prometheus per setup (the shipped rules loaded): PromQL ``sum()`` over both
    replicas answers what it answers over the single replica."""
    with contextlib.ExitStack() as stack:
        try:
            proms = [
                stack.enter_context(
                    PrometheusServer.start([r.http_url.split("://")[1] for r in rs])
                )
                for rs in ((deployment.a, deployment.b), (deployment.single,))
            ]
        except PrometheusUnavailable as exc:
            if os.environ.get("MLTRACE_REQUIRE_PROMETHEUS", "") not in ("", "0"):
                pytest.fail(f"Prometheus required but unavailable: {exc}")
            pytest.skip(f"Prometheus unavailable: {exc}")
        shared, single = proms
        shared.wait_for_query("count(up == 1) == 2", timeout=WAIT_S)
        for prom in proms:
            prom.wait_for_query("mltrace_runs_total", timeout=WAIT_S)
            prom.wait_for_rule_evaluations(rounds=2, timeout=WAIT_S)
        for expr in SUM_QUERIES:
            expected, got = single.query_values(expr), shared.query_values(expr)
            assert expected, f"{expr}: no data from the single replica"
            assert got.keys() == expected.keys(), f"{expr}: other series {got} vs {expected}"
            for labels, value in expected.items():
                assert math.isclose(got[labels], value, rel_tol=1e-9, abs_tol=1e-9), (
                    f"{expr}{dict(labels)}: summed over replicas {got[labels]}, single {value}"
                )


def test_follower_takes_over_metrics_when_the_leader_stops(deployment: Deployment) -> None:
    """Runs last (it stops a replica): the advisory lock dies with the leader's session,
    the follower takes it at its next scrape and exports the same store series."""
    a, b, single = deployment.a, deployment.b, deployment.single
    sa = scrape(a)
    leader, follower = (a, b) if sa.get(("mltrace_exporter_leader", ())) == 1.0 else (b, a)
    assert leader.terminate(30) == 0, "the leader replica must shut down cleanly"
    took_over: list[Series] = []

    def follower_leads() -> bool:
        took_over[:] = [scrape(follower)]
        return took_over[0].get(("mltrace_exporter_leader", ())) == 1.0

    wait_for("the follower to become leader", follower_leads, lambda: "still follower")
    expected = only(scrape(single), store_derived)
    problems = diff(expected, only(took_over[0], store_derived))
    assert not problems, "new leader's store series differ:\n" + "\n".join(problems[:20])
