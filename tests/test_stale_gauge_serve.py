"""Issue 12 from the user's side: the staleness alert says what `otel-mltrace stale` says.

A real ``otel-mltrace serve``; runs sent by the SDK over OTLP/gRPC; ``/metrics`` scraped
over HTTP and compared with ``otel-mltrace --server URL stale --format json``:

* two variants of ``train`` (logreg, rf, different model URIs), features re-made and rf
  retrained only: ``stale`` lists the logreg run, so ``mltrace_component_stale{train}`` is 1
  and ``mltrace_component_stale_runs{train}`` 1 — although the newest ``train`` run (rf) is
  fresh;
* a stale run whose output was then superseded by another component's write is no longer
  live: ``stale`` drops it and the gauge goes back to 0 (before, the component's newest run
  kept the alert firing).

The gauges are recomputed in the background at most every second or so after an ingest,
so each comparison polls ``/metrics`` (bounded) until the answers agree.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

import otel_mltrace as mlt
from otel_mltrace.cli import main
from tests.serve_process import ServeProcess

AGREE_TIMEOUT_S = 30.0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    child = ServeProcess.start(str(tmp_path / "c.db"), tmp_path / "serve.log")
    try:
        mlt.configure(service_name="stale-gauge", endpoint=child.grpc_url)
        yield child
    finally:
        mlt.shutdown()
        assert child.terminate() == 0


def cli_stale(serve: ServeProcess) -> list[dict[str, Any]]:
    assert mlt.flush(60), "the collector did not take the spans in 60 s"
    args = ["--server", serve.http_url, "stale", "--older-than", "1d", "--all", "--format", "json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    return rows


def gauges(serve: ServeProcess) -> dict[str, tuple[float, float]]:
    """component -> (mltrace_component_stale, mltrace_component_stale_runs)."""
    text = httpx.get(serve.http_url + "/metrics", timeout=30).text
    found: dict[str, dict[str, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in ("mltrace_component_stale", "mltrace_component_stale_runs"):
                found.setdefault(s.labels["component"], {})[s.name] = s.value
    return {
        c: (v.get("mltrace_component_stale", -1), v.get("mltrace_component_stale_runs", -1))
        for c, v in found.items()
    }


def agree(serve: ServeProcess, components: set[str]) -> dict[str, tuple[float, float]]:
    """Poll ``/metrics`` until the gauges of ``components`` are what ``stale`` lists; returns
    them (the test asserts on the last scrape either way)."""
    rows = cli_stale(serve)
    counts = Counter(r["component"] for r in rows if r["stale"])
    want = {c: (1.0 if counts[c] else 0.0, float(counts[c])) for c in components}
    deadline = time.monotonic() + AGREE_TIMEOUT_S
    while True:
        got = {c: v for c, v in gauges(serve).items() if c in components}
        if got == want or time.monotonic() > deadline:
            assert got == want, ("gauges vs otel-mltrace stale", got, rows)
            return got
        time.sleep(0.3)


def test_a_stale_variant_fires_although_the_newest_run_is_fresh(serve: ServeProcess) -> None:
    with mlt.run("featurize", outputs=["mem://v/features"]):
        pass
    for model in ("logreg", "rf"):
        with mlt.run("train", inputs=["mem://v/features"], params={"model": model}) as run:
            run.add_output(f"mem://v/model-{model}")
    assert agree(serve, {"featurize", "train"}) == {"featurize": (0, 0), "train": (0, 0)}
    with mlt.run("featurize", outputs=["mem://v/features"]):
        pass
    with mlt.run("train", inputs=["mem://v/features"], params={"model": "rf"}) as run:
        run.add_output("mem://v/model-rf")  # rf retrained: the newest train run is fresh
    rows = cli_stale(serve)
    stale = [r for r in rows if r["stale"]]
    assert [(r["component"], "features" in r["reasons"][0]) for r in stale] == [("train", True)]
    assert agree(serve, {"featurize", "train"}) == {"featurize": (0, 0), "train": (1, 1)}


def test_a_superseded_stale_run_stops_the_alert(serve: ServeProcess) -> None:
    with mlt.run("ingest", outputs=["mem://s/data"]):
        pass
    with mlt.run("score", inputs=["mem://s/data"]) as run:
        run.add_output("mem://s/scores")
    with mlt.run("ingest", outputs=["mem://s/data"]):
        pass
    assert agree(serve, {"ingest", "score"}) == {"ingest": (0, 0), "score": (1, 1)}
    # another job rewrites the scores from the new data: score's run is no longer live
    with mlt.run("rescore", inputs=["mem://s/data"]) as run:
        run.add_output("mem://s/scores")
    assert "score" not in {r["component"] for r in cli_stale(serve)}
    got = agree(serve, {"ingest", "score", "rescore"})
    assert got == {"ingest": (0, 0), "score": (0, 0), "rescore": (0, 0)}


def test_background_passes_reuse_one_store_connection(serve: ServeProcess) -> None:
    """Each pass reads the store from the same worker thread: a thread per pass would leave
    a read connection (open files) behind each time, for as long as the collector runs."""

    def open_files() -> int:
        return len(list(Path(f"/proc/{serve.proc.pid}/fd").iterdir()))

    def one_pass(i: int) -> None:
        with mlt.run(f"step{i}", inputs=["mem://f/in"]) as run:
            run.add_output(f"mem://f/out{i}")
        agree(serve, {f"step{i}"})  # a new component shows up only after a pass

    one_pass(0)
    one_pass(1)
    before = open_files()
    for i in range(2, 8):
        one_pass(i)
    assert open_files() - before <= 3, (before, open_files())
