//! The demo's email and Slack peers on loopback: a real SMTP server (the
//! workspace's aiosmtpd sink script) and a local server speaking the Slack Web
//! API's `chat.postMessage`. Each tallies what it received by the execution's
//! dedup key, so the demo can check it against PostgreSQL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type Tally = Arc<Mutex<HashMap<String, u32>>>;

fn count(tally: &Tally, key: String) {
    *tally
        .lock()
        .expect("no code panics while holding this lock")
        .entry(key)
        .or_default() += 1;
}

/// A real SMTP server: `crates/reaction-email/tests/smtp_sink.py` on aiosmtpd.
pub struct SmtpSink {
    pub port: u16,
    tally: Tally,
    _child: Child,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/reaction-email/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start python3 for the SMTP server (needs aiosmtpd: python3 -m pip install aiosmtpd)")?;
        let mut lines = BufReader::new(child.stdout.take().context("the sink's stdout")?).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .context("the SMTP server did not start within 20 s")??;
        let Some(port) = first.and_then(|line| line.trim().parse().ok()) else {
            bail!(
                "the SMTP server did not start: is aiosmtpd installed? (python3 -m pip install aiosmtpd)"
            );
        };
        let tally: Tally = Arc::default();
        let sink_tally = tally.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let key = message["message"]["headers"]["x-area-dedup-key"]
                    .as_str()
                    .unwrap_or("");
                count(&sink_tally, key.to_owned());
            }
        });
        Ok(Self {
            port,
            tally,
            _child: child,
        })
    }

    /// Messages received per dedup key.
    pub fn tally(&self) -> HashMap<String, u32> {
        self.tally
            .lock()
            .expect("no code panics while holding this lock")
            .clone()
    }
}

/// A local server speaking `chat.postMessage` of the Slack Web API.
pub struct FakeSlack {
    pub addr: SocketAddr,
    tally: Tally,
}

#[derive(Clone)]
struct SlackState {
    token: String,
    tally: Tally,
}

impl FakeSlack {
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let tally: Tally = Arc::default();
        let state = SlackState {
            token: token.to_owned(),
            tally: tally.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, tally })
    }

    /// The API base URL to configure the worker with.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Messages posted per dedup key.
    pub fn tally(&self) -> HashMap<String, u32> {
        self.tally
            .lock()
            .expect("no code panics while holding this lock")
            .clone()
    }
}

async fn post_message(
    State(state): State<SlackState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if bearer != Some(state.token.as_str()) {
        return slack_reply(json!({"ok": false, "error": "invalid_auth"}));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    let request: Value = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        let fields = url::form_urlencoded::parse(&body).into_owned();
        let mut object = serde_json::Map::new();
        for (name, value) in fields {
            let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
            object.insert(name, value);
        }
        Value::Object(object)
    };
    let Some(channel) = request["channel"]
        .as_str()
        .filter(|channel| !channel.is_empty())
    else {
        return slack_reply(json!({"ok": false, "error": "channel_not_found"}));
    };
    let key = request["metadata"]["event_payload"]["dedup_key"]
        .as_str()
        .unwrap_or("");
    count(&state.tally, key.to_owned());
    let ts = format!("{}.000100", chrono::Utc::now().timestamp());
    slack_reply(
        json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": request["text"]}}),
    )
}

fn slack_reply(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}
