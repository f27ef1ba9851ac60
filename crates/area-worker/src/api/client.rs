//! `area-worker status`: reads a running worker's status and statistics from
//! its API and renders them for a terminal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Status {
    consumer: String,
    version: String,
    services: Vec<String>,
    compiled_services: Vec<String>,
    state: String,
    in_flight: u64,
    uptime_secs: u64,
}

#[derive(Debug, Deserialize)]
struct Statistics {
    total: i64,
    by_status: BTreeMap<String, i64>,
    services: BTreeMap<String, ServiceStatistics>,
}

#[derive(Debug, Deserialize)]
struct ServiceStatistics {
    total: i64,
    by_status: BTreeMap<String, i64>,
}

/// Fetches the status and statistics of the worker whose API is at `base_url`
/// (e.g. `http://127.0.0.1:8080`) and renders them as text.
pub async fn status_report(base_url: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("build the HTTP client")?;
    let base_url = base_url.trim_end_matches('/');
    let status: Status = get(&client, &format!("{base_url}/api/worker/status")).await?;
    let statistics: Statistics = get(&client, &format!("{base_url}/api/worker/statistics")).await?;
    Ok(render(&status, &statistics))
}

async fn get<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<T> {
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("reach the worker API at {url} (is the worker running?)"))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    response
        .json()
        .await
        .with_context(|| format!("read the answer of {url}"))
}

fn render(status: &Status, statistics: &Statistics) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "worker      {} (version {})",
        status.consumer, status.version
    );
    let _ = writeln!(
        text,
        "state       {}, {} in flight, up {}",
        status.state,
        status.in_flight,
        uptime(status.uptime_secs)
    );
    let _ = writeln!(
        text,
        "services    {} (compiled in: {})",
        list_or_none(&status.services),
        list_or_none(&status.compiled_services)
    );
    let _ = writeln!(
        text,
        "executions  {} total: {}",
        statistics.total,
        counts(&statistics.by_status)
    );
    for (service, figures) in &statistics.services {
        let _ = writeln!(
            text,
            "  {service:<9} {} total: {}",
            figures.total,
            counts(&figures.by_status)
        );
    }
    text
}

fn counts(by_status: &BTreeMap<String, i64>) -> String {
    const ORDER: [&str; 6] = ["queued", "running", "ok", "retry", "failed", "canceled"];
    ORDER
        .iter()
        .map(|status| format!("{status} {}", by_status.get(*status).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn uptime(seconds: u64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_status_in_lifecycle_order() {
        let status = Status {
            consumer: "host-1".into(),
            version: "0.1.0".into(),
            services: vec!["webhook".into()],
            compiled_services: vec!["webhook".into(), "slack".into()],
            state: "paused".into(),
            in_flight: 2,
            uptime_secs: 3725,
        };
        let statistics = Statistics {
            total: 3,
            by_status: BTreeMap::from([("ok".into(), 2), ("failed".into(), 1)]),
            services: BTreeMap::from([(
                "webhook".into(),
                ServiceStatistics {
                    total: 3,
                    by_status: BTreeMap::from([("ok".into(), 2), ("failed".into(), 1)]),
                },
            )]),
        };
        let text = render(&status, &statistics);
        assert!(text.contains("host-1 (version 0.1.0)"), "{text}");
        assert!(text.contains("paused, 2 in flight, up 1h 2m"), "{text}");
        assert!(
            text.contains("3 total: queued 0, running 0, ok 2, retry 0, failed 1, canceled 0"),
            "{text}"
        );
        assert!(text.contains("  webhook   3 total"), "{text}");
    }
}
