//! The one HTTP client all webhook attempts share: pooled keep-alive
//! connections, rustls with the ring provider, the guarded resolver, and no
//! redirects or proxies.
//!
//! - TLS: the ring provider is passed explicitly in a prebuilt rustls
//!   configuration, so the client never depends on a process-wide default
//!   provider and never pulls in aws-lc-rs. Certificates are checked against the
//!   system's root store, as reqwest does by default.
//! - Redirects are not followed: a redirect is the receiver's answer, recorded
//!   as a permanent failure, so no redirect can lead to a blocked address.
//! - Proxies, including `HTTP_PROXY` and friends, are ignored: through a proxy the
//!   resolver would see the proxy's host instead of the receiver's, and the
//!   destination check would be bypassed.
//! - No reqwest timeout is set: the reaction bounds each attempt with its own
//!   deadline, which also covers reading the body.

use std::sync::Arc;

use crate::destination::DestinationPolicy;
use crate::error::Error;
use crate::resolve::GuardedResolver;
use crate::settings::WebhookSettings;

/// The `User-Agent` of webhook requests, unless a config sets its own.
const USER_AGENT: &str = concat!("area-worker-webhook/", env!("CARGO_PKG_VERSION"));

/// Builds the shared client for `settings`, resolving through `policy`.
pub(crate) fn build_client(
    settings: &WebhookSettings,
    policy: Arc<DestinationPolicy>,
) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .dns_resolver(GuardedResolver::new(policy))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .no_proxy()
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .tcp_nodelay(true)
        .user_agent(USER_AGENT)
        .build()
        .map_err(Error::Client)
}

fn tls_config() -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).map_err(Error::Tls)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        // `dangerous()` is only rustls' door to a custom verifier; the platform
        // verifier checks chains and names in full.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // A prebuilt configuration is used as is, so it has to offer HTTP/2 itself.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
