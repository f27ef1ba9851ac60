//! [`SlackReaction`]: posts one message with `chat.postMessage` per attempt.
//!
//! The call goes through slack-morphism's session API (`http_post`), with its
//! connector, bearer authentication and error decoding, but with a request and
//! reply type of our own rather than its typed `chat_post_message`:
//!
//! - its `SlackApiChatPostMessageRequest` holds blocks as typed `SlackBlock`s, so
//!   a round trip through it could drop or reshape fields of blocks it models
//!   differently; the config's `blocks` must reach Slack untouched;
//! - its reply type ignores `ok` once the envelope decodes, so
//!   `{"ok": false, "channel": .., "ts": ..}` without an `error` would pass as a
//!   success; our reply type checks `ok` itself.
//!
//! Retries belong to the engine: slack-morphism's rate control, which would
//! sleep and retry inside the attempt, is left off, and a 429 is returned at
//! once as rate limited with its `Retry-After`.
//!
//! The dedup key travels as message `metadata` (`event_type: area_execution`).
//! Slack does not drop duplicates by it, but a person or a tool can find the
//! two copies a retried attempt may leave.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use slack_morphism::hyper_tokio::{SlackClientHyperConnector, SlackHyperClient};
use slack_morphism::{SlackApiToken, SlackApiTokenValue, SlackClient, SlackMessageMetadata};
use tracing::{debug, warn};

use area_core::text::truncate_chars;
use area_core::{ConfigError, Outcome, Reaction, ReactionContext, ReactionError};

use crate::classify;
use crate::connector;
use crate::error::Error;
use crate::message::{MAX_TEXT_CHARS, Message};
use crate::settings::{SlackSettings, check_token, normalize_api_url};

/// The `event_type` of the metadata carrying the dedup key.
pub const METADATA_EVENT_TYPE: &str = "area_execution";

const POST_MESSAGE: &str = "chat.postMessage";

/// Posts messages to Slack; the `slack` service of the worker.
///
/// Cheap to share: one client (and connection pool) serves every attempt.
pub struct SlackReaction {
    client: SlackHyperClient,
    /// slack-morphism's own token type; its `Debug` prints only the length.
    token: SlackApiToken,
    api_url: String,
    timeout: Duration,
}

impl SlackReaction {
    /// Builds the reaction and its HTTP client. Fails if a setting is unusable
    /// (the error names it) or TLS cannot be set up; nothing is sent yet.
    pub fn new(settings: SlackSettings) -> Result<Self, Error> {
        check_token(&settings.token, "token")?;
        let api_url = normalize_api_url(&settings.api_url, "api_url")?;
        if settings.timeout.is_zero() {
            return Err(Error::InvalidSetting {
                setting: "timeout",
                reason: "the timeout must not be zero".into(),
            });
        }
        warn_if_plain_http_off_loopback(&api_url);

        let https = connector::build(&api_url, settings.timeout)?;
        let connector =
            SlackClientHyperConnector::with_connector(https).with_slack_api_url(&api_url);
        let token = SlackApiToken::new(SlackApiTokenValue(
            settings.token.expose_secret().to_owned(),
        ));

        Ok(Self {
            client: SlackClient::new(connector),
            token,
            api_url,
            timeout: settings.timeout,
        })
    }

    fn failure(&self, error: ReactionError) -> ReactionError {
        debug!(code = %error.code, class = ?error.class, "slack call failed");
        classify::scrub(error, &self.token.token_value.0)
    }
}

#[async_trait]
impl Reaction for SlackReaction {
    fn service(&self) -> &'static str {
        "slack"
    }

    fn validate(&self, config: &Value) -> Result<(), ConfigError> {
        Message::from_config(config).map(|_| ())
    }

    async fn execute(&self, context: &ReactionContext) -> Result<Outcome, ReactionError> {
        let message = Message::from_config(&context.config)?;

        let (request, is_truncated) = PostMessageRequest::new(&message, &context.dedup_key);

        let timeout = self.timeout.min(context.timeout);
        let session = self.client.open_session(&self.token);
        // No method rate-control parameters: the engine owns pacing and retries.
        let call =
            session
                .http_session_api
                .http_post::<_, PostMessageReply>(POST_MESSAGE, &request, None);
        let reply = match tokio::time::timeout(timeout, call).await {
            Err(_elapsed) => return Err(self.failure(ReactionError::timed_out(timeout))),
            Ok(Err(error)) => return Err(self.failure(classify::client_error(&error))),
            Ok(Ok(reply)) => reply,
        };

        let posted = reply.into_posted().map_err(|error| self.failure(error))?;
        let output = output(&message, posted, is_truncated);
        debug!(
            channel = %output["channel"],
            ts = %output["ts"],
            is_truncated,
            "slack message posted"
        );
        Ok(Outcome::new(output))
    }
}

impl fmt::Debug for SlackReaction {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SlackReaction")
            .field("token", &"[redacted]")
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The `chat.postMessage` arguments, sent as JSON by slack-morphism.
#[derive(Serialize)]
struct PostMessageRequest<'a> {
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocks: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_ts: Option<&'a str>,
    metadata: SlackMessageMetadata,
}

impl<'a> PostMessageRequest<'a> {
    /// The request for `message`, with its text cut to what Slack accepts, and
    /// whether it was cut.
    fn new(message: &Message<'a>, dedup_key: &str) -> (Self, bool) {
        let (text, is_truncated) = match message.text {
            Some(text) => {
                let (text, is_truncated) = truncate_chars(text, MAX_TEXT_CHARS);
                (Some(text), is_truncated)
            }
            None => (None, false),
        };
        if is_truncated {
            warn!(
                max_chars = MAX_TEXT_CHARS,
                "slack text too long, truncated before sending"
            );
        }

        let metadata = SlackMessageMetadata {
            event_type: METADATA_EVENT_TYPE.to_owned(),
            event_payload: Some(HashMap::from([(
                "dedup_key".to_owned(),
                dedup_key.to_owned(),
            )])),
        };
        let request = Self {
            channel: message.channel,
            text,
            blocks: message.blocks,
            thread_ts: message.thread_ts,
            metadata,
        };
        (request, is_truncated)
    }
}

/// The fields of Slack's answer we act on. `ok` is optional here so that its
/// absence is ours to classify, whatever slack-morphism's envelope allows.
#[derive(Deserialize)]
struct PostMessageReply {
    ok: Option<bool>,
    error: Option<String>,
    channel: Option<String>,
    ts: Option<String>,
}

/// A message Slack says it posted.
struct Posted {
    channel: Option<String>,
    ts: Option<String>,
}

impl PostMessageReply {
    fn into_posted(self) -> Result<Posted, ReactionError> {
        match (self.ok, self.error) {
            (Some(true), _) => {
                if self.ts.is_none() {
                    warn!("slack posted the message but its reply has no ts");
                }
                Ok(Posted {
                    channel: self.channel,
                    ts: self.ts,
                })
            }
            (Some(false), Some(code)) => Err(classify::slack_error(&code)),
            (Some(false), None) => Err(ReactionError::retryable(
                "invalid_reply",
                "slack answered ok: false without an error code",
            )),
            (None, _) => Err(ReactionError::retryable(
                "invalid_reply",
                "slack's reply has no `ok` field, so whether the message was posted is unknown",
            )
            .with_possible_duplicate()),
        }
    }
}

/// The execution's `output_payload`: where the message went and its `ts`, which
/// later calls (threads, edits) need.
fn output(message: &Message<'_>, posted: Posted, is_truncated: bool) -> Value {
    let mut output = json!({
        "channel": posted.channel.as_deref().unwrap_or(message.channel),
        "ts": posted.ts,
        "truncated": is_truncated,
    });
    if let Some(thread_ts) = message.thread_ts {
        output["thread_ts"] = Value::from(thread_ts);
    }
    output
}

fn warn_if_plain_http_off_loopback(api_url: &str) {
    let Ok(uri) = api_url.parse::<http::Uri>() else {
        return;
    };
    if uri.scheme_str() != Some("http") {
        return;
    }
    let host = uri.host().unwrap_or_default();
    let is_loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !is_loopback {
        warn!(
            api_url,
            "the slack api url is plain http: the bot token travels unencrypted"
        );
    }
}
