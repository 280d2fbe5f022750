-- Version 4: ingest speed. Portable SQL (SQLite, PostgreSQL).
--
-- No query looks runs up by (trace_id, span_id): trace views key on run_id and artifacts,
-- and the exporters read trace/span IDs from rows they already hold. The index cost one
-- random-key B-tree insert per ingested run (trace IDs are random) for nothing.
DROP INDEX IF EXISTS runs_trace_span;
