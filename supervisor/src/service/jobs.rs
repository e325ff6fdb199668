//! Jobs: registration (versioned and the thesis' `/initTask`) and cancellation.

use qos_core::job::Observation;
use qos_core::spec::{Deadline, QosSpec};
use qos_core::wire::{InitTask, JobRegistration, Registered};
use qos_core::{Checkpointing, Framework, Job};

use super::{Registration, Shared, apply_report, check_uuid, new_token, store_err};
use crate::error::ApiError;
use crate::limits;
use crate::state::{JobMeta, PersistedJob};
use crate::store::Op;

impl Shared {
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
        let now = self.clock.now();
        let job = self.validate_registration(&reg, now)?;
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

    /// A registration's fields checked (each error names its field) and turned into the job.
    fn validate_registration(&self, reg: &JobRegistration, now: f64) -> Result<Job, ApiError> {
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
        limits::check_cpus("cpus", reg.cpus, 1e6)?;
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
        Ok(job)
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
}
