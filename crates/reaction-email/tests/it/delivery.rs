//! What arrives at a real SMTP server (aiosmtpd), read back through Python's
//! `email` parser: envelope, headers, MIME structure, non-ASCII text intact.

use area_core::Reaction;
use serde_json::json;

use crate::sink::SmtpSink;
use crate::{DEDUP_KEY, context, plain_reaction};

/// Line endings as Python hands back decoded bodies vary; compare text only.
fn normalised(text: &str) -> String {
    text.replace("\r\n", "\n").trim_end_matches('\n').to_owned()
}

#[tokio::test]
async fn plain_text_mail_arrives_with_ids_and_the_output_keeps_the_reply() {
    let mut sink = SmtpSink::start().await;
    let reaction = plain_reaction(sink.port);

    let outcome = reaction
        .execute(&context(json!({
            "to": "Ann <ann@example.com>",
            "subject": "Build passed",
            "text": "All green.\nSee you.",
        })))
        .await
        .expect("the sink accepts every message");
    let received = sink.next_message().await;

    assert_eq!(received.mail_from, "area@example.com");
    assert_eq!(received.rcpt_tos, ["ann@example.com"]);
    let message = &received.message;
    assert_eq!(message.header("Subject"), "Build passed");
    assert_eq!(message.header("From"), "AREA Worker <area@example.com>");
    assert_eq!(message.header("To"), "Ann <ann@example.com>");
    assert_eq!(message.header("X-Area-Dedup-Key"), DEDUP_KEY);
    assert_eq!(message.content_type, "text/plain");
    assert_eq!(message.parts.len(), 1);
    assert_eq!(
        normalised(&message.parts[0].content),
        "All green.\nSee you."
    );

    let output = &outcome.output;
    assert_eq!(
        output["message_id"],
        message.header("Message-ID"),
        "{output}"
    );
    assert_eq!(output["reply"]["code"], 250, "{output}");
    let reply_lines = output["reply"]["message"].as_array().unwrap();
    assert!(
        reply_lines
            .iter()
            .any(|line| line.as_str().unwrap().contains("queued as sink-1")),
        "the server's own reply text should be kept: {output}"
    );
    assert_eq!(output["recipients"], 1);
}

#[tokio::test]
async fn text_and_html_are_sent_as_multipart_alternative() {
    let mut sink = SmtpSink::start().await;
    let reaction = plain_reaction(sink.port);

    reaction
        .execute(&context(json!({
            "to": "ann@example.com",
            "subject": "Report",
            "text": "plain version",
            "html": "<p>html <b>version</b></p>",
        })))
        .await
        .unwrap();
    let message = sink.next_message().await.message;

    assert_eq!(message.content_type, "multipart/alternative");
    let types: Vec<&str> = message
        .parts
        .iter()
        .map(|part| part.content_type.as_str())
        .collect();
    assert_eq!(
        types,
        ["text/plain", "text/html"],
        "plain first, as RFC 2046 asks"
    );
    assert_eq!(normalised(&message.parts[0].content), "plain version");
    assert_eq!(
        normalised(&message.parts[1].content),
        "<p>html <b>version</b></p>"
    );
}

#[tokio::test]
async fn html_only_mail_is_a_single_html_part() {
    let mut sink = SmtpSink::start().await;
    let reaction = plain_reaction(sink.port);

    reaction
        .execute(&context(
            json!({"to": "ann@example.com", "subject": "s", "html": "<i>hi</i>"}),
        ))
        .await
        .unwrap();
    let message = sink.next_message().await.message;

    assert_eq!(message.content_type, "text/html");
    assert_eq!(normalised(&message.parts[0].content), "<i>hi</i>");
}

#[tokio::test]
async fn every_to_and_cc_recipient_is_in_the_envelope_and_reply_to_is_set() {
    let mut sink = SmtpSink::start().await;
    let reaction = plain_reaction(sink.port);

    let outcome = reaction
        .execute(&context(json!({
            "to": ["ann@example.com", "Bob <bob@example.org>"],
            "cc": ["carol@example.net"],
            "reply_to": "Support <support@example.com>",
            "subject": "Team note",
            "text": "hello all",
        })))
        .await
        .unwrap();
    let received = sink.next_message().await;

    let mut recipients = received.rcpt_tos.clone();
    recipients.sort();
    assert_eq!(
        recipients,
        ["ann@example.com", "bob@example.org", "carol@example.net"]
    );
    let message = &received.message;
    assert_eq!(
        message.header("To"),
        "ann@example.com, Bob <bob@example.org>"
    );
    assert_eq!(message.header("Cc"), "carol@example.net");
    assert_eq!(message.header("Reply-To"), "Support <support@example.com>");
    assert!(!message.headers.contains_key("bcc"));
    assert_eq!(outcome.output["recipients"], 3);
}

#[tokio::test]
async fn non_ascii_subject_and_body_arrive_unchanged() {
    let mut sink = SmtpSink::start().await;
    let reaction = plain_reaction(sink.port);
    let subject = "Résumé ✅ 東京";
    let text = "Grüße aus 東京 — ✅ naïve café\nligne deux: ½ € 😀";
    let html = "<p>Grüße aus 東京 ✅</p>";

    reaction
        .execute(&context(json!({
            "to": "Zoë Ünïcode <zoe@example.com>",
            "subject": subject,
            "text": text,
            "html": html,
        })))
        .await
        .unwrap();
    let received = sink.next_message().await;

    assert!(
        received.raw.is_ascii(),
        "headers and bodies should be encoded on the wire: {}",
        received.raw
    );
    let message = &received.message;
    assert_eq!(message.header("Subject"), subject);
    assert_eq!(message.header("To"), "Zoë Ünïcode <zoe@example.com>");
    assert_eq!(normalised(&message.parts[0].content), text);
    assert_eq!(normalised(&message.parts[1].content), html);
    assert!(
        message
            .parts
            .iter()
            .all(|part| part.charset.as_deref() == Some("utf-8")),
        "{:?}",
        message.parts
    );
}

#[tokio::test]
async fn one_reaction_sends_many_messages_over_its_pool() {
    let mut sink = SmtpSink::start().await;
    let reaction = plain_reaction(sink.port);

    for index in 0..3 {
        let subject = format!("message {index}");
        reaction
            .execute(&context(
                json!({"to": "ann@example.com", "subject": subject, "text": "t"}),
            ))
            .await
            .unwrap();
        let message = sink.next_message().await.message;
        assert_eq!(message.header("Subject"), subject);
    }
}
