"""Lineage index backends: SQLite (embedded default) and PostgreSQL (at scale)."""

from mltrace_collector.store.backends import open_store
from mltrace_collector.store.base import Store

__all__ = ["Store", "open_store"]
