"""What a check sees of a file artifact: the file's table or array, read on demand.

Runs name outputs by path (``run.add_output("predictions.csv")``), so a check on
``"proba"`` must read the file. Supported, through the libraries that are installed:

=====================  ==============================================================
``.csv`` ``.tsv``      pandas ``read_csv`` (else the ``csv`` module: numbers parsed,
                       empty cells as nulls)
``.parquet`` ``.pq``   pandas ``read_parquet`` (needs pyarrow), else pyarrow directly
``.npy`` / ``.npz``    numpy (an ``.npz`` with one array is that array, else a mapping
                       of its arrays by name)
``.jsonl`` ``.ndjson`` pandas ``read_json(lines=True)``, else ``json`` line by line
``.json``              ``json``: an array of records (or of values), or an object of
                       columns
=====================  ==============================================================

``expect_rows`` counts the lines of a text file (``LINE_COUNTED``: CSV, TSV, JSON lines,
``.txt``, ``.log``) without reading it; any other file is read as above or, when its type
is unknown (a pickled model, a ``.bin``), the check is an ``error``, never a line count of
bytes that are not rows.

Anything else (a directory, an unknown suffix, an ``s3://`` URI, a missing library) raises
``TypeError`` / ``FileNotFoundError`` with a message naming the value and the fix; the check
then records status ``error`` (see :mod:`otel_mltrace.checks`).

Example::

    from otel_mltrace.check_data import load
    frame = load("predictions/preds.csv")     # a pandas DataFrame when pandas is installed
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".npy", ".npz", ".jsonl", ".ndjson", ".json")
LINE_COUNTED = (".csv", ".tsv", ".jsonl", ".ndjson", ".txt", ".log")


def is_location(obj: Any) -> bool:
    """A path or URI (str / ``os.PathLike``) rather than an in-memory data object."""
    return isinstance(obj, str | Path)


def _path_of(obj: str | Path) -> Path:
    text = str(obj)
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path))
    if "://" in text:
        raise TypeError(
            f"cannot read {text!r} for a check: only local files are read; pass the data "
            "object too, e.g. run.add_output(frame, uri=...)"
        )
    return Path(text)


def _number_or_text(cell: str) -> Any:
    if cell == "":
        return None
    try:
        return float(cell)
    except ValueError:
        return cell


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name) for row in rows] for name in names}


def _read_delimited(path: Path) -> Any:
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        import pandas as pd
    except ImportError:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [
                {k: _number_or_text(v or "") for k, v in row.items()}
                for row in csv.DictReader(fh, delimiter=sep)
            ]
        return _columns(rows)
    return pd.read_csv(path, sep=sep)


def _read_parquet(path: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TypeError(
            f"cannot read Parquet file {str(path)!r} for a check: pyarrow is not installed; "
            "pip install pyarrow"
        ) from None
    table = pq.read_table(path)
    try:
        return table.to_pandas()
    except ImportError:
        return table.to_pydict()


def _read_numpy(path: Path) -> Any:
    try:
        import numpy as np
    except ImportError:
        raise TypeError(
            f"cannot read {str(path)!r} for a check: numpy is not installed; pip install numpy"
        ) from None
    loaded = np.load(path, allow_pickle=False)
    if path.suffix.lower() == ".npy":
        return loaded
    with loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def _read_json_lines(path: Path) -> Any:
    try:
        import pandas as pd
    except ImportError:
        with open(path, encoding="utf-8") as fh:
            return _columns([json.loads(line) for line in fh if line.strip()])
    return pd.read_json(path, lines=True)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if isinstance(data, list):
        return _columns(data) if data and all(isinstance(r, dict) for r in data) else data
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        return data
    raise TypeError(
        f"cannot read {str(path)!r} for a check: a .json file must hold an array of records "
        f"or an object of columns, not a {type(data).__name__}; or pass the data object"
    )


_READERS = {
    ".csv": _read_delimited,
    ".tsv": _read_delimited,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
    ".npy": _read_numpy,
    ".npz": _read_numpy,
    ".jsonl": _read_json_lines,
    ".ndjson": _read_json_lines,
    ".json": _read_json,
}


def column(obj: Any, name: str | int | None) -> Any:
    """Column ``name`` of a table (data frame, mapping of columns, 2-D array); ``None``: all.

    A missing column names the columns there are (``KeyError: 'nope'`` said nothing more).
    """
    if name is None:
        return obj
    if hasattr(obj, "columns") or isinstance(obj, Mapping):
        names = list(obj.columns) if hasattr(obj, "columns") else list(obj)
        if name not in names:
            shown = ", ".join(map(repr, names[:20])) + (", …" if len(names) > 20 else "")
            raise LookupError(f"no column {name!r}; the columns are {shown or '(none)'}")
        return obj[name]
    if getattr(obj, "ndim", 1) == 2:
        return obj[:, name]
    raise TypeError(f"cannot take column {name!r} of a {type(obj).__name__}")


def load(obj: str | Path) -> Any:
    """Read the file at path / ``file://`` URI ``obj`` into a table or array for checks.

    >>> load("missing.csv")
    Traceback (most recent call last):
    FileNotFoundError: cannot read 'missing.csv' for a check: no such file
    """
    path = _path_of(obj)
    if path.is_dir():
        raise TypeError(
            f"cannot read {str(obj)!r} for a check: it is a directory; add the files inside "
            "it as outputs, or pass the data object"
        )
    if not path.exists():
        raise FileNotFoundError(f"cannot read {str(obj)!r} for a check: no such file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise TypeError(
            f"cannot read {str(obj)!r} for a check: unknown file type {path.suffix or '(none)'}"
            f"; supported: {', '.join(SUFFIXES)} — aim the check at the outputs it can read "
            "(target='preds.csv') or pass the data object"
        )
    return reader(path)
