//! The Mesos agent source: container figures from an agent's `/monitor/statistics` instead of
//! the node's cgroups, for clusters where the collector cannot read cgroups itself.
//!
//! Each pass: `GET /monitor/statistics` (the pre-1.8 `.json` path on agents that answer 404),
//! read entry by entry ([`crate::mesos_map::parse_statistics`]; a malformed entry is reported in
//! the snapshot's `errors` naming its field, the others are still read), counters made monotonic
//! per executor ([`crate::counters::Monotonic`]: a restarted executor never shows negative use),
//! and node metrics from the local `/proc`. Executors not yet mapped to a job are looked up in
//! the agent's `/state` and the supervisor's job registry when first seen, then every
//! [`MAP_RETRY_PASSES`] passes while unknown ([`crate::mesos_map::map_executor`]).
//!
//! The agent's `timestamp` of each entry becomes the sample's time, so a pushed sample carries
//! the moment the agent measured it, not the moment the collector asked.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use frameworks::{FrameworkError, MesosAgentClient, SupervisorClient};
use serde_json::Value;

use crate::collector::{ContainerSample, MAP_RETRY_PASSES, ReadFailure, Snapshot};
use crate::counters::{Departed, Trail};
use crate::discovery::Runtime;
use crate::mesos_map::{
    AgentIndex, JobDirectory, MESOS_CFS_PERIOD_US, MappedBy, map_executor, parse_statistics,
};
use crate::node::NodeSampler;
use crate::source::Source;

/// A Mesos agent's HTTP API, as far as the collector reads it.
#[async_trait]
pub(crate) trait AgentApi: Send + Sync + std::fmt::Debug {
    /// The agent's base URL (for messages).
    fn url(&self) -> String;
    /// `GET /monitor/statistics` as JSON.
    async fn statistics(&self) -> Result<Value, FrameworkError>;
    /// `GET /state` as JSON.
    async fn state(&self) -> Result<Value, FrameworkError>;
}

#[async_trait]
impl AgentApi for MesosAgentClient {
    fn url(&self) -> String {
        self.base_url().as_str().trim_end_matches('/').to_owned()
    }
    async fn statistics(&self) -> Result<Value, FrameworkError> {
        self.statistics_json().await
    }
    async fn state(&self) -> Result<Value, FrameworkError> {
        MesosAgentClient::state(self).await.map(Value::Object)
    }
}

/// Where registered jobs can be listed (the supervisor's `GET /api/v1/jobs`).
#[async_trait]
pub(crate) trait JobRegistry: Send + Sync + std::fmt::Debug {
    /// Every registered job, as JSON.
    async fn jobs(&self) -> Result<Value, FrameworkError>;
}

#[async_trait]
impl JobRegistry for SupervisorClient {
    async fn jobs(&self) -> Result<Value, FrameworkError> {
        SupervisorClient::jobs(self).await
    }
}

#[derive(Debug)]
struct Tracked {
    executor_id: String,
    uuid: Option<(String, MappedBy)>,
    name: Option<String>,
    container: Option<String>,
    next_map_try: u64,
    trail: Trail,
}

impl AsMut<Trail> for Tracked {
    fn as_mut(&mut self) -> &mut Trail {
        &mut self.trail
    }
}

/// The source; see the module docs.
#[derive(Debug)]
pub(crate) struct MesosSource {
    agent: Arc<dyn AgentApi>,
    registry: Option<Arc<dyn JobRegistry>>,
    node: NodeSampler,
    tracked: HashMap<String, Tracked>,
    /// The reset trackers of executors that vanished.
    departed: Departed,
    agent_id: Option<String>,
    pass: u64,
    resets_total: u64,
    unavailable: Option<String>,
    /// Whether the last `/state` (and registry) lookup failed, so a failure is logged once.
    state_failing: bool,
    registry_failing: bool,
}

impl MesosSource {
    /// A source reading `agent`, mapping through `registry` when given; node metrics come from
    /// `node`.
    #[must_use]
    pub(crate) fn new(
        agent: Arc<dyn AgentApi>,
        registry: Option<Arc<dyn JobRegistry>>,
        node: NodeSampler,
    ) -> Self {
        Self {
            agent,
            registry,
            node,
            tracked: HashMap::new(),
            departed: Departed::default(),
            agent_id: None,
            pass: 0,
            resets_total: 0,
            unavailable: None,
            state_failing: false,
            registry_failing: false,
        }
    }

    /// Look up every executor seen in this pass that is due for a mapping attempt.
    async fn map_due(&mut self) {
        let pass = self.pass;
        let due =
            |t: &Tracked| t.uuid.is_none() && t.trail.last_seen == pass && t.next_map_try <= pass;
        if !self.tracked.values().any(due) {
            return;
        }
        let index = warn_once(
            &mut self.state_failing,
            self.agent.state().await,
            "cannot read the agent's /state; mapping by the supervisor's job registry only",
        )
        .map(|v| AgentIndex::from_state(&v));
        let jobs = match &self.registry {
            Some(r) => warn_once(
                &mut self.registry_failing,
                r.jobs().await,
                "cannot list the supervisor's jobs; mapping by agent labels only",
            )
            .map(|v| JobDirectory::from_jobs(&v)),
            None => None,
        };
        if let Some(id) = index.as_ref().and_then(|i| i.agent_id.clone()) {
            self.agent_id = Some(id);
        }
        for (key, t) in &mut self.tracked {
            if !due(t) {
                continue;
            }
            let fid = key
                .strip_suffix(t.executor_id.as_str())
                .and_then(|k| k.strip_suffix('/'))
                .unwrap_or_default();
            let m = map_executor(fid, &t.executor_id, index.as_ref(), jobs.as_ref());
            if m.name.is_some() {
                t.name = m.name;
            }
            if m.container.is_some() {
                t.container = m.container;
            }
            match m.uuid {
                Some((uuid, by)) => {
                    tracing::info!(executor = %t.executor_id, %uuid, via = ?by, "executor mapped to a job");
                    t.uuid = Some((uuid, by));
                }
                None => t.next_map_try = pass + MAP_RETRY_PASSES,
            }
        }
    }
}

#[async_trait]
impl Source for MesosSource {
    async fn collect(&mut self, now: f64) -> Snapshot {
        self.pass += 1;
        let pass = self.pass;
        let url = self.agent.url();
        let body = match self.agent.statistics().await {
            Ok(b) => b,
            Err(e) => {
                let error = format!("Mesos agent {url}: {e}");
                if self.unavailable.as_deref() != Some(error.as_str()) {
                    tracing::warn!(%error, "cannot read the agent's statistics");
                }
                self.unavailable = Some(error.clone());
                return Snapshot {
                    at: now,
                    node: self.node.sample(),
                    containers: Vec::new(),
                    errors: vec![ReadFailure {
                        cgroup: format!("{url}/monitor/statistics"),
                        error,
                    }],
                };
            }
        };
        let (readings, bad) = parse_statistics(&body);
        if bad.iter().any(|e| e.entry.is_none()) {
            self.unavailable = bad
                .first()
                .map(|e| format!("Mesos agent {url}/monitor/statistics: {e}"));
        } else {
            self.unavailable = None;
        }
        let mut errors: Vec<ReadFailure> = bad
            .into_iter()
            .map(|e| ReadFailure {
                cgroup: format!("{url}/monitor/statistics"),
                error: e.to_string(),
            })
            .collect();
        for r in &readings {
            let key = r.key();
            let departed = &mut self.departed;
            let t = self.tracked.entry(key).or_insert_with_key(|key| Tracked {
                executor_id: r.executor_id.clone(),
                uuid: None,
                name: None,
                container: None,
                next_map_try: 0,
                trail: departed.arrive(key, pass),
            });
            t.trail.last_seen = pass;
        }
        self.map_due().await;
        let mut containers = Vec::with_capacity(readings.len());
        for r in readings {
            let key = r.key();
            let Some(t) = self.tracked.get_mut(&key) else {
                errors.push(ReadFailure {
                    cgroup: key,
                    error: "executor vanished during the pass".into(),
                });
                continue;
            };
            let (c, reset) = t.trail.counters.observe(r.counters);
            if reset {
                self.resets_total += 1;
                tracing::info!(executor = %t.executor_id, "counter reset (executor restarted); figures continue from the previous total");
            }
            let secs = |ns: u64| ns as f64 / 1e9;
            let quota_us = r
                .cpus_limit
                .map(|cpus| (cpus * MESOS_CFS_PERIOD_US as f64).round() as u64);
            containers.push(ContainerSample {
                id: t.executor_id.clone(),
                name: Some(t.name.clone().unwrap_or_else(|| t.executor_id.clone())),
                runtime: Runtime::MesosAgent,
                cgroup: t.container.clone().unwrap_or_else(|| t.executor_id.clone()),
                agent: self.agent_id.clone(),
                dirs: None,
                uuid: t.uuid.as_ref().map(|(u, _)| u.clone()),
                image: None,
                at: Some(r.timestamp),
                user_secs: secs(c.user_ns),
                system_secs: secs(c.system_ns),
                total_secs: secs(c.total_ns),
                quota_cpus: r.cpus_limit,
                quota_us,
                period_us: quota_us.map(|_| MESOS_CFS_PERIOD_US),
                nr_periods: r.throttling.then_some(c.nr_periods),
                nr_throttled: r.throttling.then_some(c.nr_throttled),
                throttled_secs: r.throttling.then(|| secs(c.throttled_ns)),
                resets: t.trail.counters.resets(),
            });
        }
        containers.sort_by(|a, b| a.cgroup.cmp(&b.cgroup).then_with(|| a.id.cmp(&b.id)));
        let tracked = &mut self.tracked;
        self.departed.leave(pass, |keep| tracked.retain(keep));
        Snapshot {
            at: now,
            node: self.node.sample(),
            containers,
            errors,
        }
    }

    fn cpu_count(&self) -> u32 {
        self.node.cpu_count()
    }

    fn resets_total(&self) -> u64 {
        self.resets_total
    }

    fn unavailable(&self) -> Option<String> {
        self.unavailable.clone()
    }
}

/// The value of a read that may fail on every pass: a failure is logged once (with `what`) until
/// the read works again.
fn warn_once<T>(failing: &mut bool, read: Result<T, FrameworkError>, what: &str) -> Option<T> {
    match read {
        Ok(v) => {
            *failing = false;
            Some(v)
        }
        Err(e) => {
            if !*failing {
                tracing::warn!(cause = %e, "{what}");
            }
            *failing = true;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! The source against agents that misbehave for real over HTTP (closed port, non-JSON body,
    //! malformed entries, a restarted executor); the real agent is in `tests/it/mesos.rs`.

    use std::sync::Mutex;

    use frameworks::{ClientConfig, Credentials, RetryPolicy};
    use serde_json::json;

    use super::*;

    fn node() -> NodeSampler {
        NodeSampler::new("/proc".into(), 100)
    }

    fn client(url: &str) -> Arc<dyn AgentApi> {
        Arc::new(
            MesosAgentClient::with_config(
                &Credentials::new(url).unwrap(),
                ClientConfig {
                    timeout: std::time::Duration::from_secs(2),
                    retry: RetryPolicy::none(),
                    ..ClientConfig::default()
                },
            )
            .unwrap(),
        )
    }

    /// An agent answering `/monitor/statistics` with the next body of `bodies` each time (the
    /// last one repeats) and `/state` with `state`.
    async fn agent(bodies: Vec<(u16, String)>, state: Value) -> String {
        use axum::http::StatusCode;
        use axum::routing::get;
        let bodies = Arc::new(Mutex::new(bodies));
        let router = axum::Router::new()
            .route(
                "/monitor/statistics",
                get(move || {
                    let bodies = Arc::clone(&bodies);
                    async move {
                        let mut b = bodies.lock().unwrap();
                        let (code, body) = if b.len() > 1 {
                            b.remove(0)
                        } else {
                            b[0].clone()
                        };
                        (StatusCode::from_u16(code).unwrap(), body)
                    }
                }),
            )
            .route("/state", get(move || async move { axum::Json(state) }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(l, router).await;
        });
        url
    }

    fn entry(id: &str, user: f64, system: f64) -> Value {
        json!({"executor_id": id, "framework_id": "fw", "source": id,
               "statistics": {"timestamp": 1000.0 + user, "cpus_user_time_secs": user,
                              "cpus_system_time_secs": system, "cpus_limit": 0.6}})
    }

    #[tokio::test]
    async fn unreachable_agent_is_a_clear_error_not_a_crash() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut s = MesosSource::new(client(&url), None, node());
        let snap = s.collect(1.0).await;
        assert!(snap.containers.is_empty());
        let why = s.unavailable().unwrap();
        assert!(
            why.contains(&format!("{url}/monitor/statistics")) && why.contains("cannot reach"),
            "{why}"
        );
        assert_eq!(snap.errors.len(), 1);
        assert!(
            !snap.node.hostname.is_empty(),
            "node metrics are still read"
        );
    }

    #[tokio::test]
    async fn non_json_and_wrong_shapes_name_the_url_and_field() {
        let url = agent(
            vec![
                (200, "<html>proxy error</html>".into()),
                (200, json!({"error": "x"}).to_string()),
                (
                    200,
                    json!([entry("good", 1.0, 0.5), {"executor_id": "bad", "statistics": {"timestamp": 1, "cpus_user_time_secs": "x", "cpus_system_time_secs": 1}}])
                        .to_string(),
                ),
            ],
            json!({}),
        )
        .await;
        let mut s = MesosSource::new(client(&url), None, node());
        let snap = s.collect(1.0).await;
        let why = s.unavailable().unwrap();
        assert!(why.contains(&url) && why.contains("proxy error"), "{why}");
        assert!(snap.containers.is_empty());

        let _ = s.collect(2.0).await;
        let why = s.unavailable().unwrap();
        assert!(why.contains("expected a JSON array"), "{why}");

        let snap = s.collect(3.0).await;
        assert_eq!(s.unavailable(), None, "entries were readable");
        assert_eq!(snap.containers.len(), 1);
        assert_eq!(snap.containers[0].id, "good");
        assert_eq!(snap.errors.len(), 1);
        let e = &snap.errors[0].error;
        assert!(
            e.contains("entry [1] (executor \"bad\")")
                && e.contains("statistics.cpus_user_time_secs"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn restarted_executor_never_goes_backwards() {
        let uuid = "0123456789abcdef0123456789abcdef";
        let bodies = [(5.0, 1.0), (9.0, 2.0), (0.5, 0.1), (1.5, 0.2)]
            .iter()
            .map(|(u, s)| (200, json!([entry("t1", *u, *s)]).to_string()))
            .collect();
        let state = json!({"id": "S7", "frameworks": [{"id": "fw", "executors": [{"id": "t1", "container": "c1",
            "tasks": [{"id": "t1", "name": "job", "labels": [{"key": "qos.uuid", "value": uuid}]}]}]}]});
        let url = agent(bodies, state).await;
        let mut s = MesosSource::new(client(&url), None, node());
        let mut totals = Vec::new();
        for i in 0..4 {
            let snap = s.collect(f64::from(i)).await;
            let c = &snap.containers[0];
            assert_eq!(c.uuid.as_deref(), Some(uuid));
            assert_eq!((c.name.as_deref(), c.cgroup.as_str()), (Some("job"), "c1"));
            assert_eq!(c.agent.as_deref(), Some("S7"));
            assert_eq!(c.quota_us, Some(60_000));
            assert_eq!(c.to_wire(99.0).at, c.at.unwrap(), "the agent's timestamp");
            totals.push(c.total_secs);
        }
        // 6, 11, then the executor restarted at 0.6 and reached 1.7: 11.6, 12.7.
        let want = [6.0, 11.0, 11.6, 12.7];
        for (t, w) in totals.iter().zip(want) {
            assert!((t - w).abs() < 1e-9, "{totals:?}");
        }
        assert_eq!(s.resets_total(), 1);
    }
}
