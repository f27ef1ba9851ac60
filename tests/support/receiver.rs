//! A loopback HTTP receiver for webhooks, with answers scripted by path:
//!
//! - `/ok/...` answers 200;
//! - `/flaky/<n>/...` answers 500 to the first `n` requests of each
//!   `webhook-id`, then 200;
//! - `/status/<code>/...` always answers `<code>`;
//! - `/slow/<ms>/...` answers 200 after `ms` milliseconds.
//!
//! Every request is recorded with its arrival time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The `webhook-id` header.
    pub webhook_id: Option<String>,
    /// All headers, lower-case names.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct Shared {
    requests: Vec<ReceivedRequest>,
    seen: HashMap<String, u32>,
}

/// The running receiver; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts on 127.0.0.1 with a port of its own.
    pub async fn start() -> anyhow::Result<Self> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<ReceivedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.starts_with(prefix))
            .collect()
    }

    /// Number of requests so far.
    pub fn count(&self) -> usize {
        self.shared.lock().unwrap().requests.len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let header_map = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let times_seen = {
        let mut shared = shared.lock().unwrap();
        shared.requests.push(ReceivedRequest {
            method: method.to_string(),
            path: path.clone(),
            webhook_id: webhook_id.clone(),
            headers: header_map,
            body,
            at: Instant::now(),
        });
        let key = webhook_id.unwrap_or_default();
        let seen = shared.seen.entry(format!("{path}|{key}")).or_default();
        *seen += 1;
        *seen
    };

    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("flaky"), Some(failures)) => {
            let failures: u32 = failures.parse().unwrap_or(0);
            if times_seen <= failures {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        (Some("status"), Some(code)) => code
            .parse()
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::OK),
        (Some("slow"), Some(millis)) => {
            tokio::time::sleep(Duration::from_millis(millis.parse().unwrap_or(0))).await;
            StatusCode::OK
        }
        _ => StatusCode::OK,
    }
}
