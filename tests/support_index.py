"""Reading an index the way a check after a run does: open, count, close.

Example::

    assert runs_in(tmp_path / "index.db") == 100  # every run delivered
"""

from __future__ import annotations

from pathlib import Path

from mltrace_collector.index.store import open_store


def runs_in(db: Path | str) -> int:
    """How many runs the index at ``db`` (a SQLite path or a database URL) holds."""
    store = open_store(str(db))
    try:
        return int(store.counts()["runs"])
    finally:
        store.close()
