//! The benchmark's webhook receiver, and the load loop that measures its
//! ceiling.
//!
//! The receiver runs in a process of its own (`cargo xtask bench-receiver`,
//! hidden) so that its CPU time is measured apart from the publisher's and the
//! worker's. It speaks HTTP/1.1 with keep-alive on loopback, reads each request
//! body, counts the request and answers 200 at once. `GET /__count` returns how
//! many webhook requests it has answered, so the benchmark can check the
//! attempts recorded in PostgreSQL against the requests that arrived.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The path that answers the request count instead of counting.
const COUNT_PATH: &str = "/__count";

/// Options of the hidden `bench-receiver` subcommand.
#[derive(clap::Args)]
pub struct Args {
    /// Runtime threads serving requests.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Serves until killed; prints `listening on <addr>` first.
pub fn serve(args: Args) -> anyhow::Result<()> {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        let count = Arc::new(AtomicU64::new(0));
        let app = Router::new().fallback(answer).with_state(count);
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn answer(
    State(count): State<Arc<AtomicU64>>,
    method: Method,
    uri: Uri,
    _body: Bytes,
) -> (StatusCode, String) {
    if method == Method::GET && uri.path() == COUNT_PATH {
        return (StatusCode::OK, count.load(Ordering::Relaxed).to_string());
    }
    count.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, String::new())
}

/// The receiver process, killed when dropped.
pub struct ReceiverProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    client: reqwest::Client,
}

impl ReceiverProcess {
    /// Starts `xtask bench-receiver` from this very executable.
    pub async fn start() -> anyhow::Result<Self> {
        let executable = std::env::current_exe().context("find the xtask executable")?;
        let mut child = Command::new(executable)
            .arg("bench-receiver")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("start the bench receiver")?;
        let stdout = child.stdout.take().context("the receiver's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the receiver did not start within 10 s")??
            .context("the receiver exited before listening")?;
        let Some(addr) = line.strip_prefix("listening on ") else {
            bail!("unexpected first line from the receiver: {line}");
        };
        let addr = addr.parse().context("parse the receiver's address")?;
        Ok(Self {
            addr,
            child,
            client: client(),
        })
    }

    /// The receiver's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The URL webhooks post to.
    pub fn hook_url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Webhook requests answered so far.
    pub async fn count(&self) -> anyhow::Result<u64> {
        let text = self
            .client
            .get(format!("http://{}{COUNT_PATH}", self.addr))
            .send()
            .await
            .context("ask the receiver for its count")?
            .text()
            .await?;
        text.trim().parse().context("parse the receiver's count")
    }
}

/// A client configured as the webhook reaction's: pooled keep-alive
/// connections, no delay on small writes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("a plain HTTP client always builds")
}

/// Requests per second the receiver answers to `concurrency` looping clients
/// posting `body` for `duration`; also returns how many requests that was.
pub async fn load(
    receiver: &ReceiverProcess,
    body: &'static [u8],
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(f64, u64)> {
    let client = client();
    let url = receiver.hook_url();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, stop, sent) = (client.clone(), url.clone(), stop.clone(), sent.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "receiver answered {}",
                    response.status()
                );
                response.bytes().await?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let requests = sent.load(Ordering::Relaxed);
    Ok((requests as f64 / started.elapsed().as_secs_f64(), requests))
}
