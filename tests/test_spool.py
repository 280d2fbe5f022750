"""The spool's in-memory index: no directory listing per ``put``/``claim`` (a long outage
was O(n²)), and still right when several processes share the directory.

Real files in a temporary directory; two ``Spool`` objects on one directory stand for two
processes (each has its own index; the files and their ``flock``\\ s are shared). The
before/after cost for 5,000 batches is measured by ``benchmarks/bench_spool.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otel_mltrace import spool as spool_module
from otel_mltrace.spool import Spool

ENDPOINT = "http://127.0.0.1:4317"


def _spool(base: Path, cap: int = 1 << 30) -> Spool:
    return Spool.for_endpoint(str(base), ENDPOINT, "grpc", cap)


def _drain(spool: Spool) -> list[bytes]:
    sent: list[bytes] = []
    while True:
        with spool.claim() as batch:
            if batch is None:
                return sent
            sent.append(batch.payload)
            batch.done()


def test_put_and_claim_do_not_list_the_directory_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listings: list[object] = []
    real_scandir = os.scandir

    def counting_scandir(path: str | os.PathLike[str]) -> object:
        listings.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(spool_module, "RESCAN_S", 3600.0, raising=False)
    spool = _spool(tmp_path)
    for i in range(300):
        assert spool.put(f"batch {i:04d}".encode(), spans=2)
    assert len(listings) <= 2, len(listings)  # was one per put (the size cap's pending())
    listings.clear()
    sent = _drain(spool)
    assert sent == [f"batch {i:04d}".encode() for i in range(300)]  # oldest first
    assert len(listings) <= 2, len(listings)  # was one per claim (one at the end: empty?)
    assert spool.pending() == (0, 0)


def test_two_processes_sharing_a_spool_send_every_file_once(tmp_path: Path) -> None:
    a, b = _spool(tmp_path), _spool(tmp_path)
    for i in range(5):
        assert a.put(b"a%d" % i, spans=1)
    for i in range(3):
        assert b.put(b"b%d" % i, spans=1)
    assert a.pending() == b.pending() == (8, 16)

    with a.claim() as held:  # a sends one: b must not get it meanwhile
        assert held is not None
        others = _drain(b)  # b's own files, then a's it finds by a rescan
        held.done()
    assert held.payload not in others and len(others) == 7
    everything = [b"a%d" % i for i in range(5)] + [b"b%d" % i for i in range(3)]
    assert sorted([held.payload, *others]) == sorted(everything)
    assert _drain(a) == []  # a's index still listed the files b sent: found gone
    assert a.pending() == b.pending() == (0, 0)
    assert not list(a.directory.glob("*.otlp"))


def test_the_cap_counts_files_other_processes_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "RESCAN_S", 0.0)  # rescan at every put
    a, b = _spool(tmp_path, cap=100), _spool(tmp_path, cap=100)
    assert a.put(b"x" * 60, spans=1)
    assert not b.put(b"y" * 60, spans=1)  # 120 bytes would pass the cap
    assert b.put(b"y" * 40, spans=1)
    assert a.pending() == (2, 100)


def test_a_failed_send_keeps_the_file_first_in_line(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    for i in range(3):
        spool.put(b"%d" % i, spans=1)
    with spool.claim() as batch:
        assert batch is not None and batch.payload == b"0"  # not done(): send failed
    assert _drain(spool) == [b"0", b"1", b"2"]


def test_files_an_earlier_process_left_are_found(tmp_path: Path) -> None:
    first = _spool(tmp_path)
    first.put(b"left behind", spans=4)
    later = _spool(tmp_path)
    assert later.pending() == (4, len(b"left behind"))
    assert _drain(_spool(tmp_path)) == [b"left behind"]
