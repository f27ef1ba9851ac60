//! Request forgery protection: blocked destinations are refused before any
//! connection, and the allow-list lifts exactly what it names.
//!
//! These tests never send traffic anywhere but loopback: the private and
//! link-local addresses they use must be refused before a connection is even
//! attempted, which the quick failure (and the silent loopback receiver) shows.

use std::time::{Duration, Instant};

use area_core::{ErrorClass, Reaction, ReactionError};
use reaction_webhook::{WebhookReaction, WebhookSettings};
use serde_json::json;

use crate::peers::{Receiver, Reply};
use crate::{context, expect_error, reaction_with, settings};

async fn attempt(
    reaction: &WebhookReaction,
    url: &str,
) -> Result<area_core::Outcome, ReactionError> {
    reaction.execute(&context(json!({"url": url}))).await
}

fn assert_blocked(error: &ReactionError, url: &str) {
    assert_eq!(error.code, "blocked_destination", "{url}: {error}");
    assert_eq!(error.class, ErrorClass::Permanent, "{url}");
}

#[tokio::test]
async fn blocks_loopback_in_every_spelling_without_an_allow_list() {
    let receiver = Receiver::start(Reply::new(200, "reached")).await;
    let reaction = reaction_with(settings(""));
    let port = receiver.port();

    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::ffff:7f00:1]:{port}/"),
        format!("http://[64:ff9b::7f00:1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("https://127.0.0.1:{port}/"),
    ] {
        let error = expect_error(attempt(&reaction, &url).await);
        assert_blocked(&error, &url);
    }

    assert!(
        receiver.requests().is_empty(),
        "no request reached the receiver"
    );
}

#[tokio::test]
async fn blocks_private_and_metadata_addresses_before_connecting() {
    let reaction = reaction_with(settings(""));

    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://192.0.2.1/",
    ] {
        let started = Instant::now();
        let error = expect_error(attempt(&reaction, url).await);
        assert_blocked(&error, url);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{url} was refused without a connection attempt"
        );
    }
}

#[tokio::test]
async fn names_the_blocked_range() {
    let reaction = reaction_with(settings(""));

    let error = expect_error(attempt(&reaction, "http://169.254.169.254/").await);
    assert_eq!(
        error.message,
        "169.254.169.254 is a blocked address: link-local (169.254.0.0/16)"
    );

    let error = expect_error(attempt(&reaction, "http://localhost:9/").await);
    assert!(
        error
            .message
            .starts_with("localhost resolves only to blocked addresses"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn allowing_an_address_reaches_it_and_nothing_else() {
    let receiver = Receiver::start(Reply::new(200, "reached")).await;
    let reaction = reaction_with(settings("127.0.0.1"));
    let port = receiver.port();

    attempt(&reaction, &format!("http://127.0.0.1:{port}/"))
        .await
        .expect("the allowed address is reached");
    // localhost resolves to 127.0.0.1 (allowed) and maybe ::1 (dropped).
    attempt(&reaction, &format!("http://localhost:{port}/"))
        .await
        .expect("localhost is reached through its allowed address");
    assert_eq!(receiver.requests().len(), 2);

    for url in [
        format!("http://127.0.0.2:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://10.1.2.3/".to_owned(),
        "http://169.254.169.254/".to_owned(),
    ] {
        let error = expect_error(attempt(&reaction, &url).await);
        assert_blocked(&error, &url);
    }
    assert_eq!(
        receiver.requests().len(),
        2,
        "nothing else reached the receiver"
    );
}

#[tokio::test]
async fn allowing_a_host_name_reaches_that_name_only() {
    let receiver = Receiver::start(Reply::new(200, "reached")).await;
    let reaction = reaction_with(settings("localhost"));
    let port = receiver.port();

    attempt(&reaction, &format!("http://localhost:{port}/"))
        .await
        .expect("the allowed host is reached");
    assert_eq!(receiver.requests().len(), 1);

    let url = format!("http://127.0.0.1:{port}/");
    let error = expect_error(attempt(&reaction, &url).await);
    assert_blocked(&error, &url);
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn allowing_a_network_reaches_addresses_inside_it() {
    let receiver = Receiver::start(Reply::new(200, "reached")).await;
    let reaction = reaction_with(settings("127.0.0.0/8"));

    attempt(
        &reaction,
        &format!("http://2130706433:{}/", receiver.port()),
    )
    .await
    .expect("a numeric spelling of an allowed address is reached");
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn only_http_and_https_are_allowed() {
    let reaction = reaction_with(settings("127.0.0.1"));

    for url in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1/",
    ] {
        let error = expect_error(attempt(&reaction, url).await);
        assert_eq!(error.code, "invalid_config", "{url}");
        assert_eq!(error.class, ErrorClass::Permanent);
        assert!(
            error.message.contains("only http and https"),
            "{}",
            error.message
        );
    }
}

#[tokio::test]
async fn describes_the_allow_list_for_the_start_up_log() {
    let reaction = reaction_with(settings("127.0.0.1, ::1 ,localhost,10.0.0.0/8"));
    assert_eq!(
        reaction.describe_allow_list(),
        "127.0.0.1/32, ::1/128, localhost, 10.0.0.0/8"
    );
    let reaction = reaction_with(WebhookSettings::default());
    assert_eq!(reaction.describe_allow_list(), "none");
}
