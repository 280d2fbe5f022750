"""Killed runs leave a trace (embedded index): SIGTERM ends the run with status error naming
the signal; SIGKILL leaves the run ``running``, then ``abandoned`` after MLTRACE_ABANDON_AFTER.

Real child processes running the SDK, killed with real signals; the index is read back
with the same queries the CLI and API use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mltrace_collector.index.queries.lineage_queries import LineageQueries
from mltrace_collector.index.store import open_store
from mltrace_collector.index.store.run_starts import open_run_summaries
from otel_mltrace.cli import main as cli_main

REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    import otel_mltrace as mlt

    if sys.argv[1] == "chain":
        def application_handler(signum, frame):
            print("application handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, application_handler)
    elif sys.argv[1] == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif sys.argv[1] == "graceful":  # the application shuts down in its own time
        stopping = []
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    elif sys.argv[1] == "fork":
        import os
        with mlt.run("parent") as parent:
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # a worker that inherited the open run
                # CPython drops a signal caught before its after-fork handling ran: tell
                # the parent when this worker is past it, or the SIGTERM may be lost
                os.write(ready_w, b"x")
                time.sleep(120)
            os.read(ready_r, 1)
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            print("worker", os.waitstatus_to_exitcode(status), flush=True)
        sys.exit(0)
    with mlt.run("train", inputs=["s3://bucket/features.parquet"]) as outer:
        with mlt.run("fit") as inner:
            print(outer.id, inner.id, flush=True)
            for _ in range(2400):  # Python runs a handler between bytecodes: if the kernel
                time.sleep(0.05)  # hands SIGTERM to another thread, one long sleep() defers it
                if sys.argv[1] == "graceful" and stopping:
                    inner.log_metric("stopped_by_signal", stopping[0])
                    break
    """
)
ANNOUNCE_DEADLINE_S = 10.0


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTRACE_", "OTEL_"))}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONFAULTHANDLER"] = "1"
    env.update(extra)
    return env


class Child:
    """The SDK child process, started and waited for its two run IDs (bounded)."""

    def __init__(self, tmp_path: Path, env: Mapping[str, str], mode: str = "plain") -> None:
        script = tmp_path / "pipeline.py"
        script.write_text(CHILD)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(env),
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the child prints once both runs are open
        if not line:
            self.proc.wait(30)
            raise AssertionError(
                f"child failed: {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.outer, self.inner = line.split()

    def signal(self, signum: int) -> tuple[int, str]:
        self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # show where it hangs (PYTHONFAULTHANDLER)
            self.proc.send_signal(signal.SIGABRT)
            out, err = self.proc.communicate(timeout=30)
            raise AssertionError(f"child still alive 30 s after signal {signum}:\n{err}") from None
        return self.proc.returncode, out + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def index(tmp_path: Path) -> str:
    return str(tmp_path / "index.db")


@pytest.fixture(name="children")
def children_fixture() -> Iterator[list[Child]]:
    """SDK children a test starts, killed at its end (tests/test_killed_runs_collector.py too)."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["run_id"]: r for r in rows}


def wait_announced(db: str, run_ids: set[str]) -> float:
    """Seconds until both start records are in the index (fails after the deadline)."""
    t0 = time.monotonic()
    store = open_store(db) if os.path.exists(db) else None
    try:
        while time.monotonic() - t0 < ANNOUNCE_DEADLINE_S:
            if store is None and os.path.exists(db):
                store = open_store(db)
            if store is not None and run_ids <= {r["run_id"] for r in open_run_summaries(store)}:
                return time.monotonic() - t0
            time.sleep(0.05)
    finally:
        if store is not None:
            store.close()
    raise AssertionError(
        f"start records of {run_ids} not in the index after {ANNOUNCE_DEADLINE_S}s"
    )


def test_sigterm_ends_open_runs_as_error_naming_the_signal(
    tmp_path: Path, index: str, children: list[Child]
) -> None:
    child = Child(tmp_path, {"MLTRACE_INDEX": index})
    children.append(child)
    code, output = child.signal(signal.SIGTERM)
    assert code == -signal.SIGTERM, output  # the default action still happens: status 143
    store = open_store(index)
    try:
        q = LineageQueries(store)
        for component, run_id in (("train", child.outer), ("fit", child.inner)):
            [row] = q.history(component)
            assert (row["run_id"], row["status"]) == (run_id, "error")
            info = q.inspect(run_id)
            assert info["status_message"] == "terminated by SIGTERM (signal 15)"
        assert q.inspect(child.outer)["inputs"][0]["artifact_id"] == "s3://bucket/features.parquet"
        assert open_run_summaries(store) == []  # the final spans superseded the start records
    finally:
        store.close()


def test_sigterm_chains_the_application_handler(
    tmp_path: Path, index: str, children: list[Child]
) -> None:
    child = Child(tmp_path, {"MLTRACE_INDEX": index}, mode="chain")
    children.append(child)
    code, output = child.signal(signal.SIGTERM)
    assert code == 3 and "application handler ran" in output, output
    store = open_store(index)
    try:
        assert LineageQueries(store).inspect(child.outer)["status"] == "error"
    finally:
        store.close()


def test_a_graceful_application_handler_lets_its_runs_finish(
    tmp_path: Path, index: str, children: list[Child]
) -> None:
    """The application's handler only asks to stop: its runs go on, log, and end ok."""
    child = Child(tmp_path, {"MLTRACE_INDEX": index}, mode="graceful")
    children.append(child)
    code, output = child.signal(signal.SIGTERM)
    assert code == 0, output
    store = open_store(index)
    try:
        q = LineageQueries(store)
        assert q.inspect(child.outer)["status"] == "ok"
        inner = q.inspect(child.inner)
        assert inner["status"] == "ok" and inner["metrics"]["stopped_by_signal"] == 15
    finally:
        store.close()


def test_pool_workers_terminated_by_sigterm_deliver_their_runs(tmp_path: Path, index: str) -> None:
    """``with Pool() as p`` terminates its workers with SIGTERM: the runs they finished must
    still reach the index (the handler flushes even with no run open)."""
    script = tmp_path / "pool.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, otel_mltrace as mlt

            def work(i):
                with mlt.run("work", outputs=[f"mem://out/{i}"]):
                    return i

            if __name__ == "__main__":
                with mlt.run("parent"):
                    with multiprocessing.get_context("fork").Pool(2) as pool:
                        assert sorted(pool.map(work, range(40))) == list(range(40))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], env=child_env({"MLTRACE_INDEX": index}),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = open_store(index)
    try:
        assert [c["runs"] for c in LineageQueries(store).components()] == [1, 40]
    finally:
        store.close()


def test_handle_sigterm_false_leaves_signals_to_the_application(
    tmp_path: Path, index: str, children: list[Child]
) -> None:
    child = Child(tmp_path, {"MLTRACE_INDEX": index, "MLTRACE_HANDLE_SIGTERM": "false"})
    children.append(child)
    wait_announced(index, {child.outer, child.inner})
    code, output = child.signal(signal.SIGTERM)
    assert code == -signal.SIGTERM, output
    store = open_store(index)
    try:  # no handler: the process died unflushed, and only the start records tell of it
        assert by_id(LineageQueries(store).runs())[child.outer]["status"] == "running"
    finally:
        store.close()


def test_an_ignored_sigterm_stays_ignored(
    tmp_path: Path, index: str, children: list[Child]
) -> None:
    child = Child(tmp_path, {"MLTRACE_INDEX": index}, mode="ignore")
    children.append(child)
    wait_announced(index, {child.outer, child.inner})
    child.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert child.proc.poll() is None  # the application ignores SIGTERM: so do we
    child.signal(signal.SIGKILL)
    store = open_store(index)
    try:  # not ended as error by a signal the process survived
        assert LineageQueries(store).inspect(child.outer)["status"] == "running"
    finally:
        store.close()


def test_a_forked_worker_killed_by_sigterm_leaves_the_parent_run_alone(
    tmp_path: Path, index: str
) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(script), "fork"],
        capture_output=True, text=True, env=child_env({"MLTRACE_INDEX": index}), timeout=60,
    )  # fmt: skip
    assert done.stdout.startswith("worker -15"), done.stdout + done.stderr
    store = open_store(index)
    try:
        [parent] = LineageQueries(store).history("parent")
        assert parent["status"] == "ok"  # not ended as error by the worker's SIGTERM
    finally:
        store.close()


def test_sigkill_leaves_running_then_abandoned(
    tmp_path: Path, index: str, children: list[Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    child = Child(tmp_path, {"MLTRACE_INDEX": index})
    children.append(child)
    latency = wait_announced(index, {child.outer, child.inner})
    print(f"start records indexed {latency:.2f}s after the runs started")
    code, _ = child.signal(signal.SIGKILL)
    assert code == -signal.SIGKILL
    store = open_store(index)
    try:
        q = LineageQueries(store)
        [row] = q.history("train")
        assert (row["run_id"], row["status"], row["end"]) == (child.outer, "running", None)
        assert q.inspect(child.inner)["status"] == "running"
        assert {r["status"] for r in q.runs()} == {"running"}
        monkeypatch.setenv("MLTRACE_ABANDON_AFTER", "0.5")
        time.sleep(0.6)
        [row] = q.history("train")
        assert row["status"] == "abandoned"
        info = q.inspect(child.inner[:12])  # a unique prefix works as for ended runs
        assert info["status"] == "abandoned" and "never ended" in info["status_message"]
        # the CLI's history/runs (run search) list them too, unless a filter excludes them
        found = CliRunner().invoke(
            cli_main, ["--db", index, "--format", "json", "history", "train"]
        )
        assert [(r["run_id"], r["status"]) for r in json.loads(found.output)] == [
            (child.outer, "abandoned")
        ]
        found = CliRunner().invoke(cli_main, ["--db", index, "--format", "json", "runs"])
        assert {r["status"] for r in json.loads(found.output)} == {"abandoned"}
        found = CliRunner().invoke(
            cli_main, ["--db", index, "--format", "json", "runs", "--status", "ok"]
        )
        assert json.loads(found.output) == [], found.output
        # an open run has no params: a --where on one lists nothing, here an error since
        # no run at all has params.C
        found = CliRunner().invoke(
            cli_main, ["--db", index, "--format", "json", "runs", "--where", "params.C = 1"]
        )
        assert found.exit_code == 2 and "no run has params.C" in found.output, found.output
        monkeypatch.setenv("MLTRACE_ABANDON_AFTER", "0")
        with pytest.raises(ValueError, match="MLTRACE_ABANDON_AFTER=.0. is invalid"):
            q.history("train")
    finally:
        store.close()
