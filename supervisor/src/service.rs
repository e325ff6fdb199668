//! The supervisor's operations, independent of HTTP: registration, reports (thesis and
//! versioned), samples, nodes, cancellation and the read views. The HTTP handlers in
//! [`crate::api`] only parse, authorise and call these; tests call them directly.
//!
//! Every operation follows one pattern: take the state lock, change memory, queue the write
//! (still under the lock, so writes keep the order of changes), release the lock, await the
//! write, then wake the control loop. Nothing here awaits while holding the lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use frameworks::{ChronosApi, MarathonApi};
use qos_core::job::{Effect, IterationReport, Observation, Phase};
use qos_core::spec::{Deadline, QosSpec};
use qos_core::wire::{
    CpuSample, EndMarathonApp, Heartbeat, InitMarathonApp, InitTask, JobRegistration,
    NodeRegistration, ProgressReport, Registered, SampleBatch, UpdateTask,
};
use qos_core::{Checkpointing, Cpus, Framework, Job, Work};
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::agent::NodeAgent;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::limits;
use crate::metrics::{JobLabels, Metrics};
use crate::state::{
    HELD_PER_JOB, Held, HeldReport, JobEntry, JobMeta, NodeEntry, PersistedJob, Runtime, Saved,
    State, Summary, decode_job, saved_after_load,
};
use crate::store::{Op, Store, StoreError};

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

/// Validates a job UUID: 1–64 characters of `[A-Za-z0-9_-]` (the thesis uses 32 hex digits).
pub(crate) fn check_uuid(field: &str, uuid: &str) -> Result<(), ApiError> {
    if uuid.is_empty() || uuid.len() > 64 {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to 64 characters long"),
        ));
    }
    if !uuid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::invalid(
            field,
            format!("{field} may only contain letters, digits, '-' and '_'"),
        ));
    }
    Ok(())
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

    /// Registers a job (from `POST /api/v1/jobs` or the thesis' `/initTask`). A repeated
    /// registration (`idempotent`) answers [`Registration::Existing`] with the job's token only
    /// when `reveal_token` (the caller presented the admin token).
    pub(crate) async fn register(
        &self,
        reg: JobRegistration,
        cpus_unknown: bool,
        idempotent: bool,
        reveal_token: bool,
    ) -> Result<Registration, ApiError> {
        check_uuid("uuid", &reg.uuid)?;
        limits::check_len("name", &reg.name, limits::MAX_NAME, true)?;
        match reg.framework {
            Framework::Chronos => frameworks::chronos::validate_job_name(&reg.name)
                .map_err(|e| ApiError::invalid("name", e.to_string()))?,
            Framework::Marathon => {
                frameworks::AppId::parse(&reg.name)
                    .map_err(|e| ApiError::invalid("name", e.to_string()))?;
            }
        }
        if !reg.cpus.is_finite() || reg.cpus <= 0.0 || reg.cpus > 1e6 {
            return Err(ApiError::invalid(
                "cpus",
                format!("cpus must be a positive number, got {}", reg.cpus),
            ));
        }
        let now = self.clock.now();
        let horizon = self.config.limits.deadline_horizon;
        let submitted = match reg.submitted_at {
            Some(t) => {
                let t = self.client_time("submitted_at", t, now)?;
                limits::not_before(
                    "submitted_at",
                    t,
                    now - horizon,
                    "the oldest submission accepted (limits.deadline_horizon ago)",
                )?;
                t
            }
            None => now,
        };
        let iterations = match (reg.framework, reg.iterations) {
            (Framework::Chronos, None) => {
                return Err(ApiError::invalid(
                    "iterations",
                    "iterations is required for Chronos jobs (the R<n> of the schedule)",
                ));
            }
            (Framework::Marathon, Some(_)) => {
                return Err(ApiError::invalid(
                    "iterations",
                    "iterations is only for Chronos jobs",
                ));
            }
            (_, it) => it,
        };
        reg.qos
            .validate_within(iterations, submitted, horizon)
            .map_err(|e| {
                // The schedule's length arrives as `iterations` here.
                let field = if e.field == "schedule" {
                    "iterations".to_owned()
                } else {
                    e.field.clone()
                };
                ApiError::invalid(field, e.to_string())
            })?;
        let checkpointing = match (reg.framework, reg.checkpoint.as_deref()) {
            (_, None) => Checkpointing::Unknown,
            (Framework::Chronos, Some(_)) => {
                return Err(ApiError::invalid(
                    "checkpoint",
                    "checkpoint is for Marathon jobs (a Chronos run loses nothing on a resize)",
                ));
            }
            (Framework::Marathon, Some(s)) => Checkpointing::from_strategy(s).ok_or_else(|| {
                ApiError::invalid(
                    "checkpoint",
                    format!("unknown checkpoint strategy {s:?} (expected app, criu, none or auto)"),
                )
            })?,
        };
        let mut job = reg.job(submitted);
        job.checkpointing = checkpointing;
        let warnings = self.config.controller().warnings(&job, now);
        let uuid = reg.uuid.clone();
        let repeat = {
            let mut st = self.lock();
            match st.jobs.get_mut(&uuid) {
                None => None,
                Some(existing) => {
                    let same = existing.p.job.name == reg.name
                        && existing.p.job.framework == reg.framework;
                    if !(idempotent && same) {
                        return Err(ApiError::conflict(
                            "uuid",
                            format!("job {uuid} is already registered"),
                        ));
                    }
                    let answer = Registration::Existing {
                        uuid: uuid.clone(),
                        report_token: reveal_token.then(|| existing.p.meta.report_token.clone()),
                    };
                    // The first registration may not be on disk yet (or may have failed):
                    // answer once it is.
                    let pending = if existing.needs_write() {
                        self.store.submit(vec![existing.op(now)])
                    } else {
                        self.store.barrier()
                    };
                    Some((pending, answer))
                }
            }
        };
        if let Some((pending, answer)) = repeat {
            pending.wait().await.map_err(|e| store_err(&e))?;
            return Ok(answer);
        }
        let pending = {
            let mut st = self.lock();
            let st = &mut *st;
            if st.jobs.contains_key(&uuid) {
                // Registered meanwhile by a concurrent request.
                return Err(ApiError::conflict(
                    "uuid",
                    format!("job {uuid} is already registered"),
                ));
            }
            let mut entry = self.entry(PersistedJob {
                uuid: uuid.clone(),
                job,
                meta: JobMeta {
                    report_token: new_token(),
                    registered_at: now,
                    cpus_unknown,
                    ..JobMeta::default()
                },
            });
            let mut ops = Vec::new();
            if let Some(held) = st.held.remove(&uuid) {
                st.held_bytes = st.held_bytes.saturating_sub(held.bytes);
                let n = held.reports.len();
                for (received, report) in held.reports {
                    if let Err(e) = apply_report(self, &mut entry, report, received) {
                        tracing::warn!(job.uuid = %uuid, error = %e.message, "a held report does not apply to the registered job; dropped");
                    }
                }
                tracing::info!(job.uuid = %uuid, reports = n, "applied reports held before registration");
                ops.push(Op::DeleteHeld { uuid: uuid.clone() });
            }
            if let Some(node) = entry.p.meta.node.clone() {
                st.by_node.entry(node).or_default().insert(uuid.clone());
            }
            let token = entry.p.meta.report_token.clone();
            if entry.p.job.phase.is_terminal() {
                entry.p.meta.finished_wall = Some(now);
                st.retiring.push_back((now, uuid.clone()));
            }
            ops.push(entry.op(now));
            st.jobs.insert(uuid.clone(), entry);
            (self.store.submit(ops), token)
        };
        let (pending, report_token) = pending;
        pending.wait().await.map_err(|e| store_err(&e))?;
        tracing::info!(job.uuid = %uuid, job.name = %reg.name, framework = reg.framework.as_str(), "job registered");
        self.trigger(&uuid);
        for w in &warnings {
            tracing::warn!(job.uuid = %uuid, warning = %w, "registered with a warning");
        }
        Ok(Registration::New(Registered {
            uuid,
            report_token,
            warnings,
        }))
    }

    /// Registers a job sent the thesis' way (`/initTask`): no `cpus` (read from the framework),
    /// Chronos deadline absolute, Marathon deadline relative. Repeating it is idempotent; the
    /// job's token is given again only to the admin (`reveal_token`).
    pub(crate) async fn init_task(
        &self,
        t: InitTask,
        reveal_token: bool,
    ) -> Result<Registration, ApiError> {
        let deadline = match t.framework {
            Framework::Chronos => Deadline::Absolute(t.deadline),
            Framework::Marathon => Deadline::Relative(t.deadline),
        };
        let qos = QosSpec {
            duration: t.job_duration,
            deadline,
            desv_deadline: t.desv_deadline,
        };
        let reg = JobRegistration {
            uuid: t.uuid,
            name: t.name,
            framework: t.framework,
            qos,
            iterations: t.iterations,
            cpus: self.config.control.default_cpus,
            submitted_at: None,
            checkpoint: None,
        };
        self.register(reg, true, true, reveal_token).await
    }

    /// Applies a report for `uuid`, holding it if the job is unknown and `may_hold`.
    pub(crate) async fn report(
        &self,
        uuid: &str,
        report: HeldReport,
        may_hold: bool,
    ) -> Result<ReportOutcome, ApiError> {
        check_uuid("uuid", uuid)?;
        let now = self.clock.now();
        self.check_report(&report, now)?;
        // Chronos jobs are evaluated at each report; Marathon jobs on their period (a start or
        // restore is not a reason to look early: the thesis checked every 120 s, and a look
        // right after a restore would act twice on the same data), and at their end.
        let wake = matches!(report, HeldReport::Iteration(_) | HeldReport::Ended(_));
        let (outcome, pending) = {
            let mut st = self.lock();
            let st = &mut *st;
            match st.jobs.get_mut(uuid) {
                Some(entry) => {
                    let was_node = entry.p.meta.node.clone();
                    let effect = apply_report(self, entry, report, now)?;
                    normalise_node(&st.hosts, entry);
                    let node = entry.p.meta.node.clone();
                    if effect == Effect::Applied
                        && entry.p.job.phase.is_terminal()
                        && entry.p.meta.finished_wall.is_none()
                    {
                        entry.p.meta.finished_wall = Some(now);
                        st.retiring.push_back((now, uuid.to_owned()));
                    }
                    // A duplicate is acknowledged once what it repeats is on disk: written
                    // again if a write may have failed since, else after what is queued.
                    let pending = if effect == Effect::Applied || entry.needs_write() {
                        self.store.submit(vec![entry.op(now)])
                    } else {
                        self.store.barrier()
                    };
                    if was_node != node {
                        move_node(st, uuid, was_node.as_deref(), node.as_deref());
                    }
                    let outcome = if effect == Effect::Applied {
                        ReportOutcome::Applied
                    } else {
                        ReportOutcome::Duplicate
                    };
                    (outcome, pending)
                }
                None if may_hold => {
                    let op = hold(self, st, uuid, report, now)?;
                    (
                        ReportOutcome::Held,
                        self.store.submit(op.into_iter().collect()),
                    )
                }
                None => return Err(ApiError::unauthorized()),
            }
        };
        pending.wait().await.map_err(|e| store_err(&e))?;
        if outcome == ReportOutcome::Held {
            tracing::info!(job.uuid = %uuid, "report for an unregistered job held until its registration");
        }
        if wake && outcome == ReportOutcome::Applied {
            self.trigger(uuid);
        }
        Ok(outcome)
    }

    /// What a report may carry, whether its job is known or not: bounded strings, times not
    /// ahead of our clock (a held report is checked before it is held).
    fn check_report(&self, report: &HeldReport, now: f64) -> Result<(), ApiError> {
        match report {
            HeldReport::Iteration(u) => {
                limits::check_len("name", &u.name, limits::MAX_NAME, true)?;
                limits::check_len("hostname", &u.hostname, limits::MAX_HOSTNAME, false)?;
                self.client_time("started_at", u.started_at, now)?;
                self.client_time("finished_at", u.finished_at, now)?;
            }
            HeldReport::Started(m) => {
                self.client_time("started_at", m.started_at, now)?;
            }
            HeldReport::Ended(e) => {
                self.client_time("finished_at", e.finished_at, now)?;
            }
            HeldReport::Progress(p) => {
                if let Some(at) = p.at {
                    self.client_time("at", at, now)?;
                }
            }
            HeldReport::Sample { .. } => {}
        }
        Ok(())
    }

    /// A batch of CPU samples from a node: applied in memory, written behind (they are
    /// cumulative, so a reading lost in a crash is covered by the next one).
    pub(crate) fn samples(&self, batch: SampleBatch) -> Result<Value, ApiError> {
        limits::check_len("node", &batch.node, limits::MAX_NAME, true)?;
        let now = self.clock.now();
        for (i, s) in batch.samples.iter().enumerate() {
            let f = |name: &str| format!("samples[{i}].{name}");
            self.client_time(&f("at"), s.at, now)?;
            for (name, v) in [
                ("user_secs", Some(s.user_secs)),
                ("system_secs", Some(s.system_secs)),
                ("total_secs", Some(s.total_secs)),
                ("quota_cpus", s.quota_cpus),
                ("throttled_secs", s.throttled_secs),
            ] {
                let Some(v) = v else { continue };
                if !v.is_finite() || v < 0.0 {
                    return Err(ApiError::invalid(
                        f(name),
                        format!("{} must be a number ≥ 0, got {v}", f(name)),
                    ));
                }
            }
            limits::check_len(&f("container_id"), &s.container_id, limits::MAX_NAME, true)?;
            if let Some(n) = &s.name {
                limits::check_len(&f("name"), n, limits::MAX_NAME, false)?;
            }
            if let Some(u) = &s.uuid {
                check_uuid(&f("uuid"), u)?;
            }
        }
        let (mut applied, mut held, mut ignored) = (0u64, 0u64, 0u64);
        let mut detached = Vec::new();
        {
            let mut st = self.lock();
            let st = &mut *st;
            for sample in batch.samples {
                let Some(uuid) = sample.uuid.clone() else {
                    ignored += 1;
                    continue;
                };
                let report = HeldReport::Sample {
                    node: batch.node.clone(),
                    sample,
                };
                match st.jobs.get_mut(&uuid) {
                    Some(entry) => {
                        let was_node = entry.p.meta.node.clone();
                        let down = self.config.control.sample_downsample;
                        if let HeldReport::Sample { sample, .. } = &report {
                            if entry
                                .p
                                .meta
                                .last_sample_stored
                                .is_none_or(|t| now - t >= down)
                            {
                                entry.p.meta.last_sample_stored = Some(now);
                                detached.push(Op::Sample {
                                    uuid: uuid.clone(),
                                    container: sample.container_id.clone(),
                                    at: now,
                                    client_at: sample.at,
                                    cumulative_secs: cumulative(sample),
                                });
                            }
                        }
                        match apply_report(self, entry, report, now) {
                            Ok(_) => applied += 1,
                            Err(_) => ignored += 1,
                        }
                        entry.rt.dirty = true;
                        normalise_node(&st.hosts, entry);
                        let node = entry.p.meta.node.clone();
                        if was_node != node {
                            move_node(st, &uuid, was_node.as_deref(), node.as_deref());
                        }
                    }
                    None => match hold(self, st, &uuid, report, now) {
                        Ok(_) => held += 1,
                        Err(_) => ignored += 1,
                    },
                }
            }
        }
        self.store.submit_detached(detached);
        Ok(json!({"accepted": applied, "held": held, "ignored": ignored}))
    }

    /// Cancels a job: it stops being controlled and is removed from its framework (a Chronos
    /// job's running task killed); shell-trap removes a Marathon job's checkpoints unless
    /// `keep_checkpoints`.
    pub(crate) async fn cancel(&self, uuid: &str, keep_checkpoints: bool) -> Result<(), ApiError> {
        let now = self.clock.now();
        let pending = {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(entry) = st.jobs.get_mut(uuid) else {
                return Err(ApiError::not_found(format!("no job {uuid}")));
            };
            if !entry.p.job.phase.is_terminal() {
                let _ = entry.p.job.observe(Observation::Cancelled { at: now });
                entry.p.meta.finished_wall = Some(now);
                entry.p.meta.keep_checkpoints = keep_checkpoints;
                st.retiring.push_back((now, uuid.to_owned()));
            }
            self.store.submit(vec![entry.op(now)])
        };
        pending.wait().await.map_err(|e| store_err(&e))?;
        tracing::info!(job.uuid = %uuid, keep_checkpoints, "job cancelled");
        self.trigger(uuid);
        Ok(())
    }

    /// Registers (or re-registers) a node.
    pub(crate) async fn register_node(&self, reg: NodeRegistration) -> Result<(), ApiError> {
        check_uuid("id", &reg.id).map_err(|_| {
            ApiError::invalid(
                "id",
                "id must be 1 to 64 characters of letters, digits, '-' and '_'",
            )
        })?;
        limits::check_len("hostname", &reg.hostname, limits::MAX_HOSTNAME, true)?;
        if reg.labels.len() > limits::MAX_LABELS {
            return Err(ApiError::invalid(
                "labels",
                format!(
                    "labels has {} entries; at most {} are accepted",
                    reg.labels.len(),
                    limits::MAX_LABELS
                ),
            ));
        }
        for (k, v) in &reg.labels {
            let field = format!("labels.{}", limits::truncate(k, 64));
            limits::check_len(&field, k, limits::MAX_NAME, true)?;
            limits::check_len(&field, v, limits::MAX_NAME, false)?;
        }
        if !reg.cpus.is_finite() || reg.cpus < 0.0 || reg.cpus > 1e6 {
            return Err(ApiError::invalid(
                "cpus",
                format!("cpus must be a number ≥ 0, got {}", reg.cpus),
            ));
        }
        if let Some(u) = &reg.agent_url {
            limits::check_len("agent_url", u, limits::MAX_URL, true)?;
            let ok =
                frameworks::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(ApiError::invalid(
                    "agent_url",
                    format!("agent_url must be an http(s) URL, got {u:?}"),
                ));
            }
        }
        let now = self.clock.now();
        let pending = {
            let mut st = self.lock();
            let beat = st.nodes.get(&reg.id).and_then(|n| n.beat.clone());
            st.hosts.insert(reg.hostname.clone(), reg.id.clone());
            let node = NodeEntry {
                reg: reg.clone(),
                last_seen: now,
                beat,
                reserved: Cpus::ZERO,
            };
            let op = node.op();
            st.nodes.insert(reg.id.clone(), node);
            self.store.submit(vec![op])
        };
        pending.wait().await.map_err(|e| store_err(&e))?;
        tracing::info!(node.id = %reg.id, node.hostname = %reg.hostname, cpus = reg.cpus, "node registered");
        Ok(())
    }

    /// A node's heartbeat (written behind: the next one supersedes it).
    pub(crate) fn heartbeat(&self, id: &str, beat: Heartbeat) -> Result<(), ApiError> {
        for (name, v) in [
            ("free_cpus", beat.free_cpus),
            ("allocated_cpus", beat.allocated_cpus),
            ("load1", beat.load1),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ApiError::invalid(
                    name,
                    format!("{name} must be a number ≥ 0, got {v}"),
                ));
            }
        }
        let now = self.clock.now();
        self.client_time("at", beat.at, now)?;
        if beat.allocated_by_job.len() > limits::MAX_JOBS_PER_NODE {
            return Err(ApiError::invalid(
                "allocated_by_job",
                format!(
                    "allocated_by_job has {} entries; at most {} are accepted",
                    beat.allocated_by_job.len(),
                    limits::MAX_JOBS_PER_NODE
                ),
            ));
        }
        for (uuid, cpus) in &beat.allocated_by_job {
            let field = format!("allocated_by_job.{}", limits::truncate(uuid, 64));
            check_uuid(&field, uuid)?;
            if !cpus.is_finite() || *cpus < 0.0 {
                return Err(ApiError::invalid(
                    &field,
                    format!("{field} must be a number ≥ 0, got {cpus}"),
                ));
            }
        }
        let op = {
            let mut st = self.lock();
            let Some(node) = st.nodes.get_mut(id) else {
                return Err(ApiError::not_found(format!("node {id} is not registered")));
            };
            node.beat = Some(beat);
            node.last_seen = now;
            node.reserved = Cpus::ZERO;
            node.op()
        };
        self.store.submit_detached(vec![op]);
        Ok(())
    }

    /// `GET /api/v1/nodes`.
    pub(crate) fn nodes_view(&self) -> Value {
        let now = self.clock.now();
        let timeout = self.config.control.node_timeout;
        let st = self.lock();
        let mut nodes: Vec<&NodeEntry> = st.nodes.values().collect();
        nodes.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
        Value::Array(
            nodes
                .into_iter()
                .map(|n| {
                    json!({
                        "id": n.reg.id,
                        "hostname": n.reg.hostname,
                        "cpus": n.reg.cpus,
                        "memory_bytes": n.reg.memory_bytes,
                        "labels": n.reg.labels,
                        "agent_url": n.reg.agent_url,
                        "alive": n.alive(now, timeout),
                        "last_seen": n.last_seen,
                        "free_cpus": n.free().as_f64(),
                        "heartbeat": n.beat,
                        "jobs": st.by_node.get(&n.reg.id).map_or(0, std::collections::HashSet::len),
                    })
                })
                .collect(),
        )
    }

    /// `GET /api/v1/jobs`.
    pub(crate) fn jobs_view(&self) -> Value {
        let st = self.lock();
        let mut jobs: Vec<&JobEntry> = st.jobs.values().collect();
        jobs.sort_by(|a, b| {
            a.p.meta
                .registered_at
                .total_cmp(&b.p.meta.registered_at)
                .then_with(|| a.p.uuid.cmp(&b.p.uuid))
        });
        Value::Array(
            jobs.into_iter()
                .map(|e| job_view(&e.p, &e.rt, e.rt.archived.as_ref(), false))
                .collect(),
        )
    }

    /// `GET /api/v1/jobs/{uuid}`: a finished job's history of reports and resizes is read from
    /// the database.
    pub(crate) async fn job_view(&self, uuid: &str) -> Result<Value, ApiError> {
        let not_found = || ApiError::not_found(format!("no job {uuid}"));
        {
            let st = self.lock();
            let e = st.jobs.get(uuid).ok_or_else(not_found)?;
            if e.rt.archived.is_none() {
                return Ok(job_view(&e.p, &e.rt, None, true));
            }
        }
        let items = self.store.items(uuid).await.map_err(|e| store_err(&e))?;
        let st = self.lock();
        let e = st.jobs.get(uuid).ok_or_else(not_found)?;
        let whole = e.whole(Some(&items)).map_err(|m| ApiError::internal(&m))?;
        Ok(job_view(&whole, &e.rt, None, true))
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

fn cumulative(s: &CpuSample) -> f64 {
    if s.total_secs > 0.0 {
        s.total_secs
    } else {
        s.user_secs + s.system_secs
    }
}

/// Most containers one job may have had (each restart is a new one); a job's row stays bounded.
const MAX_CONTAINERS_PER_JOB: usize = 64;

/// Holds a report for an unknown job; returns the write (none for samples, which are kept in
/// memory only). Bounded by UUIDs (`control.held_max_jobs`), reports per UUID
/// ([`HELD_PER_JOB`]) and bytes over all of them (`limits.held_max_bytes`).
fn hold(
    sh: &Shared,
    st: &mut State,
    uuid: &str,
    report: HeldReport,
    now: f64,
) -> Result<Option<Op>, ApiError> {
    let refuse = |message: String| {
        sh.metrics.held_refused();
        ApiError::unavailable(message)
    };
    let max_jobs = sh.config.control.held_max_jobs;
    if !st.held.contains_key(uuid) && st.held.len() >= max_jobs {
        return Err(refuse(format!(
            "reports are held for {} jobs not registered yet, the most there may be (control.held_max_jobs); register the job first",
            st.held.len()
        )));
    }
    let same_container = |r: &HeldReport, id: &str| matches!(r, HeldReport::Sample { sample: s, .. } if s.container_id == id);
    let weight = report.weight();
    // A sample replaces the held one of its container (cumulative: only the newest matters).
    let replaced: usize = match (&report, st.held.get(uuid)) {
        (HeldReport::Sample { sample, .. }, Some(h)) => h
            .reports
            .iter()
            .filter(|(_, r)| same_container(r, &sample.container_id))
            .map(|(_, r)| r.weight())
            .sum(),
        _ => 0,
    };
    let max_bytes = sh.config.limits.held_max_bytes;
    let fits = |total: usize| total.saturating_sub(replaced) + weight <= max_bytes;
    if !fits(st.held_bytes) {
        // The running total still counts what expired since: recount before refusing.
        st.held_bytes = st.held.values().map(|h| h.bytes).sum();
        if !fits(st.held_bytes) {
            return Err(refuse(format!(
                "reports held for jobs not registered yet weigh {} bytes, and {weight} more would pass the bound of {max_bytes} (limits.held_max_bytes); register the job first",
                st.held_bytes
            )));
        }
    }
    let held = st.held.entry(uuid.to_owned()).or_insert_with(|| Held {
        first_at: now,
        ..Held::default()
    });
    if let HeldReport::Sample { sample, .. } = &report {
        let id = sample.container_id.clone();
        held.reports.retain(|(_, r)| !same_container(r, &id));
        let mut freed = replaced;
        if held.reports.len() >= HELD_PER_JOB {
            if let Some((_, old)) = held.reports.pop_front() {
                freed += old.weight();
            }
        }
        held.reports.push_back((now, report));
        held.bytes = (held.bytes + weight).saturating_sub(freed);
        st.held_bytes = (st.held_bytes + weight).saturating_sub(freed);
        return Ok(None);
    }
    if held.reports.len() >= HELD_PER_JOB {
        return Err(refuse(format!(
            "{HELD_PER_JOB} reports are already held for unregistered job {uuid}; register it first"
        )));
    }
    let body = serde_json::to_string(&report).map_err(|e| ApiError::internal(&e))?;
    held.reports.push_back((now, report));
    held.bytes += weight;
    st.held_bytes += weight;
    Ok(Some(Op::InsertHeld {
        uuid: uuid.to_owned(),
        received_at: now,
        body,
    }))
}

/// Turns a report that arrived at `arrival` (supervisor time; for a held report, when it was
/// held) into observations of `entry`'s job.
///
/// Time comes from the supervisor's clock wherever the client's adds nothing: a CPU sample or a
/// progress report is observed at its arrival, so a dead collector's data goes stale by our
/// clock whatever the sample said. The times a report is *about* (an iteration's start and
/// end, a task's start or end) are the client's, checked: not ahead of our clock by more than
/// `limits.clock_skew` (read as `arrival` within it), and not before the job could have been
/// submitted (`submitted_at` − `control.held_ttl`, the longest a report may wait for its
/// registration).
pub(crate) fn apply_report(
    sh: &Shared,
    entry: &mut JobEntry,
    report: HeldReport,
    arrival: f64,
) -> Result<Effect, ApiError> {
    let was_terminal = entry.p.job.phase.is_terminal();
    let job = &mut entry.p.job;
    let meta = &mut entry.p.meta;
    let obs_err = |e: qos_core::job::ObserveError| ApiError::invalid(e.field, e.to_string());
    let earliest = job.qos.submitted_at - sh.config.control.held_ttl - sh.config.limits.clock_skew;
    let when = |field: &str, t: f64| -> Result<f64, ApiError> {
        let t = sh.client_time(field, t, arrival)?;
        limits::not_before(field, t, earliest, "the job's submission")?;
        Ok(t)
    };
    let effect = match report {
        HeldReport::Iteration(u) => {
            if u.name != job.name {
                return Err(ApiError::invalid(
                    "name",
                    format!(
                        "job {} is named {:?}, not {:?}",
                        entry.p.uuid, job.name, u.name
                    ),
                ));
            }
            let started_at = when("started_at", u.started_at)?;
            let finished_at = when("finished_at", u.finished_at)?;
            if u.exit_code.is_some_and(|c| c != 0.0) {
                tracing::warn!(job.uuid = %entry.p.uuid, exit_code = ?u.exit_code, "iteration reported a failure; it still used one of the scheduled runs");
            }
            let ran_with = match u.cpus {
                None => Cpus::ZERO,
                Some(c) if (0.001..=10_000.0).contains(&c) => Cpus::from_f64(c),
                Some(c) => {
                    return Err(ApiError::invalid(
                        "cpus",
                        format!("cpus must be between 0.001 and 10000, got {c}"),
                    ));
                }
            };
            if !u.hostname.is_empty() && u.hostname.len() <= limits::MAX_HOSTNAME {
                meta.node = Some(u.hostname.clone());
            }
            job.observe(Observation::Iteration(IterationReport {
                started_at,
                finished_at,
                hostname: u.hostname,
                cpus: ran_with,
            }))
            .map_err(obs_err)?
        }
        HeldReport::Started(m) => {
            if matches!(job.work, Work::Iterative(_)) {
                return Err(ApiError::invalid(
                    "uuid",
                    format!(
                        "initMarathonApp is for Marathon jobs; {} is a Chronos job (its runs report with updateTask)",
                        entry.p.uuid
                    ),
                ));
            }
            let at = when("started_at", m.started_at)?;
            if let Some(strategy) = &m.strategy {
                // shell-trap says which strategy it runs with: whether a restart keeps the work.
                match Checkpointing::from_strategy(strategy) {
                    Some(Checkpointing::Unknown) | None => {}
                    Some(c) => job.checkpointing = c,
                }
            }
            job.observe(Observation::Started {
                at,
                restored: m.restored,
            })
            .map_err(obs_err)?
        }
        HeldReport::Ended(e) => {
            if matches!(job.work, Work::Iterative(_)) {
                return Err(ApiError::invalid(
                    "uuid",
                    format!(
                        "endMarathonApp is for Marathon jobs; {} is a Chronos job",
                        entry.p.uuid
                    ),
                ));
            }
            let at = when("finished_at", e.finished_at)?;
            job.observe(Observation::Ended {
                at,
                success: e.exit_code.is_none_or(|c| c == 0.0),
            })
            .map_err(obs_err)?
        }
        HeldReport::Progress(p) => {
            if let Some(at) = p.at {
                sh.client_time("at", at, arrival)?;
            }
            if !(0.0..=1.0).contains(&p.fraction) {
                return Err(ApiError::invalid("fraction", "fraction must be in [0, 1]"));
            }
            job.observe(Observation::Progress {
                at: arrival,
                fraction: p.fraction,
            })
            .map_err(obs_err)?
        }
        HeldReport::Sample { node, sample } => {
            // A new container while a restart is under way is the task coming back: the job
            // model infers that (and whether the work survived) itself.
            let source = sample.container_id.clone();
            if let Work::Continuous(w) = &job.work {
                if !w.cpu.knows(&source) && w.cpu.containers() >= MAX_CONTAINERS_PER_JOB {
                    return Err(ApiError::invalid(
                        "container_id",
                        format!(
                            "job {} has had {MAX_CONTAINERS_PER_JOB} containers already; samples of a new one are refused",
                            entry.p.uuid
                        ),
                    ));
                }
            }
            meta.node = Some(node);
            job.observe(Observation::CpuSample {
                at: arrival,
                source,
                cumulative_secs: cumulative(&sample),
            })
            .map_err(obs_err)?
        }
    };
    if effect == Effect::Applied {
        if let Some(g) = &entry.rt.gauges {
            g.update(&entry.p.job, None);
            if !was_terminal {
                if let Phase::Completed { met, .. } = entry.p.job.phase {
                    sh.metrics.deadline_met(g, met);
                }
            }
        }
    }
    Ok(effect)
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Pending => "pending",
        Phase::Running => "running",
        Phase::Restarting { .. } => "restarting",
        Phase::Completed { .. } => "completed",
        Phase::Failed { .. } => "failed",
        Phase::Cancelled { .. } => "cancelled",
        Phase::Lost { .. } => "lost",
    }
}

/// A job's view. `summary`: its lists are not in memory (archived), show the summary instead.
fn job_view(p: &PersistedJob, rt: &Runtime, summary: Option<&Summary>, detail: bool) -> Value {
    let job = &p.job;
    let meta = &p.meta;
    let (class, decision) = match &rt.last_decision {
        Some((at, d)) => (
            Some(d.class.as_str()),
            Some(
                json!({"at": at, "class": d.class, "action": d.action, "reason": d.reason, "figures": d.figures}),
            ),
        ),
        None => (meta.last_class.map(qos_core::Class::as_str), None),
    };
    let (progress, remaining, resizes) = match summary {
        Some(s) => (s.progress, s.remaining_iterations, s.resizes),
        None => (
            job.progress(),
            job.remaining_iterations(),
            job.resizes.len(),
        ),
    };
    let mut v = json!({
        "uuid": p.uuid,
        "name": job.name,
        "framework": job.framework,
        "state": phase_name(job.phase),
        "phase": job.phase,
        "class": class,
        "cpus": job.cpus.as_f64(),
        "progress": progress,
        "remaining_iterations": remaining,
        "qos": job.qos,
        "prediction": decision.as_ref().and_then(|d| d["figures"]["prediction"].as_f64()),
        "node": meta.node,
        "registered_at": meta.registered_at,
        "resizes": resizes,
        "cleaned_up": meta.cleaned_up,
    });
    if let Some(why) = &meta.lost_reason {
        v["lost_reason"] = json!(why);
    }
    if meta.keep_checkpoints {
        v["keep_checkpoints"] = json!(true);
    }
    if let Work::Iterative(w) = &job.work {
        v["iterations"] = json!(w.total);
    }
    if let Work::Continuous(w) = &job.work {
        v["cpu_seconds"] = json!(w.cpu.total());
        v["cpu_sample_at"] = json!(w.cpu.last_sample_at());
        v["started_at"] = json!(w.started_at);
        v["checkpointing"] = json!(job.checkpointing);
        v["restarts"] = json!(w.restarts);
        // Work thrown away by restarts from scratch: CPU-seconds that bought nothing.
        v["restarts_lost"] = json!(w.restarts_lost);
        v["cpu_seconds_lost"] = json!(w.cpu.lost());
    }
    if detail {
        v["decision"] = decision.unwrap_or(Value::Null);
        v["resize_history"] = json!(job.resizes);
        v["last_error"] = json!(rt.last_error);
        match &job.work {
            Work::Iterative(w) => v["reports"] = json!(w.reports),
            // What is known of the task: restarts and their costs, CPU per container,
            // progress segments (the speed model's evidence), its end.
            Work::Continuous(w) => v["work"] = json!(w),
        }
    }
    v
}

/// The thesis `/updateTask` body as a report.
pub(crate) fn iteration(u: UpdateTask) -> HeldReport {
    HeldReport::Iteration(u)
}

/// The thesis `/initMarathonApp` body as a report.
pub(crate) fn started(m: InitMarathonApp) -> HeldReport {
    HeldReport::Started(m)
}

/// The thesis `/endMarathonApp` body as a report.
pub(crate) fn ended(e: EndMarathonApp) -> HeldReport {
    HeldReport::Ended(e)
}

/// A progress report with its time filled in.
pub(crate) fn progress(p: ProgressReport) -> HeldReport {
    HeldReport::Progress(p)
}

/// Loads the database into memory.
pub(crate) async fn load(sh: &Shared) -> Result<Vec<String>, StoreError> {
    let loaded = sh.store.load().await?;
    let now = sh.clock.now();
    let mut st = sh.lock();
    let st = &mut *st;
    let mut uuids = Vec::new();
    for body in loaded.nodes {
        match serde_json::from_str::<NodeEntry>(&body) {
            Ok(n) => {
                st.hosts.insert(n.reg.hostname.clone(), n.reg.id.clone());
                st.nodes.insert(n.reg.id.clone(), n);
            }
            Err(e) => tracing::error!(error = %e, "unreadable node row skipped"),
        }
    }
    let generation = sh.store.generation().load(Ordering::Acquire);
    let mut rewrite = Vec::new();
    for stored in loaded.jobs {
        match decode_job(&stored.body, &stored.items, stored.archived) {
            Ok((p, archived, whole)) => {
                let uuid = p.uuid.clone();
                if let (Some(node), None) = (&p.meta.node, &archived) {
                    st.by_node
                        .entry(node.clone())
                        .or_default()
                        .insert(uuid.clone());
                }
                if let Some(at) = p.meta.finished_wall {
                    st.retiring.push_back((at, uuid.clone()));
                }
                let active = !p.job.phase.is_terminal() || !p.meta.cleaned_up;
                let saved = saved_after_load(&p, whole, generation);
                let mut entry = sh.entry_loaded(p, archived, saved);
                if entry.needs_write() {
                    // A row of the first schema, or lists with a gap (a write lost in a
                    // failure): written whole now.
                    rewrite.push(entry.op(now));
                }
                st.jobs.insert(uuid.clone(), entry);
                if active {
                    uuids.push(uuid);
                }
            }
            Err(e) => tracing::error!(error = %e, "unreadable job row skipped"),
        }
    }
    if !rewrite.is_empty() {
        tracing::info!(jobs = rewrite.len(), "jobs written again in full");
        sh.store.submit_detached(rewrite);
    }
    for (uuid, at, body) in loaded.held {
        match serde_json::from_str::<HeldReport>(&body) {
            Ok(r) => {
                let w = r.weight();
                let h = st.held.entry(uuid).or_insert_with(|| Held {
                    first_at: at,
                    ..Held::default()
                });
                h.reports.push_back((at, r));
                h.bytes += w;
                st.held_bytes += w;
            }
            Err(e) => tracing::error!(error = %e, "unreadable held report skipped"),
        }
    }
    st.retiring
        .make_contiguous()
        .sort_by(|a, b| a.0.total_cmp(&b.0));
    tracing::info!(
        jobs = st.jobs.len(),
        active = uuids.len(),
        held = st.held.len(),
        nodes = st.nodes.len(),
        at = now,
        "state loaded"
    );
    Ok(uuids)
}

/// Upkeep of what is stored, every `control.flush_interval`: jobs a failed write may have left
/// incomplete in the database are written whole again (at once, then with a doubling wait of up
/// to 64 ticks while writes keep failing); finished, cleaned-up jobs whose writes
/// are all on disk leave their lists to the database (memory stays bounded by the jobs that
/// run); jobs finished more than `control.retention` ago are forgotten, memory and database
/// (checked every minute); the held reports' byte count is recounted.
pub(crate) async fn maintain(sh: Arc<Shared>, cancel: tokio_util::sync::CancellationToken) {
    let period = crate::config::ControlConfig::dur(sh.config.control.flush_interval);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_failures = sh.store.generation().load(Ordering::Acquire);
    // While writes keep failing (a full disk), whole rewrites are tried less and less often.
    let mut rewrite_wait = 1u32;
    let mut rewrite_in = 0u32;
    let mut last_forget = sh.clock.now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let failures = sh.store.generation().load(Ordering::Acquire);
        if failures == seen_failures {
            rewrite_wait = 1;
        } else if rewrite_in > 0 {
            rewrite_in -= 1;
        } else {
            seen_failures = failures;
            rewrite_unsaved(&sh);
            rewrite_in = rewrite_wait;
            rewrite_wait = (rewrite_wait * 2).min(64);
        }
        archive_finished(&sh).await;
        let now = sh.clock.now();
        if now - last_forget >= 60.0 {
            last_forget = now;
            forget_expired(&sh, now);
        }
        let mut st = sh.lock();
        st.held_bytes = st.held.values().map(|h| h.bytes).sum();
    }
}

/// Writes whole every job whose last write may have been lost.
fn rewrite_unsaved(sh: &Shared) {
    let now = sh.clock.now();
    let ops: Vec<Op> = {
        let mut st = sh.lock();
        st.jobs
            .values_mut()
            .filter(|e| e.needs_write())
            .map(|e| e.op(now))
            .collect()
    };
    if !ops.is_empty() {
        tracing::warn!(
            jobs = ops.len(),
            "a database write failed: writing the jobs it may have left incomplete again"
        );
        sh.store.submit_detached(ops);
    }
}

/// Drops from memory the lists of finished, cleaned-up jobs once everything written of them is
/// known to be on disk.
async fn archive_finished(sh: &Shared) {
    let candidates: Vec<String> = {
        let st = sh.lock();
        st.jobs
            .values()
            .filter(|e| {
                e.rt.archived.is_none()
                    && e.p.job.phase.is_terminal()
                    && e.p.meta.cleaned_up
                    && !e.rt.dirty
                    && !e.needs_write()
            })
            .map(|e| e.p.uuid.clone())
            .collect()
    };
    if candidates.is_empty() || sh.store.barrier().wait().await.is_err() {
        return;
    }
    let mut st = sh.lock();
    let st = &mut *st;
    for uuid in candidates {
        if let Some(e) = st.jobs.get_mut(&uuid) {
            if !e.rt.dirty && !e.needs_write() {
                e.archive();
                // No longer one of its node's jobs: what runs there is what shares its CPUs.
                let node = e.p.meta.node.clone();
                move_node(st, &uuid, node.as_deref(), None);
            }
        }
    }
}

/// Forgets the jobs that finished more than `control.retention` ago.
fn forget_expired(sh: &Shared, now: f64) {
    let before = now - sh.config.control.retention;
    let mut st = sh.lock();
    let st = &mut *st;
    let expired: Vec<String> = st
        .jobs
        .values()
        .filter(|e| {
            e.p.job.phase.is_terminal() && e.p.meta.finished_wall.is_some_and(|t| t < before)
        })
        .map(|e| e.p.uuid.clone())
        .collect();
    if expired.is_empty() {
        return;
    }
    let mut ops = Vec::with_capacity(expired.len());
    for uuid in &expired {
        if let Some(e) = st.jobs.remove(uuid) {
            if let Some(g) = &e.rt.gauges {
                sh.metrics.retire(g);
            }
            move_node(st, uuid, e.p.meta.node.as_deref(), None);
        }
        ops.push(Op::ForgetJob { uuid: uuid.clone() });
    }
    st.retiring.retain(|(_, u)| st.jobs.contains_key(u));
    tracing::info!(
        jobs = expired.len(),
        "jobs finished more than control.retention ago forgotten"
    );
    sh.store.submit_detached(ops);
}

/// Everything the supervisor would resume from, as JSON: every job whole (its lists read from
/// the database when they are not in memory), the held reports (not the held CPU samples, kept
/// in memory only), the nodes — sorted, so that two states compare equal when they are the same.
pub(crate) async fn state_json(sh: &Shared) -> Result<Value, StoreError> {
    let (mut jobs, archived, held, mut nodes) = {
        let st = sh.lock();
        let mut jobs = Vec::new();
        let mut archived = Vec::new();
        for e in st.jobs.values() {
            if e.rt.archived.is_some() {
                archived.push(e.p.uuid.clone());
            } else {
                jobs.push(serde_json::to_value(&e.p).unwrap_or_default());
            }
        }
        // Held CPU samples live in memory only (the next cumulative reading replaces them).
        let mut held: Vec<Value> = st
            .held
            .iter()
            .filter_map(|(u, h)| {
                let reports: Vec<Value> = h
                    .reports
                    .iter()
                    .filter(|(_, r)| !matches!(r, HeldReport::Sample { .. }))
                    .map(|(at, r)| json!({"received_at": at, "report": r}))
                    .collect();
                (!reports.is_empty()).then(|| json!({"uuid": u, "reports": reports}))
            })
            .collect();
        held.sort_by(|a, b| a["uuid"].as_str().cmp(&b["uuid"].as_str()));
        // A node's `reserved` (CPUs granted since its last heartbeat) is not written when it
        // changes: the next heartbeat, within seconds, resets it.
        let nodes: Vec<Value> = st
            .nodes
            .values()
            .map(|n| {
                let mut v = serde_json::to_value(n).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("reserved");
                }
                v
            })
            .collect();
        (jobs, archived, held, nodes)
    };
    for uuid in archived {
        let items = sh.store.items(&uuid).await?;
        let st = sh.lock();
        if let Some(e) = st.jobs.get(&uuid) {
            let whole = e.whole(Some(&items)).map_err(StoreError::Sqlite)?;
            jobs.push(serde_json::to_value(&whole).unwrap_or_default());
        }
    }
    jobs.sort_by(|a, b| a["uuid"].as_str().cmp(&b["uuid"].as_str()));
    nodes.sort_by(|a, b| a["reg"]["id"].as_str().cmp(&b["reg"]["id"].as_str()));
    Ok(json!({"jobs": jobs, "held": held, "nodes": nodes}))
}
