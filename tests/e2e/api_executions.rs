//! The event and execution routes at the router: publish, list with filters
//! and a cursor, show, cancel and retry, with the harness of `api`.

use area_store::{AttemptRecord, RecordedStatus};
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, error_code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_an_event_answers_202_or_names_the_bad_field() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let (area_id, _) = api
        .env
        .area(&[("webhook", json!({"url": "http://127.0.0.1:9/"}))])
        .await?;

    let event = json!({"id": "evt-api", "area_id": area_id, "payload": {"n": 1}}).to_string();
    let (status, body) = api.post("/api/events", Some(&event)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["stream"], api.env.redis.keys().events().as_str());
    let entry_id = body["id"].as_str().unwrap();
    let info = api
        .env
        .redis
        .stream_info(&api.env.redis.keys().events())
        .await?;
    assert_eq!(info.length, 1);
    assert!(entry_id.contains('-'), "a stream entry id: {entry_id}");

    let unknown = Uuid::new_v4();
    for (body, status, field) in [
        (json!({"id": "x"}).to_string(), 422, Some("area_id")),
        (json!({"area_id": "nope"}).to_string(), 422, Some("area_id")),
        (
            json!({"area_id": unknown}).to_string(),
            422,
            Some("area_id"),
        ),
        (
            json!({"area_id": area_id, "occurred_at": "soon"}).to_string(),
            422,
            Some("occurred_at"),
        ),
        (
            json!({"area_id": area_id, "correlation_id": 5}).to_string(),
            422,
            Some("correlation_id"),
        ),
        ("[1, 2]".to_owned(), 422, None),
        ("{not json".to_owned(), 400, None),
        ("x".repeat(1024 * 1024 + 20 * 1024), 413, None),
    ] {
        let (answered, error) = api.post("/api/events", Some(&body)).await?;
        assert_eq!(answered.as_u16(), status, "{error}");
        assert_eq!(error["error"]["field"].as_str(), field, "{error}");
    }
    // The code a dead letter of the same event gets on the stream path.
    let (_, error) = api
        .post(
            "/api/events",
            Some(&json!({"area_id": unknown}).to_string()),
        )
        .await?;
    assert_eq!(error["error"]["code"], "unknown_area", "{error}");
    let info = api
        .env
        .redis
        .stream_info(&api.env.redis.keys().events())
        .await?;
    assert_eq!(info.length, 1, "rejected events are not published");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_newest_first_with_filters_and_a_cursor() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let (area_a, area_b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut ids = Vec::new();
    for (area, event, service) in [
        (area_a, "e1", "webhook"),
        (area_a, "e1", "slack"),
        (area_a, "e2", "webhook"),
        (area_b, "e3", "webhook"),
        (area_b, "e4", "webhook"),
    ] {
        ids.push(api.execution(area, event, service).await?);
        // Distinct queued_at values keep the expected order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    api.set_status(ids[2], "failed").await?;

    let (status, page) = api.get("/api/executions").await?;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().map(Uuid::to_string).collect();
    assert_eq!(listed, newest_first);
    assert!(page["next_cursor"].is_null());

    let count = |page: &Value| page["items"].as_array().unwrap().len();
    for (query, expected) in [
        (format!("area_id={area_a}"), 3),
        (format!("area_id={area_b}&event_id=e3"), 1),
        ("service=slack".to_owned(), 1),
        ("status=failed".to_owned(), 1),
        ("status=queued&service=webhook".to_owned(), 3),
        (format!("reaction_id={}", Uuid::new_v4()), 0),
        (
            "from=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z".to_owned(),
            5,
        ),
        ("until=2000-01-01T00:00:00Z".to_owned(), 0),
    ] {
        let (status, page) = api.get(&format!("/api/executions?{query}")).await?;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(count(&page), expected, "{query}: {page}");
    }

    let mut walked = Vec::new();
    let mut uri = "/api/executions?limit=2".to_owned();
    loop {
        let (status, page) = api.get(&uri).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(count(&page) <= 2);
        walked.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/executions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, newest_first, "pages neither skip nor repeat rows");

    for (query, field) in [
        ("status=done", "status"),
        ("area_id=12", "area_id"),
        ("reaction_id=x", "reaction_id"),
        ("from=yesterday", "from"),
        ("until=0000-01-01T00:00:00Z", "until"),
        ("cursor=garbage", "cursor"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("event_id=a%00b", "event_id"),
        ("staus=failed", "staus"),
        ("limit=1&limit=2", "limit"),
    ] {
        let (status, error) = api.get(&format!("/api/executions?{query}")).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["error"]["field"], field, "{query}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("Failed to deserialize"),
            "{query}: {message}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_is_shown_with_its_attempts() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let id = api.execution(Uuid::new_v4(), "evt-show", "webhook").await?;
    let claimed = api
        .env
        .store
        .claim_executions(&[id], "w1", std::time::Duration::from_secs(60))
        .await?;
    assert_eq!(claimed.len(), 1);
    api.env
        .store
        .record_attempts(
            &[AttemptRecord {
                id,
                attempt: 1,
                status: RecordedStatus::Failed,
                output: None,
                error: Some(json!({"class": "permanent", "code": "http_404", "message": "gone"})),
            }],
            "w1",
        )
        .await?;

    let (status, body) = api.get(&format!("/api/executions/{id}")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], id.to_string());
    assert_eq!(body["status"], "failed");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["event_id"], "evt-show");
    assert_eq!(body["input_payload"]["id"], "evt-show");
    assert_eq!(body["error"]["code"], "http_404");
    assert_eq!(body["attempts"][0]["status"], "failed");
    assert_eq!(body["attempts"][0]["error"]["code"], "http_404");

    let (status, body) = api
        .get(&format!("/api/executions/{}", Uuid::new_v4()))
        .await?;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = api.get("/api/executions/not-a-uuid").await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "id");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_is_idempotent_and_refuses_finished_executions() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let area_id = Uuid::new_v4();
    let queued = api.execution(area_id, "evt-q", "webhook").await?;

    let uri = format!("/api/executions/{queued}/cancel");
    let (status, body) = api
        .post(&uri, Some(r#"{"reason": "sent by mistake"}"#))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["previous_status"], "queued");
    assert_eq!(body["execution"]["status"], "canceled");
    assert_eq!(body["execution"]["error"]["message"], "sent by mistake");
    assert!(body["execution"]["finished_at"].is_string());

    let (status, again) = api.post(&uri, None).await?;
    assert_eq!(status, StatusCode::OK, "canceling twice is fine: {again}");
    assert_eq!(again["previous_status"], "canceled");
    assert_eq!(
        again["execution"]["error"]["message"], "sent by mistake",
        "a repeated cancel keeps the first reason"
    );
    assert_eq!(
        again["execution"]["finished_at"],
        body["execution"]["finished_at"]
    );

    let retrying = api.execution(area_id, "evt-r", "webhook").await?;
    api.sql(&format!(
        "UPDATE executions SET status = 'retry', attempt = 1, next_attempt_at = now() + interval '1 hour', error = '{{\"code\": \"http_503\"}}' WHERE id = '{retrying}'"
    ))
    .await?;
    let (status, body) = api
        .post(&format!("/api/executions/{retrying}/cancel"), Some("{}"))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["previous_status"], "retry");
    assert!(body["execution"]["next_attempt_at"].is_null());
    assert_eq!(body["execution"]["error"]["message"], "canceled by request");

    let done = api.execution(area_id, "evt-ok", "webhook").await?;
    api.set_status(done, "ok").await?;
    let (status, body) = api
        .post(&format!("/api/executions/{done}/cancel"), None)
        .await?;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "already_finished")
    );

    let (status, _) = api
        .post(&format!("/api/executions/{}/cancel", Uuid::new_v4()), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.post("/api/executions/12/cancel", None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = api.post(&uri, Some(r#"{"reason": 12}"#)).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "reason");
    let (status, _) = api.post(&uri, Some("{nope")).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_running_attempt_records_nothing_and_is_never_claimed_again()
-> anyhow::Result<()> {
    let api = Api::new().await?;
    let id = api
        .execution(Uuid::new_v4(), "evt-running", "webhook")
        .await?;
    let lease = std::time::Duration::from_secs(60);
    assert_eq!(
        api.env
            .store
            .claim_executions(&[id], "w1", lease)
            .await?
            .len(),
        1
    );

    let (status, body) = api
        .post(&format!("/api/executions/{id}/cancel"), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["previous_status"], "running");

    // The attempt that was running finishes and tries to record its result.
    let changed = api
        .env
        .store
        .record_attempts(
            &[AttemptRecord {
                id,
                attempt: 1,
                status: RecordedStatus::Ok,
                output: Some(json!({"status": 200})),
                error: None,
            }],
            "w1",
        )
        .await?;
    assert!(
        changed.is_empty(),
        "the late result changed the row: {changed:?}"
    );
    let row = api.env.store.execution(id).await?.unwrap();
    assert_eq!(row.status, "canceled");
    assert!(row.output_payload.is_none());
    assert_eq!(
        row.attempts,
        json!([]),
        "the late result is not logged either"
    );

    assert!(
        api.env
            .store
            .claim_executions(&[id], "w2", lease)
            .await?
            .is_empty(),
        "a canceled execution is never claimed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_schedules_a_new_attempt_of_failed_or_canceled_executions_only() -> anyhow::Result<()>
{
    let api = Api::new().await?;
    let area_id = Uuid::new_v4();
    let failed = api.execution(area_id, "evt-failed", "webhook").await?;
    api.set_status(failed, "failed").await?;

    let (status, body) = api
        .post(&format!("/api/executions/{failed}/retry"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["enqueued"], true);
    assert_eq!(body["execution"]["status"], "retry");
    assert!(body["execution"]["next_attempt_at"].is_string());
    let jobs = api
        .env
        .redis
        .stream_info(&api.env.redis.keys().jobs("webhook"))
        .await?;
    assert_eq!(jobs.length, 1, "one job enqueued");
    let claimed = api
        .env
        .store
        .claim_executions(&[failed], "w1", std::time::Duration::from_secs(60))
        .await?;
    assert_eq!(claimed[0].attempt, 2, "the attempt number keeps counting");

    let canceled = api.execution(area_id, "evt-canceled", "webhook").await?;
    api.post(&format!("/api/executions/{canceled}/cancel"), None)
        .await?;
    let (status, _) = api
        .post(&format!("/api/executions/{canceled}/retry"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);

    for status_name in ["ok", "queued", "running", "retry"] {
        let id = api
            .execution(area_id, &format!("evt-{status_name}"), "webhook")
            .await?;
        api.set_status(id, status_name).await?;
        let (status, body) = api
            .post(&format!("/api/executions/{id}/retry"), None)
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{status_name}: {body}");
        assert_eq!(error_code(&body), "not_retryable");
    }
    let (status, _) = api
        .post(&format!("/api/executions/{}/retry", Uuid::new_v4()), None)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.post("/api/executions/%20/retry", None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    Ok(())
}
