//! The HTTP peers the tests talk to, all bound to `127.0.0.1:0`: an axum
//! [`Receiver`] that records requests and answers with a fixed [`Reply`], and
//! raw TCP servers for behaviour axum will not produce on purpose.
//!
//! Every server runs on the test's own runtime and stops with it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Captured {
    /// The client's address: one per connection.
    pub peer: SocketAddr,
    /// The request method.
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    /// Every header.
    pub headers: HeaderMap,
    /// The body, byte for byte.
    pub body: Bytes,
}

impl Captured {
    /// A header's value as text; panics when it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("the request has no `{name}` header: {:?}", self.headers))
            .to_str()
            .expect("the header is ASCII")
    }
}

/// What the receiver answers to every request.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
}

impl Reply {
    /// `status` with `body` and no extra header.
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("a valid test status"),
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    /// The same reply with one more header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("a valid test header"),
        ));
        self
    }
}

/// A webhook receiver on loopback.
pub struct Receiver {
    /// Where it listens.
    pub address: SocketAddr,
    requests: Arc<Mutex<Vec<Captured>>>,
}

#[derive(Clone)]
struct ReceiverState {
    reply: Reply,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    /// Starts a receiver answering `reply` to everything.
    pub async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            reply,
            requests: Arc::clone(&requests),
        };
        let app = Router::new().fallback(record).with_state(state);
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app)
                .await
                .expect("the receiver serves");
        });
        Self { address, requests }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The port, for URLs spelling the host another way.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests
            .lock()
            .expect("no test thread panicked")
            .clone()
    }

    /// The only request received; panics unless there was exactly one.
    pub fn single_request(&self) -> Captured {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request: {requests:?}"
        );
        requests.into_iter().next().expect("checked above")
    }
}

async fn record(
    State(state): State<ReceiverState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .requests
        .lock()
        .expect("no test thread panicked")
        .push(Captured {
            peer,
            method,
            uri,
            headers,
            body,
        });
    let mut response = (state.reply.status, state.reply.body.clone()).into_response();
    for (name, value) in &state.reply.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// A port on which nothing listens: bound, then released.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// A server that accepts connections, reads the request and never answers.
pub async fn silent_server() -> SocketAddr {
    serve_raw(|mut stream| async move {
        read_request_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    })
    .await
}

/// A server that answers 200 with a chunked body that never ends, writing as
/// fast as the client reads until the client goes away.
pub async fn endless_body_server() -> SocketAddr {
    serve_raw(|mut stream| async move {
        read_request_head(&mut stream).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("4000\r\n{}\r\n", "a".repeat(0x4000));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await
}

/// A server that answers 200 with a long body sent one byte every 50 ms.
pub async fn trickling_server() -> SocketAddr {
    serve_raw(|mut stream| async move {
        read_request_head(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            if stream.write_all(b"z").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Accepts connections on a loopback port and runs `handle` on each.
async fn serve_raw<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    address
}

/// Reads until the end of the request head; the body, if any, is left unread.
async fn read_request_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
}
