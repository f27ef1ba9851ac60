//! Property tests that feed event decoding and template rendering hostile input:
//! arbitrary bytes, arbitrary JSON, deep nesting, arbitrary template text. The
//! properties are that nothing panics, every rejection is a typed error, and
//! rendering ends (the template fuel bounds runaway loops).
//!
//! They run a bounded number of cases (`PROPTEST_CASES`, 256 by default) as part
//! of the ordinary test suite; raise the number for a longer fuzzing session.

use area_core::{DecodeLimits, Event, render_config};
use proptest::prelude::*;
use serde_json::{Value, json};

const AREA: &str = "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab";

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|number| json!(number)),
        any::<f64>().prop_map(|number| json!(number)),
        any::<String>().prop_map(Value::String),
        // Template syntax and U+0000 are the interesting strings here.
        "\\{\\{[ -~]{0,12}\\}\\}".prop_map(Value::String),
        Just(Value::String("\u{0}".into())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map(any::<String>(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn sample_event() -> Event {
    let raw = json!({"area_id": AREA, "id": "e", "payload": {"user": {"name": "ada"}, "n": 3}});
    Event::decode(raw.to_string().as_bytes(), "1-0", DecodeLimits::default()).unwrap()
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Event::decode(&bytes, "1-0", DecodeLimits::default());
    }

    #[test]
    fn decoding_arbitrary_json_either_accepts_or_names_a_reason(value in json_value()) {
        let text = value.to_string();
        match Event::decode(text.as_bytes(), "1-0", DecodeLimits::default()) {
            Ok(event) => {
                // An accepted event survives a round trip unchanged.
                let again = Event::from_value(event.to_json(), "other").unwrap();
                prop_assert_eq!(again, event);
            }
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn payloads_of_any_shape_are_accepted_with_a_valid_area(payload in json_value()) {
        let raw = json!({"area_id": AREA, "payload": payload});
        let limits = DecodeLimits { max_bytes: 1 << 20, max_depth: 64 };
        let decoded = Event::decode(raw.to_string().as_bytes(), "1-0", limits);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing(depth in 65usize..5000) {
        let text = format!(r#"{{"area_id":"{AREA}","payload":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let result = Event::decode(text.as_bytes(), "1-0", DecodeLimits::default());
        prop_assert!(result.is_err());
    }

    #[test]
    fn rendering_arbitrary_templates_ends_without_panicking(source in "[ -~]{0,64}") {
        let _ = render_config(&json!({"field": source}), &sample_event());
    }

    #[test]
    fn rendering_hostile_template_constructs_ends(
        body in prop_oneof![
            Just("{% for i in range(100000) %}{{ i }}{% endfor %}"),
            Just("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"),
            Just("{{ payload.user.name * 100000000 }}"),
            Just("{% set x = 'a' %}{% for i in range(999) %}{% set x = x ~ x %}{% endfor %}{{ x }}"),
            Just("{{ event.payload | tojson }}{{ undefined_thing.attr }}"),
        ],
    ) {
        let _ = render_config(&json!({"field": body}), &sample_event());
    }

    #[test]
    fn rendering_configs_of_any_shape_never_panics(config in json_value()) {
        let _ = render_config(&config, &sample_event());
    }
}
