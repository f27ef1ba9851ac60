//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>): the
//! `webhook-signature` header that lets a receiver check a request came from
//! us and was not altered.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`, with the
//! body exactly as sent; the signature is `v1,` followed by the standard base64
//! of its HMAC-SHA256.
//!
//! The key is derived from the config's `secret`:
//! - `whsec_<base64>`, the Standard Webhooks form: the key is the base64-decoded
//!   part after the prefix (padding optional). This is what the Standard
//!   Webhooks libraries expect, so give receivers using them a `whsec_` secret.
//! - any other string: the key is the secret's UTF-8 bytes, unchanged. The
//!   Standard Webhooks libraries verify such signatures when given the secret
//!   as raw bytes (`Webhook(b"...")` in Python), not as a string, which they
//!   would base64-decode.
//!
//! The key never leaves this module in printable form: [`SigningKey`]'s
//! `Debug` is redacted and no error quotes the secret.

use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";

/// Standard base64, with or without padding, as the Standard Webhooks libraries
/// accept secrets.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The HMAC key of a webhook's `secret`.
pub(crate) struct SigningKey(SecretSlice<u8>);

impl SigningKey {
    /// The key of `secret`; the error says what is wrong without quoting it.
    pub fn parse(secret: &str) -> Result<Self, &'static str> {
        let key = match secret.strip_prefix(SECRET_PREFIX) {
            Some(encoded) => LENIENT_BASE64
                .decode(encoded)
                .map_err(|_| "the part after `whsec_` is not valid base64")?,
            None => secret.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err("the secret is empty");
        }
        Ok(Self(SecretSlice::from(key)))
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, message_id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .expect("HMAC accepts keys of any length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SigningKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed with the Python `standardwebhooks` package 1.3.0:
    /// `Webhook(SECRET).sign(ID, datetime.fromtimestamp(TIMESTAMP, tz=timezone.utc), BODY)`.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn matches_the_standard_webhooks_library() {
        let key = SigningKey::parse(SECRET).unwrap();
        assert_eq!(
            key.sign(ID, TIMESTAMP, BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn accepts_unpadded_secrets() {
        // 31 key bytes: the padded form ends in `=`.
        let padded =
            SigningKey::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==").unwrap();
        let unpadded =
            SigningKey::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg").unwrap();
        assert_eq!(
            padded.sign(ID, TIMESTAMP, BODY),
            unpadded.sign(ID, TIMESTAMP, BODY)
        );
    }

    #[test]
    fn signs_with_raw_bytes_without_the_prefix() {
        // Computed with the Python `standardwebhooks` package 1.3.0:
        // `Webhook(b"plain shared secret").sign(ID, ..., BODY)`.
        let key = SigningKey::parse("plain shared secret").unwrap();
        assert_eq!(
            key.sign(ID, TIMESTAMP, BODY),
            "v1,toTq5QZWB2iWvBzgy1aouN/o6OGkZoS44tPURr6yqLw="
        );
    }

    #[test]
    fn rejects_bad_secrets_without_quoting_them() {
        assert_eq!(
            SigningKey::parse("whsec_not base64!").unwrap_err(),
            "the part after `whsec_` is not valid base64"
        );
        assert_eq!(
            SigningKey::parse("whsec_").unwrap_err(),
            "the secret is empty"
        );
        assert_eq!(SigningKey::parse("").unwrap_err(), "the secret is empty");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SigningKey::parse("plain shared secret").unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
    }
}
