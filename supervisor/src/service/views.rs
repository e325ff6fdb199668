//! The read views: the job list, one job (its history read from the database once archived),
//! and the whole state as JSON (`--dump-state`).

use qos_core::Work;
use qos_core::job::{Framework, Phase};
use serde_json::{Value, json};

use super::{Shared, store_err};
use crate::error::{ApiError, truncate};
use crate::state::{HeldReport, JobEntry, PersistedJob, Runtime};
use crate::store::StoreError;
use crate::summary::Summary;

/// Jobs in one page of `GET /api/v1/jobs` unless `limit` says otherwise: a supervisor keeps
/// finished jobs for `control.retention` (7 days), so the list grows with the work — 100,000
/// jobs would be 60 MB of JSON in one answer.
pub(crate) const DEFAULT_PAGE: usize = 1000;
/// The largest `limit` accepted.
pub(crate) const MAX_PAGE: usize = qos_core::wire::MAX_JOBS_PAGE;

/// Which jobs `GET /api/v1/jobs?state=…` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    /// Not ended: pending, running, restarting.
    Active,
    /// Ended: completed, failed, cancelled, lost.
    Finished,
    /// One phase, by its name in the views (`running`, `lost`, …).
    Phase(&'static str),
}

const PHASES: [&str; 7] = [
    "pending",
    "running",
    "restarting",
    "completed",
    "failed",
    "cancelled",
    "lost",
];

impl StateFilter {
    fn admits(self, phase: Phase) -> bool {
        match self {
            Self::Active => !phase.is_terminal(),
            Self::Finished => phase.is_terminal(),
            Self::Phase(name) => phase_name(phase) == name,
        }
    }
}

/// The query of `GET /api/v1/jobs`: filters, order and the page. Every parameter is checked; an
/// unknown, repeated or out-of-range one is refused naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobsQuery {
    limit: usize,
    offset: usize,
    state: Option<StateFilter>,
    framework: Option<Framework>,
    newest_first: bool,
}

impl Default for JobsQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_PAGE,
            offset: 0,
            state: None,
            framework: None,
            newest_first: false,
        }
    }
}

/// A whole number in `[lo, hi]`, or a 422 naming `field`.
fn whole(field: &str, v: &str, lo: usize, hi: usize) -> Result<usize, ApiError> {
    match v.parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            field,
            format!(
                "{field} must be a whole number from {lo} to {hi}, got {:?}",
                truncate(v, 64)
            ),
        )),
    }
}

impl JobsQuery {
    /// The parameters, decoded.
    pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut q = Self::default();
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in pairs {
            let k = k.as_str();
            if seen.contains(&k) {
                return Err(ApiError::invalid(
                    k,
                    format!("query parameter {k:?} is given more than once"),
                ));
            }
            match k {
                "limit" => q.limit = whole(k, v, 1, MAX_PAGE)?,
                // Past the end is an empty page; the bound only keeps the number a number.
                "offset" => q.offset = whole(k, v, 0, u32::MAX as usize)?,
                "state" => {
                    q.state = Some(match v.as_str() {
                        "active" => StateFilter::Active,
                        "finished" => StateFilter::Finished,
                        other => StateFilter::Phase(
                            PHASES.into_iter().find(|p| *p == other).ok_or_else(|| {
                                ApiError::invalid(
                                    k,
                                    format!(
                                        "state must be active, finished or one of {}, got {:?}",
                                        PHASES.join(", "),
                                        truncate(other, 64)
                                    ),
                                )
                            })?,
                        ),
                    });
                }
                "framework" => {
                    q.framework = Some(v.parse().map_err(|_| {
                        ApiError::invalid(
                            k,
                            format!(
                                "framework must be chronos or marathon, got {:?}",
                                truncate(v, 64)
                            ),
                        )
                    })?);
                }
                "order" => {
                    q.newest_first = match v.as_str() {
                        "asc" => false,
                        "desc" => true,
                        other => {
                            return Err(ApiError::invalid(
                                k,
                                format!(
                                    "order must be asc (oldest registration first) or desc, \
                                     got {:?}",
                                    truncate(other, 64)
                                ),
                            ));
                        }
                    };
                }
                other => return Err(unknown_parameter(other, JOBS_PARAMETERS)),
            }
            seen.push(k);
        }
        Ok(q)
    }
}

const JOBS_PARAMETERS: &str = "limit, offset, state, framework, order";

/// A 422 for a query parameter a view does not take, naming it and those it does.
fn unknown_parameter(name: &str, known: &str) -> ApiError {
    let name = truncate(name, 64);
    let takes = if known.is_empty() {
        "this view takes no query parameters".to_owned()
    } else {
        format!("this view takes {known}")
    };
    let message = format!("unknown query parameter {name:?}: {takes}");
    ApiError::invalid(name, message)
}

/// The query of `GET /api/v1/jobs/{uuid}`: `reports`, how many of a Chronos job's newest
/// iteration reports to include (all without it; a job may have a million).
pub(crate) fn detail_reports(pairs: &[(String, String)]) -> Result<usize, ApiError> {
    let mut reports = None;
    for (k, v) in pairs {
        match k.as_str() {
            "reports" if reports.is_some() => {
                return Err(ApiError::invalid(
                    "reports",
                    "query parameter \"reports\" is given more than once",
                ));
            }
            "reports" => {
                reports = Some(whole(
                    "reports",
                    v,
                    0,
                    qos_core::spec::MAX_ITERATIONS as usize,
                )?)
            }
            other => return Err(unknown_parameter(other, "reports")),
        }
    }
    Ok(reports.unwrap_or(usize::MAX))
}

/// A view that takes no query parameters (one job, its history, the nodes) refuses any.
pub(crate) fn no_parameters(pairs: &[(String, String)]) -> Result<(), ApiError> {
    match pairs.first() {
        Some((k, _)) => Err(unknown_parameter(k, "")),
        None => Ok(()),
    }
}

/// One page of the job list and how many jobs match in all.
pub(crate) struct JobsPage {
    pub(crate) jobs: Value,
    pub(crate) total: usize,
}

impl Shared {
    /// `GET /api/v1/jobs`: the jobs that match `q`, in registration order (or newest first),
    /// one page of them.
    pub(crate) fn jobs_view(&self, q: &JobsQuery) -> JobsPage {
        let st = self.lock();
        let mut jobs: Vec<&JobEntry> = st
            .jobs
            .values()
            .filter(|e| q.state.is_none_or(|s| s.admits(e.p.job.phase)))
            .filter(|e| q.framework.is_none_or(|f| e.p.job.framework == f))
            .collect();
        let total = jobs.len();
        let order = |a: &&JobEntry, b: &&JobEntry| {
            let o =
                a.p.meta
                    .registered_at
                    .total_cmp(&b.p.meta.registered_at)
                    .then_with(|| a.p.uuid.cmp(&b.p.uuid));
            if q.newest_first { o.reverse() } else { o }
        };
        // Only the jobs up to the page's end are put in order: the rest are partitioned off in
        // linear time (the state lock is held; 100,000 finished jobs are common).
        let end = q.offset.saturating_add(q.limit).min(total);
        if end < total {
            jobs.select_nth_unstable_by(end, order);
            jobs.truncate(end);
        }
        jobs.sort_unstable_by(order);
        let jobs = jobs
            .get(q.offset.min(end)..)
            .unwrap_or_default()
            .iter()
            .map(|e| job_view(&e.p, &e.rt, e.rt.archived.as_ref(), None))
            .collect();
        JobsPage {
            jobs: Value::Array(jobs),
            total,
        }
    }

    /// `GET /api/v1/jobs/{uuid}`: a finished job's history of reports and resizes is read from
    /// the database.
    /// At most `reports` of its newest iteration reports.
    pub(crate) async fn job_view(&self, uuid: &str, reports: usize) -> Result<Value, ApiError> {
        let not_found = || ApiError::not_found(format!("no job {uuid}"));
        {
            let st = self.lock();
            let e = st.jobs.get(uuid).ok_or_else(not_found)?;
            if e.rt.archived.is_none() {
                return Ok(job_view(&e.p, &e.rt, None, Some(reports)));
            }
        }
        // Only the reports it answers are read; its figures are its summary's (they count
        // every report).
        let items = self
            .store
            .items(uuid, reports)
            .await
            .map_err(|e| store_err(&e))?;
        let st = self.lock();
        let e = st.jobs.get(uuid).ok_or_else(not_found)?;
        let whole = e.whole(Some(&items)).map_err(|m| ApiError::internal(&m))?;
        Ok(job_view(
            &whole,
            &e.rt,
            e.rt.archived.as_ref(),
            Some(reports),
        ))
    }
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
/// `detail`: the detail view, with at most this many of its newest iteration reports.
fn job_view(
    p: &PersistedJob,
    rt: &Runtime,
    summary: Option<&Summary>,
    detail: Option<usize>,
) -> Value {
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
    let figures = summary.cloned().unwrap_or_else(|| Summary::of(job));
    let mut v = json!({
        "uuid": p.uuid,
        "name": job.name,
        "framework": job.framework,
        "state": phase_name(job.phase),
        "phase": job.phase,
        "class": class,
        "cpus": job.cpus.as_f64(),
        "progress": figures.progress,
        "remaining_iterations": figures.remaining_iterations,
        "qos": job.qos,
        "prediction": decision.as_ref().and_then(|d| d["figures"]["prediction"].as_f64()),
        "node": meta.node,
        "registered_at": meta.registered_at,
        "resizes": figures.resizes,
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
    if let Some(newest) = detail {
        v["decision"] = decision.unwrap_or(Value::Null);
        v["resize_history"] = json!(job.resizes);
        v["last_error"] = json!(rt.last_error);
        match &job.work {
            Work::Iterative(w) => {
                v["reports"] = json!(&w.reports[w.reports.len().saturating_sub(newest)..]);
            }
            // What is known of the task: restarts and their costs, CPU per container,
            // progress segments (the speed model's evidence), its end.
            Work::Continuous(w) => v["work"] = json!(w),
        }
    }
    v
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
        let items = sh.store.items(&uuid, usize::MAX).await?;
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
