//! Mesos agent monitoring: `GET /monitor/statistics` (port 5051).
//!
//! The answer is a JSON array with one entry per executor. For command tasks (how Marathon and
//! Chronos launch) `executor_id == source == task id`, which joins these numbers to a framework's
//! tasks. `/monitor/statistics.json` is the pre-0.25 name, removed in Mesos 1.8; the client tries
//! the current path first and falls back to the old one on 404, remembering which one worked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::credentials::Credentials;
use crate::error::FrameworkError;
use crate::http::{ClientConfig, Flavor, HttpCore, Request};
use crate::lenient;

/// One executor's entry in `/monitor/statistics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorStatistics {
    /// Executor id; the task id for command tasks.
    pub executor_id: String,
    /// `Command Executor (Task: …) (Command: …)` for command tasks.
    #[serde(default)]
    pub executor_name: String,
    /// Framework id.
    #[serde(default)]
    pub framework_id: String,
    /// Executor source; the task id for command tasks.
    #[serde(default)]
    pub source: String,
    /// The executor's cgroup counters (CPU times, CFS periods, memory).
    pub statistics: ResourceStatistics,
    /// Keys this model does not name, kept for a round trip.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Mesos `ResourceStatistics`. Only `timestamp` is always present; the Docker containerizer fills
/// just CPU times, RSS, limits and (with CFS) throttling. Numbers given as strings are accepted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResourceStatistics {
    /// Seconds since the epoch when the sample was taken.
    pub timestamp: f64,
    /// Cumulative user CPU time, seconds.
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_user_time_secs: Option<f64>,
    /// Cumulative system CPU time, seconds.
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_system_time_secs: Option<f64>,
    /// CPU limit (includes the 0.1 executor overhead on Mesos ≤ 1.9 for command tasks).
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_limit: Option<f64>,
    /// CPU soft limit (1.10+).
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_soft_limit: Option<f64>,
    /// CFS periods elapsed.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_nr_periods: Option<u64>,
    /// CFS periods in which the container was throttled.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_nr_throttled: Option<u64>,
    /// Total time throttled, seconds.
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus_throttled_time_secs: Option<f64>,
    /// Resident memory, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_rss_bytes: Option<u64>,
    /// Memory limit, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_limit_bytes: Option<u64>,
    /// Memory soft limit, bytes (1.10+).
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_soft_limit_bytes: Option<u64>,
    /// Total memory usage, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_total_bytes: Option<u64>,
    /// Page cache, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_cache_bytes: Option<u64>,
    /// Swap, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub mem_swap_bytes: Option<u64>,
    /// Processes in the container.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub processes: Option<u64>,
    /// Threads in the container.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub threads: Option<u64>,
    /// Disk limit, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_limit_bytes: Option<u64>,
    /// Disk used, bytes.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk_used_bytes: Option<u64>,
    /// Everything else (`mem_file_bytes`, `net_*`, `perf`, `blkio_statistics`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceStatistics {
    /// User + system CPU time in seconds; `None` when neither is reported.
    #[must_use]
    pub fn cpu_time_secs(&self) -> Option<f64> {
        match (self.cpus_user_time_secs, self.cpus_system_time_secs) {
            (None, None) => None,
            (u, s) => Some(u.unwrap_or(0.0) + s.unwrap_or(0.0)),
        }
    }
}

/// Client for one Mesos agent's monitoring endpoint. Clones share the remembered endpoint.
/// Credentials matter only with the agent's `--authenticate_http_readonly`.
#[derive(Debug, Clone)]
pub struct MesosAgentClient {
    http: HttpCore,
    legacy_path: Arc<AtomicBool>,
}

impl MesosAgentClient {
    crate::http::client_constructors!(Flavor::MesosAgent, legacy_path: Arc::new(AtomicBool::new(false)));

    /// The agent's base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    /// `GET /monitor/statistics` (or `/monitor/statistics.json` on agents older than 0.25 that
    /// answer 404 to the first).
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] when neither path exists, or any other [`FrameworkError`].
    pub async fn statistics(&self) -> Result<Vec<ExecutorStatistics>, FrameworkError> {
        self.statistics_as("a JSON array of executor statistics")
            .await
    }

    /// The same request as [`MesosAgentClient::statistics`], answered as plain JSON, for callers
    /// that read the entries one by one (so one malformed entry does not hide the others, and an
    /// error can name the entry and field it is about).
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] when neither path exists, [`FrameworkError::Decode`] when the
    /// body is not JSON, or any other [`FrameworkError`].
    pub async fn statistics_json(&self) -> Result<Value, FrameworkError> {
        self.statistics_as("JSON").await
    }

    async fn statistics_as<T: DeserializeOwned>(&self, what: &str) -> Result<T, FrameworkError> {
        if self.legacy_path.load(Ordering::Relaxed) {
            return self.fetch("statistics.json", what).await;
        }
        match self.fetch("statistics", what).await {
            Err(FrameworkError::NotFound { .. }) => {
                let stats = self.fetch("statistics.json", what).await?;
                self.legacy_path.store(true, Ordering::Relaxed);
                Ok(stats)
            }
            other => other,
        }
    }

    /// `GET /state` of the agent (`/state.json`, removed in 1.8, on agents that answer 404 to
    /// the first), as JSON: `frameworks[].executors[]` with `id`, `source`, `container`,
    /// `labels` and `tasks[]` (`id`, `name`, `labels`, …).
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] when neither path exists, [`FrameworkError::Decode`] when the
    /// answer is not a JSON object, or any other [`FrameworkError`].
    pub async fn state(&self) -> Result<Map<String, Value>, FrameworkError> {
        const WHAT: &str = "a JSON object (the agent's state)";
        let get = |leaf: &'static str| async move {
            self.http
                .execute(Request::get(self.http.endpoint([leaf])))
                .await?
                .json::<Map<String, Value>>(WHAT)
        };
        match get("state").await {
            Err(FrameworkError::NotFound { .. }) => get("state.json").await,
            other => other,
        }
    }

    /// The entry whose executor id (= task id for command tasks) is `task_id`.
    ///
    /// # Errors
    /// As [`MesosAgentClient::statistics`].
    pub async fn statistics_for(
        &self,
        task_id: &str,
    ) -> Result<Option<ExecutorStatistics>, FrameworkError> {
        Ok(self
            .statistics()
            .await?
            .into_iter()
            .find(|e| e.executor_id == task_id || e.source == task_id))
    }

    async fn fetch<T: DeserializeOwned>(
        &self,
        leaf: &str,
        what: &str,
    ) -> Result<T, FrameworkError> {
        let resp = self
            .http
            .execute(Request::get(self.http.endpoint(["monitor", leaf])))
            .await?;
        resp.json(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_reference_sample_and_keeps_unknown_fields() {
        let v = json!([{
            "executor_id": "qos_job-a.instance-1._app.1",
            "executor_name": "Command Executor (Task: qos_job-a.instance-1._app.1) (Command: sh -c 'sleep 3600')",
            "framework_id": "f-0001", "source": "qos_job-a.instance-1._app.1",
            "statistics": {"timestamp": 1388534400.0, "cpus_user_time_secs": 96348.84,
                "cpus_system_time_secs": 34501.45, "cpus_limit": 0.6, "cpus_nr_periods": 769021,
                "cpus_nr_throttled": 1046, "cpus_throttled_time_secs": 352.59,
                "mem_rss_bytes": 5105614848u64, "mem_limit_bytes": 301989888,
                "mem_file_bytes": 7, "perf": {"timestamp": 1.0}},
            "container_id": "abc"
        }]);
        let stats: Vec<ExecutorStatistics> = serde_json::from_value(v.clone()).unwrap();
        let s = &stats[0].statistics;
        assert_eq!(s.cpus_limit, Some(0.6));
        assert_eq!(s.mem_rss_bytes, Some(5_105_614_848));
        assert_eq!(s.extra.get("mem_file_bytes"), Some(&json!(7)));
        assert_eq!(stats[0].extra.get("container_id"), Some(&json!("abc")));
        assert!((s.cpu_time_secs().unwrap() - 130_850.29).abs() < 1e-6);
        // Round trip keeps every field.
        assert_eq!(serde_json::to_value(&stats).unwrap(), v);
    }

    #[test]
    fn cpu_time_needs_a_counter() {
        assert_eq!(ResourceStatistics::default().cpu_time_secs(), None);
    }

    /// An agent of the 1.7 generation: `/monitor/statistics` with one entry the typed reader
    /// refuses, and only `/state.json`.
    async fn old_agent() -> (String, tokio::task::JoinHandle<()>) {
        use axum::routing::get;
        let router = axum::Router::new()
            .route(
                "/monitor/statistics",
                get(|| async {
                    axum::Json(json!([{"executor_id": "a", "statistics": {"timestamp": 1}},
                                      {"executor_id": "b", "statistics": {}}]))
                }),
            )
            .route(
                "/state.json",
                get(|| async { axum::Json(json!({"id": "S0", "frameworks": []})) }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let h = tokio::spawn(async move {
            let _ = axum::serve(l, router).await;
        });
        (url, h)
    }

    #[tokio::test]
    async fn raw_statistics_and_state_with_fallback() {
        let (url, server) = old_agent().await;
        let c = MesosAgentClient::with_config(
            &Credentials::new(&url).unwrap(),
            ClientConfig {
                retry: crate::RetryPolicy::none(),
                ..ClientConfig::default()
            },
        )
        .unwrap();
        let raw = c.statistics_json().await.unwrap();
        assert_eq!(raw.as_array().map(Vec::len), Some(2));
        // The typed reader refuses the whole answer for the one bad entry, naming the field.
        let e = c.statistics().await.unwrap_err().to_string();
        assert!(e.contains("timestamp") && e.contains(&url), "{e}");
        let state = c.state().await.unwrap();
        assert_eq!(state.get("id"), Some(&json!("S0")));
        server.abort();
    }

    #[test]
    fn strings_and_missing_fields() {
        let s: ResourceStatistics = serde_json::from_value(
            json!({"timestamp": 5, "cpus_limit": "1.1", "mem_rss_bytes": null}),
        )
        .unwrap();
        assert_eq!(s.cpus_limit, Some(1.1));
        assert_eq!(s.mem_rss_bytes, None);
        assert!(serde_json::from_value::<ResourceStatistics>(json!({"cpus_limit": 1})).is_err());
    }
}
