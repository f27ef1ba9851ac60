//! A webhook reaction's configuration, as stored in `reactions.config` and
//! rendered by the engine, checked field by field.
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `url` | string, required | `http://` or `https://` URL to call |
//! | `method` | string | `GET`, `POST` (default), `PUT`, `PATCH` or `DELETE` |
//! | `headers` | object of strings | extra request headers |
//! | `body` | string, object or array | what to send; see below |
//! | `secret` | string | signs the request (see [`crate::signature`]) |
//! | `timeout_ms` | whole number or numeric string | total time of the request |
//! | `retry` | any | owned by the engine; ignored here |
//!
//! A string `body` is sent byte for byte, as `text/plain` unless `headers` set
//! a content type; an object or array is sent as JSON; without `body` the
//! event is sent as JSON, except by `GET`, which sends no body. `timeout_ms`
//! replaces the default of the settings and is bounded by the attempt's own
//! timeout.
//!
//! Any other field is rejected by name, so a typo (`header`) fails loudly
//! instead of being dropped. Errors never quote header values or the secret.

use std::time::Duration;

use area_core::ConfigError;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use crate::signature::SigningKey;

/// Headers the reaction sets itself for the Standard Webhooks contract.
pub(crate) const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
/// Unix seconds at which the request was signed.
pub(crate) const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
/// `v1,<base64 HMAC-SHA256>`.
pub(crate) const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// A validated webhook configuration.
#[derive(Debug)]
pub(crate) struct WebhookConfig {
    pub url: Url,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: ConfigBody,
    pub signing_key: Option<SigningKey>,
    pub timeout: Option<Duration>,
}

/// What the request carries.
#[derive(Debug, PartialEq)]
pub(crate) enum ConfigBody {
    /// The triggering event as JSON: the default.
    Event,
    /// Text sent byte for byte.
    Text(String),
    /// A JSON document sent as JSON.
    Json(Value),
    /// No body: a `GET` without an explicit one.
    Empty,
}

impl WebhookConfig {
    /// Checks and converts a rendered configuration.
    pub fn parse(config: &Value) -> Result<Self, ConfigError> {
        let Value::Object(fields) = config else {
            return Err(ConfigError::new(
                "(root)",
                "the config must be a JSON object",
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| !is_known_field(key)) {
            return Err(ConfigError::new(unknown.as_str(), "unknown field"));
        }

        let url = parse_url(fields)?;
        let method = parse_method(fields)?;
        let headers = parse_headers(fields)?;
        let body = parse_body(fields, &method)?;
        let signing_key = parse_secret(fields)?;
        let timeout = parse_timeout(fields)?;
        Ok(Self {
            url,
            method,
            headers,
            body,
            signing_key,
            timeout,
        })
    }
}

fn is_known_field(key: &str) -> bool {
    matches!(
        key,
        "url" | "method" | "headers" | "body" | "secret" | "timeout_ms" | "retry"
    )
}

fn parse_url(fields: &Map<String, Value>) -> Result<Url, ConfigError> {
    let text = match fields.get("url") {
        None | Some(Value::Null) => return Err(ConfigError::new("url", "missing")),
        Some(Value::String(text)) => text.trim(),
        Some(other) => return Err(wrong_type("url", "a string", other)),
    };
    // The URL may carry a token (many receivers put one in the path), so the
    // error describes it without quoting it.
    let url = Url::parse(text)
        .map_err(|error| ConfigError::new("url", format!("not a valid URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            "url",
            format!(
                "only http and https URLs are allowed, not `{}`",
                url.scheme()
            ),
        ));
    }
    if url.host().is_none() {
        return Err(ConfigError::new("url", "the URL has no host"));
    }
    Ok(url)
}

fn parse_method(fields: &Map<String, Value>) -> Result<Method, ConfigError> {
    let text = match fields.get("method") {
        None | Some(Value::Null) => return Ok(Method::POST),
        Some(Value::String(text)) => text.trim().to_ascii_uppercase(),
        Some(other) => return Err(wrong_type("method", "a string", other)),
    };
    match text.as_str() {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        _ => Err(ConfigError::new(
            "method",
            format!("`{text}` is not one of GET, POST, PUT, PATCH, DELETE"),
        )),
    }
}

fn parse_headers(fields: &Map<String, Value>) -> Result<HeaderMap, ConfigError> {
    let entries = match fields.get("headers") {
        None | Some(Value::Null) => return Ok(HeaderMap::new()),
        Some(Value::Object(entries)) => entries,
        Some(other) => return Err(wrong_type("headers", "an object of strings", other)),
    };

    let mut headers = HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        let field = format!("headers.{name}");
        let header_name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ConfigError::new(&field, "not a valid header name"))?;
        if let Some(reason) = reserved_reason(&header_name) {
            return Err(ConfigError::new(&field, reason));
        }
        if headers.contains_key(&header_name) {
            return Err(ConfigError::new(&field, "the header is given twice"));
        }
        let Value::String(value) = value else {
            return Err(wrong_type(&field, "a string", value));
        };
        let mut header_value = HeaderValue::from_str(value).map_err(|_| {
            ConfigError::new(
                &field,
                "not a valid header value: it contains a line break or another control character",
            )
        })?;
        header_value.set_sensitive(is_credential(&header_name));
        headers.insert(header_name, header_value);
    }
    Ok(headers)
}

/// Why a header may not be set from the config, if it may not.
fn reserved_reason(name: &HeaderName) -> Option<&'static str> {
    if [WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE].contains(name) {
        return Some("the reaction sets this header itself (Standard Webhooks)");
    }
    let managed = [
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ];
    if managed.contains(name) {
        return Some("the HTTP client manages this header");
    }
    None
}

fn is_credential(name: &HeaderName) -> bool {
    *name == header::AUTHORIZATION
        || *name == header::COOKIE
        || *name == header::PROXY_AUTHORIZATION
}

fn parse_body(fields: &Map<String, Value>, method: &Method) -> Result<ConfigBody, ConfigError> {
    let body = match fields.get("body") {
        None if *method == Method::GET => ConfigBody::Empty,
        None => ConfigBody::Event,
        Some(Value::String(text)) => ConfigBody::Text(text.clone()),
        Some(json @ (Value::Object(_) | Value::Array(_))) => ConfigBody::Json(json.clone()),
        Some(other) => {
            return Err(wrong_type(
                "body",
                "a string, an object or an array (leave it out to send the event)",
                other,
            ));
        }
    };
    if *method == Method::GET && body != ConfigBody::Empty {
        return Err(ConfigError::new("body", "a GET request carries no body"));
    }
    Ok(body)
}

fn parse_secret(fields: &Map<String, Value>) -> Result<Option<SigningKey>, ConfigError> {
    match fields.get("secret") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(secret)) => SigningKey::parse(secret)
            .map(Some)
            .map_err(|reason| ConfigError::new("secret", reason)),
        Some(other) => Err(wrong_type("secret", "a string", other)),
    }
}

fn parse_timeout(fields: &Map<String, Value>) -> Result<Option<Duration>, ConfigError> {
    let invalid = || {
        ConfigError::new(
            "timeout_ms",
            "must be a whole number of milliseconds above 0",
        )
    };
    let millis = match fields.get("timeout_ms") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_u64().ok_or_else(invalid)?,
        // Templates render to strings, so `"{{ payload.timeout }}"` arrives as text.
        Some(Value::String(text)) => text.trim().parse().map_err(|_| invalid())?,
        Some(other) => return Err(wrong_type("timeout_ms", "a number", other)),
    };
    if millis == 0 {
        return Err(invalid());
    }
    Ok(Some(Duration::from_millis(millis)))
}

fn wrong_type(field: &str, expected: &str, found: &Value) -> ConfigError {
    let kind = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ConfigError::new(field, format!("expected {expected}, found {kind}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(config: Value) -> ConfigError {
        WebhookConfig::parse(&config).unwrap_err()
    }

    #[test]
    fn defaults_to_posting_the_event() {
        let config = WebhookConfig::parse(&json!({"url": "https://hooks.example/in"})).unwrap();
        assert_eq!(config.method, Method::POST);
        assert_eq!(config.body, ConfigBody::Event);
        assert!(config.headers.is_empty());
        assert!(config.signing_key.is_none());
        assert_eq!(config.timeout, None);
    }

    #[test]
    fn reads_every_field() {
        let config = WebhookConfig::parse(&json!({
            "url": "http://hooks.example:8080/in?x=1",
            "method": "put",
            "headers": {"X-Trace": "abc", "Authorization": "Bearer t0ken"},
            "body": {"text": "hi"},
            "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "timeout_ms": "2500",
            "retry": {"max": 3},
        }))
        .unwrap();
        assert_eq!(config.method, Method::PUT);
        assert_eq!(config.headers["x-trace"], "abc");
        assert!(config.headers[header::AUTHORIZATION].is_sensitive());
        assert_eq!(config.body, ConfigBody::Json(json!({"text": "hi"})));
        assert!(config.signing_key.is_some());
        assert_eq!(config.timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn get_sends_no_body() {
        let config =
            WebhookConfig::parse(&json!({"url": "https://h.example", "method": "GET"})).unwrap();
        assert_eq!(config.body, ConfigBody::Empty);
        let rejected = error(json!({"url": "https://h.example", "method": "GET", "body": "x"}));
        assert_eq!(rejected.field, "body");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "url"),
            (json!({"url": 3}), "url"),
            (json!({"url": "not a url"}), "url"),
            (json!({"url": "file:///etc/passwd"}), "url"),
            (json!({"url": "ftp://files.example/x"}), "url"),
            (
                json!({"url": "https://h.example", "method": "TRACE"}),
                "method",
            ),
            (
                json!({"url": "https://h.example", "headers": ["x"]}),
                "headers",
            ),
            (
                json!({"url": "https://h.example", "headers": {"Bad Name": "x"}}),
                "headers.Bad Name",
            ),
            (
                json!({"url": "https://h.example", "headers": {"X-A": "a\r\nInjected: 1"}}),
                "headers.X-A",
            ),
            (
                json!({"url": "https://h.example", "headers": {"X-A": 1}}),
                "headers.X-A",
            ),
            (
                json!({"url": "https://h.example", "headers": {"webhook-id": "x"}}),
                "headers.webhook-id",
            ),
            (
                json!({"url": "https://h.example", "headers": {"Content-Length": "1"}}),
                "headers.Content-Length",
            ),
            (
                json!({"url": "https://h.example", "headers": {"X-A": "1", "x-a": "2"}}),
                "headers.x-a",
            ),
            (json!({"url": "https://h.example", "body": 42}), "body"),
            (json!({"url": "https://h.example", "body": null}), "body"),
            (json!({"url": "https://h.example", "secret": 1}), "secret"),
            (
                json!({"url": "https://h.example", "secret": "whsec_%%%"}),
                "secret",
            ),
            (
                json!({"url": "https://h.example", "timeout_ms": 0}),
                "timeout_ms",
            ),
            (
                json!({"url": "https://h.example", "timeout_ms": -5}),
                "timeout_ms",
            ),
            (
                json!({"url": "https://h.example", "timeout_ms": "soon"}),
                "timeout_ms",
            ),
            (json!({"url": "https://h.example", "header": {}}), "header"),
            (json!("https://h.example"), "(root)"),
        ];
        for (config, field) in cases {
            let shown = config.to_string();
            assert_eq!(error(config).field, field, "{shown}");
        }
    }

    #[test]
    fn errors_never_quote_secrets_or_header_values() {
        let secret = "whsec_this is not base64 but secret";
        let message = error(json!({"url": "https://h.example", "secret": secret})).to_string();
        assert!(!message.contains("this is not"), "{message}");

        let message = error(json!({
            "url": "https://h.example",
            "headers": {"Authorization": "Bearer s3cr3t\n"},
        }))
        .to_string();
        assert!(!message.contains("s3cr3t"), "{message}");
    }

    #[test]
    fn debug_hides_the_secret() {
        let config = WebhookConfig::parse(&json!({
            "url": "https://h.example",
            "secret": "plain shared secret",
        }))
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("plain shared secret"), "{debug}");
    }
}
