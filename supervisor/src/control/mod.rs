//! The control loop: a reconcile loop around `qos-core`, in the shape of kube-rs' controller.
//!
//! - **Queue**: a delay queue keyed by job UUID that deduplicates (a job is queued at most once,
//!   at its earliest requested time). Triggers come from the API (a Chronos report, a
//!   registration, a Marathon start or end, a cancellation) and from the loop itself (a Marathon
//!   job's next period, a retry after a failure).
//! - **Runner**: at most one reconcile in flight per job (a trigger for a job being reconciled
//!   marks it to run again right after), at most `max_concurrency` overall.
//! - **Reconcile** is level-triggered: it reads the job and what is known of its node as they
//!   are now ([`Context`]), asks the one controller ([`qos_core::Controller::decide`]: caps,
//!   arbitration, stale data, resize mode — the same function the simulator calls), applies the
//!   verdict and says when to look again ([`Next`]). It holds no policy arithmetic of its own. Failures go through the error policy:
//!   exponential backoff per job; a failed resize is never recorded as applied.
//!
//! Nothing holds the state lock across a framework call: a reconcile snapshots the job, releases
//! the lock, calls out (with a timeout), then re-takes the lock to record the result.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use frameworks::FrameworkError;
use qos_core::control::WAIT_GRACE;
use qos_core::job::{Observation, Phase};
use qos_core::predictive::ResizeMode;
use qos_core::wire::{JobResized, ResizeRequest};
use qos_core::{Action, Context, Cpus, Decision, Framework, Job, NodeView, Work};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{ControlConfig, MarathonCompletion};
use crate::error::ApiError;
use crate::service::Shared;
use crate::state::{JobMeta, NodeEntry};
use crate::store::{HistoryRow, Op};

mod apply;
mod upkeep;

pub(crate) use apply::operator_resize;
use apply::{ApplyError, Presence, apply_resize, bounded, gone, read_framework, strike_not_found};
use upkeep::cleanup;
pub(crate) use upkeep::{flush, housekeeping};

/// When to reconcile a job next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// After this long.
    After(Duration),
    /// Only when something happens to it (a report, a cancellation).
    Wait,
    /// Never again (finished and cleaned up, or gone).
    Done,
}

/// Delays and deduplicates reconcile requests.
#[derive(Debug, Default)]
struct Queue {
    by_time: BTreeMap<(Instant, u64), String>,
    by_job: HashMap<String, (Instant, u64)>,
    seq: u64,
}

impl Queue {
    /// Queues `uuid` at `at`, or earlier if it is already queued earlier.
    fn push(&mut self, uuid: String, at: Instant) {
        if let Some(&(t, s)) = self.by_job.get(&uuid) {
            if t <= at {
                return;
            }
            self.by_time.remove(&(t, s));
        }
        self.seq += 1;
        self.by_time.insert((at, self.seq), uuid.clone());
        self.by_job.insert(uuid, (at, self.seq));
    }

    fn next_at(&self) -> Option<Instant> {
        self.by_time.keys().next().map(|(t, _)| *t)
    }

    fn pop_due(&mut self, now: Instant) -> Option<String> {
        let (&(t, s), _) = self.by_time.iter().next()?;
        if t > now {
            return None;
        }
        let uuid = self.by_time.remove(&(t, s))?;
        self.by_job.remove(&uuid);
        Some(uuid)
    }

    fn len(&self) -> usize {
        self.by_job.len()
    }
}

/// Runs the control loop until `cancel`; then waits (bounded) for in-flight reconciles.
pub(crate) async fn run(
    sh: Arc<Shared>,
    mut triggers: mpsc::UnboundedReceiver<String>,
    initial: Vec<String>,
    cancel: CancellationToken,
) {
    let max = sh.config.control.max_concurrency;
    let mut queue = Queue::default();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut rerun: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<(String, Next)> = JoinSet::new();
    let mut ids: HashMap<tokio::task::Id, String> = HashMap::new();
    let start = Instant::now();
    for uuid in initial {
        queue.push(uuid, start);
    }
    loop {
        let now = Instant::now();
        while tasks.len() < max {
            let Some(uuid) = queue.pop_due(now) else {
                break;
            };
            if in_flight.contains(&uuid) {
                rerun.insert(uuid);
                continue;
            }
            in_flight.insert(uuid.clone());
            let uuid_for_id = uuid.clone();
            let sh = Arc::clone(&sh);
            let span = tracing::info_span!(
                "reconcile",
                job.uuid = %uuid,
                job.name = tracing::field::Empty,
                job.framework = tracing::field::Empty
            );
            let handle = tasks.spawn(
                async move {
                    let next = reconcile(&sh, &uuid).await;
                    (uuid, next)
                }
                .instrument(span),
            );
            ids.insert(handle.id(), uuid_for_id);
        }
        let wake = if tasks.len() < max {
            queue.next_at()
        } else {
            None
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (uuid, next) = match done {
                    Ok((id, (uuid, next))) => {
                        ids.remove(&id);
                        (uuid, next)
                    }
                    Err(e) => {
                        // A panicking reconcile must not stop the loop or strand its job: it is
                        // retried after a while. (Reconciles are written not to panic.)
                        tracing::error!(error = %e, "a reconcile task failed");
                        let Some(uuid) = ids.remove(&e.id()) else { continue };
                        (uuid, Next::After(ControlConfig::dur(sh.config.control.backoff_max)))
                    }
                };
                in_flight.remove(&uuid);
                if rerun.remove(&uuid) {
                    queue.push(uuid, Instant::now());
                } else if let Next::After(d) = next {
                    queue.push(uuid, Instant::now() + d);
                }
            }
            Some(uuid) = triggers.recv() => {
                if in_flight.contains(&uuid) {
                    rerun.insert(uuid);
                } else {
                    queue.push(uuid, Instant::now());
                }
            }
            () = sleep_until(wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if wake.is_some() => {}
        }
    }
    tracing::info!(
        in_flight = tasks.len(),
        queued = queue.len(),
        "control loop stopping"
    );
    let drain = ControlConfig::dur(sh.config.control.drain_timeout);
    if tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!("reconciles still running after the drain timeout; abandoned");
        tasks.abort_all();
    }
}

fn backoff(c: &ControlConfig, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let secs = (c.backoff_base * f64::from(1u32 << exp)).min(c.backoff_max);
    ControlConfig::dur(secs)
}

/// What a reconcile reads under the lock.
struct Snapshot {
    job: Job,
    meta: JobMeta,
    failures: u32,
    /// Framework presence probes made so far (backoff of the next one).
    probes: u32,
    /// What the controller needs to know of the job's node.
    ctx: Context,
    node_agent: Option<String>,
}

fn snapshot(sh: &Shared, uuid: &str, now: f64) -> Option<Snapshot> {
    let st = sh.lock();
    let e = st.jobs.get(uuid)?;
    let ctl = sh.config.controller();
    let timeout = sh.config.control.node_timeout;
    let node =
        e.p.meta
            .node
            .as_deref()
            .and_then(|n| st.node_of(n))
            .filter(|n| n.alive(now, timeout));
    // A node agent can resize in place when it says where to reach it and we hold its token.
    let agent_usable =
        |n: &NodeEntry| n.reg.agent_url.is_some() && sh.config.auth.agent_token.is_some();
    let view = node.map(|n| {
        let mut peers = Vec::new();
        let mut held = e.p.job.cpus;
        if let (true, Some(ids)) = (ctl.policy.arbitrates(), st.by_node.get(&n.reg.id)) {
            for peer in ids.iter().filter(|p| p.as_str() != uuid) {
                let Some(pe) = st.jobs.get(peer) else {
                    continue;
                };
                if pe.p.job.phase.is_terminal() {
                    continue;
                }
                peers.push(ctl.claim(&pe.p.job, pe.p.meta.want, now));
                held = held + pe.p.job.cpus;
            }
        }
        NodeView {
            capacity: held + n.free(),
            // What is free plus what the job's own containers hold, by the heartbeat's
            // breakdown. Without it: its own reservation is part of the node's when its task
            // runs; a Chronos job is often between two iterations, its next task not yet placed.
            room: n.room_for(uuid).unwrap_or(match e.p.job.work {
                Work::Iterative(_) => n.free().max(e.p.job.cpus),
                Work::Continuous(_) => e.p.job.cpus + n.free(),
            }),
            peers,
            in_place: agent_usable(n),
        }
    });
    // The most any live node could take: the cap of a job not placed yet (or whose node is
    // unknown) — a larger task would wait for room that may never come — and where a task
    // restarted to a new size may move.
    let live: Vec<&NodeEntry> = st
        .nodes
        .values()
        .filter(|n| n.alive(now, timeout) && n.beat.is_some())
        .collect();
    let unplaced_room = live
        .iter()
        .map(|n| {
            n.room_for(uuid)
                .unwrap_or_else(|| n.free().max(e.p.job.cpus))
        })
        .max();
    let in_framework = in_framework(sh, &e.p.job, &e.p.meta);
    Some(Snapshot {
        job: e.p.job.clone(),
        meta: e.p.meta.clone(),
        failures: e.rt.failures,
        probes: e.rt.probes,
        ctx: Context {
            now,
            node: view,
            unplaced_room,
            in_framework,
            idle_for: idle_for(&e.p.job, &e.p.meta, uuid, &live, now).filter(|_| in_framework),
        },
        node_agent: node.and_then(|n| n.reg.agent_url.clone()),
    })
}

/// Seconds `job` has had no task on any live node although work is left: since its last
/// iteration ended (or it was registered), by the heartbeats' per-job breakdown. `None` when
/// it has a task somewhere, is restarting, or a heartbeat without the breakdown cannot tell.
fn idle_for(job: &Job, meta: &JobMeta, uuid: &str, live: &[&NodeEntry], now: f64) -> Option<f64> {
    let since = match (&job.work, job.phase) {
        (Work::Iterative(_), Phase::Pending | Phase::Running) => job
            .last_report()
            .map_or(meta.registered_at, |r| r.finished_at),
        (Work::Continuous(_), Phase::Pending) => meta.registered_at,
        _ => return None,
    };
    let mut told = false;
    for n in live {
        let b = n.beat.as_ref()?;
        if b.allocated_by_job.get(uuid).is_some_and(|c| *c > 0.0) {
            return None;
        }
        // An older collector sends no breakdown: it cannot say the job is not there.
        if b.allocated_by_job.is_empty() && b.allocated_cpus > 0.0 {
            return None;
        }
        told = true;
    }
    told.then(|| (now - since).max(0.0))
}

/// Whether the framework is known to have the job: something of it has been seen (a report,
/// a sample), a probe found it, or there is no framework to wait for.
fn in_framework(sh: &Shared, job: &Job, meta: &JobMeta) -> bool {
    let configured = match job.framework {
        Framework::Chronos => sh.chronos.is_some(),
        Framework::Marathon => sh.marathon.is_some(),
    };
    meta.in_framework || job.phase != Phase::Pending || !configured
}

/// Reconciles one job.
pub(crate) async fn reconcile(sh: &Arc<Shared>, uuid: &str) -> Next {
    sh.metrics.reconciled();
    let now = sh.clock.now();
    let Some(mut snap) = snapshot(sh, uuid, now) else {
        return Next::Done;
    };
    let span = tracing::Span::current();
    span.record("job.name", snap.job.name.as_str());
    span.record("job.framework", snap.job.framework.as_str());
    if snap.job.phase.is_terminal() {
        if snap.meta.cleaned_up {
            return Next::Done;
        }
        return cleanup(sh, uuid, &snap.job, snap.failures).await;
    }
    if snap.meta.cpus_unknown || !snap.ctx.in_framework {
        // The launcher registers before it submits: until the framework has the job, a resize
        // can only fail. One read answers both that and, for `/initTask`, the size it has.
        let found = read_framework(sh, &snap.job).await;
        let lost = {
            let mut gone = None;
            let mut guard = sh.lock();
            let st = &mut *guard;
            if let Some(e) = st.jobs.get_mut(uuid) {
                match found {
                    Presence::Present(cpus) => {
                        if !e.p.meta.in_framework {
                            tracing::debug!("the framework has the job");
                        }
                        e.p.meta.in_framework = true;
                        snap.ctx.in_framework = true;
                        if let (true, Some(cpus)) = (e.p.meta.cpus_unknown, cpus) {
                            e.p.job.cpus = cpus;
                            e.p.meta.cpus_unknown = false;
                            snap.job.cpus = cpus;
                            tracing::info!(cpus = %cpus, "allocation read from the framework");
                        }
                        e.rt.probes = 0;
                        e.rt.not_found = 0;
                        sh.store.submit_detached(vec![e.op(now)]);
                    }
                    // Known to the framework once, or seen running: gone (after a few answers in a
                    // row, LOST).
                    Presence::Absent(message)
                        if e.p.meta.in_framework || e.p.job.phase != Phase::Pending =>
                    {
                        gone = Some(message);
                    }
                    // Not submitted yet (the launcher registers first): look again soon.
                    Presence::Absent(_) | Presence::Unknown => e.rt.probes += 1,
                }
                snap.probes = e.rt.probes;
            }
            gone.and_then(|message| {
                tracing::warn!(error = %message, "the framework has no such job");
                strike_not_found(sh, st, uuid, now, &message)
            })
        };
        if let Some(ops) = lost {
            if let Err(e) = sh.store.submit(ops).wait().await {
                tracing::error!(error = %e, "the LOST job could not be written; it is in memory and will be written with the next change");
            }
            return Next::Done;
        }
    }
    if let Phase::Restarting { since } = snap.job.phase {
        if now - since > sh.config.control.stuck_deployment_timeout {
            // Neither a restart notification nor a sample from a new container arrived: do not
            // leave the job uncontrolled for ever. Whether its work survived is inferred from
            // what is known of its checkpointing.
            let mut st = sh.lock();
            if let Some(e) = st.jobs.get_mut(uuid) {
                let _ = e.p.job.observe(Observation::Started {
                    at: now,
                    restored: None,
                });
                sh.store.submit_detached(vec![e.op(now)]);
                snap.job = e.p.job.clone();
            }
            tracing::warn!(
                since,
                "no sign of the restarted task; assuming it runs again"
            );
        }
    }
    let verdict = sh.config.controller().decide(&snap.job, &snap.ctx);
    record_decision(sh, uuid, now, &verdict.decision, verdict.want);
    match verdict.decision.action {
        Action::Hold | Action::Complete { .. } if !snap.ctx.in_framework => {
            // Look again soon: the launcher submits right after it registers.
            Next::After(probe_backoff(snap.probes))
        }
        Action::Hold | Action::Complete { .. } if snap.ctx.idle_for.is_some() => {
            // No node holds its task: look again shortly, in case its next task waits for room.
            Next::After(Duration::from_secs_f64(WAIT_GRACE))
        }
        Action::Hold | Action::Complete { .. } => idle_next(sh, &snap.job),
        Action::Resize { cpus } => {
            apply_resize(sh, uuid, &snap, cpus, verdict.mode, now)
                .await
                .0
        }
    }
}

/// Delay before the next look for a job the framework does not have yet: 1 s, doubling, at most
/// 30 s.
fn probe_backoff(probes: u32) -> Duration {
    Duration::from_secs(1u64 << probes.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

fn idle_next(sh: &Shared, job: &Job) -> Next {
    match job.work {
        Work::Continuous(_) => Next::After(ControlConfig::dur(sh.config.continuous_period())),
        Work::Iterative(_) => Next::Wait,
    }
}

fn decision_row(uuid: &str, at: f64, d: &Decision) -> HistoryRow {
    HistoryRow {
        uuid: uuid.to_owned(),
        at,
        kind: "decision".into(),
        class: Some(d.class.as_str().to_owned()),
        action: serde_json::to_value(d.action).unwrap_or_default(),
        reason: d.reason.clone(),
        figures: serde_json::to_value(d.figures).unwrap_or_default(),
    }
}

fn event_row(
    uuid: &str,
    at: f64,
    kind: &str,
    action: serde_json::Value,
    reason: String,
) -> HistoryRow {
    HistoryRow {
        uuid: uuid.to_owned(),
        at,
        kind: kind.to_owned(),
        class: None,
        action,
        reason,
        figures: serde_json::Value::Null,
    }
}

fn action_text(a: Action) -> String {
    match a {
        Action::Hold => "hold".into(),
        Action::Resize { cpus } => format!("resize to {cpus}"),
        Action::Complete { met } => format!("complete (met: {met})"),
    }
}

/// Metrics, log and (when it says something new) history for a decision.
fn record_decision(sh: &Shared, uuid: &str, now: f64, d: &Decision, want: Option<Cpus>) {
    sh.metrics.decided();
    let mut st = sh.lock();
    let Some(e) = st.jobs.get_mut(uuid) else {
        return;
    };
    if let Some(g) = &e.rt.gauges {
        g.update(&e.p.job, Some(d));
    }
    e.p.meta.want = want;
    let class_changed = e.p.meta.last_class != Some(d.class);
    let interval = sh.config.control.history_hold_interval;
    let store = !matches!(d.action, Action::Hold)
        || class_changed
        || e.rt.last_history_at.is_none_or(|t| now - t >= interval);
    e.rt.last_decision = Some((now, d.clone()));
    if store {
        e.p.meta.last_class = Some(d.class);
        e.rt.last_history_at = Some(now);
        let mut ops = vec![Op::Decision(decision_row(uuid, now, d))];
        if class_changed {
            ops.push(e.op(now));
        }
        sh.store.submit_detached(ops);
        tracing::info!(class = %d.class, action = %action_text(d.action), cpus = %e.p.job.cpus, reason = %d.reason, "decision");
    } else {
        tracing::debug!(class = %d.class, action = %action_text(d.action), cpus = %e.p.job.cpus, reason = %d.reason, "decision");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn queue_dedups_and_keeps_the_earliest() {
        let mut q = Queue::default();
        let t0 = Instant::now();
        q.push("a".into(), t0 + Duration::from_secs(10));
        q.push("a".into(), t0 + Duration::from_secs(5));
        q.push("a".into(), t0 + Duration::from_secs(20));
        q.push("b".into(), t0 + Duration::from_secs(7));
        assert_eq!(q.len(), 2);
        assert_eq!(q.next_at(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(8)).as_deref(), Some("a"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(8)).as_deref(), Some("b"));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let c = ControlConfig::default();
        assert_eq!(backoff(&c, 1), Duration::from_secs(1));
        assert_eq!(backoff(&c, 3), Duration::from_secs(4));
        assert_eq!(backoff(&c, 30), Duration::from_secs(60));
    }
}
