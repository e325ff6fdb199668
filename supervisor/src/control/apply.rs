//! Applying a verdict: the framework's or the node agent's resize call, bounded and retried,
//! what a framework that no longer has the job means (`LOST` after `control.lost_after` strikes),
//! and the operator's resize route, applied by the same code.

use super::*;

pub(super) async fn bounded<T>(
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
pub(super) enum ApplyError {
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
pub(super) async fn gone(sh: &Shared, job: &Job, err: ApplyError) -> ApplyError {
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
pub(super) fn strike_not_found(
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
pub(super) enum Presence {
    /// It has it, with its `cpus` when readable.
    Present(Option<Cpus>),
    /// It answered that it does not (what it said).
    Absent(String),
    /// It could not be asked (no credentials, unreachable, an error).
    Unknown,
}

pub(super) async fn read_framework(sh: &Shared, job: &Job) -> Presence {
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

/// Applies a resize; returns the allocation in force. A Chronos job's runs are tasks of their
/// own: its resize re-posts the job and the next run takes the size, in either mode (a node
/// agent could only reach the run under way, never the runs after it).
pub(super) async fn call_resize(
    sh: &Shared,
    uuid: &str,
    snap: &Snapshot,
    cpus: Cpus,
    mode: ResizeMode,
    now: f64,
) -> Result<Cpus, ApplyError> {
    let job = &snap.job;
    match (job.framework, mode) {
        (Framework::Marathon, ResizeMode::InPlace) => {
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
        (Framework::Chronos, _) => {
            let Some(c) = &sh.chronos else {
                return Err(ApplyError::NotConfigured(
                    "no Chronos credentials (-c/--chronos): the decision cannot be applied".into(),
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
        (Framework::Marathon, ResizeMode::Restart) => {
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
                tracing::warn!("a deployment has locked the app for too long; forcing the resize");
            }
            bounded(
                sh,
                "resizing the Marathon app",
                m.set_app_cpus(&job.name, cpus.as_f64(), stuck),
            )
            .await?;
            Ok(cpus)
        }
    }
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
        mode: mode_name(snap.job.framework, mode).to_owned(),
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
    match apply_resize(sh, uuid, &snap, cpus, mode, now).await.1 {
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
/// was applied (or why not). Long on purpose: the outcome's every effect (job, history, metrics,
/// node reservation, backoff, strikes) is written under one lock, in one place.
pub(super) async fn apply_resize(
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
                        json!({"from": from.as_f64(), "to": applied.as_f64(), "mode": mode_name(snap.job.framework, mode), "restart": restart}),
                        format!(
                            "resized {from} → {applied} CPU ({})",
                            mode_name(snap.job.framework, mode)
                        ),
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
                        json!({"from": from.as_f64(), "to": cpus.as_f64(), "mode": mode_name(snap.job.framework, mode)}),
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

/// How a resize reached the job, as the history, the log and the operator's answer say it:
/// `next-run` for a Chronos job (re-posted; see [`call_resize`]), else the mode.
pub(super) fn mode_name(framework: Framework, mode: ResizeMode) -> &'static str {
    match (framework, mode) {
        (Framework::Chronos, _) => "next-run",
        (Framework::Marathon, ResizeMode::Restart) => "restart",
        (Framework::Marathon, ResizeMode::InPlace) => "in-place",
    }
}
