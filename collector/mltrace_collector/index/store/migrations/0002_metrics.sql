-- Version 2: state of the Prometheus exporter. Portable SQL (SQLite, PostgreSQL).
--
-- Bucket bounds of mltrace_output_value, chosen once per (component, output) - from
-- MLTRACE_HISTOGRAM_BUCKETS or derived from the first runs - so that they never change
-- across restarts or between replicas (the first writer wins: INSERT ... ON CONFLICT DO
-- NOTHING, then every replica reads the stored row). bounds is a JSON array of numbers.
CREATE TABLE metric_histogram_bounds (
    component  TEXT NOT NULL,
    output     TEXT NOT NULL,
    bounds     TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    PRIMARY KEY (component, output)
);
-- The exporter folds in only the runs ingested since its last scrape.
CREATE INDEX runs_ingested ON runs (ingested_ns);
