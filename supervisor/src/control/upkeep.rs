//! A finished or cancelled job's cleanup (its framework entry, its checkpoints) and the
//! supervisor's housekeeping: flushing the store, pruning history and held reports.

use super::*;

/// Removes a finished job from its framework (the thesis left them running forever). Long on
/// purpose: the cleanup per framework and its one record, side by side.
pub(super) async fn cleanup(sh: &Arc<Shared>, uuid: &str, job: &Job, failures: u32) -> Next {
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

pub(super) fn upkeep(sh: &Shared, last_prune: &mut f64) {
    flush(sh);
    let now = sh.clock.now();
    let c = &sh.config.control;
    if now - *last_prune >= 600.0 {
        *last_prune = now;
        // Not awaited: its transactions take turns with the writes.
        let _pruning = sh.store.prune(now - c.retention);
    }
    let mut st = sh.lock();
    let st = &mut *st;
    while let Some(&(at, _)) = st.retiring.front() {
        if now - at < c.metrics_retention && st.retiring.len() <= c.metrics_max_finished {
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
