//! Diesel's view of the tables defined in `migrations/`.

#![allow(missing_docs)]

diesel::table! {
    areas (id) {
        id -> Uuid,
        name -> Text,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    reactions (id) {
        id -> Uuid,
        area_id -> Uuid,
        service -> Text,
        config -> Jsonb,
        enabled -> Bool,
        position -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    executions (id) {
        id -> Uuid,
        area_id -> Uuid,
        reaction_id -> Uuid,
        queued_at -> Timestamptz,
        correlation_id -> Nullable<Uuid>,
        event_id -> Text,
        service -> Text,
        dedup_key -> Text,
        input_payload -> Jsonb,
        status -> Text,
        attempt -> Int4,
        started_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        locked_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        error -> Nullable<Jsonb>,
        output_payload -> Nullable<Jsonb>,
        attempts -> Jsonb,
    }
}

diesel::joinable!(reactions -> areas (area_id));
diesel::allow_tables_to_appear_in_same_query!(areas, reactions, executions);
