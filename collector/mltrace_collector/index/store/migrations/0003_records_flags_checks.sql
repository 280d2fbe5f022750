-- Version 3: record-level lineage, flags, before/after checks. Portable SQL (SQLite, PostgreSQL).
--
-- Record IDs are many (millions per batch run), so (run, output artifact) is stored once in
-- record_sets and each record row names its set by set_id, a deterministic 63-bit hash of
-- (run_id, output_artifact_id) computed by the writer: every replica derives the same key
-- without coordination, and duplicated or out-of-order chunks hit the primary key.
-- The logical table records(record_id, run_id, output_artifact_id, source_record_id) is the
-- join of the two. source_record_id is '' when the run declared no source for the record.
CREATE TABLE record_sets (
    set_id             BIGINT PRIMARY KEY,
    run_id             TEXT NOT NULL,
    output_artifact_id TEXT NOT NULL
);
CREATE INDEX record_sets_run ON record_sets (run_id);
CREATE INDEX record_sets_output ON record_sets (output_artifact_id);

CREATE TABLE records (
    record_id        TEXT NOT NULL,
    set_id           BIGINT NOT NULL,
    source_record_id TEXT NOT NULL,
    PRIMARY KEY (record_id, set_id, source_record_id)
);
CREATE INDEX records_set ON records (set_id);

-- Flagged items (records, artifacts or runs): by people (`otel-mltrace flag`) or by a
-- failing check with on_fail='flag' (origin 'check:<run_id>:<check name>').
CREATE TABLE flags (
    target_id  TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    reason     TEXT,
    origin     TEXT NOT NULL,
    flagged_ns BIGINT NOT NULL
);

CREATE TABLE run_checks (
    run_id     TEXT NOT NULL,
    phase      TEXT NOT NULL,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    message    TEXT NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    on_fail    TEXT NOT NULL,
    component  TEXT NOT NULL,
    PRIMARY KEY (run_id, phase, name)
);
CREATE INDEX run_checks_status ON run_checks (status, component);
