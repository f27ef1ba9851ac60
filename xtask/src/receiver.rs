//! The demo's webhook receiver on loopback. Answers by path: `/ok/...` 200,
//! `/flaky/<n>/...` 500 to the first `n` requests of each `webhook-id` then 200,
//! `/status/<code>/...` always `<code>`. It tallies requests per `webhook-id` so
//! the demo can check them against PostgreSQL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};

type Tally = Arc<Mutex<HashMap<String, u32>>>;

pub struct Receiver {
    pub addr: SocketAddr,
    tally: Tally,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let tally: Tally = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(answer).with_state(tally.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, tally })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests received per `webhook-id`.
    pub fn tally(&self) -> HashMap<String, u32> {
        self.tally
            .lock()
            .expect("no code panics while holding this lock")
            .clone()
    }
}

async fn answer(State(tally): State<Tally>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let key = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let seen = {
        let mut tally = tally
            .lock()
            .expect("no code panics while holding this lock");
        let seen = tally.entry(key).or_default();
        *seen += 1;
        *seen
    };
    let mut segments = uri.path().trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("flaky"), Some(failures)) => {
            if seen <= failures.parse().unwrap_or(0) {
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
        _ => StatusCode::OK,
    }
}
