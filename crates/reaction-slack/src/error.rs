//! Why the Slack reaction could not be set up.
//!
//! These are construction errors: a missing or malformed setting, or a TLS setup
//! that failed. Failures of a running attempt are `area_core::ReactionError`s
//! instead, classified in [`crate::classify`]. No variant ever carries the token.

use std::path::PathBuf;

/// The Slack reaction could not be configured or built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No bot token was given.
    #[error("no slack bot token: set `{variable}` or `{file_variable}`")]
    MissingToken {
        /// The variable holding the token itself.
        variable: &'static str,
        /// The variable naming a file that holds the token.
        file_variable: &'static str,
    },
    /// Both the token and a token file were given, so which one wins is unclear.
    #[error("set only one of `{variable}` and `{file_variable}`")]
    AmbiguousToken {
        /// The variable holding the token itself.
        variable: &'static str,
        /// The variable naming a file that holds the token.
        file_variable: &'static str,
    },
    /// The token file named by a variable could not be read.
    #[error("cannot read the slack token file {path:?} named by `{variable}`")]
    UnreadableTokenFile {
        /// The variable naming the file.
        variable: &'static str,
        /// The file that could not be read.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The token cannot be sent in an `Authorization` header. The reason never
    /// quotes the token.
    #[error("invalid slack bot token from `{setting}`: {reason}")]
    InvalidToken {
        /// Where the token came from: a variable, or the settings field `token`.
        setting: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("invalid value for `{setting}`: {reason}")]
    InvalidSetting {
        /// The variable (or [`crate::SlackSettings`] field) holding the value.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The system's root certificates, needed for an `https` API URL, could not
    /// be loaded.
    #[error("cannot load root certificates for the slack api")]
    RootCertificates(#[source] std::io::Error),
    /// The TLS client could not be configured.
    #[error("cannot configure tls for the slack api")]
    Tls(#[source] rustls::Error),
}
