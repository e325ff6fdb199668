//! The read views: the job list, one job (its history read from the database once archived),
//! and the whole state as JSON (`--dump-state`).

use qos_core::Work;
use qos_core::job::Phase;
use serde_json::{Value, json};

use super::{Shared, store_err};
use crate::error::ApiError;
use crate::state::{HeldReport, JobEntry, PersistedJob, Runtime};
use crate::store::StoreError;
use crate::summary::Summary;

impl Shared {
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
