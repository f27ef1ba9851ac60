//! The crate's own error: what can go wrong while reading the settings,
//! building the HTTP client, or resolving a webhook's host.
//!
//! Failures of an attempt are not this type: they are classified
//! [`area_core::ReactionError`]s, built in [`crate::classify`].

use std::net::IpAddr;

/// What went wrong in the webhook reaction outside an attempt's classification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An environment variable holds a value the reaction cannot use.
    #[error("invalid {variable}: {reason}")]
    InvalidSetting {
        /// The variable at fault, e.g. `AREA_WEBHOOK_TIMEOUT_MS`.
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS certificate verifier could not load the system's root certificates.
    #[error("the TLS certificate verifier could not be built")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the client configuration.
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    /// Every address of a host is blocked and the allow-list does not lift it.
    /// Returned by the resolver, so the connection is never attempted.
    #[error("{host} resolves only to blocked addresses ({address}: {reason})")]
    BlockedDestination {
        /// The host name being resolved.
        host: String,
        /// The first blocked address it resolved to.
        address: IpAddr,
        /// The blocked range the address is in.
        reason: String,
    },
}
