-- Back to the column order of the first migration, with the constraints and
-- indexes that the two migrations before this one left.

CREATE TABLE executions_reordered (
    id               uuid NOT NULL,
    area_id          uuid NOT NULL,
    reaction_id      uuid NOT NULL,
    event_id         text NOT NULL,
    service          text NOT NULL,
    status           text NOT NULL DEFAULT 'queued',
    attempt          integer NOT NULL DEFAULT 0,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    next_attempt_at  timestamptz,
    input_payload    jsonb NOT NULL,
    output_payload   jsonb,
    error            jsonb,
    attempts         jsonb NOT NULL DEFAULT '[]'::jsonb,
    correlation_id   uuid,
    locked_by        text,
    lease_until      timestamptz,
    dedup_key        text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 30);

INSERT INTO executions_reordered (
    id, area_id, reaction_id, event_id, service, status, attempt, queued_at,
    started_at, finished_at, next_attempt_at, input_payload, output_payload,
    error, attempts, correlation_id, locked_by, lease_until, dedup_key,
    updated_at)
SELECT
    id, area_id, reaction_id, event_id, service, status, attempt, queued_at,
    started_at, finished_at, next_attempt_at, input_payload, output_payload,
    error, attempts, correlation_id, locked_by, lease_until, dedup_key,
    updated_at
FROM executions;

DROP TABLE executions;
ALTER TABLE executions_reordered RENAME TO executions;

ALTER TABLE executions
    ADD CONSTRAINT executions_pkey PRIMARY KEY (id),
    ADD CONSTRAINT executions_dedup_key_key UNIQUE (dedup_key),
    ADD CONSTRAINT executions_status_check
        CHECK (status IN ('queued', 'running', 'ok', 'retry', 'failed', 'canceled')),
    ADD CONSTRAINT executions_attempt_check CHECK (attempt >= 0),
    ADD CONSTRAINT executions_error_when_troubled
        CHECK (status NOT IN ('retry', 'failed', 'canceled') OR error IS NOT NULL);

CREATE INDEX executions_queued_at_id_idx ON executions (queued_at DESC, id DESC);
CREATE INDEX executions_area_id_idx ON executions (area_id, queued_at DESC);
CREATE INDEX executions_reaction_id_idx ON executions (reaction_id, queued_at DESC);
CREATE INDEX executions_event_id_idx ON executions (event_id);
CREATE INDEX executions_next_attempt_at_idx ON executions (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX executions_troubled_idx ON executions (queued_at DESC, id DESC)
    WHERE error IS NOT NULL;
