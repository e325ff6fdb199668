//! Job models: what is known about one supervised job, fed by observations.
//!
//! Two kinds of work, as in the thesis: *iterative* jobs (Chronos: a fixed number of iterations,
//! each reporting `started_at`/`finished_at`/`hostname`) and *continuous* jobs (Marathon: one
//! long task, restarted on each resize, measured by cumulative CPU time and, when the application
//! reports it, a progress fraction).
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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::spec::ResolvedQos;

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

impl std::str::FromStr for Framework {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chronos" => Ok(Self::Chronos),
            "marathon" => Ok(Self::Marathon),
            other => Err(format!(
                "unknown framework {other:?} (expected chronos or marathon)"
            )),
        }
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

/// One finished iteration of an iterative job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    /// When the iteration's command started, epoch seconds.
    pub started_at: f64,
    /// When it finished, epoch seconds.
    pub finished_at: f64,
    /// The agent it ran on.
    pub hostname: String,
    /// The allocation it ran with: as reported, or (when zero) filled in by [`Job::observe`]
    /// from the job's allocation.
    #[serde(default)]
    pub cpus: Cpus,
}

impl IterationReport {
    /// Measured run time of the iteration.
    pub fn duration(&self) -> f64 {
        self.finished_at - self.started_at
    }
}

/// Cumulative CPU time of a job across containers, robust to restarts and re-sent samples, split
/// into the CPU-seconds that still count as progress and those of incarnations whose work was
/// lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuAccount {
    /// Per container (`source`): CPU-seconds banked from earlier counter resets plus the last
    /// cumulative value seen, and the incarnation the container belongs to.
    sources: BTreeMap<String, SourceCounter>,
    /// Time of the newest sample, epoch seconds.
    last_sample_at: Option<f64>,
    /// The incarnation new containers belong to (0 before the first start is known).
    #[serde(default)]
    incarnation: u32,
    /// Containers of incarnations before this one did work that was lost.
    #[serde(default)]
    useful_from: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SourceCounter {
    banked: f64,
    last: f64,
    #[serde(default)]
    incarnation: u32,
    /// When the container was first sampled.
    #[serde(default)]
    first_at: f64,
}

impl SourceCounter {
    fn total(&self) -> f64 {
        self.banked + self.last
    }
}

/// A container first sampled this long before its incarnation's start report belongs to that
/// incarnation: the collector may sample a new container a moment before the task's own report
/// of its start arrives.
const START_SKEW: f64 = 2.0;

impl CpuAccount {
    /// Records a cumulative CPU-seconds reading of one container. A value lower than the
    /// previous one of the same source means the counter was reset (container recreated): the
    /// previous value is banked. Returns the CPU-seconds this sample added.
    pub fn record(&mut self, source: &str, cumulative_secs: f64, at: f64) -> f64 {
        let incarnation = self.incarnation;
        let c = self
            .sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceCounter {
                incarnation,
                first_at: at,
                ..SourceCounter::default()
            });
        let added = if cumulative_secs + 1e-9 < c.last {
            c.banked += c.last;
            cumulative_secs
        } else {
            cumulative_secs - c.last
        };
        c.last = cumulative_secs;
        self.last_sample_at = Some(self.last_sample_at.map_or(at, |t| t.max(at)));
        added
    }

    /// Whether `source` has been sampled before.
    pub fn knows(&self, source: &str) -> bool {
        self.sources.contains_key(source)
    }

    /// How many containers have been sampled.
    pub fn containers(&self) -> usize {
        self.sources.len()
    }

    /// A new incarnation of the task started at `at`; `keeps_work` says whether it resumed the
    /// work of the earlier ones (restored a checkpoint). Containers first sampled from just
    /// before `at` on belong to it.
    pub fn begin_incarnation(&mut self, at: f64, keeps_work: bool) {
        let previous = self.incarnation;
        self.incarnation += 1;
        for c in self.sources.values_mut() {
            if c.incarnation == previous && c.first_at >= at - START_SKEW {
                c.incarnation = self.incarnation;
            }
        }
        if !keeps_work {
            self.useful_from = self.incarnation;
        }
    }

    /// Total CPU-seconds consumed so far by all containers of the job.
    pub fn total(&self) -> f64 {
        // `+ 0.0`: an empty sum is −0.0, which reads badly in a job's view.
        self.sources.values().map(SourceCounter::total).sum::<f64>() + 0.0
    }

    /// CPU-seconds that still count as progress (those of incarnations whose work was kept).
    pub fn useful(&self) -> f64 {
        self.sources
            .values()
            .filter(|c| c.incarnation >= self.useful_from)
            .map(SourceCounter::total)
            .sum::<f64>()
            + 0.0
    }

    /// CPU-seconds of incarnations whose work was lost by a restart from scratch.
    pub fn lost(&self) -> f64 {
        self.sources
            .values()
            .filter(|c| c.incarnation < self.useful_from)
            .map(SourceCounter::total)
            .sum::<f64>()
            + 0.0
    }

    /// Time of the newest sample.
    pub fn last_sample_at(&self) -> Option<f64> {
        self.last_sample_at
    }
}

/// A stretch of a continuous job run at one allocation: the evidence the speed-up model learns from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The allocation during the segment.
    pub cpus: Cpus,
    /// Start of the segment (first progress point at this allocation).
    pub from_at: f64,
    /// Progress fraction at the start.
    pub from_progress: f64,
    /// Latest progress point seen in the segment.
    pub to_at: f64,
    /// Progress fraction at that point.
    pub to_progress: f64,
}

impl Segment {
    /// Observed seconds per whole job at this allocation, if the segment made visible progress.
    pub fn secs_per_job(&self) -> Option<f64> {
        let dp = self.to_progress - self.from_progress;
        let dt = self.to_at - self.from_at;
        (dp > 1e-4 && dt > 0.0).then(|| dt / dp)
    }
}

/// Iterative (Chronos) work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterativeWork {
    /// Iterations requested (`R<n>` in the schedule).
    pub total: u32,
    /// Reports received, in arrival order, without duplicates.
    pub reports: Vec<IterationReport>,
}

/// Continuous (Marathon) work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContinuousWork {
    /// First start of the task (the thesis' `init_time[0]`).
    pub started_at: Option<f64>,
    /// Start of the current incarnation (first start or last restore).
    pub incarnation_started_at: Option<f64>,
    /// Restarts completed: the task started again after an earlier incarnation, restored or not.
    pub restarts: u32,
    /// Restarts that started the work again from scratch (nothing restored): their earlier
    /// incarnations' CPU-seconds are [`CpuAccount::lost`].
    #[serde(default)]
    pub restarts_lost: u32,
    /// Measured restart costs: seconds from the restart request to the restored task running.
    pub restart_costs: Vec<f64>,
    /// CPU time consumed.
    pub cpu: CpuAccount,
    /// Latest application-reported progress `(at, fraction)`, if the application reports any.
    pub app_progress: Option<(f64, f64)>,
    /// Progress segments per allocation, oldest first.
    pub segments: Vec<Segment>,
    /// When the task ended, if it has.
    pub ended_at: Option<f64>,
}

/// The kind of work and what has been observed of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Work {
    /// Chronos-style iterations.
    Iterative(IterativeWork),
    /// Marathon-style single long task.
    Continuous(ContinuousWork),
}

/// A resize that was applied to the job.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResizeRecord {
    /// When it was applied.
    pub at: f64,
    /// Allocation before.
    pub from: Cpus,
    /// Allocation after.
    pub to: Cpus,
}

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observation {
    /// The task started: its first incarnation, or a new one after a restart or a crash.
    Started {
        /// When.
        at: f64,
        /// Whether it resumed from a checkpoint: `Some(true)` restored, `Some(false)` started from
        /// scratch, `None` not said (a thesis-era reporter) — then a restart this supervisor
        /// requested of a job known to checkpoint is taken as restored, anything else as not.
        restored: Option<bool>,
    },
    /// An iteration finished (iterative jobs).
    Iteration(IterationReport),
    /// A cumulative CPU-time reading of one of the job's containers.
    CpuSample {
        /// When it was read.
        at: f64,
        /// Which container (id); counters are cumulative per source.
        source: String,
        /// Cumulative CPU-seconds (user + system).
        cumulative_secs: f64,
    },
    /// The application reported how far it is.
    Progress {
        /// When.
        at: f64,
        /// Fraction done, in `[0, 1]`.
        fraction: f64,
    },
    /// A new allocation is in force (or, in restart mode, was requested and the restart begins).
    Resized {
        /// When.
        at: f64,
        /// The new allocation.
        cpus: Cpus,
        /// Whether the change restarts the task (restart mode on a continuous job).
        restart: bool,
    },
    /// The task ended by itself.
    Ended {
        /// When.
        at: f64,
        /// Whether it succeeded (exit code 0).
        success: bool,
    },
    /// A user cancelled the job.
    Cancelled {
        /// When.
        at: f64,
    },
    /// The framework no longer has the job (see [`Phase::Lost`]).
    Lost {
        /// When.
        at: f64,
    },
}

/// What an observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The job's state changed.
    Applied,
    /// It repeated something already known (idempotent re-delivery); nothing changed.
    Duplicate,
}

/// An observation that cannot apply to this job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ObserveError {
    /// The offending field.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ObserveError {
    ObserveError {
        field,
        reason: reason.into(),
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
            Work::Iterative(w) => w.total.saturating_sub(w.reports.len() as u32),
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
            Work::Iterative(w) if w.total > 0 => w.reports.len() as f64 / f64::from(w.total),
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
            } => {
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
                            && !w.cpu.knows(&source)
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
                        let added = w.cpu.record(&source, cumulative_secs, at);
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
                    // Chronos containers are measured too, but progress comes from reports.
                    Work::Iterative(_) => Ok(Effect::Duplicate),
                }
            }
            Observation::Progress { at, fraction } => {
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
            Observation::Resized { at, cpus, restart } => {
                if cpus == self.cpus {
                    return Ok(Effect::Duplicate);
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
                Ok(Effect::Applied)
            }
            Observation::Ended { at, success } => {
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
                Ok(Effect::Applied)
            }
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
        let dup = w.reports.iter().any(|r| {
            r.started_at == report.started_at
                && r.finished_at == report.finished_at
                && r.hostname == report.hostname
        });
        if dup {
            return Ok(Effect::Duplicate);
        }
        if w.reports.len() as u32 >= w.total {
            // More runs than requested (e.g. a framework retry): not counted, nothing to do.
            return Ok(Effect::Duplicate);
        }
        if report.cpus == Cpus::ZERO {
            report.cpus = self.cpus;
        }
        let finished_at = report.finished_at;
        w.reports.push(report);
        self.phase = if w.reports.len() as u32 == w.total {
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

fn continuous_progress(w: &ContinuousWork, duration: f64) -> f64 {
    if w.ended_at.is_some() {
        return 1.0;
    }
    match w.app_progress {
        Some((_, f)) => f,
        None => (w.cpu.useful() / duration).min(1.0),
    }
}

fn extend_segment(w: &mut ContinuousWork, cpus: Cpus, at: f64, progress: f64) {
    // A restart makes a new segment even at the same size: the restart gap is not speed.
    let incarnation = w.incarnation_started_at.unwrap_or(f64::NEG_INFINITY);
    match w.segments.last_mut() {
        Some(s) if s.cpus == cpus && s.from_at >= incarnation => {
            if at > s.to_at {
                s.to_at = at;
                s.to_progress = progress.max(s.to_progress);
            }
        }
        _ => w.segments.push(Segment {
            cpus,
            from_at: at,
            from_progress: progress,
            to_at: at,
            to_progress: progress,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Deadline, QosSpec};

    fn qos(duration: f64, deadline: f64) -> ResolvedQos {
        QosSpec {
            duration,
            deadline: Deadline::Relative(deadline),
            desv_deadline: 0.2,
        }
        .resolve(0.0)
    }

    fn report(s: f64, f: f64) -> Observation {
        Observation::Iteration(IterationReport {
            started_at: s,
            finished_at: f,
            hostname: "agent1".into(),
            cpus: Cpus::ZERO,
        })
    }

    #[test]
    fn repeated_iteration_report_counts_once() {
        let mut job = Job::iterative("j", qos(400.0, 1800.0), 4, Cpus::ONE);
        assert_eq!(job.observe(report(10.0, 450.0)).unwrap(), Effect::Applied);
        assert_eq!(job.observe(report(10.0, 450.0)).unwrap(), Effect::Duplicate);
        assert_eq!(job.remaining_iterations(), 3);
        assert_eq!(job.last_report().unwrap().cpus, Cpus::ONE);
    }

    #[test]
    fn a_reported_size_is_kept() {
        // Resized to 1.4 after the first run, but the second run had already started at 1.0.
        let mut job = Job::iterative("j", qos(400.0, 1800.0), 4, Cpus::ONE);
        job.observe(report(10.0, 450.0)).unwrap();
        job.observe(Observation::Resized {
            at: 451.0,
            cpus: Cpus::from_milli(1400),
            restart: false,
        })
        .unwrap();
        job.observe(Observation::Iteration(IterationReport {
            started_at: 451.0,
            finished_at: 890.0,
            hostname: "agent1".into(),
            cpus: Cpus::ONE,
        }))
        .unwrap();
        assert_eq!(job.last_report().unwrap().cpus, Cpus::ONE);
        job.observe(report(891.0, 1200.0)).unwrap();
        assert_eq!(job.last_report().unwrap().cpus, Cpus::from_milli(1400));
    }

    #[test]
    fn a_lost_job_is_terminal_and_takes_no_more_reports() {
        let mut job = Job::iterative("j", qos(400.0, 1800.0), 4, Cpus::ONE);
        job.observe(report(10.0, 450.0)).unwrap();
        assert_eq!(
            job.observe(Observation::Lost { at: 500.0 }).unwrap(),
            Effect::Applied
        );
        assert_eq!(job.phase, Phase::Lost { at: 500.0 });
        assert!(job.phase.is_terminal());
        assert_eq!(
            job.observe(report(460.0, 900.0)).unwrap(),
            Effect::Duplicate
        );
        assert_eq!(job.remaining_iterations(), 3);
    }

    #[test]
    fn last_iteration_completes_and_judges_deadline() {
        let mut job = Job::iterative("j", qos(10.0, 100.0), 2, Cpus::ONE);
        job.observe(report(0.0, 40.0)).unwrap();
        job.observe(report(45.0, 101.0)).unwrap();
        assert_eq!(
            job.phase,
            Phase::Completed {
                at: 101.0,
                met: false
            }
        );
        // Extra runs after completion are ignored.
        assert_eq!(
            job.observe(report(110.0, 120.0)).unwrap(),
            Effect::Duplicate
        );
    }

    #[test]
    fn bad_reports_are_rejected_with_the_field() {
        let mut job = Job::iterative("j", qos(10.0, 100.0), 2, Cpus::ONE);
        let e = job.observe(report(50.0, 40.0)).unwrap_err();
        assert_eq!(e.field, "finished_at");
        let mut m = Job::continuous("m", qos(10.0, 100.0), Cpus::ONE);
        assert_eq!(m.observe(report(0.0, 1.0)).unwrap_err().field, "uuid");
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
        let mut job = Job::continuous("m", qos(400.0, 480.0), Cpus::ONE);
        job.observe(Observation::Started {
            at: 0.0,
            restored: None,
        })
        .unwrap();
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
        let mut job = Job::continuous("m", qos(100.0, 480.0), Cpus::ONE);
        job.observe(Observation::Started {
            at: 0.0,
            restored: None,
        })
        .unwrap();
        job.observe(Observation::CpuSample {
            at: 10.0,
            source: "c".into(),
            cumulative_secs: 10.0,
        })
        .unwrap();
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
