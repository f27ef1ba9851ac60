//! A local server speaking the Slack Web API's `chat.postMessage`: it checks
//! the bearer token, accepts JSON or form bodies, answers `ok: true` with a
//! `ts`, and records every post.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// A post the server received.
#[derive(Clone, Debug)]
pub struct SlackPost {
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The request's fields, decoded from JSON or a form.
    pub body: Value,
}

impl SlackPost {
    /// The execution's dedup key, carried in the message metadata.
    pub fn dedup_key(&self) -> Option<&str> {
        self.body["metadata"]["event_payload"]["dedup_key"].as_str()
    }
}

#[derive(Clone)]
struct SlackState {
    token: String,
    posts: Arc<Mutex<Vec<SlackPost>>>,
}

/// The running server; stops when dropped.
pub struct FakeSlack {
    /// Where it listens.
    pub addr: SocketAddr,
    posts: Arc<Mutex<Vec<SlackPost>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSlack {
    /// Starts on 127.0.0.1, accepting `token` only.
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let state = SlackState {
            token: token.to_owned(),
            posts: posts.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, posts, task })
    }

    /// The API base URL to configure the worker with (`AREA_SLACK_API_URL`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Every post so far, accepted or not.
    pub fn posts(&self) -> Vec<SlackPost> {
        self.posts.lock().unwrap().clone()
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn post_message(
    State(state): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let request: Value = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        let mut object = serde_json::Map::new();
        for (name, value) in url::form_urlencoded::parse(&body).into_owned() {
            object.insert(
                name,
                serde_json::from_str(&value).unwrap_or(Value::String(value)),
            );
        }
        Value::Object(object)
    };
    state.posts.lock().unwrap().push(SlackPost {
        authorization: authorization.clone(),
        body: request.clone(),
    });

    let bearer = authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "));
    if bearer != Some(state.token.as_str()) {
        return reply(json!({"ok": false, "error": "invalid_auth"}));
    }
    let Some(channel) = request["channel"]
        .as_str()
        .filter(|channel| !channel.is_empty())
    else {
        return reply(json!({"ok": false, "error": "channel_not_found"}));
    };
    let ts = format!("{}.000100", chrono::Utc::now().timestamp());
    reply(json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": request["text"]}}))
}

fn reply(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}
