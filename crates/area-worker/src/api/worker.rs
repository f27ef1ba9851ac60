//! The worker as a whole: status, execution statistics, stream information,
//! pause and resume, and stream initialisation.
//!
//! Pause stops this process's readers from taking new entries (events and
//! jobs, claims included); attempts in flight finish and are recorded, and a
//! read already blocked in Redis when the pause arrives may still return
//! entries within `AREA_BLOCK_MS`, which are then processed. The switch lives
//! in memory: a restarted worker runs, whatever it was before.

use std::collections::BTreeMap;

use area_store::ExecutionStatus;
use area_stream::{ConsumerInfo, GroupInfo, StreamInfo};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiState, ErrorBody};

/// What `GET /api/worker/status` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerStatus {
    /// This worker's consumer name in the groups.
    pub consumer: String,
    /// The binary's version.
    pub version: String,
    /// The services this worker runs jobs of (compiled in and configured).
    pub services: Vec<String>,
    /// The services compiled into this binary, configured or not.
    pub compiled_services: Vec<String>,
    /// `running` or `paused`.
    pub state: RunState,
    /// Attempts running now.
    pub in_flight: u64,
    /// Seconds since the engine started.
    pub uptime_secs: u64,
    /// The consumer group.
    pub group: String,
    /// The prefix of every Redis key.
    pub stream_prefix: String,
    /// When each reader last completed a read.
    pub readers: Vec<ReaderProgress>,
}

/// Whether the worker reads new entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Reading.
    Running,
    /// Paused through the API: not reading new entries.
    Paused,
}

/// One reader's last progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReaderProgress {
    /// The stream it reads.
    pub stream: String,
    /// Milliseconds since its last completed read.
    pub idle_ms: u64,
}

/// What the pause and resume routes answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseState {
    /// `running` or `paused`, after the request.
    pub state: RunState,
    /// Attempts still running.
    pub in_flight: u64,
}

/// Execution counts per status, overall and per service.
#[derive(Debug, Serialize, ToSchema)]
pub struct Statistics {
    /// Every execution.
    pub total: i64,
    /// Count per status; every status is present.
    pub by_status: BTreeMap<String, i64>,
    /// The same per service.
    pub services: BTreeMap<String, ServiceStatistics>,
}

/// Execution counts of one service.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ServiceStatistics {
    /// Every execution of the service.
    pub total: i64,
    /// Count per status; every status is present.
    pub by_status: BTreeMap<String, i64>,
}

/// What `GET /api/worker/stream-info` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamsView {
    /// The event stream.
    pub events: StreamView,
    /// Every job stream: those this worker serves and any other found in Redis.
    pub jobs: Vec<StreamView>,
    /// The dead-letter stream.
    pub dead_letters: DeadLetterStreamView,
    /// The retry schedule.
    pub retry_schedule: RetryScheduleView,
}

/// One stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    /// Its key.
    pub stream: String,
    /// The service of a job stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Whether this worker reads it.
    pub served: bool,
    /// Whether the key exists.
    pub exists: bool,
    /// Entries in the stream.
    pub length: u64,
    /// Its consumer groups.
    pub groups: Vec<GroupView>,
}

/// One consumer group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    /// Entries not yet delivered, when Redis knows.
    pub lag: Option<u64>,
    /// The last entry delivered to the group.
    pub last_delivered_id: String,
    /// Age of the oldest pending entry, in milliseconds.
    pub oldest_pending_age_ms: Option<u64>,
    /// Its consumers.
    pub consumers: Vec<ConsumerView>,
}

/// One consumer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerView {
    /// Its name.
    pub name: String,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// Milliseconds since it last read or claimed.
    pub idle_ms: u64,
}

/// The dead-letter stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterStreamView {
    /// Its key.
    pub stream: String,
    /// Dead letters in it.
    pub length: u64,
}

/// The retry schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryScheduleView {
    /// Its key.
    pub key: String,
    /// Retries waiting.
    pub size: u64,
    /// When the earliest is due, in milliseconds since the Unix epoch.
    pub next_due_at_ms: Option<i64>,
}

/// What `POST /api/worker/initialize-stream` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct InitializedStreams {
    /// Each stream and whether its group was created now.
    pub streams: Vec<InitializedStream>,
}

/// One initialised stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct InitializedStream {
    /// Its key.
    pub stream: String,
    /// True when the group (and maybe the stream) was created by this call;
    /// false when it existed.
    pub created: bool,
}

/// `GET /api/worker/status`.
#[utoipa::path(
    get,
    path = "/api/worker/status",
    tag = "worker",
    responses((status = 200, description = "This worker's status", body = WorkerStatus))
)]
pub(crate) async fn status(State(api): State<ApiState>) -> Json<WorkerStatus> {
    Json(WorkerStatus {
        consumer: api.worker.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        services: owned(api.registry.services()),
        compiled_services: owned(crate::reactions::compiled_services()),
        state: run_state(&api),
        in_flight: api.state.in_flight() as u64,
        uptime_secs: api.state.uptime_secs(),
        group: api.redis.options().group.clone(),
        stream_prefix: api.redis.keys().prefix().to_owned(),
        readers: api
            .state
            .progress()
            .into_iter()
            .map(|reader| ReaderProgress {
                stream: reader.stream,
                idle_ms: reader.idle_ms,
            })
            .collect(),
    })
}

/// `GET /api/worker/statistics`.
#[utoipa::path(
    get,
    path = "/api/worker/statistics",
    tag = "worker",
    responses(
        (status = 200, description = "Execution counts per status", body = Statistics),
        (status = 503, description = "PostgreSQL does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn statistics(State(api): State<ApiState>) -> Result<Json<Statistics>, ApiError> {
    let counts = api.store.execution_counts().await?;

    let mut statistics = Statistics {
        total: 0,
        by_status: all_statuses(),
        services: BTreeMap::new(),
    };
    for count in counts {
        statistics.total += count.count;
        *statistics
            .by_status
            .entry(count.status.clone())
            .or_default() += count.count;
        let service =
            statistics
                .services
                .entry(count.service)
                .or_insert_with(|| ServiceStatistics {
                    total: 0,
                    by_status: all_statuses(),
                });
        service.total += count.count;
        *service.by_status.entry(count.status).or_default() += count.count;
    }
    Ok(Json(statistics))
}

/// `GET /api/worker/stream-info`.
#[utoipa::path(
    get,
    path = "/api/worker/stream-info",
    tag = "worker",
    responses(
        (status = 200, description = "The streams, their groups and backlogs", body = StreamsView),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn stream_info(
    State(api): State<ApiState>,
) -> Result<Json<StreamsView>, ApiError> {
    let keys = api.redis.keys().clone();
    let events = api.redis.stream_info(&keys.events()).await?;

    let served: Vec<String> = api
        .registry
        .services()
        .into_iter()
        .map(|service| keys.jobs(service))
        .collect();
    let mut job_streams = api.redis.job_streams().await?;
    job_streams.extend(served.iter().cloned());
    job_streams.sort();
    job_streams.dedup();

    let jobs_prefix = keys.jobs_prefix();
    let mut jobs = Vec::with_capacity(job_streams.len());
    for stream in job_streams {
        let info = api.redis.stream_info(&stream).await?;
        let service = stream.strip_prefix(&jobs_prefix).map(str::to_owned);
        jobs.push(stream_view(info, service, served.contains(&stream)));
    }

    let (size, next_due_at_ms) = api.redis.retry_schedule().await?;
    Ok(Json(StreamsView {
        events: stream_view(events, None, true),
        jobs,
        dead_letters: DeadLetterStreamView {
            stream: keys.dead_letters(),
            length: api.redis.dead_letter_count().await?,
        },
        retry_schedule: RetryScheduleView {
            key: keys.retries(),
            size,
            next_due_at_ms,
        },
    }))
}

/// `POST /api/worker/pause`.
#[utoipa::path(
    post,
    path = "/api/worker/pause",
    tag = "worker",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reading is paused; attempts in flight finish", body = PauseState),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
    )
)]
pub(crate) async fn pause(State(api): State<ApiState>) -> Json<PauseState> {
    if !api.state.is_paused() {
        tracing::info!("reading paused through the API");
    }
    api.state.set_paused(true);
    metrics::gauge!("area_paused").set(1.0);
    Json(pause_state(&api))
}

/// `POST /api/worker/resume`.
#[utoipa::path(
    post,
    path = "/api/worker/resume",
    tag = "worker",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Reading resumed", body = PauseState),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
    )
)]
pub(crate) async fn resume(State(api): State<ApiState>) -> Json<PauseState> {
    if api.state.is_paused() {
        tracing::info!("reading resumed through the API");
    }
    api.state.set_paused(false);
    metrics::gauge!("area_paused").set(0.0);
    Json(pause_state(&api))
}

/// `POST /api/worker/initialize-stream`.
#[utoipa::path(
    post,
    path = "/api/worker/initialize-stream",
    tag = "worker",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The streams and groups exist", body = InitializedStreams),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A cross-site browser request, a Host that is not loopback without a token, or mutating routes are disabled", body = ErrorBody),
        (status = 503, description = "Redis does not answer", body = ErrorBody),
    )
)]
pub(crate) async fn initialize_stream(
    State(api): State<ApiState>,
) -> Result<Json<InitializedStreams>, ApiError> {
    let mut streams = Vec::new();
    for stream in api.streams() {
        let created = api.redis.ensure_group(&stream).await?;
        if created {
            tracing::info!(stream, "stream group created through the API");
        }
        streams.push(InitializedStream { stream, created });
    }
    Ok(Json(InitializedStreams { streams }))
}

fn run_state(api: &ApiState) -> RunState {
    if api.state.is_paused() {
        RunState::Paused
    } else {
        RunState::Running
    }
}

fn pause_state(api: &ApiState) -> PauseState {
    PauseState {
        state: run_state(api),
        in_flight: api.state.in_flight() as u64,
    }
}

fn owned(names: Vec<&'static str>) -> Vec<String> {
    names.into_iter().map(str::to_owned).collect()
}

fn all_statuses() -> BTreeMap<String, i64> {
    ExecutionStatus::ALL
        .into_iter()
        .map(|status| (status.as_str().to_owned(), 0))
        .collect()
}

fn stream_view(info: StreamInfo, service: Option<String>, served: bool) -> StreamView {
    StreamView {
        stream: info.stream,
        service,
        served,
        exists: info.exists,
        length: info.length,
        groups: info.groups.into_iter().map(group_view).collect(),
    }
}

fn group_view(group: GroupInfo) -> GroupView {
    GroupView {
        name: group.name,
        pending: group.pending,
        lag: group.lag,
        last_delivered_id: group.last_delivered_id,
        oldest_pending_age_ms: group.oldest_pending_age_ms,
        consumers: group.consumers.into_iter().map(consumer_view).collect(),
    }
}

fn consumer_view(consumer: ConsumerInfo) -> ConsumerView {
    ConsumerView {
        name: consumer.name,
        pending: consumer.pending,
        idle_ms: consumer.idle_ms,
    }
}
