//! A scripted SMTP peer: a TCP server on 127.0.0.1:0 that speaks SMTP line by
//! line and answers as its [`Script`] says, recording every line it receives.
//! It lets the tests produce failures a well-behaved server never shows on
//! demand: a refusal at a chosen step, a dropped connection, silence.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// What the peer answers at one step.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// Send this reply line (CRLF is added).
    Reply(&'static str),
    /// Close the connection without answering.
    Drop,
}

/// How the peer behaves on every connection.
#[derive(Clone, Debug)]
pub struct Script {
    /// The greeting; `None` accepts and then never sends a byte, like an
    /// implicit-TLS port waiting for a ClientHello. A 4xx or 5xx greeting is
    /// followed by closing the connection.
    pub greeting: Option<&'static str>,
    /// Extensions advertised after EHLO, e.g. `AUTH PLAIN LOGIN`.
    pub extensions: &'static [&'static str],
    /// The answer to AUTH.
    pub auth: Answer,
    /// The answer to each RCPT TO.
    pub rcpt: Answer,
    /// The answer after the message data's terminating `.`.
    pub after_data: Answer,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            greeting: Some("220 scripted.test ESMTP ready"),
            extensions: &["8BITMIME", "SIZE 10485760"],
            auth: Answer::Reply("235 2.7.0 authenticated"),
            rcpt: Answer::Reply("250 2.1.5 ok"),
            after_data: Answer::Reply("250 2.0.0 queued as scripted-1"),
        }
    }
}

/// What the peer saw, across all connections.
#[derive(Debug, Default)]
pub struct Log {
    /// Connections accepted.
    pub connections: usize,
    /// Command lines received, as text; the message data appears as one
    /// `<message data>` entry once its terminator has arrived.
    pub lines: Vec<String>,
}

impl Log {
    /// Whether a command with this verb (e.g. `MAIL`) was received.
    pub fn saw(&self, verb: &str) -> bool {
        self.lines.iter().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|first| first.eq_ignore_ascii_case(verb))
        })
    }
}

/// A running scripted peer; stops (and drops its connections) when dropped.
pub struct ScriptedServer {
    /// Where the peer listens.
    pub port: u16,
    log: Arc<Mutex<Log>>,
    /// Aborting it drops the listener and every connection task.
    accept_task: JoinHandle<()>,
}

impl ScriptedServer {
    /// Starts a peer following `script`.
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));

        let accept_log = Arc::clone(&log);
        let accept_task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                accept_log.lock().unwrap().connections += 1;
                connections.spawn(serve(stream, script.clone(), Arc::clone(&accept_log)));
            }
        });

        Self {
            port,
            log,
            accept_task,
        }
    }

    /// A snapshot of what the peer has seen so far.
    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn serve(stream: TcpStream, script: Script, log: Arc<Mutex<Log>>) {
    let mut stream = BufReader::new(stream);
    let mut line = Vec::new();

    let Some(greeting) = script.greeting else {
        // Silent: hold the connection until the client gives up.
        while stream
            .read_until(b'\n', &mut line)
            .await
            .is_ok_and(|read| read > 0)
        {
            line.clear();
        }
        return;
    };
    if !write_line(&mut stream, greeting).await || !greeting.starts_with('2') {
        return;
    }

    loop {
        line.clear();
        match stream.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        log.lock().unwrap().lines.push(text.clone());
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();

        let answer = match verb.as_str() {
            "EHLO" => {
                if !write_ehlo(&mut stream, script.extensions).await {
                    return;
                }
                continue;
            }
            "HELO" | "MAIL" | "NOOP" | "RSET" => Answer::Reply("250 2.0.0 ok"),
            "AUTH" => script.auth,
            "RCPT" => script.rcpt,
            "DATA" => {
                if !write_line(&mut stream, "354 end data with <CR><LF>.<CR><LF>").await {
                    return;
                }
                if !read_message_data(&mut stream).await {
                    return;
                }
                log.lock().unwrap().lines.push("<message data>".into());
                script.after_data
            }
            "QUIT" => {
                let _ = write_line(&mut stream, "221 2.0.0 bye").await;
                return;
            }
            _ => Answer::Reply("502 5.5.2 command not recognized"),
        };

        let is_written = match answer {
            Answer::Drop => return,
            Answer::Reply(reply) => write_line(&mut stream, reply).await,
        };
        if !is_written {
            return;
        }
    }
}

/// Reads up to and including the line holding a single `.`.
async fn read_message_data(stream: &mut BufReader<TcpStream>) -> bool {
    let mut line = Vec::new();
    loop {
        line.clear();
        match stream.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) if line == b".\r\n" => return true,
            Ok(_) => {}
        }
    }
}

async fn write_ehlo(stream: &mut BufReader<TcpStream>, extensions: &[&str]) -> bool {
    let mut reply = String::from("250");
    reply.push(if extensions.is_empty() { ' ' } else { '-' });
    reply.push_str("scripted.test\r\n");
    for (index, extension) in extensions.iter().enumerate() {
        let separator = if index + 1 == extensions.len() {
            ' '
        } else {
            '-'
        };
        reply.push_str(&format!("250{separator}{extension}\r\n"));
    }
    stream.get_mut().write_all(reply.as_bytes()).await.is_ok()
}

async fn write_line(stream: &mut BufReader<TcpStream>, reply: &str) -> bool {
    let line = format!("{reply}\r\n");
    stream.get_mut().write_all(line.as_bytes()).await.is_ok()
}
