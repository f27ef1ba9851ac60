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
        event_id -> Text,
        service -> Text,
        status -> Text,
        attempt -> Int4,
        queued_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
        input_payload -> Jsonb,
        output_payload -> Nullable<Jsonb>,
        error -> Nullable<Jsonb>,
        attempts -> Jsonb,
        correlation_id -> Nullable<Uuid>,
        locked_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamptz>,
        dedup_key -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(reactions -> areas (area_id));
diesel::allow_tables_to_appear_in_same_query!(areas, reactions, executions);
