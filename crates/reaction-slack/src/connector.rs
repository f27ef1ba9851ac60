//! The HTTP connector under slack-morphism's client.
//!
//! slack-morphism's own `SlackClientHyperConnector::new` is HTTPS-only and lets
//! rustls pick a process-wide crypto provider, which panics when two providers
//! are linked (see DEPENDENCIES.md, trap 1). This one names ring explicitly and
//! accepts plain `http` too, so tests and local setups can point the reaction at
//! a loopback server. TLS still applies to every `https` URL.

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::{ClientConfig, RootCertStore};

use crate::error::Error;

/// A connector for `api_url`, giving up on connecting after `connect_timeout`.
pub(crate) fn build(
    api_url: &str,
    connect_timeout: Duration,
) -> Result<HttpsConnector<HttpConnector>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));

    let builder = if api_url.starts_with("https://") {
        HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(Error::RootCertificates)?
    } else {
        // A plain `http` base URL never does TLS, so it does not need the system's
        // root certificates: loading them would only make a machine without a CA
        // bundle unable to talk to a local server.
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        HttpsConnectorBuilder::new().with_tls_config(config)
    };

    Ok(builder.https_or_http().enable_http1().wrap_connector(http))
}
