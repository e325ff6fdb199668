//! The work of a job: iterations reported (Chronos) or one long task measured by CPU time and
//! progress (Marathon), and the resizes applied to it.

use serde::{Deserialize, Serialize};

use super::CpuAccount;
use crate::cpu::Cpus;

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
    /// The CPUs its container used on average while it was sampled (CPU-seconds per second),
    /// when the node collector sampled it long enough ([`RunCpu::used_during`]): filled in by
    /// [`Job::observe`](super::Job::observe), never taken from the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_used: Option<f64>,
}

impl IterationReport {
    /// Measured run time of the iteration.
    pub fn duration(&self) -> f64 {
        self.finished_at - self.started_at
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
    /// Reports received, in arrival order, without duplicates: the newest ones, past
    /// [`IterativeWork::forgotten`] older ones.
    pub reports: Vec<IterationReport>,
    /// Reports received and counted as done whose details are no longer kept (a job's lists
    /// are bounded: the oldest go first, [`IterativeWork::forget_oldest`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub forgotten: u32,
    /// CPU use of the containers of its runs not yet matched with a report, oldest first (at
    /// most [`OPEN_RUNS`]): a run's report takes the CPUs its container used
    /// ([`IterationReport::cpus_used`]) and drops it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunCpu>,
}

/// Containers of a Chronos job's runs whose CPU samples are kept until their run's report: one
/// runs at a time, so a few cover a report that arrives after the next run has begun.
pub const OPEN_RUNS: usize = 4;

/// A container of one run of an iterative job, as its CPU samples showed it: its cumulative CPU
/// time at its first and at its latest sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCpu {
    /// The container (the sample's `source`).
    pub source: String,
    /// When it was first sampled, and its cumulative CPU-seconds then.
    pub first: (f64, f64),
    /// Its latest sample.
    pub last: (f64, f64),
}

impl RunCpu {
    /// The CPUs it used on average between its first and latest sample, if they span at least
    /// half of the run's `duration` (and a second): a shorter stretch of a run says too little.
    pub fn used_during(&self, duration: f64) -> Option<f64> {
        let dt = self.last.0 - self.first.0;
        let secs = self.last.1 - self.first.1;
        (dt >= 1.0 && dt >= 0.5 * duration && secs >= 0.0).then(|| secs / dt)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl IterativeWork {
    /// Iterations reported so far, kept or forgotten.
    pub fn done(&self) -> u32 {
        self.forgotten
            .saturating_add(u32::try_from(self.reports.len()).unwrap_or(u32::MAX))
    }

    /// Records a cumulative CPU reading of the container `source` of one of its runs; whether
    /// it added anything (a re-sent or older reading does not). A counter that goes down is a
    /// container recreated under the same id: its stretch starts again there.
    pub fn record_cpu(&mut self, source: &str, cumulative_secs: f64, at: f64) -> bool {
        if let Some(run) = self.runs.iter_mut().find(|r| r.source == source) {
            if at <= run.last.0 {
                return false;
            }
            if cumulative_secs + 1e-9 < run.last.1 {
                run.first = (at, cumulative_secs);
            }
            run.last = (at, cumulative_secs);
            return true;
        }
        if self.runs.len() >= OPEN_RUNS {
            self.runs.remove(0);
        }
        self.runs.push(RunCpu {
            source: source.to_owned(),
            first: (at, cumulative_secs),
            last: (at, cumulative_secs),
        });
        true
    }

    /// The CPUs the container of the run that `report` reports used: the newest one first
    /// sampled while that run ran (within `skew` seconds of its start or end); it and any older
    /// containers are done with and dropped.
    pub(super) fn take_run_cpu(&mut self, report: &IterationReport, skew: f64) -> Option<f64> {
        let ran = |r: &RunCpu| {
            r.first.0 >= report.started_at - skew && r.first.0 <= report.finished_at + skew
        };
        let k = self.runs.iter().rposition(ran)?;
        let used = self.runs[k].used_during(report.duration());
        self.runs.drain(..=k);
        used
    }

    /// Forgets the details of the `n` oldest reports kept, still counting them as done.
    pub fn forget_oldest(&mut self, n: usize) {
        let n = n.min(self.reports.len());
        self.reports.drain(..n);
        self.forgotten = self
            .forgotten
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }
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

pub(super) fn continuous_progress(w: &ContinuousWork, duration: f64) -> f64 {
    if w.ended_at.is_some() {
        return 1.0;
    }
    match w.app_progress {
        Some((_, f)) => f,
        None => (w.cpu.useful() / duration).min(1.0),
    }
}

pub(super) fn extend_segment(w: &mut ContinuousWork, cpus: Cpus, at: f64, progress: f64) {
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
