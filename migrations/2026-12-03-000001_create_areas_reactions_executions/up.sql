-- AREAs and their reactions are written by the AREA platform; the worker reads
-- them. Executions are owned by the worker: one row per (event, reaction).

CREATE TABLE areas (
    id          uuid PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reactions (
    id          uuid PRIMARY KEY,
    area_id     uuid NOT NULL REFERENCES areas (id) ON DELETE CASCADE,
    service     text NOT NULL CHECK (service <> ''),
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean NOT NULL DEFAULT true,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Fan-out looks reactions up by AREA, in order.
CREATE INDEX reactions_area_id_position_idx ON reactions (area_id, position);

-- No foreign keys to areas and reactions: execution history outlives the
-- configuration it ran with, and the insert path stays one index lookup cheaper.
CREATE TABLE executions (
    id               uuid PRIMARY KEY,
    area_id          uuid NOT NULL,
    reaction_id      uuid NOT NULL,
    event_id         text NOT NULL,
    service          text NOT NULL,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'ok', 'retry', 'failed', 'canceled')),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    queued_at        timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    next_attempt_at  timestamptz,
    input_payload    jsonb NOT NULL,
    output_payload   jsonb,
    error            jsonb,
    -- One entry per finished attempt: {attempt, status, started_at, finished_at,
    -- output | error}. Kept on the row so that showing an execution is one read.
    attempts         jsonb NOT NULL DEFAULT '[]'::jsonb,
    correlation_id   uuid,
    locked_by        text,
    lease_until      timestamptz,
    dedup_key        text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT executions_dedup_key_key UNIQUE (dedup_key)
);

-- Listing newest first with a (queued_at, id) cursor, optionally by time range.
CREATE INDEX executions_queued_at_id_idx ON executions (queued_at DESC, id DESC);
-- Filters of the API.
CREATE INDEX executions_area_id_idx ON executions (area_id, queued_at DESC);
CREATE INDEX executions_reaction_id_idx ON executions (reaction_id, queued_at DESC);
CREATE INDEX executions_event_id_idx ON executions (event_id);
CREATE INDEX executions_status_service_idx ON executions (status, service);
-- Retries Redis forgot, and runs whose lease expired, are found from here.
CREATE INDEX executions_due_retry_idx ON executions (next_attempt_at) WHERE status = 'retry';
CREATE INDEX executions_expired_lease_idx ON executions (lease_until) WHERE status = 'running';
