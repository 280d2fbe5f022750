-- Version 6: run start records (killed runs). Portable SQL (SQLite, PostgreSQL).
--
-- A run announced by its start record (semconv.RUN_START_SPAN_NAME) and not (yet) ended.
-- Kept apart from `runs` so that the final run span is written exactly as before (and is
-- never a "second span" of a stored run ID): a row here is shown as `running`, or as
-- `abandoned` once older than MLTRACE_ABANDON_AFTER (derived at query time, never stored,
-- so changing the setting changes every answer at once). The run span deletes its start
-- row when it is committed; queries also skip any start row whose run is in `runs`.
CREATE TABLE run_starts (
    run_id        TEXT PRIMARY KEY,
    component     TEXT NOT NULL,
    trace_id      TEXT NOT NULL,
    span_id       TEXT NOT NULL,
    service       TEXT,
    parent_run_id TEXT,
    start_ns      BIGINT NOT NULL,
    ingested_ns   BIGINT NOT NULL
);
CREATE INDEX run_starts_component_start ON run_starts (component, start_ns);
CREATE INDEX run_starts_start ON run_starts (start_ns);
