//! The Slack reaction's settings: the bot token, the Web API base URL and the
//! HTTP timeout, read from the worker's environment.
//!
//! The token is a [`SecretString`]: it is never printed, and [`SlackSettings`]'
//! `Debug` shows `[redacted]` in its place. It comes from `AREA_SLACK_TOKEN`, or
//! from the file named by `AREA_SLACK_TOKEN_FILE` (for secrets mounted as files),
//! never from a reaction's row. Empty variables count as unset, so a blank line
//! in an env file falls back to the default.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// Variable holding the bot token (`xoxb-...`).
pub const TOKEN_VARIABLE: &str = "AREA_SLACK_TOKEN";
/// Variable naming a file whose content is the bot token.
pub const TOKEN_FILE_VARIABLE: &str = "AREA_SLACK_TOKEN_FILE";
/// Variable holding the Web API base URL.
pub const API_URL_VARIABLE: &str = "AREA_SLACK_API_URL";
/// Variable holding the HTTP timeout of one call, in milliseconds.
pub const TIMEOUT_VARIABLE: &str = "AREA_SLACK_TIMEOUT_MS";

/// Slack's own Web API base URL.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";
/// How long one `chat.postMessage` call may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the Slack reaction reaches Slack.
#[derive(Clone)]
pub struct SlackSettings {
    /// The bot token sent as `Authorization: Bearer ...`. Never printed.
    pub token: SecretString,
    /// The Web API base URL, e.g. `https://slack.com/api/`; methods are appended
    /// to it. `http` is accepted so tests can use a local server.
    pub api_url: String,
    /// How long one call may take before it counts as a retryable timeout.
    pub timeout: Duration,
}

impl SlackSettings {
    /// Settings with `token` and the defaults: Slack's own API URL and a 10 s timeout.
    pub fn new(token: SecretString) -> Self {
        Self {
            token,
            api_url: DEFAULT_API_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads the settings from the process environment; see [`Self::from_lookup`].
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value.
    ///
    /// The token comes from `AREA_SLACK_TOKEN`, or from the file named by
    /// `AREA_SLACK_TOKEN_FILE` with its trailing newline trimmed; setting both is
    /// an error. `AREA_SLACK_API_URL` and `AREA_SLACK_TIMEOUT_MS` are optional.
    /// Every error names the variable at fault.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let lookup = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let token = read_token(&lookup)?;
        let mut settings = Self::new(token);

        if let Some(api_url) = lookup(API_URL_VARIABLE) {
            normalize_api_url(&api_url, API_URL_VARIABLE)?;
            settings.api_url = api_url;
        }

        if let Some(timeout) = lookup(TIMEOUT_VARIABLE) {
            settings.timeout = parse_timeout(&timeout)?;
        }
        Ok(settings)
    }
}

impl fmt::Debug for SlackSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SlackSettings")
            .field("token", &"[redacted]")
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Checks that `token` can travel in an `Authorization` header, without ever
/// quoting it in the error.
pub(crate) fn check_token(token: &SecretString, setting: &'static str) -> Result<(), Error> {
    let token = token.expose_secret();
    let invalid = |reason| Error::InvalidToken { setting, reason };
    if token.is_empty() {
        return Err(invalid("it is empty"));
    }
    if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(invalid(
            "it contains whitespace, control or non-ASCII characters",
        ));
    }
    Ok(())
}

/// The base URL as slack-morphism wants it: `http` or `https`, with a host and
/// without the trailing slash, since slack-morphism joins `{base}/{method}`.
pub(crate) fn normalize_api_url(api_url: &str, variable: &'static str) -> Result<String, Error> {
    let invalid = |reason: String| Error::InvalidSetting {
        setting: variable,
        reason,
    };
    let uri: http::Uri = api_url
        .trim()
        .parse()
        .map_err(|error| invalid(format!("not a URL: {error}")))?;

    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(invalid(
                "the URL must start with http:// or https://".into(),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host".into()));
    }
    if uri.query().is_some() {
        return Err(invalid("the URL must not have a query".into()));
    }
    Ok(api_url.trim().trim_end_matches('/').to_owned())
}

fn read_token(lookup: &impl Fn(&str) -> Option<String>) -> Result<SecretString, Error> {
    let inline = lookup(TOKEN_VARIABLE);
    let file = lookup(TOKEN_FILE_VARIABLE);

    let (token, setting) = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(Error::AmbiguousToken {
                variable: TOKEN_VARIABLE,
                file_variable: TOKEN_FILE_VARIABLE,
            });
        }
        (None, None) => {
            return Err(Error::MissingToken {
                variable: TOKEN_VARIABLE,
                file_variable: TOKEN_FILE_VARIABLE,
            });
        }
        (Some(token), None) => (SecretString::from(token), TOKEN_VARIABLE),
        (None, Some(path)) => (read_token_file(path)?, TOKEN_FILE_VARIABLE),
    };

    check_token(&token, setting)?;
    Ok(token)
}

fn read_token_file(path: String) -> Result<SecretString, Error> {
    let path = PathBuf::from(path);
    let content = std::fs::read_to_string(&path).map_err(|source| Error::UnreadableTokenFile {
        variable: TOKEN_FILE_VARIABLE,
        path: path.clone(),
        source,
    })?;

    // Wrapping the whole content first means the untrimmed copy is zeroized too.
    let content = SecretString::from(content);
    let trimmed = content.expose_secret().trim_end_matches(['\n', '\r']);
    Ok(SecretString::from(trimmed))
}

fn parse_timeout(value: &str) -> Result<Duration, Error> {
    let invalid = |reason: &str| Error::InvalidSetting {
        setting: TIMEOUT_VARIABLE,
        reason: reason.to_owned(),
    };
    let millis: u64 = value
        .trim()
        .parse()
        .map_err(|_| invalid("expected a whole number of milliseconds"))?;
    if millis == 0 {
        return Err(invalid("the timeout must be at least 1 ms"));
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TOKEN: &str = "xoxb-123-456-secretvalue";

    fn settings(variables: &[(&str, &str)]) -> Result<SlackSettings, Error> {
        let variables: HashMap<String, String> = variables
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        SlackSettings::from_lookup(|name| variables.get(name).cloned())
    }

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "reaction-slack-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn defaults_to_slack_and_ten_seconds() {
        let settings = settings(&[(TOKEN_VARIABLE, TOKEN)]).unwrap();
        assert_eq!(settings.token.expose_secret(), TOKEN);
        assert_eq!(settings.api_url, "https://slack.com/api/");
        assert_eq!(settings.timeout, Duration::from_secs(10));
    }

    #[test]
    fn reads_api_url_and_timeout() {
        let settings = settings(&[
            (TOKEN_VARIABLE, TOKEN),
            (API_URL_VARIABLE, "http://127.0.0.1:4000/api/"),
            (TIMEOUT_VARIABLE, "2500"),
        ])
        .unwrap();
        assert_eq!(settings.api_url, "http://127.0.0.1:4000/api/");
        assert_eq!(settings.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let settings = settings(&[
            (TOKEN_VARIABLE, TOKEN),
            (TOKEN_FILE_VARIABLE, ""),
            (API_URL_VARIABLE, " "),
            (TIMEOUT_VARIABLE, ""),
        ])
        .unwrap();
        assert_eq!(settings.api_url, DEFAULT_API_URL);
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn missing_token_names_both_variables() {
        let error = settings(&[]).unwrap_err().to_string();
        assert!(error.contains(TOKEN_VARIABLE), "{error}");
        assert!(error.contains(TOKEN_FILE_VARIABLE), "{error}");
    }

    #[test]
    fn token_file_is_read_with_its_trailing_newline_trimmed() {
        let path = temp_file("token", &format!("{TOKEN}\r\n"));
        let settings = settings(&[(TOKEN_FILE_VARIABLE, path.to_str().unwrap())]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(settings.unwrap().token.expose_secret(), TOKEN);
    }

    #[test]
    fn unreadable_token_file_names_the_variable_and_path() {
        let error = settings(&[(TOKEN_FILE_VARIABLE, "/nonexistent/area/slack-token")])
            .unwrap_err()
            .to_string();
        assert!(error.contains(TOKEN_FILE_VARIABLE), "{error}");
        assert!(error.contains("/nonexistent/area/slack-token"), "{error}");
    }

    #[test]
    fn token_and_token_file_together_are_rejected() {
        let error = settings(&[(TOKEN_VARIABLE, TOKEN), (TOKEN_FILE_VARIABLE, "/tmp/x")]);
        assert!(
            matches!(error, Err(Error::AmbiguousToken { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn token_unfit_for_a_header_is_rejected_without_quoting_it() {
        let path = temp_file("bad-token", "xoxb-secret part\nsecond line\n");
        let error = settings(&[(TOKEN_FILE_VARIABLE, path.to_str().unwrap())]);
        std::fs::remove_file(&path).unwrap();
        let message = error.unwrap_err().to_string();
        assert!(message.contains(TOKEN_FILE_VARIABLE), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn bad_timeout_names_the_variable() {
        for value in ["soon", "-5", "0", "1.5"] {
            let error = settings(&[(TOKEN_VARIABLE, TOKEN), (TIMEOUT_VARIABLE, value)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(TIMEOUT_VARIABLE), "{value}: {error}");
        }
    }

    #[test]
    fn bad_api_url_names_the_variable() {
        for value in [
            "slack.com/api",
            "ftp://slack.com/api",
            "http://",
            "https://x/api?a=b",
        ] {
            let error = settings(&[(TOKEN_VARIABLE, TOKEN), (API_URL_VARIABLE, value)])
                .unwrap_err()
                .to_string();
            assert!(error.contains(API_URL_VARIABLE), "{value}: {error}");
        }
    }

    #[test]
    fn api_url_loses_its_trailing_slash_for_slack_morphism() {
        assert_eq!(
            normalize_api_url("https://slack.com/api/", "x").unwrap(),
            "https://slack.com/api"
        );
        assert_eq!(
            normalize_api_url("http://127.0.0.1:9/api", "x").unwrap(),
            "http://127.0.0.1:9/api"
        );
    }

    #[test]
    fn debug_redacts_the_token() {
        let settings = SlackSettings::new(SecretString::from(TOKEN));
        let printed = format!("{settings:?} {settings:#?}");
        assert!(!printed.contains("secretvalue"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(printed.contains("https://slack.com/api/"), "{printed}");
    }
}
