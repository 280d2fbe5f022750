"""Helpers shared by the digits steps: arguments, tracing setup, deterministic file I/O.

Every writer here is *deterministic* (same data -> same bytes) and *atomic* (write to a
temporary file, then rename). Determinism is what makes content addressing useful: a rerun
that recomputes an unchanged table or model produces the same artifact ID, so the lineage
index sees one version, not a new one per run. Atomic renames mean a crashed step never
leaves a half-written file behind for the next step to read.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

import otel_mltrace

N_PIXELS = 64
PIXELS = [f"pixel_{i}" for i in range(N_PIXELS)]
COLUMNS = ["sample_id", *PIXELS, "label"]
"""Column layout of the raw drop, the ingested table and the train/test splits."""

# Fixed ZIP timestamp: numpy's own ``savez`` stamps the current time into each member,
# so saving the same arrays twice would give two different files (and two artifact IDs).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class Paths:
    """Every file of the pipeline, relative to one work directory."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.root = Path(workdir).resolve()
        self.source = self.root / "source" / "digits_raw.csv"
        self.ingested = self.root / "data" / "ingested.csv"
        self.train = self.root / "data" / "train.csv"
        self.test = self.root / "data" / "test.csv"
        self.features_train = self.root / "data" / "features_train.npz"
        self.features_test = self.root / "data" / "features_test.npz"
        self.scaler = self.root / "models" / "scaler.pkl"
        self.model = self.root / "models" / "model.pkl"
        self.metrics = self.root / "reports" / "metrics.json"
        self.predictions = self.root / "predictions" / "predictions.csv"
        self.index = self.root / "lineage.db"


def parser(step: str, description: str, seed_of: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the ``--workdir`` option every step takes, and ``--seed``
    (default 0) for a step that draws random numbers (``seed_of``: what it seeds)."""
    p = argparse.ArgumentParser(prog=f"python -m examples.digits.{step}", description=description)
    p.add_argument("--workdir", required=True, help="pipeline work directory")
    if seed_of is not None:
        p.add_argument("--seed", type=int, default=0, help=f"random seed of {seed_of}")
    return p


def run_step(step: str, body: Callable[[], object]) -> int:
    """Configure tracing as service ``digits-<step>``, run ``body``, flush spans, return 0.

    Without an endpoint (``MLTRACE_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``) runs are
    indexed into ``MLTRACE_INDEX``. ``shutdown()`` runs even when ``body`` raises, so the
    failed run's span (status ERROR) is exported before the exception ends the process.
    """
    otel_mltrace.configure(service_name=f"digits-{step}")
    try:
        body()
    finally:
        otel_mltrace.shutdown()
    return 0


# -- atomic, deterministic writers ---------------------------------------------------------
@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path``; rename it over ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        kwargs: dict[str, Any] = {} if "b" in mode else {"newline": "", "encoding": "utf-8"}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(path: Path, header: Sequence[str], rows: Iterator[Sequence[object]]) -> int:
    """Write a CSV with ``header``; returns the number of data rows written."""
    n = 0
    with atomic_open(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV file, as strings."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def save_npz(path: Path, **arrays: np.ndarray[Any, Any]) -> None:
    """Like ``numpy.savez`` but byte-for-byte reproducible (fixed member order and time)."""
    with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH), buf.getvalue())


def load_npz(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """All arrays of an ``.npz`` file, loaded eagerly (the file is closed on return)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def save_pickle(path: Path, obj: object) -> None:
    """Pickle ``obj`` to ``path`` (fixed protocol, so the bytes depend only on ``obj``)."""
    with atomic_open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=5)


def load_pickle(path: Path) -> Any:
    """Unpickle a model written by an earlier step of this pipeline (trusted input)."""
    with path.open("rb") as fh:
        return pickle.load(fh)  # our own artifact, written by save_pickle


# -- typed table access --------------------------------------------------------------------
class Table:
    """A digits table (``sample_id``, 64 pixels, ``label``) as numpy arrays."""

    def __init__(
        self, sample_id: np.ndarray[Any, Any], X: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
    ) -> None:
        self.sample_id = sample_id
        self.X = X
        self.y = y

    def __len__(self) -> int:
        return int(self.sample_id.shape[0])

    @classmethod
    def read(cls, path: Path) -> Table:
        """Read a validated table (as written by :meth:`write`)."""
        header, rows = read_csv(path)
        if header != COLUMNS:
            raise ValueError(f"{path}: unexpected columns {header[:3]}…; expected {COLUMNS[:3]}…")
        data = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(COLUMNS))
        return cls(data[:, 0].astype(np.int64), data[:, 1:-1], data[:, -1].astype(np.int64))

    def write(self, path: Path) -> int:
        """Write the table as CSV (ints for IDs and labels, ``repr`` floats for pixels)."""
        rows = (
            [int(s), *(repr(float(v)) for v in x), int(y)]
            for s, x, y in zip(self.sample_id, self.X, self.y, strict=True)
        )
        return write_csv(path, COLUMNS, rows)

    def take(self, index: np.ndarray[Any, Any]) -> Table:
        """The rows at ``index``, in that order."""
        return Table(self.sample_id[index], self.X[index], self.y[index])
