//! Reports: the thesis' and the versioned ones, and nodes' CPU samples; held while their job
//! is not registered yet, then turned into observations of the job.

use qos_core::job::{Effect, IterationReport, Observation, Phase};
use qos_core::wire::{CpuSample, SampleBatch};
use qos_core::{Checkpointing, Cpus, Work};
use serde_json::{Value, json};

use super::{ReportOutcome, Shared, check_uuid, move_node, normalise_node, store_err};
use crate::error::ApiError;
use crate::limits;
use crate::state::{HELD_PER_JOB, Held, HeldReport, JobEntry, State};
use crate::store::Op;

impl Shared {
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
                        format!(
                            "{} must be a number ≥ 0, got {}",
                            f(name),
                            limits::number(v)
                        ),
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
///
/// One arm per kind of report, kept in one function so that their checks read side by side.
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
                Some(c) => limits::check_cpus("cpus", c, 10_000.0)?,
            };
            if !u.hostname.is_empty() && u.hostname.len() <= limits::MAX_HOSTNAME {
                meta.node = Some(u.hostname.clone());
            }
            job.observe(Observation::Iteration(IterationReport {
                started_at,
                finished_at,
                hostname: u.hostname,
                cpus: ran_with,
                cpus_used: None,
            }))
            .map_err(obs_err)?
        }
        HeldReport::Started(m) => {
            marathon_only(
                &job.work,
                &entry.p.uuid,
                "initMarathonApp",
                " (its runs report with updateTask)",
            )?;
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
            marathon_only(&job.work, &entry.p.uuid, "endMarathonApp", "")?;
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

/// Refuses a report of a Marathon task's life (`route`) for a Chronos job; `hint` ends the
/// message.
fn marathon_only(work: &Work, uuid: &str, route: &str, hint: &str) -> Result<(), ApiError> {
    if matches!(work, Work::Iterative(_)) {
        return Err(ApiError::invalid(
            "uuid",
            format!("{route} is for Marathon jobs; {uuid} is a Chronos job{hint}"),
        ));
    }
    Ok(())
}

fn cumulative(s: &CpuSample) -> f64 {
    if s.total_secs > 0.0 {
        s.total_secs
    } else {
        s.user_secs + s.system_secs
    }
}
