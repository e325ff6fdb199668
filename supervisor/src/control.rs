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
        Action::Resize { cpus } => apply_resize(sh, uuid, &snap, cpus, verdict.mode, now).await,
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

async fn bounded<T>(
    sh: &Shared,
    what: &str,
    fut: impl Future<Output = Result<T, FrameworkError>>,
) -> Result<T, ApplyError> {
    let limit = ControlConfig::dur(sh.config.control.framework_timeout);
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApplyError::Framework(e)),
        Err(_) => Err(ApplyError::Other(format!(
            "{what} did not finish within {limit:?}"
        ))),
    }
}

#[derive(Debug)]
enum ApplyError {
    Framework(FrameworkError),
    /// The framework has no such job or app (any more); after `control.lost_after` of these in
    /// a row the job is `LOST`.
    Gone(String),
    /// Nothing to call (no credentials, no agent): not retried quickly.
    NotConfigured(String),
    Other(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Framework(e) => write!(f, "{e}"),
            Self::Gone(m) | Self::NotConfigured(m) | Self::Other(m) => f.write_str(m),
        }
    }
}

/// Tells "the framework no longer has the job" apart from other failures of a call about it.
/// A 404 (or Chronos' "not found" 400) says so; Marathon answers a resize of an app it no longer
/// has with 422 (the PUT would create the app, and `{"cpus": …}` alone is not a valid app), so a
/// refused Marathon resize is checked with a read of the app.
async fn gone(sh: &Shared, job: &Job, err: ApplyError) -> ApplyError {
    match err {
        ApplyError::Framework(e) if e.is_not_found() => ApplyError::Gone(e.to_string()),
        ApplyError::Framework(e @ FrameworkError::Invalid { .. })
            if job.framework == Framework::Marathon =>
        {
            let Some(m) = &sh.marathon else {
                return ApplyError::Framework(e);
            };
            match bounded(sh, "reading the Marathon app", m.get_app(&job.name)).await {
                Err(ApplyError::Framework(g)) if g.is_not_found() => {
                    ApplyError::Gone(format!("{g} (and the resize was refused: {e})"))
                }
                _ => ApplyError::Framework(e),
            }
        }
        other => other,
    }
}

/// Counts one "no such job" answer; at `control.lost_after` in a row the job becomes `LOST`
/// (terminal, nothing left to clean up) and the writes that record it are returned.
fn strike_not_found(
    sh: &Shared,
    st: &mut crate::state::State,
    uuid: &str,
    now: f64,
    message: &str,
) -> Option<Vec<Op>> {
    let e = st.jobs.get_mut(uuid)?;
    e.rt.not_found += 1;
    let strikes = e.rt.not_found;
    let limit = sh.config.control.lost_after;
    if strikes < limit || e.p.job.phase.is_terminal() {
        return None;
    }
    let what = match e.p.job.framework {
        Framework::Chronos => "Chronos job",
        Framework::Marathon => "Marathon app",
    };
    let reason = format!(
        "{what} {} no longer exists: {strikes} attempts in a row were answered \"not found\" \
         (last: {message})",
        e.p.job.name
    );
    let _ = e.p.job.observe(Observation::Lost { at: now });
    e.p.meta.lost_reason = Some(reason.clone());
    // Nothing is left in the framework to remove.
    e.p.meta.cleaned_up = true;
    e.p.meta.finished_wall.get_or_insert(now);
    e.rt.last_error = Some(message.to_owned());
    if let Some(g) = &e.rt.gauges {
        g.update(&e.p.job, None);
        sh.metrics.job_lost(g, true);
    }
    tracing::error!(attempts = strikes, reason = %reason, "job marked LOST");
    let ops = vec![
        e.op(now),
        Op::Decision(event_row(
            uuid,
            now,
            "lost",
            json!({"action": "lost", "attempts": strikes}),
            reason,
        )),
    ];
    st.retiring.push_back((now, uuid.to_owned()));
    Some(ops)
}

/// What the framework says of a job.
enum Presence {
    /// It has it, with its `cpus` when readable.
    Present(Option<Cpus>),
    /// It answered that it does not (what it said).
    Absent(String),
    /// It could not be asked (no credentials, unreachable, an error).
    Unknown,
}

async fn read_framework(sh: &Shared, job: &Job) -> Presence {
    let cpus = |c: Option<f64>| c.filter(|c| c.is_finite() && *c > 0.0).map(Cpus::from_f64);
    match job.framework {
        Framework::Chronos => {
            let Some(c) = sh.chronos.as_ref() else {
                return Presence::Unknown;
            };
            match bounded(sh, "reading the Chronos job", c.find_job(&job.name)).await {
                Ok(Some(j)) => Presence::Present(cpus(j.cpus())),
                Ok(None) => {
                    Presence::Absent(format!("no Chronos job is named exactly {:?}", job.name))
                }
                Err(_) => Presence::Unknown,
            }
        }
        Framework::Marathon => {
            let Some(m) = sh.marathon.as_ref() else {
                return Presence::Unknown;
            };
            match bounded(sh, "reading the Marathon app", m.get_app(&job.name)).await {
                Ok(a) => Presence::Present(cpus(a.cpus())),
                Err(ApplyError::Framework(e)) if e.is_not_found() => {
                    Presence::Absent(e.to_string())
                }
                Err(_) => Presence::Unknown,
            }
        }
    }
}

/// Applies a resize; returns the allocation in force.
async fn call_resize(
    sh: &Shared,
    uuid: &str,
    snap: &Snapshot,
    cpus: Cpus,
    mode: ResizeMode,
    now: f64,
) -> Result<Cpus, ApplyError> {
    let job = &snap.job;
    match mode {
        ResizeMode::InPlace => {
            let Some(url) = &snap.node_agent else {
                return Err(ApplyError::NotConfigured(
                    "no live node agent with an agent_url is known for the job's node".into(),
                ));
            };
            let token = sh.config.auth.agent_token.clone().unwrap_or_default();
            let req = ResizeRequest {
                uuid: uuid.to_owned(),
                cpus: cpus.as_f64(),
            };
            let limit = ControlConfig::dur(sh.config.control.framework_timeout);
            match tokio::time::timeout(limit, sh.agent.resize(url, &token, &req)).await {
                Ok(Ok(r)) => Ok(Cpus::from_f64(r.cpus)),
                Ok(Err(m)) => Err(ApplyError::Other(m)),
                Err(_) => Err(ApplyError::Other(format!(
                    "the node agent did not answer within {limit:?}"
                ))),
            }
        }
        ResizeMode::Restart => match job.framework {
            Framework::Chronos => {
                let Some(c) = &sh.chronos else {
                    return Err(ApplyError::NotConfigured(
                        "no Chronos credentials (-c/--chronos): the decision cannot be applied"
                            .into(),
                    ));
                };
                // Exact-name lookup, cpus set, the whole job re-posted. No forced run: the
                // launcher's schedule runs exactly the requested iterations (README).
                bounded(
                    sh,
                    "resizing the Chronos job",
                    c.set_job_cpus(&job.name, cpus.as_f64()),
                )
                .await?;
                Ok(cpus)
            }
            Framework::Marathon => {
                let Some(m) = &sh.marathon else {
                    return Err(ApplyError::NotConfigured(
                        "no Marathon credentials (-m/--marathon): the decision cannot be applied"
                            .into(),
                    ));
                };
                let stuck = snap
                    .meta
                    .locked_since
                    .is_some_and(|t| now - t >= sh.config.control.stuck_deployment_timeout);
                if stuck {
                    tracing::warn!(
                        "a deployment has locked the app for too long; forcing the resize"
                    );
                }
                bounded(
                    sh,
                    "resizing the Marathon app",
                    m.set_app_cpus(&job.name, cpus.as_f64(), stuck),
                )
                .await?;
                Ok(cpus)
            }
        },
    }
}

async fn apply_resize(
    sh: &Arc<Shared>,
    uuid: &str,
    snap: &Snapshot,
    cpus: Cpus,
    mode: ResizeMode,
    now: f64,
) -> Next {
    apply_resize_outcome(sh, uuid, snap, cpus, mode, now)
        .await
        .0
}

/// An operator's resize (`POST /api/v1/jobs/{uuid}/resize`): recorded as a decision with the
/// reason `operator`, then applied through the controller's own path ([`apply_resize`]: the
/// framework or the node agent, the history, the metrics, the node's reservation). It runs
/// beside the control loop, which keeps controlling the job afterwards.
pub(crate) async fn operator_resize(
    sh: &Arc<Shared>,
    uuid: &str,
    cpus: Cpus,
) -> Result<JobResized, ApiError> {
    let now = sh.clock.now();
    let Some(snap) = snapshot(sh, uuid, now) else {
        return Err(ApiError::not_found(format!("no job {uuid}")));
    };
    if snap.job.phase.is_terminal() {
        return Err(ApiError::conflict(
            "uuid",
            format!("job {uuid} has ended; there is nothing to resize"),
        ));
    }
    let from = snap.job.cpus;
    let mode = sh.config.controller().mode_for(&snap.job, &snap.ctx);
    let answer = |to: Cpus, applied| JobResized {
        uuid: uuid.to_owned(),
        from: from.as_f64(),
        to: to.as_f64(),
        mode: mode_name(mode).to_owned(),
        applied,
        decided_at: now,
    };
    if cpus == from {
        return Ok(answer(from, false));
    }
    let decision = Decision {
        class: snap.meta.last_class.unwrap_or(qos_core::Class::NoData),
        action: Action::Resize { cpus },
        reason: format!("operator: resize {from} → {cpus} CPU requested through the API"),
        figures: qos_core::Figures::default(),
    };
    record_decision(sh, uuid, now, &decision, snap.meta.want);
    match apply_resize_outcome(sh, uuid, &snap, cpus, mode, now)
        .await
        .1
    {
        Ok(applied) => Ok(answer(applied, true)),
        Err(e) => {
            let (status, code) = match &e {
                ApplyError::NotConfigured(_) => (StatusCode::CONFLICT, "not_configured"),
                ApplyError::Framework(FrameworkError::Locked { .. }) => {
                    (StatusCode::CONFLICT, "locked")
                }
                _ => (StatusCode::BAD_GATEWAY, "apply_failed"),
            };
            Err(ApiError::other(
                status,
                code,
                format!("resize {from} → {cpus} CPU not applied: {e}"),
            ))
        }
    }
}

/// Applies a resize and records the outcome; returns when to look at the job again and what
/// was applied (or why not).
async fn apply_resize_outcome(
    sh: &Arc<Shared>,
    uuid: &str,
    snap: &Snapshot,
    cpus: Cpus,
    mode: ResizeMode,
    now: f64,
) -> (Next, Result<Cpus, ApplyError>) {
    let from = snap.job.cpus;
    let result = match call_resize(sh, uuid, snap, cpus, mode, now).await {
        Err(e) => Err(gone(sh, &snap.job, e).await),
        ok => ok,
    };
    let done = sh.clock.now();
    // A continuous job's task restarts to take the new size — unless it has not started yet,
    // when it simply starts with it.
    let restart = mode == ResizeMode::Restart
        && matches!(snap.job.work, Work::Continuous(_))
        && snap.job.phase != Phase::Pending;
    let (next, pending) = {
        let mut st = sh.lock();
        let st = &mut *st;
        let Some(e) = st.jobs.get_mut(uuid) else {
            return (Next::Done, result);
        };
        match &result {
            &Ok(applied) => {
                // The resize acts on the latest report: never time it before that report, whatever
                // the skew between the container's clock and ours.
                let at =
                    e.p.job
                        .last_report()
                        .map_or(done, |r| done.max(r.finished_at));
                let _ = e.p.job.observe(Observation::Resized {
                    at,
                    cpus: applied,
                    restart,
                });
                e.p.meta.resizes_applied += 1;
                e.p.meta.locked_since = None;
                e.rt.failures = 0;
                e.rt.not_found = 0;
                e.rt.last_error = None;
                if let Some(g) = &e.rt.gauges {
                    g.resized();
                    g.update(&e.p.job, None);
                }
                let node = e.p.meta.node.clone();
                let ops = vec![
                    e.op(done),
                    Op::Decision(event_row(
                        uuid,
                        done,
                        "resize",
                        json!({"from": from.as_f64(), "to": applied.as_f64(), "mode": mode_name(mode), "restart": restart}),
                        format!("resized {from} → {applied} CPU ({})", mode_name(mode)),
                    )),
                ];
                let next = idle_next(sh, &e.p.job);
                if applied > from {
                    if let Some(n) = node.and_then(|n| {
                        let id = st.hosts.get(&n).cloned().unwrap_or(n);
                        st.nodes.get_mut(&id)
                    }) {
                        n.reserved = n.reserved + (applied - from);
                    }
                }
                tracing::info!(from = %from, to = %applied, restart, "resize applied");
                // Write-through: the resize is durable before the job is looked at again.
                (next, Some(sh.store.submit(ops)))
            }
            Err(err) => {
                let not_configured = matches!(err, ApplyError::NotConfigured(_));
                if let ApplyError::Framework(FrameworkError::Locked { .. }) = err {
                    e.p.meta.locked_since.get_or_insert(done);
                }
                let message = err.to_string();
                let first = e.rt.last_error.as_deref() != Some(message.as_str());
                e.rt.last_error = Some(message.clone());
                if !not_configured {
                    e.rt.failures += 1;
                }
                let failures = e.rt.failures;
                if first || !not_configured {
                    sh.store.submit_detached(vec![Op::Decision(event_row(
                        uuid,
                        done,
                        "resize_failed",
                        json!({"from": from.as_f64(), "to": cpus.as_f64(), "mode": mode_name(mode)}),
                        format!("resize {from} → {cpus} CPU not applied: {message}"),
                    ))]);
                }
                sh.metrics.apply_failed();
                if first || !not_configured {
                    tracing::warn!(from = %from, to = %cpus, failures, error = %message, "resize not applied");
                }
                let next = if not_configured {
                    idle_next(sh, &e.p.job)
                } else {
                    Next::After(backoff(&sh.config.control, failures))
                };
                if matches!(err, ApplyError::Gone(_)) {
                    if let Some(ops) = strike_not_found(sh, st, uuid, done, &message) {
                        (Next::Done, Some(sh.store.submit(ops)))
                    } else {
                        (next, None)
                    }
                } else {
                    (next, None)
                }
            }
        }
    };
    if let Some(p) = pending {
        if let Err(e) = p.wait().await {
            tracing::error!(error = %e, "the applied resize could not be written; it is in memory and will be written with the next change");
        }
    }
    (next, result)
}

fn mode_name(mode: ResizeMode) -> &'static str {
    match mode {
        ResizeMode::Restart => "restart",
        ResizeMode::InPlace => "in-place",
    }
}

/// Removes a finished job from its framework (the thesis left them running forever).
async fn cleanup(sh: &Arc<Shared>, uuid: &str, job: &Job, failures: u32) -> Next {
    let outcome: Result<String, ApplyError> = match job.framework {
        Framework::Chronos => match &sh.chronos {
            None => Ok("no Chronos credentials: nothing deleted".into()),
            Some(c) => {
                // A cancelled or failed job may have a run in progress: Chronos 2.x leaves it
                // running when the job is deleted (3.x kills it), so kill it first.
                let killed = if matches!(job.phase, Phase::Completed { .. }) {
                    Ok("")
                } else {
                    match bounded(
                        sh,
                        "killing the Chronos job's tasks",
                        c.kill_job_tasks(&job.name),
                    )
                    .await
                    {
                        Ok(()) => Ok("its running task killed, "),
                        Err(ApplyError::Framework(e)) if e.is_not_found() => Ok(""),
                        Err(e) => Err(e),
                    }
                };
                match killed {
                    Err(e) => Err(e),
                    Ok(k) => {
                        match bounded(sh, "deleting the Chronos job", c.delete_job(&job.name)).await
                        {
                            Ok(()) => Ok(format!("Chronos job {}: {k}deleted", job.name)),
                            Err(ApplyError::Framework(e)) if e.is_not_found() => {
                                Ok(format!("Chronos job {} already gone", job.name))
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        },
        Framework::Marathon => match &sh.marathon {
            None => Ok("no Marathon credentials: nothing deleted".into()),
            Some(m) => {
                let r = match sh.config.control.marathon_completion {
                    MarathonCompletion::Delete => bounded(
                        sh,
                        "deleting the Marathon app",
                        m.delete_app(&job.name, true),
                    )
                    .await
                    .map(|_| format!("Marathon app {} deleted", job.name)),
                    MarathonCompletion::ScaleToZero => bounded(
                        sh,
                        "scaling the Marathon app to 0",
                        m.scale_app(&job.name, 0, true),
                    )
                    .await
                    .map(|_| format!("Marathon app {} scaled to 0 instances", job.name)),
                };
                let r = match r {
                    Err(e) => Err(gone(sh, job, e).await),
                    ok => ok,
                };
                match r {
                    Err(ApplyError::Gone(_)) => {
                        Ok(format!("Marathon app {} already gone", job.name))
                    }
                    other => other,
                }
            }
        },
    };
    let now = sh.clock.now();
    let end = match job.phase {
        Phase::Completed { at, met } => format!(
            "completed {:.0} s after submission, {:.0} s {} the deadline (met: {met})",
            at - job.qos.submitted_at,
            (at - job.qos.deadline_at).abs(),
            if met { "before" } else { "after" }
        ),
        Phase::Failed { at } => {
            format!("failed {:.0} s after submission", at - job.qos.submitted_at)
        }
        Phase::Cancelled { at } => format!(
            "cancelled {:.0} s after submission",
            at - job.qos.submitted_at
        ),
        Phase::Lost { at } => format!("lost {:.0} s after submission", at - job.qos.submitted_at),
        _ => "ended".into(),
    };
    let mut st = sh.lock();
    let Some(e) = st.jobs.get_mut(uuid) else {
        return Next::Done;
    };
    match outcome {
        Ok(what) => {
            e.p.meta.cleaned_up = true;
            e.rt.failures = 0;
            e.rt.last_error = None;
            let met = match job.phase {
                Phase::Completed { met, .. } => Some(met),
                _ => None,
            };
            let ops = vec![
                e.op(now),
                Op::Decision(event_row(
                    uuid,
                    now,
                    "completed",
                    json!({"action": "complete", "met": met}),
                    format!("{end}; {what}"),
                )),
            ];
            sh.store.submit_detached(ops);
            tracing::info!(outcome = %end, cleanup = %what, "job finished");
            Next::Done
        }
        Err(err) => {
            e.rt.failures = failures + 1;
            e.rt.last_error = Some(err.to_string());
            tracing::warn!(error = %err, failures = e.rt.failures, "removing the finished job from its framework failed; retrying");
            sh.metrics.apply_failed();
            Next::After(backoff(&sh.config.control, e.rt.failures))
        }
    }
}

/// Periodic upkeep: write CPU-sample changes behind, retire finished jobs' series, expire held
/// reports.
pub(crate) async fn housekeeping(sh: Arc<Shared>, cancel: CancellationToken) {
    let period = ControlConfig::dur(sh.config.control.flush_interval);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = sh.clock.now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        upkeep(&sh, &mut last_prune);
    }
    flush(&sh);
}

/// Writes every job changed by samples since the last flush.
pub(crate) fn flush(sh: &Shared) {
    let now = sh.clock.now();
    let ops: Vec<Op> = {
        let mut st = sh.lock();
        st.jobs
            .values_mut()
            .filter(|e| e.rt.dirty)
            .map(|e| {
                e.rt.dirty = false;
                e.op(now)
            })
            .collect()
    };
    if !ops.is_empty() {
        sh.store.submit_detached(ops);
    }
}

fn upkeep(sh: &Shared, last_prune: &mut f64) {
    flush(sh);
    let now = sh.clock.now();
    let c = &sh.config.control;
    if now - *last_prune >= 600.0 {
        *last_prune = now;
        sh.store.submit_detached(vec![Op::Prune {
            before: now - c.retention,
        }]);
    }
    let mut st = sh.lock();
    let st = &mut *st;
    while let Some(&(at, _)) = st.retiring.front() {
        if now - at < c.metrics_retention {
            break;
        }
        if let Some((_, uuid)) = st.retiring.pop_front() {
            if let Some(g) = st.jobs.get_mut(&uuid).and_then(|e| e.rt.gauges.take()) {
                sh.metrics.retire(&g);
            }
        }
    }
    let before = st.held.len();
    st.held.retain(|_, h| now - h.first_at < c.held_ttl);
    if st.held.len() != before {
        tracing::warn!(
            expired = before - st.held.len(),
            "reports held for jobs never registered expired"
        );
        sh.store.submit_detached(vec![Op::ExpireHeld {
            before: now - c.held_ttl,
        }]);
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
