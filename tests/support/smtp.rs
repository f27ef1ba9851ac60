//! A real SMTP server on loopback for the email reaction: the workspace's
//! aiosmtpd sink script (`crates/reaction-email/tests/smtp_sink.py`), whose
//! received messages are read back as JSON lines.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running sink; stops when dropped.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    messages: Arc<Mutex<Vec<Value>>>,
    _child: Child,
}

impl SmtpSink {
    /// Starts the sink. Fails, saying how to install it, when python3 or aiosmtpd
    /// is missing.
    pub async fn start() -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/reaction-email/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start python3 (the SMTP sink needs python3 with aiosmtpd: python3 -m pip install aiosmtpd)")?;
        let stdout = child.stdout.take().context("the sink's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .context("the SMTP sink did not start within 20 s")??;
        let Some(port) = first.and_then(|line| line.trim().parse::<u16>().ok()) else {
            bail!(
                "the SMTP sink did not print its port: is aiosmtpd installed? (python3 -m pip install aiosmtpd)"
            );
        };
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink_messages = messages.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(message) = serde_json::from_str(&line) {
                    sink_messages.lock().unwrap().push(message);
                }
            }
        });
        Ok(Self {
            port,
            messages,
            _child: child,
        })
    }

    /// Messages received so far, as the sink described them.
    pub fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }
}
