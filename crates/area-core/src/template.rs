//! Rendering of reaction configurations: every string in the JSON config may be a
//! MiniJinja template over `event` (the whole event) and `payload`.
//!
//! Undefined variables are errors, not empty strings: a webhook that silently
//! posts an empty field is worse than one that fails and says which variable was
//! missing. Strings without template syntax are copied untouched, so plain
//! configs cost no template compilation.
//!
//! # Limitations
//!
//! Rendering produces strings: `"{{ payload }}"` becomes the template engine's
//! text form of the payload, not a JSON object. Use `{{ payload | tojson }}`
//! for JSON text.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::event::Event;

/// Work a single template may do before it is stopped, so a hostile config
/// (a huge loop) costs bounded time.
const TEMPLATE_FUEL: u64 = 50_000;

/// A template that could not be rendered. Always a permanent failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template reads a variable the event does not have.
    #[error("template in `{field}` reads undefined variable `{variable}`")]
    UndefinedVariable {
        /// Dotted path of the config field holding the template.
        field: String,
        /// The variable, e.g. `payload.user.email`.
        variable: String,
    },
    /// The template does not parse or fails while rendering.
    #[error("template in `{field}` is invalid: {reason}")]
    Invalid {
        /// Dotted path of the config field holding the template.
        field: String,
        /// The template engine's explanation.
        reason: String,
    },
}

/// Renders every template string of `config` against `event`.
pub fn render_config(config: &Value, event: &Event) -> Result<Value, TemplateError> {
    // Most configs hold no template at all: they need neither the event as
    // JSON nor a template environment, which cost more than the copy.
    if !holds_template(config) {
        return Ok(config.clone());
    }
    render_templates(config, event)
}

/// As [`render_config`], taking the config by value: one without template
/// syntax is returned as it is, with no copy (the engine's path, once per
/// attempt).
pub fn render_config_owned(config: Value, event: &Event) -> Result<Value, TemplateError> {
    if !holds_template(&config) {
        return Ok(config);
    }
    render_templates(&config, event)
}

/// Renders a config known to hold at least one template.
fn render_templates(config: &Value, event: &Event) -> Result<Value, TemplateError> {
    let event_json = event.to_json();
    let scope = Scope {
        event: &event_json,
        payload: &event.payload,
    };
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_fuel(Some(TEMPLATE_FUEL));
    let context = minijinja::context! {
        event => minijinja::Value::from(minijinja::value::Serde(&event_json)),
        payload => minijinja::Value::from(minijinja::value::Serde(&event.payload)),
    };
    let renderer = Renderer {
        environment,
        context,
        scope,
    };

    let mut path = String::new();
    renderer.render_value(config, &mut path)
}

struct Scope<'a> {
    event: &'a Value,
    payload: &'a Value,
}

struct Renderer<'a> {
    environment: Environment<'static>,
    context: minijinja::Value,
    scope: Scope<'a>,
}

impl Renderer<'_> {
    fn render_value(&self, value: &Value, path: &mut String) -> Result<Value, TemplateError> {
        match value {
            Value::String(text) if looks_like_template(text) => {
                self.render_string(text, path).map(Value::String)
            }
            Value::Array(items) => {
                let mut rendered = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let length = path.len();
                    push_segment(path, &index.to_string());
                    rendered.push(self.render_value(item, path)?);
                    path.truncate(length);
                }
                Ok(Value::Array(rendered))
            }
            Value::Object(fields) => {
                let mut rendered = Map::with_capacity(fields.len());
                for (key, item) in fields {
                    let length = path.len();
                    push_segment(path, key);
                    rendered.insert(key.clone(), self.render_value(item, path)?);
                    path.truncate(length);
                }
                Ok(Value::Object(rendered))
            }
            other => Ok(other.clone()),
        }
    }

    fn render_string(&self, source: &str, path: &str) -> Result<String, TemplateError> {
        let field = if path.is_empty() {
            "(root)".to_owned()
        } else {
            path.to_owned()
        };
        let invalid = |error: minijinja::Error| TemplateError::Invalid {
            field: field.clone(),
            reason: describe(&error),
        };
        let template = self
            .environment
            .template_from_str(source)
            .map_err(invalid)?;

        if let Some(variable) = self.first_undefined(&template.undeclared_variables(true)) {
            return Err(TemplateError::UndefinedVariable { field, variable });
        }
        template.render(&self.context).map_err(invalid)
    }

    /// The first variable path the template reads that the scope lacks, checked
    /// before rendering because the engine's own error does not name it.
    fn first_undefined(&self, variables: &std::collections::HashSet<String>) -> Option<String> {
        let sorted: BTreeSet<&String> = variables.iter().collect();
        sorted
            .into_iter()
            .find(|variable| !self.is_defined(variable))
            .cloned()
    }

    fn is_defined(&self, variable: &str) -> bool {
        let mut segments = variable.split('.');
        let mut current = match segments.next() {
            Some("event") => self.scope.event,
            Some("payload") => self.scope.payload,
            // Globals such as `range` or `loop` variables are the engine's business.
            _ => return true,
        };
        for segment in segments {
            match current {
                Value::Object(fields) => match fields.get(segment) {
                    Some(next) => current = next,
                    None => return false,
                },
                // An event without a payload, or a field set to null, has
                // no attributes: name the variable rather than leave the
                // engine to say only "undefined value".
                Value::Null => return false,
                // Attributes of other non-objects are left for the engine to judge.
                _ => return true,
            }
        }
        true
    }
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(text) => looks_like_template(text),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(fields) => fields.values().any(holds_template),
        _ => false,
    }
}

fn looks_like_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

fn push_segment(path: &mut String, segment: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
}

fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::DecodeLimits;

    fn event(payload: Value) -> Event {
        let raw = json!({
            "area_id": "6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab",
            "id": "evt-1",
            "action": "github.push",
            "payload": payload,
        });
        Event::decode(raw.to_string().as_bytes(), "1-0", DecodeLimits::default()).unwrap()
    }

    #[test]
    fn renders_nested_strings_over_event_and_payload() {
        let config = json!({
            "url": "http://127.0.0.1/{{ payload.repo }}",
            "headers": {"X-Event": "{{ event.id }}/{{ event.action }}"},
            "list": ["{{ payload.n + 1 }}", 7, "plain"],
        });
        let rendered = render_config(&config, &event(json!({"repo": "area", "n": 41}))).unwrap();
        assert_eq!(
            rendered,
            json!({
                "url": "http://127.0.0.1/area",
                "headers": {"X-Event": "evt-1/github.push"},
                "list": ["42", 7, "plain"],
            })
        );
    }

    #[test]
    fn the_owned_form_renders_templates_and_returns_plain_configs_as_they_are() {
        let event = event(json!({"repo": "area"}));
        let templated = json!({"url": "http://127.0.0.1/{{ payload.repo }}"});
        assert_eq!(
            render_config_owned(templated.clone(), &event).unwrap(),
            render_config(&templated, &event).unwrap()
        );
        assert_eq!(
            render_config_owned(templated, &event).unwrap(),
            json!({"url": "http://127.0.0.1/area"})
        );
        let plain = json!({"url": "http://127.0.0.1/hook", "headers": {"X-A": "b"}});
        assert_eq!(render_config_owned(plain.clone(), &event).unwrap(), plain);
        let broken = render_config_owned(json!({"x": "{{ payload."}), &event);
        assert!(matches!(broken, Err(TemplateError::Invalid { ref field, .. }) if field == "x"));
    }

    #[test]
    fn undefined_variable_is_named_with_its_field() {
        let config = json!({"body": {"text": "hi {{ payload.user.name }}"}});
        let error = render_config(&config, &event(json!({"user": {}}))).unwrap_err();
        assert_eq!(
            error,
            TemplateError::UndefinedVariable {
                field: "body.text".into(),
                variable: "payload.user.name".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "template in `body.text` reads undefined variable `payload.user.name`"
        );
        let no_payload = render_config(&config, &event(Value::Null)).unwrap_err();
        assert_eq!(
            no_payload,
            TemplateError::UndefinedVariable {
                field: "body.text".into(),
                variable: "payload.user.name".into()
            }
        );
        let null_field = render_config(&config, &event(json!({"user": null}))).unwrap_err();
        assert!(
            matches!(&null_field, TemplateError::UndefinedVariable { variable, .. } if variable == "payload.user.name"),
            "{null_field:?}"
        );
        let top = render_config(&json!({"x": "{{ nothing }}"}), &event(json!({})));
        assert!(matches!(top, Err(TemplateError::Invalid { .. })), "{top:?}");
    }

    #[test]
    fn syntax_errors_and_runaway_loops_fail_cleanly() {
        let broken = render_config(&json!({"x": "{{ payload."}), &event(json!({})));
        assert!(matches!(broken, Err(TemplateError::Invalid { ref field, .. }) if field == "x"));
        let endless = json!({"x": "{% for i in range(10000) %}{% for j in range(10000) %}.{% endfor %}{% endfor %}"});
        assert!(matches!(
            render_config(&endless, &event(json!({}))),
            Err(TemplateError::Invalid { .. })
        ));
    }

    #[test]
    fn tojson_gives_json_text_of_the_payload() {
        let payload = json!({"a": [1], "b": "é"});
        let rendered =
            render_config(&json!("{{ payload | tojson }}"), &event(payload.clone())).unwrap();
        let text = rendered.as_str().expect("templates render to strings");
        assert_eq!(serde_json::from_str::<Value>(text).unwrap(), payload);
    }
}
