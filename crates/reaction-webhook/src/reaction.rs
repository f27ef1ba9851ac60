//! [`WebhookReaction`]: one attempt is one HTTP request, bounded in time and in
//! what it reads back.
//!
//! An attempt parses its config, refuses a blocked literal address, builds the
//! request (body, `webhook-id`, signature), sends it under one deadline that
//! covers connecting, sending and reading the body, and classifies what came
//! back (see [`crate::classify`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use area_core::{ConfigError, Outcome, Reaction, ReactionContext, ReactionError};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;
use tracing::debug;
use url::{Host, Url};

use crate::classify::{blocked_address, classify_response, classify_send_error, timed_out};
use crate::client::build_client;
use crate::config::{ConfigBody, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, WebhookConfig};
use crate::destination::DestinationPolicy;
use crate::error::Error;
use crate::response::read_excerpt;
use crate::settings::WebhookSettings;

/// The service name of webhook reactions in `reactions.service`.
pub const SERVICE: &str = "webhook";

/// At most this much of an attempt's time is left to the engine; see
/// [`attempt_ceiling`].
const ENGINE_MARGIN: Duration = Duration::from_millis(250);

const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Calls an HTTP endpoint for each execution. Cheap to share: one instance
/// holds the connection pool for every webhook of the process.
#[derive(Debug)]
pub struct WebhookReaction {
    client: reqwest::Client,
    policy: Arc<DestinationPolicy>,
    settings: WebhookSettings,
}

impl WebhookReaction {
    /// Builds the reaction and its pooled HTTP client.
    ///
    /// Fails when the system's root certificates cannot be loaded or reqwest
    /// rejects the configuration. Needs no process-wide TLS provider: ring is
    /// passed to the client explicitly.
    pub fn new(settings: WebhookSettings) -> Result<Self, Error> {
        let policy = Arc::new(DestinationPolicy::new(&settings.allow));
        let client = build_client(&settings, Arc::clone(&policy))?;
        Ok(Self {
            client,
            policy,
            settings,
        })
    }

    /// The settings the reaction was built with.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// A one-line description of the allow-list for the start-up log.
    pub fn describe_allow_list(&self) -> String {
        self.settings.describe_allow_list()
    }

    /// Refuses a URL whose host is a blocked IP address. Such hosts never
    /// reach the resolver, which checks every other host.
    fn check_literal_address(&self, url: &Url) -> Result<(), ReactionError> {
        let address: IpAddr = match url.host() {
            Some(Host::Ipv4(address)) => address.into(),
            Some(Host::Ipv6(address)) => address.into(),
            Some(Host::Domain(_)) | None => return Ok(()),
        };
        self.policy
            .check_address(address)
            .map_err(|range| blocked_address(address, &range.to_string()))
    }
}

#[async_trait]
impl Reaction for WebhookReaction {
    fn service(&self) -> &'static str {
        SERVICE
    }

    /// Every request carries the execution's dedup key as `webhook-id`, so a
    /// receiver can drop a repeated delivery.
    fn deduplicates_by_key(&self) -> bool {
        true
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigError> {
        WebhookConfig::parse(config).map(drop)
    }

    async fn execute(&self, context: &ReactionContext) -> Result<Outcome, ReactionError> {
        let config = WebhookConfig::parse(&context.config)?;
        let host = config.url.host_str().unwrap_or_default().to_owned();
        self.check_literal_address(&config.url)?;

        let timeout = config
            .timeout
            .unwrap_or(self.settings.timeout)
            .min(attempt_ceiling(context.timeout));
        let request = build_request(config, context)?;

        let started = Instant::now();
        let deadline = started + timeout;
        let sent = tokio::time::timeout_at(deadline, self.client.execute(request)).await;
        let mut response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                let error = classify_send_error(&error, &host);
                debug!(
                    execution_id = %context.execution_id,
                    %host,
                    code = %error.code,
                    "webhook request failed"
                );
                return Err(error);
            }
            Err(_elapsed) => {
                debug!(
                    execution_id = %context.execution_id,
                    %host,
                    timeout_ms = timeout.as_millis() as u64,
                    "webhook request timed out"
                );
                return Err(timed_out(&host, timeout));
            }
        };

        let status = response.status();
        let excerpt = read_excerpt(&mut response, self.settings.max_response_bytes, deadline).await;
        debug!(
            execution_id = %context.execution_id,
            %host,
            status = status.as_u16(),
            truncated = excerpt.truncated,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook answered"
        );
        classify_response(status, response.headers(), excerpt)
    }
}

/// The longest a request may take within an attempt of `attempt_timeout`.
///
/// The engine cancels the attempt at `attempt_timeout`; finishing a little
/// earlier lets the attempt end with its own classification (a 2xx whose body
/// was still arriving is delivered, not a bare timeout that would be retried).
fn attempt_ceiling(attempt_timeout: Duration) -> Duration {
    attempt_timeout - (attempt_timeout / 10).min(ENGINE_MARGIN)
}

/// The request of one attempt: the config's method, URL, headers and body,
/// plus `webhook-id` and, with a secret, the Standard Webhooks signature.
fn build_request(
    config: WebhookConfig,
    context: &ReactionContext,
) -> Result<reqwest::Request, ReactionError> {
    let body = match config.body {
        ConfigBody::Event => Some((json_bytes(&context.event.to_json()), APPLICATION_JSON)),
        ConfigBody::Json(document) => Some((json_bytes(&document), APPLICATION_JSON)),
        ConfigBody::Text(text) => Some((Bytes::from(text), TEXT_PLAIN)),
        ConfigBody::Empty => None,
    };

    let mut headers = config.headers;
    if let Some((_, content_type)) = &body
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, content_type.clone());
    }
    let message_id = HeaderValue::from_str(&context.dedup_key).map_err(|_| {
        ReactionError::permanent(
            "invalid_dedup_key",
            "the execution's dedup key cannot travel in the webhook-id header",
        )
    })?;
    if let Some(signing_key) = &config.signing_key {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        let signed_body = body.as_ref().map_or(&[][..], |(bytes, _)| bytes);
        let signature = signing_key.sign(&context.dedup_key, timestamp, signed_body);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(
            WEBHOOK_SIGNATURE,
            HeaderValue::try_from(signature).expect("a base64 signature is a valid header value"),
        );
    }
    headers.insert(WEBHOOK_ID, message_id);

    let mut request = reqwest::Request::new(config.method, config.url);
    *request.headers_mut() = headers;
    if let Some((bytes, _)) = body {
        *request.body_mut() = Some(bytes.into());
    }
    Ok(request)
}

fn json_bytes(document: &Value) -> Bytes {
    serde_json::to_vec(document)
        .expect("a JSON value always serializes")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_without_a_process_wide_tls_provider() {
        // This test binary never installs a default provider: ring is passed
        // to the client explicitly, and reqwest would panic without it.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let reaction = WebhookReaction::new(WebhookSettings::default()).expect("the client builds");
        assert_eq!(reaction.service(), SERVICE);
    }

    #[test]
    fn leaves_the_engine_a_margin_to_cancel() {
        assert_eq!(
            attempt_ceiling(Duration::from_secs(30)),
            Duration::from_millis(29_750)
        );
        assert_eq!(
            attempt_ceiling(Duration::from_secs(1)),
            Duration::from_millis(900)
        );
        assert_eq!(attempt_ceiling(Duration::ZERO), Duration::ZERO);
    }
}
