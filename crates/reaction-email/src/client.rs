//! The SMTP conversation: opening connections, keeping idle ones for reuse,
//! and running one mail transaction with every step bounded in time.
//!
//! # How it works
//!
//! lettre's pooled `AsyncSmtpTransport` sends a message as one opaque call, so
//! a failure cannot tell whether the relay had already received the message
//! data, and its timeout only covers the TCP connect: a relay that accepts and
//! then stays silent hangs it. This module drives lettre's
//! [`AsyncSmtpConnection`] step by step instead. Each step (connect, greeting,
//! STARTTLS, AUTH, MAIL, each RCPT, DATA, the message) runs under the
//! configured timeout and is classified by the [`Stage`] it reached.
//!
//! Connections are opened once and reused: after a successful transaction the
//! connection is parked, and the next send checks it with `NOOP` before using
//! it. A connection that failed, or whose attempt was cancelled, is dropped
//! rather than parked, so a half-finished transaction is never reused.
//!
//! In `none` and `starttls` mode the TCP connection is opened here and lettre
//! reads the greeting from it, which lets a relay that never greets (an
//! implicit-TLS port) be told apart from one that cannot be reached. In
//! `starttls` mode the upgrade is mandatory: a relay that does not offer it
//! gets no `MAIL FROM`, and no credentials.
//!
//! # Limitations
//!
//! In `tls` mode lettre connects, negotiates TLS and reads the greeting in one
//! call, so a relay that stalls during it is reported as a retryable timeout.
//! Idle connections are checked only when taken, not in the background.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use area_core::ReactionError;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::classify::{self, Redactor, Stage};
use crate::error::Error;
use crate::message::Composed;
use crate::settings::{SmtpSettings, TlsMode};

/// Idle connections kept for reuse; more are closed after their send.
const MAX_IDLE_CONNECTIONS: usize = 8;

/// How long an idle connection is kept. Relays close idle sessions after a
/// few minutes (RFC 5321 suggests five); staying well below that keeps most
/// reuse checks successful.
const MAX_IDLE_TIME: Duration = Duration::from_secs(60);

/// Talks to one relay; shared by every attempt of the process.
pub(crate) struct SmtpClient {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello_name: ClientId,
    timeout: Duration,
    redactor: Redactor,
    idle: Mutex<Vec<IdleConnection>>,
}

/// The TLS mode with what it needs, so that a TLS mode can never reach the
/// plain-text path for want of parameters.
enum Security {
    Plain,
    StartTls(TlsParameters),
    Tls(TlsParameters),
}

impl Security {
    fn mode(&self) -> TlsMode {
        match self {
            Self::Plain => TlsMode::None,
            Self::StartTls(_) => TlsMode::StartTls,
            Self::Tls(_) => TlsMode::Tls,
        }
    }
}

struct IdleConnection {
    connection: AsyncSmtpConnection,
    since: Instant,
}

impl SmtpClient {
    /// Prepares the client; opens no connection.
    pub(crate) fn new(settings: &SmtpSettings) -> Result<Self, Error> {
        let parameters =
            || TlsParameters::new(settings.host.clone()).map_err(|source| Error::Tls { source });
        let security = match settings.tls {
            TlsMode::None => Security::Plain,
            TlsMode::StartTls => Security::StartTls(parameters()?),
            TlsMode::Tls => Security::Tls(parameters()?),
        };
        let credentials = match (&settings.username, &settings.password) {
            (Some(username), Some(password)) => Some(Credentials::new(
                username.clone(),
                password.expose_secret().to_owned(),
            )),
            (None, None) => None,
            _ => return Err(Error::IncompleteCredentials),
        };

        Ok(Self {
            host: settings.host.clone(),
            port: settings.port,
            security,
            credentials,
            hello_name: ClientId::default(),
            timeout: settings.timeout,
            redactor: Redactor::new(settings.username.clone(), settings.password.clone()),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `composed` and returns the relay's reply to the message data.
    pub(crate) async fn send(&self, composed: &Composed) -> Result<Response, ReactionError> {
        let mut connection = self.checkout().await?;

        let reply = self.transact(&mut connection, composed).await?;

        self.park(connection);
        Ok(reply)
    }

    /// A live connection: a parked one that still answers, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, ReactionError> {
        while let Some(idle) = self.take_idle() {
            if idle.since.elapsed() > MAX_IDLE_TIME {
                continue;
            }
            let mut connection = idle.connection;
            let is_alive = timeout(self.timeout, connection.test_connected()).await;
            if matches!(is_alive, Ok(true)) {
                debug!(stage = %Stage::Reuse, "reusing a pooled SMTP connection");
                return Ok(connection);
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, ReactionError> {
        let mut connection = match &self.security {
            Security::Tls(parameters) => {
                let connecting = AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello_name,
                    Some(parameters.clone()),
                    None,
                );
                self.step(Stage::TlsConnect, connecting).await?
            }
            Security::Plain | Security::StartTls(_) => self.connect_plain().await?,
        };

        if let Security::StartTls(parameters) = &self.security {
            if !connection
                .server_info()
                .supports_feature(Extension::StartTls)
            {
                return Err(classify::starttls_unavailable());
            }
            let upgrading = connection.starttls(parameters.clone(), &self.hello_name);
            self.step(Stage::StartTls, upgrading).await?;
            if !connection.is_encrypted() {
                return Err(classify::starttls_unavailable());
            }
        }

        if let Some(credentials) = &self.credentials {
            let mechanisms = [Mechanism::Plain, Mechanism::Login];
            self.step(Stage::Auth, connection.auth(&mechanisms, credentials))
                .await?;
        }
        debug!(tls = %self.security.mode(), "opened an SMTP connection");
        Ok(connection)
    }

    /// Opens TCP here, waits for the greeting's first byte, then lets lettre
    /// read the greeting and send EHLO.
    async fn connect_plain(&self) -> Result<AsyncSmtpConnection, ReactionError> {
        let stream = match timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(ReactionError::retryable(
                    "connection_failed",
                    format!("connecting to {}:{} failed: {error}", self.host, self.port),
                ));
            }
            Err(_) => return Err(classify::timed_out(Stage::Connect, self.timeout)),
        };

        match timeout(self.timeout, stream.readable()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(ReactionError::retryable(
                    "connection_lost",
                    format!("{} failed: {error}", Stage::AwaitGreeting),
                ));
            }
            Err(_) => return Err(classify::timed_out(Stage::AwaitGreeting, self.timeout)),
        }

        let greeting =
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello_name);
        self.step(Stage::Hello, greeting).await
    }

    /// One mail transaction on `connection`.
    async fn transact(
        &self,
        connection: &mut AsyncSmtpConnection,
        composed: &Composed,
    ) -> Result<Response, ReactionError> {
        let envelope = &composed.envelope;
        let parameters = mail_parameters(connection, composed)?;
        self.step(
            Stage::Mail,
            connection.command(Mail::new(envelope.from().cloned(), parameters)),
        )
        .await?;

        for (index, recipient) in envelope.to().iter().enumerate() {
            let rcpt = Rcpt::new(recipient.clone(), Vec::new());
            self.step(Stage::Rcpt(index + 1), connection.command(rcpt))
                .await?;
        }

        self.step(Stage::DataCommand, connection.command(Data))
            .await?;
        self.step(Stage::Message, connection.message(&composed.data))
            .await
    }

    /// Runs one step under the timeout and classifies its failure.
    async fn step<T>(
        &self,
        stage: Stage,
        work: impl Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, ReactionError> {
        match timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(classify::smtp_failure(&error, stage, &self.redactor)),
            Err(_) => Err(classify::timed_out(stage, self.timeout)),
        }
    }

    fn take_idle(&self) -> Option<IdleConnection> {
        self.idle
            .lock()
            .expect("the idle list is never left half-updated")
            .pop()
    }

    /// Keeps `connection` for the next send, or drops (closes) it when enough are kept.
    fn park(&self, connection: AsyncSmtpConnection) {
        let mut idle = self
            .idle
            .lock()
            .expect("the idle list is never left half-updated");
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(IdleConnection {
                connection,
                since: Instant::now(),
            });
        }
    }
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmtpClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.security.mode())
            .field("has_credentials", &self.credentials.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `MAIL FROM` parameters: SMTPUTF8 for internationalised addresses (which
/// the relay must support) and 8BITMIME for a non-ASCII message when offered.
fn mail_parameters(
    connection: &AsyncSmtpConnection,
    composed: &Composed,
) -> Result<Vec<MailParameter>, ReactionError> {
    let server = connection.server_info();
    let envelope = &composed.envelope;
    let mut parameters = Vec::new();

    let has_non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
    if has_non_ascii_address {
        if !server.supports_feature(Extension::SmtpUtfEight) {
            return Err(ReactionError::permanent(
                "smtputf8_unsupported",
                "an address is internationalised and the server does not support SMTPUTF8",
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }

    if !composed.data.is_ascii() && server.supports_feature(Extension::EightBitMime) {
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}
