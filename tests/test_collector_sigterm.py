"""A graceful stop of a real ``otel-mltrace serve`` under load (SQLite and PostgreSQL):
exports keep coming while it is told to stop, it exits 0, and every batch it acknowledged is
in the index after a restart.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from mltrace_collector.index.store import open_store
from tests.otlp_builders import request, run_span
from tests.serve_process import ServeProcess
from tests.support_digits_lineage import BACKENDS


@pytest.fixture(params=BACKENDS)
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "sigterm.db")


def test_sigterm_under_load_keeps_every_acknowledged_batch(fresh_db: str, tmp_path: Path) -> None:
    """Exports keep coming while the collector is told to stop: it exits 0, and every batch
    it answered 200 to is in the index after a restart."""
    serve = ServeProcess.start(fresh_db, tmp_path / "serve.log")
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not stop.is_set():
                ids = [f"sigterm-{worker}-{n}-{i}" for i in range(20)]
                spans = [run_span("sigterm-load", run_id=i, outputs=[f"mem://sig/{i}"])
                         for i in ids]  # fmt: skip
                n += 1
                try:
                    resp = client.post(
                        serve.http_url + "/v1/traces",
                        content=request(spans).SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    time.sleep(0.01)
                    continue  # refused while shutting down: not acknowledged
                if resp.status_code == 200:
                    with lock:
                        acked.extend(ids)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(3)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert serve.terminate() == 0, serve.log.read_text()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        serve.kill()
    assert len(acked) >= 200
    with ServeProcess.start(fresh_db, tmp_path / "serve.log") as again:
        health = httpx.get(again.http_url + "/healthz", timeout=30).json()
        assert health["runs"] >= len(acked)
        assert again.terminate() == 0
    store = open_store(fresh_db, migrate=False)
    try:
        rows = store.query("SELECT run_id FROM runs WHERE component = ?", ("sigterm-load",))
    finally:
        store.close()
    missing = set(acked) - {r["run_id"] for r in rows}
    assert not missing, f"{len(missing)} acknowledged runs lost, e.g. {sorted(missing)[:3]}"
