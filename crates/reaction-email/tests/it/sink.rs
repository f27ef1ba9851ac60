//! Runs `tests/smtp_sink.py`, an aiosmtpd server, and reads back what it received.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

const INSTALL_HINT: &str = "install it with `pip install aiosmtpd` (Python 3 is required)";

/// A running aiosmtpd on 127.0.0.1, killed when dropped.
pub struct SmtpSink {
    /// Where the server listens.
    pub port: u16,
    received: Lines<BufReader<ChildStdout>>,
    /// Kept open: the script stops when its stdin closes.
    _stdin: ChildStdin,
    /// Killed on drop, so a failed test leaves no server behind.
    _child: Child,
}

/// One message as the server received and Python's `email` package parsed it.
#[derive(Debug, Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: String,
    pub message: ParsedMessage,
}

/// The parsed message: decoded headers (lowercase names) and leaf parts.
#[derive(Debug, Deserialize)]
pub struct ParsedMessage {
    pub headers: HashMap<String, String>,
    pub content_type: String,
    pub parts: Vec<Part>,
}

/// One leaf MIME part, its content decoded to text.
#[derive(Debug, Deserialize)]
pub struct Part {
    pub content_type: String,
    pub charset: Option<String>,
    pub content: String,
}

impl ParsedMessage {
    /// A header's decoded value; panics naming the header when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
    }
}

impl SmtpSink {
    /// Starts the server on a free port; fails with install instructions when
    /// python3 or aiosmtpd is missing.
    pub async fn start() -> Self {
        require_aiosmtpd().await;

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start python3 {script}: {error}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut received = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();

        let first_line = timeout(Duration::from_secs(20), received.next_line())
            .await
            .expect("smtp_sink.py did not print its port within 20 s")
            .expect("cannot read smtp_sink.py's stdout")
            .expect("smtp_sink.py exited before printing its port; see its stderr above");
        let port = first_line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtp_sink.py printed `{first_line}` instead of a port"));

        Self {
            port,
            received,
            _stdin: stdin,
            _child: child,
        }
    }

    /// The next message the server accepted.
    pub async fn next_message(&mut self) -> Received {
        let line = timeout(Duration::from_secs(10), self.received.next_line())
            .await
            .expect("the sink received no message within 10 s")
            .expect("cannot read smtp_sink.py's stdout")
            .expect("smtp_sink.py exited; see its stderr above");
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("bad record {line}: {error}"))
    }
}

async fn require_aiosmtpd() {
    let probe = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    match probe {
        Ok(status) if status.success() => {}
        Ok(_) => panic!(
            "the email integration tests need the Python package aiosmtpd, a real SMTP \
             server: {INSTALL_HINT}"
        ),
        Err(error) => panic!(
            "the email integration tests need python3 with aiosmtpd, but python3 cannot be \
             run ({error}): {INSTALL_HINT}"
        ),
    }
}
