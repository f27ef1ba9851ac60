//! Errors of building the email reaction: settings that cannot be read and a
//! transport that cannot be set up. Failures of a send are not here: they are
//! [`area_core::ReactionError`]s, classified by reply code in `classify`.

use std::io;

/// Why the email reaction could not be configured or built.
///
/// Messages name the environment variable or setting at fault and never carry
/// the password, the username or an email address.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required variable is unset or empty.
    #[error("{variable} is not set")]
    MissingVariable {
        /// The variable, e.g. `AREA_SMTP_HOST`.
        variable: &'static str,
    },
    /// A variable is set to a value that cannot be used.
    #[error("{variable} is invalid: {reason}")]
    InvalidVariable {
        /// The variable, e.g. `AREA_SMTP_PORT`.
        variable: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The file named by `AREA_SMTP_PASSWORD_FILE` could not be read.
    #[error("cannot read the file named by AREA_SMTP_PASSWORD_FILE")]
    PasswordFile {
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// A TLS mode other than `none`, `starttls` or `tls`.
    #[error("unknown SMTP TLS mode `{0}`: expected `none`, `starttls` or `tls`")]
    InvalidTlsMode(String),
    /// The sender address (`from`) is not a valid mailbox.
    #[error("the sender address (`from`) is not a valid email address")]
    InvalidSender {
        /// lettre's reason.
        #[source]
        source: lettre::address::AddressError,
    },
    /// The host is empty.
    #[error("the SMTP host is empty")]
    EmptyHost,
    /// The timeout is zero, which would fail every attempt.
    #[error("the SMTP timeout must be longer than zero")]
    ZeroTimeout,
    /// A username without a password, or the reverse.
    #[error("SMTP credentials need both a username and a password")]
    IncompleteCredentials,
    /// TLS could not be set up for the host (e.g. it is not a valid TLS server name).
    #[error("cannot set up TLS for the SMTP host")]
    Tls {
        /// lettre's reason.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}
