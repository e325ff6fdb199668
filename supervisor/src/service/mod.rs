//! The supervisor's operations, independent of HTTP: registration, reports (thesis and
//! versioned), samples, nodes, cancellation and the read views. The HTTP handlers in
//! [`crate::api`] only parse, authorise and call these; tests call them directly.
//!
//! Every operation follows one pattern: take the state lock, change memory, queue the write
//! (still under the lock, so writes keep the order of changes), release the lock, await the
//! write, then wake the control loop. Nothing here awaits while holding the lock.
//!
//! Here: [`Shared`] and what every operation uses. By concern: `jobs` (registration,
//! cancellation), `reports` (reports and samples, held ones, observations), `nodes`
//! (registration, heartbeats), `views` (what the API and `--dump-state` read), `upkeep`
//! (loading, rewriting, archiving, forgetting).

mod jobs;
mod nodes;
mod reports;
mod upkeep;
mod views;

pub(crate) use reports::apply_report;
pub(crate) use upkeep::{load, maintain};
pub(crate) use views::{JobsQuery, detail_reports, no_parameters, state_json};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use frameworks::{ChronosApi, MarathonApi};
use qos_core::Job;
use qos_core::job::Phase;
use qos_core::wire::Registered;
use rand::Rng;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::agent::NodeAgent;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::limits;
use crate::metrics::{JobLabels, Metrics};
use crate::state::{JobEntry, PersistedJob, Runtime, Saved, State};
use crate::store::{Store, StoreError};
use crate::summary::Summary;

/// Everything the handlers, the control loop and the housekeeping share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    pub(crate) state: Mutex<State>,
    pub(crate) store: Store,
    pub(crate) metrics: Metrics,
    pub(crate) triggers: mpsc::UnboundedSender<String>,
    pub(crate) marathon: Option<Arc<dyn MarathonApi>>,
    pub(crate) chronos: Option<Arc<dyn ChronosApi>>,
    pub(crate) agent: Arc<dyn NodeAgent>,
    pub(crate) ready: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Registration {
    /// A new job: its token.
    New(Registered),
    /// The job was already registered with this name and framework (an idempotent repeat); its
    /// token only for the admin.
    Existing {
        uuid: String,
        report_token: Option<String>,
    },
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// It changed the job.
    Applied,
    /// It repeated something already known; nothing changed.
    Duplicate,
    /// The job is not registered yet: the report is kept and applied at registration.
    Held,
}

fn store_err(e: &StoreError) -> ApiError {
    let unavailable = |code, message: &str| {
        ApiError::other(axum::http::StatusCode::SERVICE_UNAVAILABLE, code, message)
    };
    match e {
        StoreError::Overloaded => ApiError::unavailable("the supervisor is overloaded; retry"),
        StoreError::Closed => ApiError::unavailable("the supervisor is shutting down"),
        StoreError::Full(_) => unavailable(
            "storage_full",
            "the supervisor's database disk is full: nothing of this request was stored; retry once space is freed",
        ),
        StoreError::Earlier => unavailable(
            "storage_error",
            "an earlier database write for this failed; retry (it is written again)",
        ),
        StoreError::Sqlite(_) => {
            tracing::error!(error = %e, "database write refused");
            unavailable(
                "storage_error",
                "the database could not store this (the cause is in the supervisor's log); retry",
            )
        }
    }
}

/// Validates a job UUID ([`qos_core::wire::uuid_problem`]).
pub(crate) fn check_uuid(field: &str, uuid: &str) -> Result<(), ApiError> {
    match qos_core::wire::uuid_problem(field, uuid) {
        Some(m) => Err(ApiError::invalid(field, m)),
        None => Ok(()),
    }
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn trigger(&self, uuid: &str) {
        // The control loop may be gone during shutdown; nothing to wake then.
        let _ = self.triggers.send(uuid.to_owned());
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn job_labels(uuid: &str, job: &Job) -> JobLabels {
        JobLabels {
            uuid: uuid.to_owned(),
            name: job.name.clone(),
            framework: job.framework.as_str().to_owned(),
        }
    }

    /// Builds the entry of a new job, with its metric handles.
    pub(crate) fn entry(&self, p: PersistedJob) -> JobEntry {
        self.entry_loaded(p, None, None)
    }

    /// Builds an entry as loaded: `archived` when its lists stayed in the database, `saved` what
    /// of it is known to be stored.
    pub(crate) fn entry_loaded(
        &self,
        p: PersistedJob,
        archived: Option<Summary>,
        saved: Option<Saved>,
    ) -> JobEntry {
        let gauges = self.metrics.job(Self::job_labels(&p.uuid, &p.job));
        match &archived {
            Some(summary) => gauges.update_summary(&p.job, summary),
            None => gauges.update(&p.job, None),
        }
        if let Phase::Completed { met, .. } = p.job.phase {
            self.metrics.deadline_met(&gauges, met);
        }
        if let Phase::Lost { .. } = p.job.phase {
            self.metrics.job_lost(&gauges, false);
        }
        JobEntry {
            p,
            rt: Runtime {
                gauges: Some(gauges),
                store_failures: Arc::clone(self.store.generation()),
                items_max: self.config.storage.items_max_per_job,
                saved,
                archived,
                ..Runtime::default()
            },
        }
    }

    /// A client's time checked against our clock ([`limits::client_time`]); refusals are
    /// counted.
    pub(crate) fn client_time(&self, field: &str, t: f64, now: f64) -> Result<f64, ApiError> {
        let skew = self.config.limits.clock_skew;
        limits::client_time(field, t, now, skew).inspect_err(|_| {
            if t.is_finite() && t > now + skew {
                self.metrics.clock_skew_refused();
                tracing::debug!(field, at = t, now, "client time ahead of our clock refused");
            }
        })
    }

    /// Whether `token` is `uuid`'s report token (constant time).
    pub(crate) fn is_report_token(&self, uuid: &str, token: &str) -> Option<bool> {
        let st = self.lock();
        st.jobs
            .get(uuid)
            .map(|e| ct_eq(e.p.meta.report_token.as_bytes(), token.as_bytes()))
    }
}

/// Constant-time comparison of two secrets.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn move_node(st: &mut State, uuid: &str, from: Option<&str>, to: Option<&str>) {
    if let Some(f) = from {
        if let Some(set) = st.by_node.get_mut(f) {
            set.remove(uuid);
            if set.is_empty() {
                st.by_node.remove(f);
            }
        }
    }
    if let Some(t) = to {
        st.by_node
            .entry(t.to_owned())
            .or_default()
            .insert(uuid.to_owned());
    }
}

/// Records the node by its registered id when the report named its host.
fn normalise_node(hosts: &std::collections::HashMap<String, String>, entry: &mut JobEntry) {
    if let Some(id) = entry.p.meta.node.as_ref().and_then(|n| hosts.get(n)) {
        entry.p.meta.node = Some(id.clone());
    }
}
