DROP INDEX executions_next_attempt_at_idx;
CREATE INDEX executions_next_attempt_at_idx ON executions (next_attempt_at);
