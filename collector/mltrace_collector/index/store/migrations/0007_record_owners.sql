-- Version 7: the span each record row came from. Portable SQL (SQLite, PostgreSQL).
--
-- A record chunk span (a child of its run span, naming the run ID) may arrive before any
-- span of its run ID is indexed: it is written then, and which span will own the run ID
-- is not known yet. Each record row now keeps owner_id, a deterministic 63-bit hash of
-- the (trace ID, span ID) of the run span it came from (store/record_owners.py): when a
-- span is indexed for the run ID, the rows of its run's sets that came from another
-- span (a rejected duplicate's) are deleted in that transaction, whichever order the
-- spans arrived in. A hash, like set_id: records are the largest table, and 48 hex
-- characters per row, twice (table and key), would about double it.
--
-- owner_id is part of the key: a record two spans of one run ID both sent must survive
-- as the indexed span's row when the other one's is deleted. Rows written before this
-- version have owner_id 0, an unknown owner (a key column cannot be NULL on
-- PostgreSQL): they are never deleted, as before. records_set gains owner_id so that the
-- rows of one set with another owner are found by seeks, not by reading the whole set.
CREATE TABLE records_v7 (
    record_id        TEXT NOT NULL,
    set_id           BIGINT NOT NULL,
    source_record_id TEXT NOT NULL,
    owner_id         BIGINT NOT NULL,
    PRIMARY KEY (record_id, set_id, source_record_id, owner_id)
);
INSERT INTO records_v7 (record_id, set_id, source_record_id, owner_id)
    SELECT record_id, set_id, source_record_id, 0 FROM records;
DROP TABLE records;
ALTER TABLE records_v7 RENAME TO records;
CREATE INDEX records_set ON records (set_id, owner_id);
