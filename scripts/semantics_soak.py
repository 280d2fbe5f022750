"""A longer run of the semantics property test: many random pipelines against the model.

The test command runs ``tests/test_semantics_properties.py`` with a bounded number of
examples; this script runs as many as asked, on SQLite (default) or a PostgreSQL URL
(a fresh database per example is created with ``CREATE DATABASE`` on that server), and
prints the first counterexample hypothesis finds (shrunk).

Usage::

    python scripts/semantics_soak.py --examples 2000
    python scripts/semantics_soak.py --examples 300 --postgres postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, settings

from mltrace_collector.store.base import Store, open_store
from tests.semantics_check import Pipeline, check_against_model, pipelines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--max-runs", type=int, default=12, help="runs per pipeline, at most")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server (default: SQLite)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mltrace-soak-"))

    def fresh() -> Store:
        if not args.postgres:
            return open_store(str(folder / f"{uuid.uuid4().hex}.db"))
        import psycopg

        name = f"soak_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return open_store(args.postgres.rsplit("/", 1)[0] + "/" + name)

    @settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(pipeline=pipelines(max_runs=args.max_runs))
    def soak(pipeline: Pipeline) -> None:
        store = fresh()
        try:
            check_against_model(store, pipeline, random.Random(len(pipeline.runs)))
        finally:
            store.close()

    began = time.monotonic()
    soak()
    print(f"{args.examples} pipelines agree with the model ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
