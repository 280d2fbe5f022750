-- Lineage index, version 1. Portable SQL: runs unchanged on SQLite and PostgreSQL.
-- Run->run edges are not stored: they are derived by indexed joins over run_io, so a
-- span arriving late or out of order never needs an edge repaired (see DESIGN.md).
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    component       TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    span_id         TEXT NOT NULL,
    parent_span_id  TEXT,
    service         TEXT,
    start_ns        BIGINT NOT NULL,
    end_ns          BIGINT NOT NULL,
    status          TEXT NOT NULL,
    status_message  TEXT,
    code_revision   TEXT,
    code_repository TEXT,
    code_function   TEXT,
    code_file       TEXT,
    params          TEXT NOT NULL,
    metrics         TEXT NOT NULL,
    tags            TEXT NOT NULL,
    attributes      TEXT NOT NULL,
    n_inputs        INTEGER NOT NULL,
    n_outputs       INTEGER NOT NULL,
    ingested_ns     BIGINT NOT NULL
);
CREATE INDEX runs_component_start ON runs (component, start_ns);
CREATE INDEX runs_start ON runs (start_ns);
CREATE INDEX runs_trace_span ON runs (trace_id, span_id);

CREATE TABLE artifacts (
    artifact_id   TEXT PRIMARY KEY,
    uri           TEXT NOT NULL,
    version       TEXT,
    first_seen_ns BIGINT NOT NULL
);
CREATE INDEX artifacts_uri_seen ON artifacts (uri, first_seen_ns);

CREATE TABLE run_io (
    run_id      TEXT NOT NULL,
    direction   TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    uri         TEXT NOT NULL,
    versioned   INTEGER NOT NULL,
    PRIMARY KEY (run_id, direction, artifact_id)
);
CREATE INDEX run_io_artifact ON run_io (artifact_id, direction);
CREATE INDEX run_io_uri ON run_io (uri, direction);

CREATE TABLE run_outputs (
    run_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    value_count   BIGINT NOT NULL,
    null_count    BIGINT NOT NULL,
    invalid_count BIGINT NOT NULL,
    value_sum     DOUBLE PRECISION,
    value_min     DOUBLE PRECISION,
    value_max     DOUBLE PRECISION,
    summary       TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
