"""A longer run of the semantics property test: many random pipelines against the model.

The test command runs ``tests/test_semantics_properties.py`` with a bounded number of
examples; this script runs as many as asked, on SQLite (default) or a PostgreSQL URL
(a fresh database per example is created with ``CREATE DATABASE`` on that server), and
prints the first counterexample hypothesis finds (shrunk).

Usage::

    python scripts/semantics_soak.py --examples 2000
    python scripts/semantics_soak.py --examples 300 --start-postgres
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

from mltrace_collector.index.store import open_store
from tests.semantics_check import Pipeline, check_against_model, pipelines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--max-runs", type=int, default=12, help="runs per pipeline, at most")
    parser.add_argument("--postgres", help="admin URL of a PostgreSQL server (default: SQLite)")
    parser.add_argument(
        "--start-postgres",
        action="store_true",
        help="start a throwaway PostgreSQL on 127.0.0.1 (tests/servers/postgres.py) and use it",
    )
    args = parser.parse_args()
    if args.start_postgres:
        from tests.servers.postgres import PostgresServer

        with PostgresServer.start() as pg:
            args.postgres = pg.create_database().rsplit("/", 1)[0] + "/postgres"
            return soak_all(args)
    return soak_all(args)


def soak_all(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="mltrace-soak-"))

    def admin(statement: str) -> None:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(statement)

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(pipeline=pipelines(max_runs=args.max_runs))
    def soak(pipeline: Pipeline) -> None:
        name = f"soak_{uuid.uuid4().hex[:12]}"  # a fresh database (or file) per example
        if args.postgres:
            admin(f'CREATE DATABASE "{name}"')
            store = open_store(args.postgres.rsplit("/", 1)[0] + "/" + name)
        else:
            store = open_store(str(folder / f"{name}.db"))
        try:
            check_against_model(store, pipeline, random.Random(len(pipeline.runs)))
        finally:
            store.close()
            if args.postgres:
                admin(f'DROP DATABASE "{name}" WITH (FORCE)')

    began = time.monotonic()
    soak()
    print(f"{args.examples} pipelines agree with the model ({time.monotonic() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
