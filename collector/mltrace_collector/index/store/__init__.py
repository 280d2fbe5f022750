"""Lineage index backends: SQLite (embedded default) and PostgreSQL (at scale)."""

from mltrace_collector.index.store.backends import open_store
from mltrace_collector.index.store.base import Store

__all__ = ["Store", "open_store"]
