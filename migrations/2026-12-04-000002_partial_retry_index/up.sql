-- `next_attempt_at` is set only while an execution waits for a retry; on the
-- happy path it stays NULL. A plain index still gets one entry per row, NULL
-- or not, so every insert paid for an entry that no query reads: the sweep of
-- forgotten retries asks for `next_attempt_at < ...`, which never matches NULL.
-- Indexing only the rows that have a due time takes that entry off the insert
-- path (one index insertion and its WAL record less per execution) and keeps
-- the index as small as the set of pending retries.
--
-- The predicate names a column that a retry writes, which changes nothing for
-- HOT updates: the happy path leaves `next_attempt_at` NULL before and after.

DROP INDEX executions_next_attempt_at_idx;
CREATE INDEX executions_next_attempt_at_idx ON executions (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
