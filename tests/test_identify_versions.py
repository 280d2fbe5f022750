"""A path whose content *is* in the index, at a location that holds other versions too:
``trace`` says which version it shows and how many others exist, and ``--all-versions``
lists them — as it already did for an edited, moved or deleted file or a bare URI.

Found in the issue-12 acceptance audit: ``otel-mltrace trace raw/wine.csv`` of an
unchanged file (three data versions logged there) showed the newest version with no word
about the two older ones, and ``--all-versions`` printed nothing; asking for an older
version by its ID (``s3://lake/wine.parquet@v:1``) did not say it is not the newest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import otel_mltrace as mlt
from otel_mltrace.cli import main
from tests.serve_process import ServeProcess


def cli(*args: str) -> tuple[int, str]:
    env = {k: None for k in os.environ if k.startswith("MLTRACE_")}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, list[str]]:
    """Three ingest runs writing raw.csv (batches 1..3) from s3://lake/wine.parquet@v:N."""
    work = tmp_path_factory.mktemp("versions")
    db = str(work / "index.db")
    mlt.configure(service_name="versions", index=db)
    ids = []
    try:
        for batch in (1, 2, 3):
            with mlt.run("ingest", inputs=[f"s3://lake/wine.parquet@v:{batch}"]) as r:
                (work / "raw.csv").write_text(f"wine_id,batch\nwine-0001,{batch}\n")
                ids.append(r.add_output(str(work / "raw.csv")))
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    return db, work, ids


@pytest.mark.parametrize("where", ["db", "server"])
def test_an_unchanged_path_says_how_many_other_versions_exist(
    index: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    db, work, ids = index
    monkeypatch.chdir(work)
    if where == "db":
        target = ["--db", db]
        code, out = cli(*target, "trace", "raw.csv", "--all-versions")
        _, js = cli(*target, "trace", "raw.csv", "--format", "json")
    else:
        with ServeProcess.start(db, work / "serve.log", extra_args=["--decode-workers", "0"]) as s:
            target = ["--server", s.http_url]
            code, out = cli(*target, "trace", "raw.csv", "--all-versions")
            _, js = cli(*target, "trace", "raw.csv", "--format", "json")
    assert code == 0, out
    uri = (work / "raw.csv").as_uri()
    assert f"the newest of 3 at {uri}; 2 other version(s) (--all-versions lists them)" in out
    assert all(i in out for i in ids) and "<- shown" in out  # the versions table
    resolved = json.loads(js)["resolved"]
    assert resolved["chosen"] == ids[2]
    assert [v["artifact_id"] for v in resolved["versions"]] == ids[::-1]


def test_an_older_version_asked_for_says_it_is_not_the_newest(
    index: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, work, ids = index
    monkeypatch.chdir(work)
    raw = work / "raw.csv"
    newest = raw.read_text()
    try:
        raw.write_text("wine_id,batch\nwine-0001,1\n")  # batch 1 restored from a backup
        code, out = cli("--db", db, "trace", "raw.csv")
    finally:
        raw.write_text(newest)
    assert code == 0, out
    assert "as asked, not the newest of 3 at" in out and "ingest" in out
    code, out = cli("--db", db, "downstream", "s3://lake/wine.parquet@v:1")
    assert code == 0 and "not the newest of 3 at s3://lake/wine.parquet: that is v:3" in out
    code, out = cli("--db", db, "trace", "s3://lake/wine.parquet@v:3", "--format", "json")
    assert json.loads(out)["resolved"]["note"].startswith("showing version v:3, the newest of 3")


def test_an_ambiguous_prefix_lists_candidates_without_a_path_note(
    index: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`trace 01a2429` ended its list of candidate runs with "; nothing was logged at
    file:///…/01a2429", as if the prefix might have been a file name."""
    db, work, _ = index
    monkeypatch.chdir(work)
    code, out = cli("--db", db, "runs", "--format", "json")
    prefix = os.path.commonprefix([r["run_id"] for r in json.loads(out)])[:8]
    code, out = cli("--db", db, "trace", prefix)
    assert code == 2 and f"run ID prefix {prefix!r} matches several runs" in out, out
    assert "nothing was logged" not in out
    code, out = cli("--db", db, "trace", "no-such-thing")
    assert code == 2 and "nothing was logged at" in out, out


def test_a_record_key_kept_across_versions_says_which_occurrence_is_shown(
    tmp_path: Path,
) -> None:
    """`trace wine-0001` of a stable key logged by three ingest runs showed the newest
    occurrence without saying that two others exist."""
    db = str(tmp_path / "index.db")
    mlt.configure(service_name="occurrences", index=db)
    outs, ids = [], []
    try:
        for batch in (1, 2, 3):
            with mlt.run("ingest") as r:
                out = r.add_output("mem://raw/wine.csv", version=str(batch))
                r.log_records(out, ["wine-0001", f"wine-{batch}000"])
                outs.append(out)
                ids.append(r.id)
        assert mlt.flush(30)
    finally:
        mlt.shutdown()
    code, out = cli("--db", db, "trace", "wine-0001", "--all-versions")
    assert code == 0, out
    text = " ".join(out.split())
    assert (
        f"showing the newest occurrence of record wine-0001: in mem://raw/wine.csv@v:3 by "
        f"ingest run {ids[2]}; it occurs in 2 other record set(s) (--all-versions lists them)"
    ) in text
    assert all(o in out for o in outs) and "<- shown" in out  # the occurrences table
    code, out = cli("--db", db, "trace", "wine-0001", "--format", "json")
    resolved = json.loads(out)["resolved"]
    assert [v["artifact_id"] for v in resolved["versions"]] == outs[::-1]
    code, out = cli("--db", db, "trace", "wine-3000", "--format", "json")
    assert "resolved" not in json.loads(out)  # one occurrence: nothing to say


def test_a_long_note_is_wrapped_not_cut(
    index: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note under the tree's root was cut at the console's width (200 when piped):
    "… was logged at file:///…/raw.csv (moved or copi" lost its end for a long path."""
    db, work, _ = index
    deep = work / ("a-long-folder-name/" * 8)
    deep.mkdir(parents=True)
    moved = deep / "raw-moved-here.csv"
    moved.write_text((work / "raw.csv").read_text())
    code, out = cli("--db", db, "trace", str(moved))
    assert code == 0, out
    flat = out.replace("\n", "")  # a path longer than the width wraps inside itself
    assert str(moved.as_uri()) in flat and "(moved or copied?)" in out, out
