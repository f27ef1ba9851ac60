//! A local server that speaks the part of the Slack Web API the reaction uses:
//! `POST /api/chat.postMessage` with bearer authentication, answering like Slack
//! does (HTTP 200 with `ok`, 429 with `Retry-After`, ...), as each test scripts.
//!
//! It records every request it receives so tests can check what reached the
//! wire: headers, and the body decoded from JSON or form encoding, whichever
//! the client sent.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// The `ts` the fake gives every posted message.
pub const POSTED_TS: &str = "1712345678.000100";

/// How the fake answers the next requests.
#[derive(Clone, Debug)]
pub enum Reply {
    /// HTTP 200 `ok: true` with the channel and [`POSTED_TS`].
    Posted,
    /// HTTP 200 `ok: false` with this error code.
    SlackError(String),
    /// HTTP 429 with `Retry-After` and Slack's JSON `ratelimited` body.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 429 with `Retry-After` and a plain-text body, as a proxy might send.
    RateLimitedPlain { retry_after_secs: u64 },
    /// This HTTP status with a plain-text body.
    Status(u16),
    /// HTTP 200 JSON with a channel and ts but no `ok` field.
    WithoutOk,
    /// HTTP 200 `ok: false` without an error code, but with a channel and ts.
    OkFalseWithoutError,
    /// HTTP 200 `ok: false` whose error code is the request's Authorization header.
    EchoAuthorization,
    /// Never answers.
    Hang,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The body, decoded as a JSON object whatever its encoding.
    pub body: Value,
}

/// A running fake; it stops with the test's runtime.
pub struct FakeSlack {
    /// The base URL to give the reaction, ending in `/api/`.
    pub api_url: String,
    state: Arc<FakeState>,
}

struct FakeState {
    token: String,
    reply: Mutex<Reply>,
    received: Mutex<Vec<Received>>,
}

impl FakeSlack {
    /// Starts a fake on a free loopback port that accepts `token`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(FakeState {
            token: token.to_owned(),
            reply: Mutex::new(Reply::Posted),
            received: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .with_state(state.clone());

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake slack");
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });

        Self {
            api_url: format!("http://{address}/api/"),
            state,
        }
    }

    /// Makes the fake answer `reply` from now on.
    pub fn set_reply(&self, reply: Reply) {
        *self.state.reply.lock().unwrap() = reply;
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The only request received so far.
    pub fn single_request(&self) -> Received {
        let received = self.received();
        assert_eq!(
            received.len(),
            1,
            "expected exactly one request: {received:#?}"
        );
        received.into_iter().next().unwrap()
    }
}

async fn post_message(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|value| value.to_str().expect("header is text").to_owned())
    };
    let authorization = header_text(header::AUTHORIZATION);
    let content_type = header_text(header::CONTENT_TYPE);
    let body = decode_body(content_type.as_deref(), body).await;
    state.received.lock().unwrap().push(Received {
        authorization: authorization.clone(),
        content_type,
        body: body.clone(),
    });

    // Slack checks the token before anything else.
    match authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        None => return slack_error("not_authed"),
        Some(token) if token != state.token => return slack_error("invalid_auth"),
        Some(_) => {}
    }

    let reply = state.reply.lock().unwrap().clone();
    let channel = body.get("channel").cloned().unwrap_or(Value::Null);
    match reply {
        Reply::Posted => json_reply(
            StatusCode::OK,
            json!({
                "ok": true,
                "channel": channel,
                "ts": POSTED_TS,
                "message": {"type": "message", "text": body.get("text"), "ts": POSTED_TS},
            }),
        ),
        Reply::SlackError(code) => slack_error(&code),
        Reply::RateLimited { retry_after_secs } => {
            let mut response = json_reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"ok": false, "error": "ratelimited"}),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            response
        }
        Reply::RateLimitedPlain { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            "slow down",
        )
            .into_response(),
        Reply::Status(status) => {
            (StatusCode::from_u16(status).unwrap(), "upstream exploded").into_response()
        }
        Reply::WithoutOk => json_reply(
            StatusCode::OK,
            json!({"channel": channel, "ts": POSTED_TS, "message": {"type": "message"}}),
        ),
        Reply::OkFalseWithoutError => json_reply(
            StatusCode::OK,
            json!({"ok": false, "channel": channel, "ts": POSTED_TS, "message": {}}),
        ),
        Reply::EchoAuthorization => slack_error(authorization.as_deref().unwrap_or_default()),
        Reply::Hang => std::future::pending().await,
    }
}

async fn decode_body(content_type: Option<&str>, body: Bytes) -> Value {
    let text = std::str::from_utf8(&body).expect("the request body is valid UTF-8");
    let content_type = content_type.unwrap_or_default();

    if content_type.starts_with("application/json") {
        return serde_json::from_str(text).expect("the JSON body parses");
    }
    assert!(
        content_type.starts_with("application/x-www-form-urlencoded"),
        "unexpected content type {content_type:?}"
    );

    // Slack's form encoding carries `blocks` as JSON text inside a field.
    let request = axum::http::Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(axum::body::Body::from(body))
        .unwrap();
    let axum::Form(fields) = axum::Form::<Vec<(String, String)>>::from_request(request, &())
        .await
        .expect("the form body parses");
    let mut object = Map::new();
    for (name, value) in fields {
        let value = match name.as_str() {
            "blocks" | "metadata" => serde_json::from_str(&value).expect("form JSON field parses"),
            _ => Value::String(value),
        };
        object.insert(name, value);
    }
    Value::Object(object)
}

fn slack_error(code: &str) -> Response {
    json_reply(StatusCode::OK, json!({"ok": false, "error": code}))
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}
