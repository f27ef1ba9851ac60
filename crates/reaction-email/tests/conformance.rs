//! The email reaction against area-core's conformance kit, with the SMTP peers
//! of the integration tests: aiosmtpd (a real SMTP server) for the template
//! case, and the scripted SMTP peer for refusals, dropped connections, a
//! rejected login and silence.

// The integration tests use more of the peers than this file does.
#[allow(dead_code)]
#[path = "it/scripted.rs"]
mod scripted;
#[allow(dead_code)]
#[path = "it/sink.rs"]
mod sink;

use std::time::Duration;

use area_core::testkit::{Conformance, Failure, Hang, HangResult};
use reaction_email::{EmailReaction, SmtpSettings, TlsMode};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::scripted::{Answer, Script, ScriptedServer};
use crate::sink::SmtpSink;

const USERNAME: &str = "conformance-mailer";
const PASSWORD: &str = "c0nformance-passw0rd";

fn settings(port: u16) -> SmtpSettings {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut settings = SmtpSettings::new("127.0.0.1", TlsMode::None, "AREA <area@example.com>");
    settings.port = port;
    settings.timeout = Duration::from_secs(5);
    settings
}

fn reaction(port: u16) -> EmailReaction {
    EmailReaction::new(settings(port)).expect("the reaction builds")
}

async fn scripted(script: Script) -> ScriptedServer {
    ScriptedServer::start(script).await
}

fn mail() -> Value {
    json!({"to": "ann@example.com", "subject": "hello", "text": "hi"})
}

/// A loopback port where nothing listens: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("a bound address").port()
}

#[tokio::test]
async fn email_reaction_conforms() {
    let mut sink = SmtpSink::start().await;
    let no_such_user = scripted(Script {
        rcpt: Answer::Reply("550 5.1.1 no such user here"),
        ..Script::default()
    })
    .await;
    let mailbox_busy = scripted(Script {
        rcpt: Answer::Reply("450 4.2.1 mailbox busy"),
        ..Script::default()
    })
    .await;
    let dropped_after_data = scripted(Script {
        after_data: Answer::Drop,
        ..Script::default()
    })
    .await;
    // A relay that quotes the credentials back, which must not reach the row.
    let login_refused = scripted(Script {
        extensions: &["AUTH PLAIN LOGIN"],
        auth: Answer::Reply(
            "535 5.7.8 authentication failed for conformance-mailer with c0nformance-passw0rd",
        ),
        ..Script::default()
    })
    .await;
    let silent = scripted(Script {
        greeting: None,
        ..Script::default()
    })
    .await;
    let mut authenticated = settings(login_refused.port);
    authenticated.username = Some(USERNAME.into());
    authenticated.password = Some(SecretString::from(PASSWORD));

    let report = Conformance::new(reaction(sink.port))
        .service("email")
        .invalid_config(json!({"subject": "s", "text": "t"}), "to")
        .invalid_config(json!({"to": "ann@example.com", "text": "t"}), "subject")
        .invalid_config(json!({"to": "ann@example.com", "subject": "s"}), "text")
        .invalid_config(
            json!({"to": ["ok@example.com", "bad address@"], "subject": "s", "text": "t"}),
            "to.1",
        )
        .invalid_config(
            json!({"to": "ann@example.com", "subject": "s", "text": "t", "bcc": "x@example.com"}),
            "bcc",
        )
        .template(json!({
            "to": "{{ payload.user.name }} <{{ payload.user.email }}>",
            "subject": "{{ payload.count }} pushes to {{ payload.repository }}",
            "text": "pushed by {{ payload.user.name }}",
        }))
        .failure(
            Failure::permanent("unknown recipient", mail(), "smtp_550")
                .on(reaction(no_such_user.port)),
        )
        .failure(
            Failure::retryable("mailbox busy", mail(), "smtp_450").on(reaction(mailbox_busy.port)),
        )
        .failure(
            Failure::retryable("dropped after the data", mail(), "connection_lost")
                .possible_duplicate(true)
                .on(reaction(dropped_after_data.port)),
        )
        .failure(
            Failure::retryable("relay down", mail(), "connection_failed")
                .on(reaction(closed_port())),
        )
        .failure(
            Failure::permanent("login refused", mail(), "smtp_535")
                .on(EmailReaction::new(authenticated).expect("the reaction builds")),
        )
        .hang(Hang::new(mail()).on(reaction(silent.port)))
        .secret(USERNAME)
        .secret(PASSWORD)
        .run()
        .await;

    let received = sink.next_message().await;
    assert_eq!(received.rcpt_tos, ["ada@example.com"]);
    assert_eq!(received.message.header("Subject"), "3 pushes to area");
    assert_eq!(
        report.template_outcome.expect("ran").output["recipients"],
        1
    );

    // Each SMTP step is bounded by the relay's own timeout (5 s here), not by
    // the attempt's: against a silent relay the engine's cancellation at the
    // attempt timeout is what ends the attempt.
    assert!(
        matches!(report.hang, Some(HangResult::Cancelled { .. })),
        "{:?}",
        report.hang
    );
}
