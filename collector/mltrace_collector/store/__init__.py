"""Lineage index backends: SQLite (embedded default) and PostgreSQL (at scale)."""

from mltrace_collector.store.base import Store, open_store

__all__ = ["Store", "open_store"]
