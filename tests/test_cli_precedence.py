"""CLI precedence as documented: a flag (before or after the command) > MLTRACE_* > default.

Issue: ``MLTRACE_SERVER=… otel-mltrace --db local.db components`` answered from the server.
Each case runs both ways round against a real embedded index and a live ``otel-mltrace
serve`` child whose index holds a different component, so the answer says who answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main
from tests.serve_process import REPO_ROOT, ServeProcess
from tests.servers.ports import free_port

TOKEN = "s3cret-token"


def _index(path: Path, component: str) -> str:
    mlt.configure(service_name="precedence", index=str(path))
    try:
        with mlt.run(component):
            pass
        mlt.flush()
    finally:
        mlt.shutdown()
    return str(path)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(local index holding 'local_step', URL of a serve whose index holds 'served_step')."""
    tmp = tmp_path_factory.mktemp("precedence")
    local = _index(tmp / "local.db", "local_step")
    served = _index(tmp / "served.db", "served_step")
    with ServeProcess.start(
        served, tmp / "serve.log", extra_args=["--auth-token", TOKEN, "--decode-workers", "0"]
    ) as serve:
        yield local, serve.http_url


def _components(args: list[str], env: Mapping[str, str | None]) -> tuple[int, str]:
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MLTRACE_")}
    result = CliRunner().invoke(main, [*args], env={**clean, **env})
    return result.exit_code, result.output


def _who(out: str) -> list[str]:
    return [row["component"] for row in json.loads(out)]


def test_db_flag_beats_server_env_before_or_after_the_command(places: tuple[str, str]) -> None:
    local, url = places
    env = {"MLTRACE_SERVER": url, "MLTRACE_AUTH_TOKEN": TOKEN}
    for argv in (
        ["--db", local, "components", "--format", "json"],
        ["components", "--db", local, "--format", "json"],
    ):
        code, out = _components(argv, env)
        assert code == 0, out
        assert _who(out) == ["local_step"], argv
    code, out = _components(["components", "--format", "json"], env)  # env alone: the server
    assert code == 0 and _who(out) == ["served_step"], out


def test_server_flag_beats_db_env_before_or_after_the_command(places: tuple[str, str]) -> None:
    local, url = places
    env = {"MLTRACE_DB": local, "MLTRACE_AUTH_TOKEN": TOKEN}
    for argv in (
        ["--server", url, "components", "--format", "json"],
        ["components", "--server", url, "--format", "json"],
    ):
        code, out = _components(argv, env)
        assert code == 0 and _who(out) == ["served_step"], (argv, out)
    code, out = _components(["components", "--format", "json"], env)
    assert code == 0 and _who(out) == ["local_step"], out


def test_index_env_is_the_default_and_db_env_beats_it(places: tuple[str, str]) -> None:
    local, _ = places
    code, out = _components(["components", "--format", "json"], {"MLTRACE_INDEX": local})
    assert code == 0 and _who(out) == ["local_step"], out
    bogus = {"MLTRACE_INDEX": "/nonexistent/index.db", "MLTRACE_DB": local}
    code, out = _components(["components", "--format", "json"], bogus)
    assert code == 0 and _who(out) == ["local_step"], out


def test_the_nearer_flag_wins_and_a_tie_is_an_error(places: tuple[str, str]) -> None:
    local, url = places
    code, out = _components(
        ["--server", url, "components", "--db", local, "--format", "json"], {}
    )  # after the command name beats before it
    assert code == 0 and _who(out) == ["local_step"], out
    code, out = _components(["--db", local, "--server", url, "components"], {})
    assert code == 2 and "both --db=" in out and "keep one" in out, out
    code, out = _components(["components"], {"MLTRACE_DB": local, "MLTRACE_SERVER": url})
    assert code == 2 and "MLTRACE_DB=" in out and "MLTRACE_SERVER=" in out, out


def test_token_flag_beats_env_before_or_after_the_command(places: tuple[str, str]) -> None:
    _, url = places
    wrong = {"MLTRACE_AUTH_TOKEN": "wrong"}
    code, out = _components(["--server", url, "components"], wrong)
    assert code == 3 and "401" in out, out
    for argv in (
        ["--server", url, "--token", TOKEN, "components", "--format", "json"],
        ["--server", url, "components", "--token", TOKEN, "--format", "json"],
    ):
        code, out = _components(argv, wrong)
        assert code == 0 and _who(out) == ["served_step"], (argv, out)


def test_config_shows_value_default_and_source(tmp_path: Path) -> None:
    env = {"MLTRACE_SERVER": "http://127.0.0.1:9", "MLTRACE_AUTH_TOKEN": TOKEN}
    code, out = _components(["--db", "flag.db", "config", "--format", "json"], env)
    assert code == 0, out
    rows = {r["setting"]: r for r in json.loads(out)}
    assert rows["db"]["source"] == "flag" and rows["db"]["value"] == "flag.db"
    assert rows["server"]["source"] == "env" and rows["server"]["value"] == "http://127.0.0.1:9"
    assert rows["auth_token"]["source"] == "env" and TOKEN not in out  # secrets stay hidden
    assert rows["label_limit"] == {
        "setting": "label_limit", "env": "MLTRACE_LABEL_LIMIT", "default": "200",
        "value": "200", "source": "default", "help": rows["label_limit"]["help"],
    }  # fmt: skip
    code, out = _components(["config"], {"MLTRACE_LABEL_LIMIT": "many"})
    assert code == 0 and "INVALID 'many'" in out, out


def test_db_flag_before_serve_beats_the_env(tmp_path: Path) -> None:
    """``otel-mltrace --db X serve`` serves X even when MLTRACE_DB names another file."""
    flag_db, env_db = tmp_path / "flag.db", tmp_path / "env.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRACE_")}
    env.update(MLTRACE_DB=str(env_db), PYTHONPATH=str(REPO_ROOT), MLTRACE_DECODE_WORKERS="0")
    grpc = f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "otel_mltrace.cli", "--db", str(flag_db), "serve",
           "--grpc-address", grpc, "--http-address", f"127.0.0.1:{port}"]  # fmt: skip
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        for _ in range(600):  # bounded: 60 s
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        assert flag_db.exists() and not env_db.exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_older_than_flag_beats_the_stale_env(tmp_path: Path) -> None:
    db = str(tmp_path / "stale.db")
    data = tmp_path / "clean.csv"
    mlt.configure(service_name="precedence", index=db)
    try:
        with mlt.run("clean") as r:
            data.write_text("x\n1\n")
            r.add_output(str(data))
        with mlt.run("train", inputs=[str(data)]):
            pass
        mlt.flush()
    finally:
        mlt.shutdown()

    def train_stale(extra: list[str], env: Mapping[str, str | None]) -> bool:
        code, out = _components(["--db", db, "stale", "--all", "--format", "json", *extra], env)
        assert code == 0, out
        return bool([r for r in json.loads(out) if r["component"] == "train"][0]["stale"])

    old_at_once = {"MLTRACE_STALE_AFTER_SECONDS": "0"}
    assert train_stale([], old_at_once)  # env applies
    assert not train_stale(["--older-than", "100d"], old_at_once)  # the flag beats it
    assert not train_stale([], {})  # default: a day


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, "(the default index path)"),
        ([], {"MLTRACE_INDEX": "/tmp/i.db"}, "/tmp/i.db (MLTRACE_INDEX)"),
        ([], {"MLTRACE_INDEX": "/tmp/i.db", "MLTRACE_DB": "/tmp/d.db"}, "/tmp/d.db (MLTRACE_DB)"),
        ([], {"MLTRACE_SERVER": "http://127.0.0.1:9"}, "http://127.0.0.1:9 (MLTRACE_SERVER)"),
        (["--db", "f.db"], {"MLTRACE_SERVER": "http://127.0.0.1:9"}, "f.db (--db)"),
        ([], {"MLTRACE_SERVER": "http://127.0.0.1:9", "MLTRACE_DB": "d.db"}, "keep one"),
    ],
)
def test_config_says_which_index_queries_read(
    argv: list[str], env: dict[str, str], expected: str
) -> None:
    """Three settings can name the index (MLTRACE_DB, MLTRACE_SERVER, MLTRACE_INDEX); the
    table shows each on its own row, so ``config`` ends with the one the queries use."""
    code, out = _components([*argv, "config"], env)
    assert code == 0, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("Queries read: ") and expected in last, last
