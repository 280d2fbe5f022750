-- Version 5: ingest speed. Portable SQL (SQLite, PostgreSQL).
--
-- run_io loses its primary key (run_id, direction, artifact_id): a B-tree keyed by long
-- artifact IDs, written once per input and output, only to make retried batches
-- idempotent. The writer now gets that from the runs table instead: it inserts a run's
-- I/O rows only when ``INSERT INTO runs ... ON CONFLICT DO NOTHING RETURNING run_id``
-- returned the run, i.e. exactly once per run (store/writes.py). Lookups by run use the
-- narrow run_io_run index.
--
-- The URI index keeps only the rows URI lookups can want: outputs (the producers of an
-- unversioned read) and unversioned inputs (the readers of any version). Every query
-- that searches by URI names direction = 'out' or versioned = 0, so both SQLite and
-- PostgreSQL can use the partial index.
CREATE TABLE run_io_v5 (
    run_id      TEXT NOT NULL,
    direction   TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    uri         TEXT NOT NULL,
    versioned   INTEGER NOT NULL
);
INSERT INTO run_io_v5 (run_id, direction, artifact_id, uri, versioned)
    SELECT run_id, direction, artifact_id, uri, versioned FROM run_io;
DROP TABLE run_io;
ALTER TABLE run_io_v5 RENAME TO run_io;
CREATE INDEX run_io_run ON run_io (run_id, direction);
CREATE INDEX run_io_artifact ON run_io (artifact_id, direction);
CREATE INDEX run_io_uri ON run_io (uri, direction) WHERE versioned = 0 OR direction = 'out';
