//! How failures are classified, against a scripted SMTP peer: by reply code,
//! by how far the conversation got, and with every wait bounded.

use std::time::{Duration, Instant};

use area_core::{ErrorClass, Reaction, ReactionError};
use reaction_email::{EmailReaction, TlsMode};
use secrecy::SecretString;

use crate::scripted::{Answer, Script, ScriptedServer};
use crate::{context, install_crypto_provider, plain_reaction, settings, simple_config};

async fn send_to(reaction: &EmailReaction) -> ReactionError {
    reaction
        .execute(&context(simple_config()))
        .await
        .expect_err("the scripted peer is set up to fail")
}

fn reaction(port: u16, tls: TlsMode, timeout: Duration) -> EmailReaction {
    install_crypto_provider();
    EmailReaction::new(settings(port, tls, timeout)).unwrap()
}

#[tokio::test]
async fn greeting_421_is_retryable() {
    let server = ScriptedServer::start(Script {
        greeting: Some("421 4.3.2 service not available, try later"),
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(server.port)).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "smtp_421");
    assert!(!error.possible_duplicate);
}

#[tokio::test]
async fn rcpt_450_is_retryable_and_sends_no_data() {
    let server = ScriptedServer::start(Script {
        rcpt: Answer::Reply("450 4.2.1 mailbox busy"),
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(server.port)).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "smtp_450");
    assert!(!error.possible_duplicate);
    assert!(!server.log().saw("DATA"), "{:?}", server.log());
}

#[tokio::test]
async fn rcpt_550_is_permanent() {
    let server = ScriptedServer::start(Script {
        rcpt: Answer::Reply("550 5.1.1 no such user here"),
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(server.port)).await;

    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "smtp_550");
    assert!(error.message.contains("RCPT TO"), "{}", error.message);
}

#[tokio::test]
async fn reply_code_decides_even_when_the_text_says_otherwise() {
    let permanent = ScriptedServer::start(Script {
        rcpt: Answer::Reply("550 temporary problem, please try again later"),
        ..Script::default()
    })
    .await;
    let transient = ScriptedServer::start(Script {
        after_data: Answer::Reply("451 permanent failure, do not retry"),
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(permanent.port)).await;
    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "smtp_550");

    let error = send_to(&plain_reaction(transient.port)).await;
    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "smtp_451");
}

#[tokio::test]
async fn temporary_refusal_of_the_data_is_retryable_without_duplicate() {
    let server = ScriptedServer::start(Script {
        after_data: Answer::Reply("451 4.3.0 queue full"),
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(server.port)).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "smtp_451");
    assert!(
        !error.possible_duplicate,
        "the server said it did not take the message"
    );
}

#[tokio::test]
async fn connection_dropped_after_the_data_may_have_delivered() {
    let server = ScriptedServer::start(Script {
        after_data: Answer::Drop,
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(server.port)).await;

    assert!(
        server.log().saw("<message"),
        "the data should have been sent: {:?}",
        server.log()
    );
    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert!(error.possible_duplicate, "{error:?}");
}

#[tokio::test]
async fn connection_dropped_before_the_data_is_retryable_without_duplicate() {
    let server = ScriptedServer::start(Script {
        rcpt: Answer::Drop,
        ..Script::default()
    })
    .await;

    let error = send_to(&plain_reaction(server.port)).await;

    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "connection_lost");
    assert!(!error.possible_duplicate, "{error:?}");
}

#[tokio::test]
async fn starttls_against_a_silent_port_fails_permanently_within_the_timeout() {
    let server = ScriptedServer::start(Script {
        greeting: None,
        ..Script::default()
    })
    .await;
    let reaction = reaction(server.port, TlsMode::StartTls, Duration::from_millis(300));

    let started = Instant::now();
    let error = send_to(&reaction).await;

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "tls_mismatch");
    assert!(error.message.contains("implicit TLS"), "{}", error.message);
}

#[tokio::test]
async fn starttls_not_offered_fails_permanently_without_any_plain_text_mail() {
    let server = ScriptedServer::start(Script {
        extensions: &["8BITMIME", "AUTH PLAIN LOGIN"],
        ..Script::default()
    })
    .await;
    install_crypto_provider();
    let mut settings = settings(server.port, TlsMode::StartTls, Duration::from_secs(5));
    settings.username = Some("mailer-user".into());
    settings.password = Some(SecretString::from("s3cret-pass"));
    let reaction = EmailReaction::new(settings).unwrap();

    let error = send_to(&reaction).await;

    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "smtp_tls");
    let log = server.log();
    assert!(log.saw("EHLO"), "{log:?}");
    assert!(!log.saw("MAIL"), "no plain-text fallback: {log:?}");
    assert!(
        !log.saw("AUTH"),
        "credentials must not go out in plain text: {log:?}"
    );
}

#[tokio::test]
async fn implicit_tls_against_a_plain_server_fails_permanently_and_promptly() {
    let server = ScriptedServer::start(Script::default()).await;
    let reaction = reaction(server.port, TlsMode::Tls, Duration::from_secs(5));

    let started = Instant::now();
    let error = send_to(&reaction).await;

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "tls_mismatch", "{error:?}");
    assert!(!server.log().saw("MAIL"), "{:?}", server.log());
}

#[tokio::test]
async fn implicit_tls_against_a_silent_port_ends_within_the_timeout() {
    let server = ScriptedServer::start(Script {
        greeting: None,
        ..Script::default()
    })
    .await;
    let reaction = reaction(server.port, TlsMode::Tls, Duration::from_millis(300));

    let started = Instant::now();
    let error = send_to(&reaction).await;

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // A TLS server that stalls its handshake is not a mode mismatch we can
    // recognise, so it is retried like any other timeout.
    assert_eq!(error.class, ErrorClass::Retryable, "{error:?}");
    assert_eq!(error.code, "timeout");
    assert!(!error.possible_duplicate);
}

#[tokio::test]
async fn rejected_login_is_permanent_and_never_names_the_credentials() {
    let server = ScriptedServer::start(Script {
        extensions: &["AUTH PLAIN LOGIN"],
        auth: Answer::Reply("535 5.7.8 authentication failed for mailer-user with s3cret-pass"),
        ..Script::default()
    })
    .await;
    let mut settings = settings(server.port, TlsMode::None, Duration::from_secs(5));
    settings.username = Some("mailer-user".into());
    settings.password = Some(SecretString::from("s3cret-pass"));
    let reaction = EmailReaction::new(settings).unwrap();

    let error = send_to(&reaction).await;

    assert_eq!(error.class, ErrorClass::Permanent, "{error:?}");
    assert_eq!(error.code, "smtp_535");
    let stored = serde_json::to_string(&error).unwrap();
    assert!(!stored.contains("s3cret-pass"), "{stored}");
    assert!(!stored.contains("mailer-user"), "{stored}");
    assert!(!format!("{reaction:?}").contains("mailer-user"));
    assert!(!server.log().saw("MAIL"));
}

#[tokio::test]
async fn successful_connection_is_reused_for_the_next_message() {
    let server = ScriptedServer::start(Script::default()).await;
    let reaction = plain_reaction(server.port);

    for _ in 0..3 {
        let outcome = reaction.execute(&context(simple_config())).await.unwrap();
        assert_eq!(outcome.output["reply"]["code"], 250);
    }

    let log = server.log();
    assert_eq!(log.connections, 1, "{log:?}");
    assert!(
        log.saw("NOOP"),
        "a parked connection is checked before reuse: {log:?}"
    );
}

#[tokio::test]
async fn failed_connection_is_not_reused() {
    let server = ScriptedServer::start(Script {
        rcpt: Answer::Reply("452 4.5.3 too many recipients"),
        ..Script::default()
    })
    .await;
    let reaction = plain_reaction(server.port);

    for _ in 0..2 {
        assert_eq!(send_to(&reaction).await.code, "smtp_452");
    }

    assert_eq!(server.log().connections, 2, "{:?}", server.log());
}
