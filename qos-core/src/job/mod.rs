//! Job models: what is known about one supervised job, fed by observations.
//!
//! Two kinds of work, as in the thesis: *iterative* jobs (Chronos: a fixed number of iterations,
//! each reporting `started_at`/`finished_at`/`hostname`, and each run's container sampled for
//! the CPUs it used) and *continuous* jobs (Marathon: one long task, restarted on each resize,
//! measured by cumulative CPU time and, when the application reports it, a progress fraction).
//!
//! Observations are idempotent where the wire can repeat them: a repeated iteration report is
//! recognised and not counted twice; CPU samples are cumulative per container (`source`), so a
//! re-sent sample changes nothing and a restarted container (a counter that goes down) is banked,
//! never counted as negative use.
//!
//! Lost work is work lost: a continuous job's task that starts again *without* restoring a
//! checkpoint (it cannot checkpoint, or its checkpoint failed, or it died) begins a new
//! incarnation from zero. The CPU-seconds of the earlier incarnations are then *lost*
//! ([`CpuAccount::lost`]): they no longer count as progress, and they are reported as waste.

mod cpu;
mod observation;
mod work;

pub use cpu::CpuAccount;
pub use observation::{Effect, Observation, ObserveError};
pub use work::{
    ContinuousWork, IterationReport, IterativeWork, OPEN_RUNS, ResizeRecord, RunCpu, Segment, Work,
};

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::spec::ResolvedQos;
use observation::bad;
use work::{continuous_progress, extend_segment};

/// The framework a job runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// Chronos: iterative jobs.
    Chronos,
    /// Marathon: continuous jobs.
    Marathon,
}

impl Framework {
    /// The lowercase name used on the wire (`chronos`, `marathon`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chronos => "chronos",
            Self::Marathon => "marathon",
        }
    }
}

/// The wire name exactly ([`Framework::as_str`]), as the registration body and the API's
/// `framework` query parameter take it: `Chronos` or ` chronos ` is not a framework name.
impl std::str::FromStr for Framework {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Chronos, Self::Marathon]
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| format!("unknown framework {s:?} (expected chronos or marathon)"))
    }
}

/// Whether a job's work survives a restart of its task (a resize in restart mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpointing {
    /// Not said yet (shell-trap's `auto` strategy decides on the agent): treated as
    /// [`Checkpointing::Unable`] until a restore or shell-trap's report says otherwise.
    #[default]
    Unknown,
    /// It checkpoints on SIGTERM and resumes (shell-trap's `app` or `criu` strategy).
    Able,
    /// It cannot: a restart starts it again from scratch (shell-trap's `none` strategy).
    Unable,
}

impl Checkpointing {
    /// From a shell-trap strategy name: `app`/`criu` → able, `none` → unable, `auto` → unknown.
    pub fn from_strategy(strategy: &str) -> Option<Self> {
        match strategy.trim().to_ascii_lowercase().as_str() {
            "app" | "criu" => Some(Self::Able),
            "none" => Some(Self::Unable),
            "auto" | "" => Some(Self::Unknown),
            _ => None,
        }
    }

    /// Whether a restart keeps the work done (only when known to).
    pub fn keeps_work(self) -> bool {
        self == Self::Able
    }

    /// The wire and display name (`unknown`, `able`, `unable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Able => "able",
            Self::Unable => "unable",
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Registered, nothing has run yet.
    Pending,
    /// Work is running (or, for iterative jobs, between iterations).
    Running,
    /// A restart to a new size is under way (continuous jobs in restart mode).
    Restarting {
        /// When the restart was requested.
        since: f64,
    },
    /// All work done.
    Completed {
        /// When the last work finished.
        at: f64,
        /// Whether that was at or before the deadline.
        met: bool,
    },
    /// The task ended unsuccessfully and will not be retried by the supervisor.
    Failed {
        /// When it ended.
        at: f64,
    },
    /// Stopped by a user.
    Cancelled {
        /// When.
        at: f64,
    },
    /// Its framework no longer has it (the Chronos job or Marathon app was removed behind the
    /// supervisor's back): nothing the supervisor does can reach it any more.
    Lost {
        /// When the supervisor gave up on it.
        at: f64,
    },
}

impl Phase {
    /// Whether nothing more will happen to the job.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed { .. }
                | Self::Failed { .. }
                | Self::Cancelled { .. }
                | Self::Lost { .. }
        )
    }
}

/// One supervised job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Human name (Chronos job name, Marathon app id without the leading `/`).
    pub name: String,
    /// The framework it runs on.
    pub framework: Framework,
    /// Its QoS target, bound to its submission time.
    pub qos: ResolvedQos,
    /// The allocation currently in force (or requested, during a restart).
    pub cpus: Cpus,
    /// Life-cycle phase.
    pub phase: Phase,
    /// What has been observed of its work.
    pub work: Work,
    /// Every resize applied, oldest first.
    pub resizes: Vec<ResizeRecord>,
    /// Whether its work survives a restart (continuous jobs; iterative jobs lose nothing, each
    /// run is a task of its own).
    #[serde(default)]
    pub checkpointing: Checkpointing,
}

impl Job {
    /// A new iterative (Chronos) job of `iterations` iterations starting at `cpus`.
    pub fn iterative(
        name: impl Into<String>,
        qos: ResolvedQos,
        iterations: u32,
        cpus: Cpus,
    ) -> Self {
        Self {
            name: name.into(),
            framework: Framework::Chronos,
            qos,
            cpus,
            phase: Phase::Pending,
            work: Work::Iterative(IterativeWork {
                total: iterations,
                reports: Vec::new(),
                forgotten: 0,
                runs: Vec::new(),
            }),
            resizes: Vec::new(),
            checkpointing: Checkpointing::Unknown,
        }
    }

    /// A new continuous (Marathon) job starting at `cpus`.
    pub fn continuous(name: impl Into<String>, qos: ResolvedQos, cpus: Cpus) -> Self {
        Self {
            name: name.into(),
            framework: Framework::Marathon,
            qos,
            cpus,
            phase: Phase::Pending,
            work: Work::Continuous(ContinuousWork::default()),
            resizes: Vec::new(),
            checkpointing: Checkpointing::Unknown,
        }
    }

    /// Iterations not yet reported (0 for continuous jobs).
    pub fn remaining_iterations(&self) -> u32 {
        match &self.work {
            Work::Iterative(w) => w.total.saturating_sub(w.done()),
            Work::Continuous(_) => 0,
        }
    }

    /// The newest iteration report.
    pub fn last_report(&self) -> Option<&IterationReport> {
        match &self.work {
            Work::Iterative(w) => w.reports.last(),
            Work::Continuous(_) => None,
        }
    }

    /// When the latest resize was applied.
    pub fn last_resize_at(&self) -> Option<f64> {
        self.resizes.last().map(|r| r.at)
    }

    /// CPU-seconds consumed so far (continuous jobs; 0 for iterative ones).
    pub fn cpu_seconds_used(&self) -> f64 {
        match &self.work {
            Work::Continuous(w) => w.cpu.total(),
            Work::Iterative(_) => 0.0,
        }
    }

    /// CPU-seconds whose work was lost by restarts from scratch (0 for iterative jobs).
    pub fn cpu_seconds_lost(&self) -> f64 {
        match &self.work {
            Work::Continuous(w) => w.cpu.lost(),
            Work::Iterative(_) => 0.0,
        }
    }

    /// Whether a restart of its task would keep its work: iterative jobs always (a resize
    /// applies to the next run), continuous jobs only when known to checkpoint.
    pub fn restart_keeps_work(&self) -> bool {
        match self.work {
            Work::Iterative(_) => true,
            Work::Continuous(_) => self.checkpointing.keeps_work(),
        }
    }

    /// Fraction of the work done, from the best signal available: iterations reported,
    /// application-reported progress, or CPU time against the QoS duration.
    pub fn progress(&self) -> f64 {
        match &self.work {
            Work::Iterative(w) if w.total > 0 => f64::from(w.done()) / f64::from(w.total),
            Work::Iterative(_) => 1.0,
            Work::Continuous(w) => continuous_progress(w, self.qos.duration),
        }
    }

    /// Applies an observation made at or before `now`.
    pub fn observe(&mut self, obs: Observation) -> Result<Effect, ObserveError> {
        if self.phase.is_terminal() {
            // Late deliveries after the end change nothing (and are not errors: reports retry).
            return Ok(Effect::Duplicate);
        }
        match obs {
            Observation::Started { at, restored } => {
                let restored = restored.unwrap_or_else(|| self.restart_would_restore());
                self.on_started(at, restored)
            }
            Observation::Iteration(report) => self.on_iteration(report),
            Observation::CpuSample {
                at,
                source,
                cumulative_secs,
            } => self.on_cpu_sample(at, &source, cumulative_secs),
            Observation::Progress { at, fraction } => self.on_progress(at, fraction),
            Observation::Resized { at, cpus, restart } => Ok(self.on_resized(at, cpus, restart)),
            Observation::Ended { at, success } => Ok(self.on_ended(at, success)),
            Observation::Cancelled { at } => {
                self.phase = Phase::Cancelled { at };
                Ok(Effect::Applied)
            }
            Observation::Lost { at } => {
                self.phase = Phase::Lost { at };
                Ok(Effect::Applied)
            }
        }
    }

    /// A cumulative CPU reading of one of its containers: progress for a job that reports only
    /// CPU time, and the sign that a task restarted without saying so is back.
    fn on_cpu_sample(
        &mut self,
        at: f64,
        source: &str,
        cumulative_secs: f64,
    ) -> Result<Effect, ObserveError> {
        if !cumulative_secs.is_finite() || cumulative_secs < 0.0 {
            return Err(bad(
                "cumulative_secs",
                format!("must be a non-negative number, got {cumulative_secs}"),
            ));
        }
        let back = match &self.work {
            Work::Continuous(w) => {
                matches!(self.phase, Phase::Restarting { .. })
                    && w.cpu.last_sample_at().is_some()
                    && !w.cpu.knows(source)
            }
            Work::Iterative(_) => false,
        };
        if back {
            // A new container after a restart request: the task is back (a thesis-era
            // task sends no notification of its restart).
            let restored = self.restart_would_restore();
            self.on_started(at, restored)?;
        }
        let duration = self.qos.duration;
        let cpus = self.cpus;
        match &mut self.work {
            Work::Continuous(w) => {
                let added = w.cpu.record(source, cumulative_secs, at);
                if w.app_progress.is_none() {
                    // Uncapped: a job that needs more than it declared keeps showing
                    // its speed after its declared CPU-seconds are used up.
                    let p = w.cpu.useful() / duration;
                    extend_segment(w, cpus, at, p);
                }
                if self.phase == Phase::Pending {
                    self.phase = Phase::Running;
                }
                Ok(if added > 0.0 {
                    Effect::Applied
                } else {
                    Effect::Duplicate
                })
            }
            // Chronos containers are measured too: progress comes from reports, and each run's
            // samples say how many CPUs it used at its size (kept with its report).
            Work::Iterative(w) => Ok(if w.record_cpu(source, cumulative_secs, at) {
                Effect::Applied
            } else {
                Effect::Duplicate
            }),
        }
    }

    /// The application's own progress: it replaces the CPU-time proxy as the speed evidence.
    fn on_progress(&mut self, at: f64, fraction: f64) -> Result<Effect, ObserveError> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(bad(
                "fraction",
                format!("must be in [0, 1], got {fraction}"),
            ));
        }
        let cpus = self.cpus;
        match &mut self.work {
            Work::Continuous(w) => {
                if w.app_progress.is_none() {
                    // Switch the learning evidence from the CPU proxy to real progress;
                    // before any restart, the task started from zero.
                    w.segments.clear();
                    if let (Some(start), 0) = (w.started_at, w.restarts) {
                        extend_segment(w, cpus, start, 0.0);
                    }
                }
                if w.app_progress
                    .is_some_and(|(t, f)| t == at && f == fraction)
                {
                    return Ok(Effect::Duplicate);
                }
                w.app_progress = Some((at, fraction));
                extend_segment(w, cpus, at, fraction);
                Ok(Effect::Applied)
            }
            Work::Iterative(_) => Err(bad(
                "fraction",
                "iterative jobs report progress by iterations, not fractions",
            )),
        }
    }

    /// A new allocation in force (in restart mode, the restart begins).
    fn on_resized(&mut self, at: f64, cpus: Cpus, restart: bool) -> Effect {
        if cpus == self.cpus {
            return Effect::Duplicate;
        }
        self.resizes.push(ResizeRecord {
            at,
            from: self.cpus,
            to: cpus,
        });
        self.cpus = cpus;
        if restart && matches!(self.work, Work::Continuous(_)) {
            self.phase = Phase::Restarting { since: at };
        }
        Effect::Applied
    }

    /// The task ended by itself.
    fn on_ended(&mut self, at: f64, success: bool) -> Effect {
        let met = at <= self.qos.deadline_at;
        match &mut self.work {
            Work::Continuous(w) => {
                w.ended_at = Some(at);
                self.phase = if success {
                    Phase::Completed { at, met }
                } else {
                    Phase::Failed { at }
                };
            }
            Work::Iterative(_) => self.phase = Phase::Failed { at },
        }
        Effect::Applied
    }

    /// Whether a start that did not say if it restored is taken as a restore: only a restart
    /// under way of a job known to checkpoint.
    fn restart_would_restore(&self) -> bool {
        matches!(self.phase, Phase::Restarting { .. }) && self.checkpointing.keeps_work()
    }

    fn on_started(&mut self, at: f64, restored: bool) -> Result<Effect, ObserveError> {
        let phase = self.phase;
        match &mut self.work {
            Work::Continuous(w) => {
                if w.incarnation_started_at == Some(at) {
                    return Ok(Effect::Duplicate);
                }
                if w.started_at.is_none() {
                    w.started_at = Some(at);
                    w.cpu.begin_incarnation(at, true);
                } else {
                    w.restarts += 1;
                    if let Phase::Restarting { since } = phase {
                        w.restart_costs.push((at - since).max(0.0));
                    }
                    w.cpu.begin_incarnation(at, restored);
                    if restored {
                        // Proof that it checkpoints, whatever was said before.
                        self.checkpointing = Checkpointing::Able;
                    } else {
                        // From scratch: the application's progress starts again from zero.
                        w.restarts_lost += 1;
                        if w.app_progress.is_some() {
                            w.app_progress = Some((at, 0.0));
                        }
                    }
                }
                w.incarnation_started_at = Some(at);
                self.phase = Phase::Running;
                Ok(Effect::Applied)
            }
            Work::Iterative(_) => {
                if self.phase == Phase::Pending {
                    self.phase = Phase::Running;
                    Ok(Effect::Applied)
                } else {
                    Ok(Effect::Duplicate)
                }
            }
        }
    }

    fn on_iteration(&mut self, mut report: IterationReport) -> Result<Effect, ObserveError> {
        if !report.started_at.is_finite() || !report.finished_at.is_finite() {
            return Err(bad("finished_at", "timestamps must be finite numbers"));
        }
        if report.finished_at < report.started_at {
            return Err(bad(
                "finished_at",
                format!(
                    "is before started_at ({} < {})",
                    report.finished_at, report.started_at
                ),
            ));
        }
        let Work::Iterative(w) = &mut self.work else {
            return Err(bad(
                "uuid",
                "iteration reports are for iterative (Chronos) jobs",
            ));
        };
        // Iterations run one after another: once the oldest reports are forgotten, one that
        // ended before the oldest kept began is a repeat of a forgotten one.
        let before_kept = w.forgotten > 0
            && w.reports
                .first()
                .is_some_and(|first| report.finished_at <= first.started_at);
        let dup = before_kept
            || w.reports.iter().any(|r| {
                r.started_at == report.started_at
                    && r.finished_at == report.finished_at
                    && r.hostname == report.hostname
            });
        if dup {
            return Ok(Effect::Duplicate);
        }
        if w.done() >= w.total {
            // More runs than requested (e.g. a framework retry): not counted, nothing to do.
            return Ok(Effect::Duplicate);
        }
        if report.cpus == Cpus::ZERO {
            report.cpus = self.cpus;
        }
        // What its container used is measured here, never taken from the wire.
        report.cpus_used = w.take_run_cpu(&report, cpu::START_SKEW);
        let finished_at = report.finished_at;
        w.reports.push(report);
        self.phase = if w.done() == w.total {
            Phase::Completed {
                at: finished_at,
                met: finished_at <= self.qos.deadline_at,
            }
        } else {
            Phase::Running
        };
        Ok(Effect::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{chronos, cpu_sample, iteration, marathon, resized, started};

    /// One rule for a framework's name, the wire's: lowercase, exactly.
    #[test]
    fn a_framework_is_named_in_lowercase_exactly() {
        for f in [Framework::Chronos, Framework::Marathon] {
            assert_eq!(f.as_str().parse::<Framework>(), Ok(f));
            let wire: Framework = serde_json::from_value(serde_json::json!(f.as_str())).unwrap();
            assert_eq!(wire, f);
        }
        for bad in ["Chronos", "MARATHON", " chronos", "marathon ", "", "mesos"] {
            let e = bad.parse::<Framework>().unwrap_err();
            assert!(e.contains("chronos or marathon"), "{bad:?}: {e}");
            assert!(
                serde_json::from_value::<Framework>(serde_json::json!(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn repeated_iteration_report_counts_once() {
        let mut job = chronos(4, 400.0, 1800.0);
        assert_eq!(
            job.observe(iteration(10.0, 450.0)).unwrap(),
            Effect::Applied
        );
        assert_eq!(
            job.observe(iteration(10.0, 450.0)).unwrap(),
            Effect::Duplicate
        );
        assert_eq!(job.remaining_iterations(), 3);
        assert_eq!(job.last_report().unwrap().cpus, Cpus::ONE);
    }

    /// The oldest reports forgotten (a bounded list) still count: remaining iterations,
    /// progress and completion are as if they were kept, and a repeat of a forgotten one is
    /// not counted again.
    #[test]
    fn forgotten_reports_still_count() {
        let mut job = chronos(4, 400.0, 1800.0);
        job.observe(iteration(10.0, 450.0)).unwrap();
        job.observe(iteration(460.0, 900.0)).unwrap();
        let Work::Iterative(w) = &mut job.work else {
            unreachable!()
        };
        w.forget_oldest(1);
        assert_eq!((w.reports.len(), w.forgotten, w.done()), (1, 1, 2));
        assert_eq!(job.remaining_iterations(), 2);
        assert!((job.progress() - 0.5).abs() < 1e-12);
        assert_eq!(
            job.observe(iteration(10.0, 450.0)).unwrap(),
            Effect::Duplicate
        );
        assert_eq!(job.remaining_iterations(), 2);
        job.observe(iteration(910.0, 1300.0)).unwrap();
        job.observe(iteration(1310.0, 1700.0)).unwrap();
        assert!(matches!(job.phase, Phase::Completed { met: true, .. }));
        let back: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
        assert_eq!(back, job);
    }

    /// A Chronos run's container is sampled too: its report takes the CPUs the container used
    /// while it ran (never a figure from the wire), and the samples kept are bounded.
    #[test]
    fn a_run_report_takes_the_cpus_its_container_used() {
        let mut job = chronos(4, 400.0, 1800.0);
        job.observe(resized(0.0, Cpus::from_milli(2000))).unwrap();
        let sample = |at: f64, source: &str, secs: f64| Observation::CpuSample {
            at,
            source: source.into(),
            cumulative_secs: secs,
        };
        // One thread on two CPUs: a CPU-second per second, from 12 s to 440 s.
        for k in 0..=428 {
            let t = 12.0 + f64::from(k);
            assert_eq!(
                job.observe(sample(t, "run-1", t - 11.0)).unwrap(),
                Effect::Applied
            );
        }
        assert_eq!(
            job.observe(sample(440.0, "run-1", 429.0)).unwrap(),
            Effect::Duplicate
        );
        let mut report = IterationReport {
            started_at: 10.0,
            finished_at: 450.0,
            hostname: "agent1".into(),
            cpus: Cpus::ZERO,
            cpus_used: Some(2.0),
        };
        job.observe(Observation::Iteration(report.clone())).unwrap();
        let used = job.last_report().unwrap().cpus_used.unwrap();
        assert!((used - 1.0).abs() < 1e-9, "{used}");
        let Work::Iterative(w) = &job.work else {
            unreachable!()
        };
        assert!(w.runs.is_empty(), "{:?}", w.runs);
        // A run sampled for too short a stretch of it (2 s of 440) says nothing.
        job.observe(sample(461.0, "run-2", 1.0)).unwrap();
        job.observe(sample(463.0, "run-2", 3.0)).unwrap();
        report.started_at = 460.0;
        report.finished_at = 900.0;
        job.observe(Observation::Iteration(report)).unwrap();
        assert_eq!(job.last_report().unwrap().cpus_used, None);
        // Containers never matched to a report are kept up to a bound.
        for k in 0..10u32 {
            job.observe(sample(1000.0 + f64::from(k), &format!("stray-{k}"), 1.0))
                .unwrap();
        }
        let Work::Iterative(w) = &job.work else {
            unreachable!()
        };
        assert_eq!(w.runs.len(), OPEN_RUNS);
    }

    #[test]
    fn a_reported_size_is_kept() {
        // Resized to 1.4 after the first run, but the second run had already started at 1.0.
        let mut job = chronos(4, 400.0, 1800.0);
        job.observe(iteration(10.0, 450.0)).unwrap();
        job.observe(resized(451.0, Cpus::from_milli(1400))).unwrap();
        job.observe(Observation::Iteration(IterationReport {
            started_at: 451.0,
            finished_at: 890.0,
            hostname: "agent1".into(),
            cpus: Cpus::ONE,
            cpus_used: None,
        }))
        .unwrap();
        assert_eq!(job.last_report().unwrap().cpus, Cpus::ONE);
        job.observe(iteration(891.0, 1200.0)).unwrap();
        assert_eq!(job.last_report().unwrap().cpus, Cpus::from_milli(1400));
    }

    #[test]
    fn a_lost_job_is_terminal_and_takes_no_more_reports() {
        let mut job = chronos(4, 400.0, 1800.0);
        job.observe(iteration(10.0, 450.0)).unwrap();
        assert_eq!(
            job.observe(Observation::Lost { at: 500.0 }).unwrap(),
            Effect::Applied
        );
        assert_eq!(job.phase, Phase::Lost { at: 500.0 });
        assert!(job.phase.is_terminal());
        assert_eq!(
            job.observe(iteration(460.0, 900.0)).unwrap(),
            Effect::Duplicate
        );
        assert_eq!(job.remaining_iterations(), 3);
    }

    #[test]
    fn last_iteration_completes_and_judges_deadline() {
        let mut job = chronos(2, 10.0, 100.0);
        job.observe(iteration(0.0, 40.0)).unwrap();
        job.observe(iteration(45.0, 101.0)).unwrap();
        assert_eq!(
            job.phase,
            Phase::Completed {
                at: 101.0,
                met: false
            }
        );
        // Extra runs after completion are ignored.
        assert_eq!(
            job.observe(iteration(110.0, 120.0)).unwrap(),
            Effect::Duplicate
        );
    }

    #[test]
    fn bad_reports_are_rejected_with_the_field() {
        let mut job = chronos(2, 10.0, 100.0);
        let e = job.observe(iteration(50.0, 40.0)).unwrap_err();
        assert_eq!(e.field, "finished_at");
        let mut m = marathon(10.0, 100.0, Cpus::ONE);
        assert_eq!(m.observe(iteration(0.0, 1.0)).unwrap_err().field, "uuid");
        let e = m
            .observe(Observation::Progress {
                at: 1.0,
                fraction: 1.5,
            })
            .unwrap_err();
        assert_eq!(e.field, "fraction");
    }

    #[test]
    fn cpu_counter_resets_are_banked_never_negative() {
        let mut a = CpuAccount::default();
        a.record("c1", 10.0, 1.0);
        a.record("c1", 10.0, 2.0); // re-sent
        a.record("c1", 25.0, 3.0);
        assert_eq!(a.total(), 25.0);
        // Container recreated under the same id: counter restarts from 0.
        assert_eq!(a.record("c1", 3.0, 4.0), 3.0);
        assert_eq!(a.total(), 28.0);
        // A second container (new incarnation) adds up.
        a.record("c2", 5.0, 5.0);
        assert_eq!(a.total(), 33.0);
    }

    #[test]
    fn restart_cost_is_measured() {
        let mut job = marathon(400.0, 480.0, Cpus::ONE);
        job.observe(started(0.0)).unwrap();
        job.observe(Observation::Resized {
            at: 120.0,
            cpus: Cpus::from_f64(1.4),
            restart: true,
        })
        .unwrap();
        assert!(matches!(job.phase, Phase::Restarting { .. }));
        job.observe(Observation::Started {
            at: 137.5,
            restored: Some(true),
        })
        .unwrap();
        let Work::Continuous(w) = &job.work else {
            unreachable!()
        };
        assert_eq!(w.restart_costs, [17.5]);
        assert_eq!(w.restarts, 1);
        assert_eq!(job.phase, Phase::Running);
    }

    #[test]
    fn progress_prefers_the_application() {
        let mut job = marathon(100.0, 480.0, Cpus::ONE);
        job.observe(started(0.0)).unwrap();
        job.observe(cpu_sample(10.0, 10.0)).unwrap();
        assert!((job.progress() - 0.1).abs() < 1e-12);
        job.observe(Observation::Progress {
            at: 11.0,
            fraction: 0.05,
        })
        .unwrap();
        assert_eq!(job.progress(), 0.05);
        job.observe(Observation::Ended {
            at: 300.0,
            success: true,
        })
        .unwrap();
        assert_eq!(
            job.phase,
            Phase::Completed {
                at: 300.0,
                met: true
            }
        );
        assert_eq!(job.progress(), 1.0);
    }
}
