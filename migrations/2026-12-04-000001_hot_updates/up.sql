-- Lets PostgreSQL update an execution row in place (a HOT update) on its way
-- from `queued` to `running` to `ok`, instead of adding an entry to every index
-- for each of those three versions. An update is HOT only when no indexed
-- column changes (columns in a partial index's predicate count) and the new
-- version fits on the same page. So:
--
-- * no index mentions `status`, `lease_until` or any other column that the
--   claim or the record of a first attempt writes;
-- * rows that need attention are found through columns that stay NULL along
--   the happy path: `next_attempt_at` (set only for a retry) and `error` (set
--   by a failed attempt, a cancel or a takeover, cleared by a later success);
-- * pages keep room for the later versions (fillfactor). An operator who
--   prefers a smaller table to a faster worker can raise it again with
--   ALTER TABLE executions SET (fillfactor = 100).
--
-- Executions still queued or running on their first attempt are in no index
-- of their own: Redis (the job streams and their pending entries) is what
-- tracks them, and when Redis loses data the worker rebuilds the jobs from a
-- scan of this table.

DROP INDEX executions_status_service_idx;
DROP INDEX executions_due_retry_idx;
DROP INDEX executions_expired_lease_idx;

-- Retries that Redis forgot are found from here.
CREATE INDEX executions_next_attempt_at_idx ON executions (next_attempt_at);
-- Listing `retry`, `failed` and `canceled` executions, newest first.
CREATE INDEX executions_troubled_idx ON executions (queued_at DESC, id DESC)
    WHERE error IS NOT NULL;

-- The partial index lists these statuses only if they always carry an error;
-- the worker's statements see to it, and so does the schema from now on.
UPDATE executions
SET error = jsonb_build_object('class', 'unknown', 'code', 'unknown',
                               'message', 'no error was recorded')
WHERE status IN ('retry', 'failed', 'canceled') AND error IS NULL;
ALTER TABLE executions ADD CONSTRAINT executions_error_when_troubled
    CHECK (status NOT IN ('retry', 'failed', 'canceled') OR error IS NOT NULL);

ALTER TABLE executions SET (fillfactor = 30);
