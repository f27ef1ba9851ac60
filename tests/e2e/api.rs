//! The REST API at the router: every route's success and error paths, called
//! with `oneshot` against the test's own database and Redis keys. No engine
//! runs here; the tests put the rows and entries in place themselves. The
//! event and execution routes are tested in `api_executions`, with the
//! harness defined here.

use std::sync::Arc;

use area_e2e::TestEnv;
use area_store::NewExecution;
use area_stream::{Consumer, DeadLetterReason, Entry, Job, ScheduledRetry};
use area_worker::EngineState;
use area_worker::api::{self, ApiState, MutationAccess};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// A router over the test's environment, with the state it steers.
pub(crate) struct Api {
    pub(crate) env: TestEnv,
    pub(crate) state: ApiState,
    router: Router,
}

impl Api {
    pub(crate) async fn new() -> anyhow::Result<Self> {
        Self::with_access(|_| MutationAccess::Open).await
    }

    async fn with_access(access: impl Fn(&TestEnv) -> MutationAccess) -> anyhow::Result<Self> {
        let env = TestEnv::new().await?;
        let lookup = |name: &str| (name == "AREA_WEBHOOK_ALLOW").then(|| "127.0.0.1".to_owned());
        let registry = area_worker::reactions::registry_from_lookup(lookup)?;
        let mut state = ApiState::new(
            env.store.clone(),
            env.redis.clone(),
            registry,
            Arc::new(EngineState::default()),
            "router-test",
        );
        state.access = access(&env);
        let router = api::router(state.clone());
        Ok(Self { env, state, router })
    }

    pub(crate) async fn get(&self, uri: &str) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::GET, uri, None, None).await
    }

    pub(crate) async fn post(
        &self,
        uri: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.call(Method::POST, uri, body, None).await
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<&str>,
        authorization: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request = request.body(Body::from(body.unwrap_or_default().to_owned()))?;
        self.send(request).await
    }

    /// Sends a request the test built itself, headers and all.
    pub(crate) async fn send(&self, request: Request<Body>) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        let value = if is_json {
            serde_json::from_slice(&bytes)?
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        Ok((status, value))
    }

    /// One execution row of `event_id`, queued, for a new reaction of `area_id`.
    pub(crate) async fn execution(
        &self,
        area_id: Uuid,
        event_id: &str,
        service: &str,
    ) -> anyhow::Result<Uuid> {
        let reaction_id = Uuid::new_v4();
        let id = Uuid::now_v7();
        self.env
            .store
            .insert_executions(&[NewExecution {
                id,
                area_id,
                reaction_id,
                event_id: event_id.to_owned(),
                service: service.to_owned(),
                input_payload: json!({"id": event_id, "area_id": area_id}),
                correlation_id: None,
                dedup_key: NewExecution::dedup_key(event_id, reaction_id),
            }])
            .await?;
        Ok(id)
    }

    /// Sets a row's status behind the store's back, as a finished run would.
    /// Moves an execution to `status` as the worker would have: `retry`,
    /// `failed` and `canceled` rows carry an error (the schema requires it).
    pub(crate) async fn set_status(&self, id: Uuid, status: &str) -> anyhow::Result<()> {
        let error = match status {
            "retry" | "failed" | "canceled" => {
                r#"'{"class": "permanent", "code": "http_404", "message": "set by the test"}'"#
            }
            _ => "NULL",
        };
        self.sql(&format!(
            "UPDATE executions SET status = '{status}', attempt = 1, error = {error} WHERE id = '{id}'"
        ))
        .await
    }

    pub(crate) async fn sql(&self, statement: &str) -> anyhow::Result<()> {
        let mut connection = AsyncPgConnection::establish(&self.env.database_url).await?;
        diesel::sql_query(statement)
            .execute(&mut connection)
            .await?;
        Ok(())
    }
}

/// Asserts the error shape and code, and returns the message.
pub(crate) fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_and_unknown_routes_and_methods_answer_json_errors() -> anyhow::Result<()> {
    let api = Api::new().await?;

    let (status, body) = api.get("/healthz").await?;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    let (status, body) = api.get("/api/nothing-here").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");

    let (status, body) = api
        .call(Method::DELETE, "/api/executions", None, None)
        .await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "method_not_allowed");
    let (status, body) = api.get("/api/worker/pause").await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_needs_a_started_engine_and_the_groups() -> anyhow::Result<()> {
    let api = Api::new().await?;

    let (status, body) = api.get("/readyz").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&body), "unavailable");

    api.state.state.set_ready(true);
    let (status, body) = api.get("/readyz").await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("group is missing"),
        "{body}"
    );

    let (status, _) = api.post("/api/worker/initialize-stream", None).await?;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.get("/readyz").await?;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_stream_creates_groups_once() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let keys = api.env.redis.keys().clone();

    let (status, first) = api.post("/api/worker/initialize-stream", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first,
        json!({"streams": [
            {"stream": keys.events(), "created": true},
            {"stream": keys.jobs("webhook"), "created": true},
        ]})
    );
    let (status, second) = api.post("/api/worker/initialize-stream", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        second["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|stream| stream["created"] == false),
        "the second call creates nothing: {second}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pause_and_resume() -> anyhow::Result<()> {
    let api = Api::new().await?;

    let (status, body) = api.get("/api/worker/status").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["consumer"], "router-test");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["services"], json!(["webhook"]));
    assert_eq!(body["state"], "running");
    assert_eq!(body["in_flight"], 0);
    assert_eq!(body["group"], "area-workers");
    assert_eq!(body["stream_prefix"], api.env.prefix.as_str());

    let (status, body) = api.post("/api/worker/pause", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"state": "paused", "in_flight": 0}));
    assert!(api.state.state.is_paused(), "the engine sees the pause");
    let (_, body) = api.post("/api/worker/pause", None).await?;
    assert_eq!(body["state"], "paused", "pausing twice is fine");
    let (_, body) = api.get("/api/worker/status").await?;
    assert_eq!(body["state"], "paused");

    let (status, body) = api.post("/api/worker/resume", None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "running");
    assert!(!api.state.state.is_paused());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_count_every_status_overall_and_per_service() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let (status, empty) = api.get("/api/worker/statistics").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["total"], 0);
    assert_eq!(empty["by_status"]["canceled"], 0, "every status is listed");

    let area_id = Uuid::new_v4();
    for (event, service, status) in [
        ("a", "webhook", "ok"),
        ("b", "webhook", "ok"),
        ("c", "webhook", "failed"),
        ("d", "slack", "retry"),
        ("e", "slack", "queued"),
    ] {
        let id = api.execution(area_id, event, service).await?;
        api.set_status(id, status).await?;
    }

    let (status, body) = api.get("/api/worker/statistics").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 5);
    assert_eq!(
        body["by_status"],
        json!({"queued": 1, "running": 0, "ok": 2, "retry": 1, "failed": 1, "canceled": 0})
    );
    assert_eq!(body["services"]["webhook"]["total"], 3);
    assert_eq!(body["services"]["webhook"]["by_status"]["ok"], 2);
    assert_eq!(body["services"]["slack"]["by_status"]["retry"], 1);
    assert_eq!(body["services"]["slack"]["by_status"]["ok"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_info_shows_backlog_pending_lag_dead_letters_and_retries() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let keys = api.env.redis.keys().clone();

    let (_, before) = api.get("/api/worker/stream-info").await?;
    assert_eq!(before["events"]["exists"], false, "{before}");

    api.post("/api/worker/initialize-stream", None).await?;
    for index in 0..3 {
        api.env
            .publish(&json!({"id": format!("e{index}"), "area_id": Uuid::new_v4()}))
            .await?;
    }
    let mut consumer = Consumer::new(&api.env.redis, &keys.events(), "reader-1").await?;
    assert_eq!(consumer.read(1).await?.len(), 1);
    let entry = Entry {
        id: "1-0".into(),
        fields: vec![("event".into(), b"{".to_vec())],
        delivery_count: None,
    };
    api.env
        .redis
        .dead_letter(
            &keys.events(),
            &entry,
            &DeadLetterReason::new("invalid_json", "bad"),
        )
        .await?;
    api.env
        .redis
        .schedule_retries(&[ScheduledRetry {
            service: "webhook".into(),
            execution_id: Uuid::new_v4(),
            due_at_ms: 4_102_444_800_000,
        }])
        .await?;
    api.env
        .redis
        .enqueue_jobs(&[Job {
            service: "slack".into(),
            execution_id: Uuid::new_v4(),
        }])
        .await?;

    let (status, body) = api.get("/api/worker/stream-info").await?;
    assert_eq!(status, StatusCode::OK);
    let events = &body["events"];
    assert_eq!(events["stream"], keys.events().as_str());
    assert_eq!(events["length"], 3);
    let group = &events["groups"][0];
    assert_eq!(group["name"], "area-workers");
    assert_eq!(group["pending"], 1);
    assert_eq!(group["lag"], 2, "{body}");
    assert!(group["oldest_pending_age_ms"].as_u64().is_some(), "{body}");
    assert_eq!(group["consumers"][0]["name"], "reader-1");
    assert_eq!(group["consumers"][0]["pending"], 1);

    let jobs = body["jobs"].as_array().unwrap();
    let slack = jobs
        .iter()
        .find(|stream| stream["service"] == "slack")
        .unwrap_or_else(|| panic!("a job stream nobody serves is listed: {body}"));
    assert_eq!(slack["served"], false);
    assert_eq!(slack["length"], 1);
    let webhook = jobs
        .iter()
        .find(|stream| stream["service"] == "webhook")
        .unwrap();
    assert_eq!(webhook["served"], true);
    assert_eq!(body["dead_letters"]["length"], 1);
    assert_eq!(body["retry_schedule"]["size"], 1);
    assert_eq!(
        body["retry_schedule"]["next_due_at_ms"],
        4_102_444_800_000_i64
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_render_prometheus_text_with_stream_gauges() -> anyhow::Result<()> {
    let api = Api::new().await?;
    api.post("/api/worker/initialize-stream", None).await?;
    api.env.publish(&json!({"area_id": Uuid::new_v4()})).await?;
    api.env.publish(&json!({"area_id": Uuid::new_v4()})).await?;

    let (status, Value::String(text)) = api.get("/metrics").await? else {
        panic!("/metrics is text");
    };
    assert_eq!(status, StatusCode::OK);
    let events = api.env.redis.keys().events();
    for line in [
        format!("area_stream_length{{stream=\"{events}\"}} 2"),
        format!("area_stream_lag{{stream=\"{events}\"}} 2"),
        format!("area_stream_pending{{stream=\"{events}\"}} 0"),
    ] {
        assert!(
            text.lines().any(|candidate| candidate == line),
            "no `{line}` in:\n{text}"
        );
    }
    assert!(text.contains("# TYPE area_stream_length gauge"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_route_and_the_bearer_scheme() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let (status, document) = api.get("/api/openapi.json").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
        ("/api/worker/status", "get"),
        ("/api/worker/statistics", "get"),
        ("/api/worker/stream-info", "get"),
        ("/api/worker/pause", "post"),
        ("/api/worker/resume", "post"),
        ("/api/worker/initialize-stream", "post"),
        ("/api/events", "post"),
        ("/api/executions", "get"),
        ("/api/executions/{id}", "get"),
        ("/api/executions/{id}/cancel", "post"),
        ("/api/executions/{id}/retry", "post"),
        ("/api/dead-letters", "get"),
        ("/api/dead-letters/{id}/redrive", "post"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(document["paths"]["/api/worker/pause"]["post"]["security"].is_array());
    assert!(document["paths"]["/api/worker/status"]["get"]["security"].is_null());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_by_page_and_redriven_to_their_stream() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let keys = api.env.redis.keys().clone();
    let mut dead_ids = Vec::new();
    for index in 0..3 {
        let entry = Entry {
            id: format!("{}-0", index + 1),
            fields: vec![("event".into(), format!("{{\"n\":{index}}}").into_bytes())],
            delivery_count: Some(11),
        };
        let reason = DeadLetterReason::new("poison", "delivered too often");
        dead_ids.push(
            api.env
                .redis
                .dead_letter(&keys.events(), &entry, &reason)
                .await?,
        );
    }

    let (status, page) = api.get("/api/dead-letters?limit=2").await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let first = &page["items"][0];
    assert_eq!(first["id"], dead_ids[0].as_str());
    assert_eq!(first["stream"], keys.events().as_str());
    assert_eq!(first["entry_id"], "1-0");
    assert_eq!(first["code"], "poison");
    assert_eq!(first["delivery_count"], 11);
    assert_eq!(
        first["fields"],
        json!([{"name": "event", "value": "{\"n\":0}"}])
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = api
        .get(&format!("/api/dead-letters?cursor={cursor}"))
        .await?;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], dead_ids[2].as_str());
    assert!(rest["next_cursor"].is_null());

    let (status, body) = api
        .post(&format!("/api/dead-letters/{}/redrive", dead_ids[1]), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = api.env.redis.stream_info(&keys.events()).await?;
    assert_eq!(events.length, 1, "the entry is back in the event stream");
    assert_eq!(api.env.redis.dead_letter_count().await?, 2);
    let (status, body) = api
        .post(&format!("/api/dead-letters/{}/redrive", dead_ids[1]), None)
        .await?;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    for uri in ["/api/dead-letters?cursor=abc", "/api/dead-letters?limit=0"] {
        let (status, body) = api.get(uri).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let (status, _) = api.post("/api/dead-letters/nope/redrive", None).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, page) = api
        .get("/api/dead-letters?cursor=18446744073709551615-18446744073709551615")
        .await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_routes_need_the_bearer_token_and_reads_do_not() -> anyhow::Result<()> {
    let token = SecretString::from("router-secret");
    let api =
        Api::with_access(|_| MutationAccess::new(Some(&token), "0.0.0.0:8080".parse().unwrap()))
            .await?;

    let mutations = [
        "/api/worker/pause",
        "/api/worker/resume",
        "/api/worker/initialize-stream",
        "/api/events",
        "/api/executions/00000000-0000-0000-0000-000000000000/cancel",
        "/api/executions/00000000-0000-0000-0000-000000000000/retry",
        "/api/dead-letters/1-0/redrive",
    ];
    for uri in mutations {
        for authorization in [None, Some("Bearer wrong"), Some("Basic router-secret")] {
            let (status, body) = api.call(Method::POST, uri, None, authorization).await?;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{uri} {authorization:?}: {body}"
            );
            assert_eq!(error_code(&body), "unauthorized");
            assert!(
                !body.to_string().contains("router-secret"),
                "the token never shows: {body}"
            );
        }
    }
    let (status, body) = api
        .call(
            Method::POST,
            "/api/worker/pause",
            None,
            Some("Bearer router-secret"),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(api.state.state.is_paused());

    for uri in [
        "/api/worker/status",
        "/api/executions",
        "/api/dead-letters",
        "/healthz",
    ] {
        let (status, body) = api.get(uri).await?;
        assert_eq!(status, StatusCode::OK, "{uri} is open: {body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_a_public_address_refuses_mutations() -> anyhow::Result<()> {
    let api =
        Api::with_access(|_| MutationAccess::new(None, "0.0.0.0:8080".parse().unwrap())).await?;
    let (status, body) = api
        .call(
            Method::POST,
            "/api/worker/pause",
            None,
            Some("Bearer anything"),
        )
        .await?;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "mutations_disabled")
    );
    assert!(!api.state.state.is_paused());
    let (status, _) = api.get("/api/worker/status").await?;
    assert_eq!(status, StatusCode::OK);
    Ok(())
}

/// A `POST` as a browser or curl would send it to `127.0.0.1:8080`.
fn post_with(uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Body::from(body.to_owned()))
        .expect("the test's headers are valid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_on_other_sites_cannot_publish_or_pause() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let (area_id, _) = api
        .env
        .area(&[("webhook", json!({"url": "http://127.0.0.1:9/"}))])
        .await?;
    let event = json!({"id": "evt-csrf", "area_id": area_id}).to_string();
    let form = "application/x-www-form-urlencoded";

    let cross_site = [
        post_with(
            "/api/events",
            &[
                ("origin", "https://evil.example"),
                ("content-type", "text/plain"),
            ],
            &event,
        ),
        post_with(
            "/api/events",
            &[
                ("origin", "https://evil.example"),
                ("content-type", "application/json"),
            ],
            &event,
        ),
        post_with(
            "/api/worker/pause",
            &[("origin", "https://evil.example"), ("content-type", form)],
            "",
        ),
        post_with(
            "/api/worker/pause",
            &[("origin", "http://127.0.0.1:3000")],
            "",
        ),
        post_with("/api/worker/pause", &[("origin", "null")], ""),
        post_with("/api/worker/pause", &[("sec-fetch-site", "cross-site")], ""),
        post_with("/api/worker/pause", &[("sec-fetch-site", "same-site")], ""),
        post_with(
            "/api/worker/pause",
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://127.0.0.1:8080"),
            ],
            "",
        ),
    ];
    for request in cross_site {
        let described = format!("{} {:?}", request.uri(), request.headers());
        let (status, body) = api.send(request).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{described}: {body}");
        assert_eq!(error_code(&body), "cross_site", "{described}");
    }
    let events = api.env.redis.keys().events();
    assert_eq!(
        api.env.redis.stream_info(&events).await?.length,
        0,
        "nothing was published"
    );
    assert!(!api.state.state.is_paused(), "the worker was not paused");

    // The API's own origin, as a page it served would send it.
    let (status, body) = api
        .send(post_with(
            "/api/worker/pause",
            &[
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
            "",
        ))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(api.state.state.is_paused());
    let (status, body) = api
        .send(post_with(
            "/api/events",
            &[
                ("origin", "http://127.0.0.1:8080"),
                ("content-type", "application/json; charset=utf-8"),
            ],
            &event,
        ))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Reads stay open to anyone.
    let read = Request::builder()
        .uri("/api/worker/status")
        .header(header::HOST, "evil.example")
        .header(header::ORIGIN, "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())?;
    let (status, body) = api.send(read).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_bodies_need_the_json_content_type() -> anyhow::Result<()> {
    let api = Api::new().await?;
    let (area_id, _) = api
        .env
        .area(&[("webhook", json!({"url": "http://127.0.0.1:9/"}))])
        .await?;
    let event = json!({"id": "evt-plain", "area_id": area_id}).to_string();

    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let headers: Vec<_> = content_type
            .map(|value| ("content-type", value))
            .into_iter()
            .collect();
        let (status, body) = api.send(post_with("/api/events", &headers, &event)).await?;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {body}"
        );
        assert_eq!(error_code(&body), "unsupported_media_type");
    }
    let events = api.env.redis.keys().events();
    assert_eq!(api.env.redis.stream_info(&events).await?.length, 0);

    // The cancel body is optional: none needs no content type, some needs JSON.
    let execution = api.execution(area_id, "evt-plain", "webhook").await?;
    let cancel = format!("/api/executions/{execution}/cancel");
    let (status, body) = api
        .send(post_with(
            &cancel,
            &[("content-type", "text/plain")],
            r#"{"reason":"x"}"#,
        ))
        .await?;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );
    let (status, body) = api.send(post_with(&cancel, &[], "")).await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "an empty cancel body needs no type: {body}"
    );
    assert_eq!(body["execution"]["status"], "canceled");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_host_names_may_mutate() -> anyhow::Result<()> {
    let api = Api::new().await?;
    for host in ["evil.example", "evil.example:8080", "192.168.1.10:8080"] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/worker/pause")
            .header(header::HOST, host)
            .body(Body::empty())?;
        let (status, body) = api.send(request).await?;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::FORBIDDEN, "bad_host"),
            "{host}"
        );
    }
    assert!(!api.state.state.is_paused(), "a rebound name cannot pause");

    for host in ["localhost:8080", "127.0.0.1", "[::1]:9999"] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/worker/pause")
            .header(header::HOST, host)
            .body(Body::empty())?;
        let (status, body) = api.send(request).await?;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }

    // With a token the Host is not checked, but cross-site requests still are.
    let token = SecretString::from("router-secret");
    let api =
        Api::with_access(|_| MutationAccess::new(Some(&token), "0.0.0.0:8080".parse().unwrap()))
            .await?;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/worker/pause")
        .header(header::HOST, "area.example")
        .header(header::AUTHORIZATION, "Bearer router-secret")
        .body(Body::empty())?;
    let (status, body) = api.send(request).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/worker/resume")
        .header(header::HOST, "area.example")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::AUTHORIZATION, "Bearer router-secret")
        .body(Body::empty())?;
    let (status, body) = api.send(request).await?;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "cross_site")
    );
    assert!(
        api.state.state.is_paused(),
        "the cross-site resume did nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_failures_are_a_bare_500_and_missing_dependencies_a_503() -> anyhow::Result<()> {
    let api = Api::new().await?;
    api.sql("DROP TABLE executions").await?;
    let (status, body) = api.get("/api/executions").await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error": {"code": "internal", "message": "internal error"}}),
        "no cause, no SQL, no stack trace"
    );

    let mut unreachable = api.state.clone();
    unreachable.store = area_store::Store::lazy(&area_store::StoreOptions::new(
        "postgres://postgres@127.0.0.1:1/none",
    ))?;
    let router = api::router(unreachable);
    let request = Request::get("/api/worker/statistics").body(Body::empty())?;
    let response = router.oneshot(request).await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), usize::MAX).await?)?;
    assert_eq!(error_code(&body), "unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1:1"),
        "no URL in the answer: {body}"
    );
    Ok(())
}
