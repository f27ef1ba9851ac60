//! Where the email reaction sends from: the SMTP relay, its TLS mode, the
//! credentials and the sender address, read from `AREA_SMTP_*` variables.
//!
//! Secrets never leave this module by accident: the password is a
//! [`SecretString`], and the `Debug` output of [`SmtpSettings`] shows neither
//! the password nor the username.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::Error;

/// How long one step of the SMTP conversation may take when nothing says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection to the relay is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// `none`: plain text, for a relay on the same host or in tests.
    None,
    /// `starttls`: connect in plain text and upgrade with STARTTLS before
    /// anything else is sent; a relay that does not offer it is an error,
    /// never a reason to continue in plain text.
    #[default]
    StartTls,
    /// `tls`: TLS from the first byte (implicit TLS, "SMTPS").
    Tls,
}

impl TlsMode {
    /// The port this mode usually listens on: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::StartTls => 587,
            Self::Tls => 465,
        }
    }

    /// The name used in configuration: `none`, `starttls` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::StartTls => "starttls",
            Self::Tls => "tls",
        }
    }
}

impl FromStr for TlsMode {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            _ => Err(Error::InvalidTlsMode(text.to_owned())),
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The SMTP relay the email reaction sends through.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Host name or IP address of the relay; also the name its certificate must carry.
    pub host: String,
    /// TCP port of the relay.
    pub port: u16,
    /// How the connection is protected.
    pub tls: TlsMode,
    /// Login, when the relay requires authentication.
    pub username: Option<String>,
    /// Password for `username`; never printed.
    pub password: Option<SecretString>,
    /// The sender mailbox, e.g. `AREA <area@example.com>`; also the envelope sender.
    pub from: String,
    /// How long each step of the conversation may take: connecting, the greeting,
    /// each command and the reply to the message data.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// Settings for an unauthenticated relay at `host` with the mode's usual port
    /// and the default timeout.
    pub fn new(host: impl Into<String>, tls: TlsMode, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port: tls.default_port(),
            tls,
            username: None,
            password: None,
            from: from.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads the settings from the process environment; see [`Self::from_lookup`].
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, which returns a variable's value.
    ///
    /// | variable | default |
    /// |---|---|
    /// | `AREA_SMTP_HOST` | required |
    /// | `AREA_SMTP_TLS` | `starttls` (`none`, `starttls` or `tls`) |
    /// | `AREA_SMTP_PORT` | 25, 587 or 465 by TLS mode |
    /// | `AREA_SMTP_USERNAME`, `AREA_SMTP_PASSWORD` | none; both or neither |
    /// | `AREA_SMTP_PASSWORD_FILE` | instead of `AREA_SMTP_PASSWORD`: a file holding it |
    /// | `AREA_SMTP_FROM` | required |
    /// | `AREA_SMTP_TIMEOUT_MS` | 10000 |
    ///
    /// Empty values count as unset. Errors name the variable, never its secret value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let read = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let host = read("AREA_SMTP_HOST").ok_or(Error::MissingVariable {
            variable: "AREA_SMTP_HOST",
        })?;
        let from = read("AREA_SMTP_FROM").ok_or(Error::MissingVariable {
            variable: "AREA_SMTP_FROM",
        })?;
        let tls = match read("AREA_SMTP_TLS") {
            Some(text) => text
                .parse()
                .map_err(|error: Error| Error::InvalidVariable {
                    variable: "AREA_SMTP_TLS",
                    reason: error.to_string(),
                })?,
            None => TlsMode::default(),
        };

        let port = match read("AREA_SMTP_PORT") {
            Some(text) => parse_port(&text)?,
            None => tls.default_port(),
        };
        let timeout = match read("AREA_SMTP_TIMEOUT_MS") {
            Some(text) => parse_timeout(&text)?,
            None => DEFAULT_TIMEOUT,
        };

        let username = read("AREA_SMTP_USERNAME");
        let password = read_password(read("AREA_SMTP_PASSWORD"), read("AREA_SMTP_PASSWORD_FILE"))?;
        match (&username, &password) {
            (Some(_), None) | (None, Some(_)) => return Err(Error::IncompleteCredentials),
            _ => {}
        }

        Ok(Self {
            host: host.trim().to_owned(),
            port,
            tls,
            username,
            password,
            from,
            timeout,
        })
    }
}

impl fmt::Debug for SmtpSettings {
    /// Shows whether credentials are set, never what they are.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username.as_ref().map(|_| "[redacted]"))
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn parse_port(text: &str) -> Result<u16, Error> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(Error::InvalidVariable {
            variable: "AREA_SMTP_PORT",
            reason: format!("`{text}` is not a TCP port (1 to 65535)"),
        }),
        Ok(port) => Ok(port),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, Error> {
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(Error::InvalidVariable {
            variable: "AREA_SMTP_TIMEOUT_MS",
            reason: format!("`{text}` is not a positive number of milliseconds"),
        }),
        Ok(millis) => Ok(Duration::from_millis(millis)),
    }
}

/// The password from the variable or the file it names; never both, because
/// an operator who set both cannot know which one is used.
fn read_password(
    inline: Option<String>,
    file: Option<String>,
) -> Result<Option<SecretString>, Error> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(Error::InvalidVariable {
            variable: "AREA_SMTP_PASSWORD_FILE",
            reason: "set either AREA_SMTP_PASSWORD or AREA_SMTP_PASSWORD_FILE, not both".into(),
        }),
        (Some(password), None) => Ok(Some(SecretString::from(password))),
        (None, Some(path)) => {
            let contents = std::fs::read_to_string(path.trim())
                .map_err(|source| Error::PasswordFile { source })?;
            let password = contents.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(Error::InvalidVariable {
                    variable: "AREA_SMTP_PASSWORD_FILE",
                    reason: "the file is empty".into(),
                });
            }
            Ok(Some(SecretString::from(password)))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 2] = [
        ("AREA_SMTP_HOST", "smtp.example.com"),
        ("AREA_SMTP_FROM", "AREA <area@example.com>"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<SmtpSettings, Error> {
        let mut pairs = BASE.to_vec();
        pairs.extend_from_slice(extra);
        SmtpSettings::from_lookup(lookup(&pairs))
    }

    #[test]
    fn defaults_to_starttls_on_587_with_ten_second_timeout() {
        let settings = with(&[]).unwrap();
        assert_eq!(settings.host, "smtp.example.com");
        assert_eq!(settings.tls, TlsMode::StartTls);
        assert_eq!(settings.port, 587);
        assert_eq!(settings.timeout, Duration::from_secs(10));
        assert!(settings.username.is_none() && settings.password.is_none());
    }

    #[test]
    fn default_port_follows_tls_mode() {
        assert_eq!(with(&[("AREA_SMTP_TLS", "none")]).unwrap().port, 25);
        assert_eq!(with(&[("AREA_SMTP_TLS", "tls")]).unwrap().port, 465);
        assert_eq!(with(&[("AREA_SMTP_TLS", "STARTTLS")]).unwrap().port, 587);
        let explicit = with(&[("AREA_SMTP_TLS", "tls"), ("AREA_SMTP_PORT", "2465")]).unwrap();
        assert_eq!(explicit.port, 2465);
    }

    #[test]
    fn reads_credentials_and_timeout() {
        let settings = with(&[
            ("AREA_SMTP_USERNAME", "mailer"),
            ("AREA_SMTP_PASSWORD", "hunter2"),
            ("AREA_SMTP_TIMEOUT_MS", "2500"),
        ])
        .unwrap();
        assert_eq!(settings.username.as_deref(), Some("mailer"));
        assert_eq!(
            settings.password.as_ref().unwrap().expose_secret(),
            "hunter2"
        );
        assert_eq!(settings.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn errors_name_the_variable() {
        let missing = SmtpSettings::from_lookup(lookup(&[("AREA_SMTP_FROM", "a@b.c")]));
        assert!(
            matches!(
                missing,
                Err(Error::MissingVariable {
                    variable: "AREA_SMTP_HOST"
                })
            ),
            "{missing:?}"
        );
        let missing = SmtpSettings::from_lookup(lookup(&[("AREA_SMTP_HOST", "h")]));
        assert!(missing.unwrap_err().to_string().contains("AREA_SMTP_FROM"));

        for (variable, value) in [
            ("AREA_SMTP_TLS", "ssl"),
            ("AREA_SMTP_PORT", "70000"),
            ("AREA_SMTP_PORT", "0"),
            ("AREA_SMTP_TIMEOUT_MS", "soon"),
            ("AREA_SMTP_TIMEOUT_MS", "0"),
        ] {
            let error = with(&[(variable, value)]).unwrap_err();
            assert!(
                error.to_string().contains(variable),
                "`{error}` should name {variable}"
            );
        }
        let tls = with(&[("AREA_SMTP_TLS", "ssl")]).unwrap_err().to_string();
        assert!(tls.contains("`none`, `starttls` or `tls`"), "{tls}");
    }

    #[test]
    fn tls_mode_parses_the_three_names_only() {
        assert_eq!("none".parse::<TlsMode>().unwrap(), TlsMode::None);
        assert_eq!("starttls".parse::<TlsMode>().unwrap(), TlsMode::StartTls);
        assert_eq!(" Tls ".parse::<TlsMode>().unwrap(), TlsMode::Tls);
        let error = "smtps".parse::<TlsMode>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown SMTP TLS mode `smtps`: expected `none`, `starttls` or `tls`"
        );
    }

    #[test]
    fn credentials_come_in_pairs() {
        let error = with(&[("AREA_SMTP_USERNAME", "mailer")]).unwrap_err();
        assert!(matches!(error, Error::IncompleteCredentials), "{error:?}");
        let error = with(&[("AREA_SMTP_PASSWORD", "hunter2")]).unwrap_err();
        assert!(matches!(error, Error::IncompleteCredentials), "{error:?}");
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn reads_password_file_without_trailing_newline() {
        let directory =
            std::env::temp_dir().join(format!("reaction-email-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("password");
        std::fs::write(&path, "s3cret with space \n").unwrap();
        let path_text = path.to_str().unwrap().to_owned();

        let mut pairs = BASE.to_vec();
        pairs.push(("AREA_SMTP_USERNAME", "mailer"));
        let settings = SmtpSettings::from_lookup(|name| match name {
            "AREA_SMTP_PASSWORD_FILE" => Some(path_text.clone()),
            _ => lookup(&pairs)(name),
        })
        .unwrap();
        assert_eq!(
            settings.password.as_ref().unwrap().expose_secret(),
            "s3cret with space "
        );

        let both = SmtpSettings::from_lookup(|name| match name {
            "AREA_SMTP_PASSWORD_FILE" => Some(path_text.clone()),
            "AREA_SMTP_PASSWORD" => Some("inline".into()),
            _ => lookup(&pairs)(name),
        });
        assert!(
            both.unwrap_err()
                .to_string()
                .contains("AREA_SMTP_PASSWORD_FILE")
        );

        let absent = SmtpSettings::from_lookup(|name| match name {
            "AREA_SMTP_PASSWORD_FILE" => Some(directory.join("nope").to_str().unwrap().into()),
            _ => lookup(&pairs)(name),
        });
        assert!(
            matches!(absent, Err(Error::PasswordFile { .. })),
            "{absent:?}"
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn debug_hides_password_and_username() {
        let settings = with(&[
            ("AREA_SMTP_USERNAME", "mailer-login"),
            ("AREA_SMTP_PASSWORD", "hunter2-secret"),
        ])
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2-secret"), "{debug}");
        assert!(!debug.contains("mailer-login"), "{debug}");
        assert!(
            debug.contains("smtp.example.com") && debug.contains("[redacted]"),
            "{debug}"
        );
        let pretty = format!("{settings:#?}");
        assert!(!pretty.contains("hunter2-secret"), "{pretty}");
    }
}
