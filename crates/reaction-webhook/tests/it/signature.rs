//! Signatures checked by an independent implementation: the Python
//! `standardwebhooks` package, run on the request the receiver captured.
//!
//! These tests need `python3` and `python3 -m pip install standardwebhooks`;
//! without them they fail and say so, they do not skip.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use area_core::Reaction;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::peers::{Captured, Receiver, Reply};
use crate::{DEDUP_KEY, context, loopback_reaction};

/// A Standard Webhooks secret, as a receiver's library would generate it.
const WHSEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const INSTALL_HINT: &str =
    "install Python 3 and the verifier's package: `python3 -m pip install standardwebhooks`";

/// What the Python verifier said about a request.
#[derive(Debug, PartialEq)]
enum Verdict {
    Verified,
    Rejected(String),
}

/// Runs `tests/verify_standard_webhooks.py` on `request`.
fn verify_with_python(
    secret: &str,
    is_raw: bool,
    headers: serde_json::Value,
    body: &[u8],
) -> Verdict {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/verify_standard_webhooks.py"
    );
    let input = json!({
        "secret": secret,
        "secret_is_raw": is_raw,
        "headers": headers,
        "body_base64": STANDARD.encode(body),
    });

    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run python3 ({error}): {INSTALL_HINT}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.to_string().as_bytes())
        .expect("write to the verifier");
    let output = child.wait_with_output().expect("the verifier finishes");

    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => Verdict::Verified,
        Some(1) => Verdict::Rejected(stderr),
        Some(2) => panic!("{stderr}{INSTALL_HINT}"),
        _ => panic!("the verifier failed: {stderr}"),
    }
}

fn signature_headers(request: &Captured) -> serde_json::Value {
    json!({
        "webhook-id": request.header("webhook-id"),
        "webhook-timestamp": request.header("webhook-timestamp"),
        "webhook-signature": request.header("webhook-signature"),
    })
}

async fn signed_request(config: serde_json::Value) -> Captured {
    let receiver = Receiver::start(Reply::new(200, "ok")).await;
    let mut config = config;
    config["url"] = json!(receiver.url("/signed"));
    loopback_reaction()
        .execute(&context(config))
        .await
        .expect("the webhook is delivered");
    receiver.single_request()
}

#[tokio::test]
async fn signature_of_the_default_body_verifies_with_standardwebhooks() {
    let request = signed_request(json!({"secret": WHSEC_SECRET})).await;

    assert_eq!(request.header("webhook-id"), DEDUP_KEY);
    let timestamp: u64 = request
        .header("webhook-timestamp")
        .parse()
        .expect("the timestamp is unix seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        now.abs_diff(timestamp) < 60,
        "timestamp {timestamp}, now {now}"
    );
    assert!(request.header("webhook-signature").starts_with("v1,"));

    assert_eq!(
        verify_with_python(
            WHSEC_SECRET,
            false,
            signature_headers(&request),
            &request.body
        ),
        Verdict::Verified
    );
}

#[tokio::test]
async fn signature_of_a_text_body_with_a_raw_secret_verifies() {
    let raw_secret = "a plain shared secret, not base64";
    let request = signed_request(json!({
        "secret": raw_secret,
        "method": "PUT",
        "body": "héllo {{ not a template here }}",
    }))
    .await;

    assert_eq!(
        verify_with_python(raw_secret, true, signature_headers(&request), &request.body),
        Verdict::Verified
    );
}

#[tokio::test]
async fn the_verifier_rejects_a_tampered_body() {
    let request = signed_request(json!({"secret": WHSEC_SECRET})).await;
    let mut tampered = request.body.to_vec();
    tampered.extend_from_slice(b" ");

    let verdict = verify_with_python(WHSEC_SECRET, false, signature_headers(&request), &tampered);

    assert!(
        matches!(&verdict, Verdict::Rejected(reason) if reason.contains("No matching signature")),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn the_secret_never_appears_in_errors_or_outputs() {
    let receiver = Receiver::start(Reply::new(500, "oops")).await;
    let reaction = loopback_reaction();
    let config = json!({"url": receiver.url("/"), "secret": WHSEC_SECRET});

    let error = reaction
        .execute(&context(config.clone()))
        .await
        .expect_err("a 500 is an error");
    let shown = format!(
        "{error} {error:?} {}",
        serde_json::to_string(&error).unwrap()
    );
    assert!(
        !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{shown}"
    );

    let mut bad = config;
    bad["secret"] = json!("whsec_!!not-base64-but-secret!!");
    let error = reaction.validate(&bad).unwrap_err();
    assert_eq!(error.field, "secret");
    assert!(
        !error.to_string().contains("not-base64-but-secret"),
        "{error}"
    );
}
