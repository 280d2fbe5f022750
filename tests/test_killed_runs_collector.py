"""Killed runs through a live collector (``otel-mltrace serve`` child, OTLP/gRPC): SIGTERM
-> status error naming the signal; SIGKILL -> ``running``, then ``abandoned`` after
MLTRACE_ABANDON_AFTER, in the API and in ``mltrace_runs_abandoned_total`` on /metrics."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serve_process import ServeProcess
from tests.test_killed_runs import Child, children_fixture  # noqa: F401 (the fixture)

ABANDON_AFTER_S = 3.0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess.start(
        str(tmp_path / "collector.db"),
        tmp_path / "serve.log",
        env={"MLTRACE_ABANDON_AFTER": str(ABANDON_AFTER_S), "MLTRACE_DECODE_WORKERS": "1"},
    )
    try:
        yield proc
    finally:
        proc.terminate()


def get(serve: ServeProcess, path: str) -> Any:
    response = httpx.get(serve.http_url + path, timeout=10)
    response.raise_for_status()
    return response.json()


def poll(what: str, check: Any, deadline_s: float = 15.0) -> Any:
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen within {deadline_s}s")


def abandoned_total(serve: ServeProcess) -> dict[str, float]:
    text = httpx.get(serve.http_url + "/metrics", timeout=10).text
    return {
        s.labels["component"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "mltrace_runs_abandoned"
        for s in fam.samples
        if s.name == "mltrace_runs_abandoned_total"
    }


def status_of(serve: ServeProcess, run_id: str) -> str | None:
    response = httpx.get(f"{serve.http_url}/api/v1/runs/{run_id}", timeout=10)
    return str(response.json()["status"]) if response.status_code == 200 else None


def test_sigterm_through_the_collector(
    tmp_path: Path, serve: ServeProcess, children: list[Child]
) -> None:
    child = Child(tmp_path, {"MLTRACE_ENDPOINT": serve.grpc_url})
    children.append(child)
    code, output = child.signal(signal.SIGTERM)
    assert code == -signal.SIGTERM, output
    # flushed before the process exited: nothing to wait for
    info = get(serve, f"/api/v1/runs/{child.outer}")
    assert (info["status"], info["status_message"]) == (
        "error",
        "terminated by SIGTERM (signal 15)",
    )
    history = get(serve, "/api/v1/components/fit/history")
    assert [(r["run_id"], r["status"]) for r in history] == [(child.inner, "error")]
    assert abandoned_total(serve) == {}


def test_sigkill_through_the_collector(
    tmp_path: Path, serve: ServeProcess, children: list[Child]
) -> None:
    child = Child(tmp_path, {"MLTRACE_ENDPOINT": serve.grpc_url})
    children.append(child)
    t0 = time.monotonic()
    poll("start records", lambda: status_of(serve, child.outer) and status_of(serve, child.inner))
    print(f"start records indexed by the collector {time.monotonic() - t0:.2f}s after start")
    code, _ = child.signal(signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert status_of(serve, child.outer) == "running"
    [row] = get(serve, "/api/v1/components/train/history")
    assert (row["run_id"], row["status"], row["end"]) == (child.outer, "running", None)
    poll("abandoned", lambda: status_of(serve, child.outer) == "abandoned", ABANDON_AFTER_S + 10)
    assert {r["run_id"]: r["status"] for r in get(serve, "/api/v1/runs")} == {
        child.outer: "abandoned",
        child.inner: "abandoned",
    }
    assert abandoned_total(serve) == {"train": 1.0, "fit": 1.0}
