ALTER TABLE executions RESET (fillfactor);
ALTER TABLE executions DROP CONSTRAINT executions_error_when_troubled;

DROP INDEX executions_troubled_idx;
DROP INDEX executions_next_attempt_at_idx;

CREATE INDEX executions_status_service_idx ON executions (status, service);
CREATE INDEX executions_due_retry_idx ON executions (next_attempt_at) WHERE status = 'retry';
CREATE INDEX executions_expired_lease_idx ON executions (lease_until) WHERE status = 'running';
