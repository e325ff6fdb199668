//! The forecast: when a job finishes at any allocation, from what it reported and the speed-up
//! model.

use super::{PredictiveConfig, ResizeMode};
use crate::cpu::Cpus;
use crate::job::{ContinuousWork, IterativeWork, Job, Phase, Work};
use crate::speedup::{Sample, SpeedModel};

/// What the predictive policy sees of a job's future: finish time at any allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Reference time the remaining work starts from.
    pub from: f64,
    /// Remaining units of work (iterations, or fraction of the whole job).
    pub units: f64,
    /// Fixed overhead per unit (deployment time per iteration; 0 for continuous jobs).
    pub overhead_per_unit: f64,
    /// Extra one-off cost when the allocation changes (restart cost; 0 for iterative jobs).
    pub change_cost: f64,
    /// Remaining units if the allocation changes: `units`, or the whole job again when a change
    /// restarts a task that cannot checkpoint.
    pub units_after_change: f64,
    /// `(units, units_after_change)` by the job's declared work, without the allowance for a
    /// declared duration that is too short: a restart has a certain cost, so it must pay on
    /// what is expected, not only on what is feared.
    pub expected: (f64, f64),
    /// Seconds per unit at each allocation.
    pub model: SpeedModel,
    /// The smallest allocation the job has been measured at, if any. Below it the model's
    /// shape is an assumption: a shrink there is predicted as if time grew in proportion
    /// (the worst case), so a shape learned at 2 CPUs never shrinks a job to 0.9 on faith.
    pub measured_from: Option<Cpus>,
    /// The largest allocation the job has been measured at, if any. A change that throws the
    /// work away (a restart of a job that cannot checkpoint) is predicted as if more CPUs than
    /// that (or than one CPU: below it a quota slows any CPU-bound job in proportion) made it no
    /// faster — the loss is certain, a speed-up nobody has seen is not.
    pub measured_to: Option<Cpus>,
    /// For a job whose only progress signal is its CPU time, or a Chronos job whose runs'
    /// containers were sampled: the largest allocation above one CPU it has been seen at, and
    /// the parallel fraction the CPUs it used there imply (a CPU-bound job uses all of one CPU;
    /// past it, `used = 1 / (1 − p + p / cpus)`). Its CPU
    /// time *is* its progress, so no allocation above that one is priced faster than that
    /// fraction allows: a single-threaded job seen using one CPU of 1.4 is not grown for a
    /// speed-up the prior's shape guessed. Below it the same fraction prices the sizes down to
    /// [`Forecast::filed`], so a job grown to two CPUs that uses one is shrunk back to one
    /// where that costs nothing.
    pub used_at: Option<(Cpus, f64)>,
    /// The allocation the job was filed with (before its first resize). The CPUs a job
    /// measured by its CPU time used price sizes below the largest it was seen at only down to
    /// this one: CPU time at an allocation cannot show a need for more than it, so a job with a
    /// serial phase first is never shrunk below what leaving it alone would have given it.
    pub filed: Cpus,
    /// The allocation in force.
    pub current: Cpus,
    /// Each unit is sized anew (Chronos iterations): a size below the smallest measured one is
    /// tried for one unit — priced at the worst case (time in proportion) — and the units after
    /// it at the model, since the next decision measures that unit and corrects the rest.
    pub per_unit_sizing: bool,
}

impl Forecast {
    /// Predicted finish at allocation `cpus`.
    pub fn finish(&self, cpus: Cpus) -> f64 {
        if cpus == self.current {
            self.from + self.units * (self.overhead_per_unit + self.time(cpus))
        } else {
            // A change that throws the work away is priced with the speed-up seen so far, not
            // the model's guess beyond it.
            let seen = if self.change_keeps_work() {
                cpus
            } else {
                let top = self.measured_to.unwrap_or(Cpus::ZERO);
                cpus.min(top.max(self.current).max(Cpus::ONE))
            };
            let units = self.units_after_change;
            if self.per_unit_sizing && units > 1.0 {
                // One unit at the worst case, the rest as the model says (corrected after one).
                return self.from
                    + self.change_cost
                    + units * self.overhead_per_unit
                    + self.time(seen)
                    + (units - 1.0) * self.model.time(seen).min(self.time(seen));
            }
            self.from + self.change_cost + units * (self.overhead_per_unit + self.time(seen))
        }
    }

    /// Seconds per unit at `cpus`: the model, and no less than proportional slowing below the
    /// smallest measured allocation, and no more speed-up above the largest one than the CPUs
    /// a job measured by its CPU time used there allow. For such a job (once a stretch of 5 %
    /// of it is measured) the CPUs it used there also price the sizes below that one down to
    /// the size it was filed with: its CPU time is its progress, so a job that used one CPU of
    /// two runs as fast on one (the Amdahl shape its use implies, slowing in proportion below
    /// one CPU) — not twice as slow, as the worst case below the smallest measured size, or the
    /// prior's shape, would have it. Below the filed size the worst case stands: a job in a
    /// serial phase shows nothing of the parallel phase that may follow. A Chronos job is
    /// priced so when its runs used one CPU of more ([`Forecast::used_at`]).
    pub fn time(&self, cpus: Cpus) -> f64 {
        let t = self.model.time(cpus);
        match (self.measured_from, self.used_at) {
            (Some(_), Some((at, p))) if cpus < at && cpus >= self.filed && cpus > Cpus::ZERO => {
                let shape = SpeedModel::new(1.0, p);
                self.model.time(at) * shape.time(cpus) / shape.time(at)
            }
            (Some(lo), _) if cpus < lo && cpus > Cpus::ZERO => {
                t.max(self.model.time(lo) * lo.as_f64() / cpus.as_f64())
            }
            (_, Some((at, p))) if cpus > at => {
                let shape = SpeedModel::new(1.0, p);
                t.max(self.model.time(at) * shape.time(cpus) / shape.time(at))
            }
            _ => t,
        }
    }

    /// The same forecast with the expected, not the feared, work left.
    pub fn as_expected(&self) -> Self {
        Self {
            units: self.expected.0,
            units_after_change: self.expected.1,
            ..*self
        }
    }

    /// Whether changing the allocation keeps the work done.
    pub fn change_keeps_work(&self) -> bool {
        self.units_after_change <= self.units + 1e-12
    }

    /// The smallest allocation in `[lo, hi]` on the grid (or the current one) whose finish is
    /// within `tolerance` seconds of the earliest finish any of them reaches.
    pub fn earliest(&self, lo: Cpus, hi: Cpus, granularity: Cpus, tolerance: f64) -> Cpus {
        let grid = self.grid(lo, hi, granularity);
        let best = grid
            .iter()
            .map(|&c| self.finish(c))
            .fold(f64::INFINITY, f64::min);
        grid.into_iter()
            .find(|&c| self.finish(c) <= best + tolerance)
            .unwrap_or(hi)
    }

    /// `[lo, hi]` on the grid, with the current allocation where it lies inside, ascending.
    fn grid(&self, lo: Cpus, hi: Cpus, granularity: Cpus) -> Vec<Cpus> {
        let step = granularity.milli().max(1);
        let mut out = Vec::new();
        let mut c = lo.round_up_to(granularity).min(hi);
        loop {
            out.push(c);
            if c >= hi {
                break;
            }
            c = Cpus::from_milli(c.milli() + step).min(hi);
        }
        if self.current >= lo && self.current <= hi && !out.contains(&self.current) {
            out.push(self.current);
            out.sort();
        }
        out
    }

    /// Smallest allocation in `[lo, hi]` on the `granularity` grid finishing by `target`, or
    /// `None` if even `hi` is too slow. The current allocation is considered too, so a job
    /// that fits where it is never pays a change cost to a neighbour on the grid.
    pub fn needed(&self, target: f64, lo: Cpus, hi: Cpus, granularity: Cpus) -> Option<Cpus> {
        let step = granularity.milli().max(1);
        let mut c = lo.round_up_to(granularity).min(hi);
        loop {
            if self.current >= lo && self.current <= c && self.finish(self.current) <= target {
                return Some(self.current);
            }
            if self.finish(c) <= target {
                return Some(c);
            }
            if c >= hi {
                return None;
            }
            c = Cpus::from_milli(c.milli() + step).min(hi);
        }
    }
}

/// The forecast for `job` at `now` under `cfg`, or why there is none (`NO_DATA`).
pub fn forecast(cfg: &PredictiveConfig, job: &Job, now: f64) -> Result<Forecast, String> {
    match &job.work {
        Work::Iterative(w) => Ok(iterative_forecast(cfg, job, w, now)),
        Work::Continuous(w) => continuous_forecast(cfg, job, w, now),
    }
}

fn prior(cfg: &PredictiveConfig, t1: f64) -> SpeedModel {
    SpeedModel::new(t1, cfg.parallel_fraction)
}

fn iterative_forecast(cfg: &PredictiveConfig, job: &Job, w: &IterativeWork, now: f64) -> Forecast {
    let samples: Vec<Sample> = w
        .reports
        .iter()
        .map(|r| Sample {
            cpus: r.cpus,
            secs: r.duration(),
            weight: 1.0,
        })
        .collect();
    // Before any iteration is measured, the declared duration is a guess: plan for more.
    let guess = if samples.is_empty() {
        job.qos.duration * (1.0 + cfg.duration_uncertainty)
    } else {
        job.qos.duration
    };
    let model = SpeedModel::fit(prior(cfg, guess), cfg.prior_weight, &samples);
    // Deployment gaps: each report → next start (submission → first start only while there is
    // nothing else: it also holds the initial queueing and image pull). The median resists a
    // one-off wait for capacity.
    let mut gaps: Vec<f64> = w
        .reports
        .windows(2)
        .map(|p| (p[1].started_at - p[0].finished_at).max(0.0))
        .collect();
    if gaps.is_empty() {
        if let Some(first) = w.reports.first() {
            gaps.push((first.started_at - job.qos.submitted_at).max(0.0));
        }
    }
    let overhead = match median(&mut gaps) {
        Some(m) => {
            let n = gaps.len() as f64;
            (cfg.deployment_time * cfg.prior_weight + m * n) / (cfg.prior_weight + n)
        }
        None => cfg.deployment_time,
    };
    let from = w.reports.last().map_or(now, |r| r.finished_at);
    Forecast {
        from,
        units: f64::from(job.remaining_iterations()),
        overhead_per_unit: overhead,
        change_cost: 0.0,
        units_after_change: f64::from(job.remaining_iterations()),
        expected: (
            f64::from(job.remaining_iterations()),
            f64::from(job.remaining_iterations()),
        ),
        measured_from: measured_from(&samples),
        measured_to: measured_to(&samples),
        // What its runs' containers used at their sizes, as for a job measured by CPU time,
        // where it shows the CPUs past the first sat idle.
        used_at: used_at(
            w.reports
                .iter()
                .filter_map(|r| Some((r.cpus, r.cpus_used?))),
        )
        .filter(|&(_, p)| p <= RUNS_IDLE_PAST_ONE),
        model,
        filed: filed(job),
        current: job.cpus,
        per_unit_sizing: true,
    }
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    Some(if xs.len() % 2 == 0 {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    })
}

fn continuous_forecast(
    cfg: &PredictiveConfig,
    job: &Job,
    w: &ContinuousWork,
    now: f64,
) -> Result<Forecast, String> {
    let model_prior = prior(cfg, job.qos.duration);
    let samples: Vec<Sample> = w
        .segments
        .iter()
        .filter_map(|s| {
            s.secs_per_job().map(|secs| Sample {
                cpus: s.cpus,
                secs,
                weight: (s.to_progress - s.from_progress) * 20.0,
            })
        })
        .collect();
    let model = SpeedModel::fit(model_prior, cfg.prior_weight, &samples);
    let change_cost = match cfg.resize_mode {
        ResizeMode::InPlace => 0.0,
        ResizeMode::Restart => {
            let n = w.restart_costs.len() as f64;
            (cfg.restart_cost * cfg.prior_weight + w.restart_costs.iter().sum::<f64>())
                / (cfg.prior_weight + n)
        }
    };
    let base = Forecast {
        from: now,
        units: 1.0,
        overhead_per_unit: 0.0,
        change_cost,
        units_after_change: 1.0,
        expected: (1.0, 1.0),
        measured_from: measured_from(&samples),
        measured_to: measured_to(&samples),
        used_at: if w.app_progress.is_none() {
            // Its CPU time is its progress: CPUs used are `duration` CPU-seconds per the
            // seconds the whole job takes at that size.
            used_at(samples.iter().map(|s| (s.cpus, job.qos.duration / s.secs)))
        } else {
            None
        },
        model,
        filed: filed(job),
        current: job.cpus,
        per_unit_sizing: false,
    };
    if w.started_at.is_none() {
        // Not started: a new size is the size it starts with — no task to restart. Nothing is
        // measured yet: the declared duration is a guess, plan for more.
        let units = 1.0 + cfg.duration_uncertainty;
        return Ok(Forecast {
            change_cost: 0.0,
            units,
            units_after_change: units,
            expected: (1.0, 1.0),
            ..base
        });
    }
    if let Phase::Restarting { since } = job.phase {
        return Err(format!(
            "a restart is under way ({:.0} s so far)",
            now - since
        ));
    }
    // Work left in units of the job as declared; with CPU time as the only signal the declared
    // duration is a guess nothing corrects until it is used up, so plan for more.
    // (signal time, work left feared, expected, the whole job feared, expected, source)
    let (signal_at, units, expected, whole, whole_expected, source) = match w.app_progress {
        Some((at, f)) => {
            let left = (1.0 - f).max(0.0);
            (at, left, left, 1.0, 1.0, "application progress")
        }
        None => match w.cpu.last_sample_at() {
            Some(at) => {
                let done = w.cpu.useful() / job.qos.duration;
                let planned = (1.0 + cfg.duration_uncertainty) * done.max(1.0);
                // Past its declared work, what is left is anyone's guess; expect little.
                let expected = (1.0 - done).max(OVERRUN_EXPECTED);
                (
                    at,
                    planned - done,
                    expected,
                    planned,
                    done + expected,
                    "CPU time",
                )
            }
            None => return Err("no CPU sample or progress report yet".into()),
        },
    };
    if w.incarnation_started_at.is_some_and(|inc| signal_at < inc) {
        return Err(format!("no {source} since the task restarted"));
    }
    if now - signal_at > cfg.stale_after {
        return Err(format!("{source} is stale ({:.0} s old)", now - signal_at));
    }
    // A restart of a task that cannot checkpoint starts the whole job again.
    let keeps = cfg.resize_mode == ResizeMode::InPlace || job.restart_keeps_work();
    let redo = |left: f64, all: f64| if keeps { left } else { all.max(left) };
    Ok(Forecast {
        units,
        units_after_change: redo(units, whole),
        expected: (expected, redo(expected, whole_expected)),
        ..base
    })
}

/// The allocation `job` was filed with: the one its first resize started from (the oldest
/// kept, once its lists are bounded), or the one in force if it was never resized.
fn filed(job: &Job) -> Cpus {
    job.resizes.first().map_or(job.cpus, |r| r.from)
}

/// The smallest allocation measured well enough to extrapolate down from: a whole iteration,
/// or a stretch covering at least 5 % of a continuous job (a few seconds of a start say little).
fn measured_from(samples: &[Sample]) -> Option<Cpus> {
    samples
        .iter()
        .filter(|s| s.weight >= 1.0)
        .map(|s| s.cpus)
        .min()
}

/// From `(allocation, CPUs used there)` measurements (a continuous job's CPU time, a Chronos
/// run's container): the largest allocation above one CPU it was seen at, and the parallel
/// fraction of the Amdahl shape that uses, at that allocation, the CPUs it used (the most any
/// measurement there shows).
fn used_at(seen: impl Iterator<Item = (Cpus, f64)> + Clone) -> Option<(Cpus, f64)> {
    let at = seen
        .clone()
        .map(|(c, _)| c)
        .filter(|&c| c > Cpus::ONE)
        .max()?;
    let used = seen
        .filter(|&(c, _)| c == at)
        .map(|(_, used)| used)
        .fold(0.0, f64::max);
    // used = 1 / (1 − p + p / at)  ⇒  p = (1 − 1 / used) / (1 − 1 / at).
    let a = at.as_f64();
    let p = (1.0 - 1.0 / used.max(1.0)) / (1.0 - 1.0 / a);
    Some((at, p.clamp(0.0, 1.0)))
}

/// The largest allocation the job has been seen running at.
fn measured_to(samples: &[Sample]) -> Option<Cpus> {
    samples.iter().map(|s| s.cpus).max()
}

/// A Chronos job's runs price its sizes by the parallel share their containers used only when
/// that share is at most this: the CPUs past the first sat (nearly) idle, which its run times
/// cannot show before it has run at two sizes. A parallel job's runs measure its speed at each
/// size directly; pricing them by the share as well lost 3 of 120 deadlines in each of the
/// overloaded case studies (LINPACK, under quotas) and 1 or 2 of 1123 in the mixed sweep.
const RUNS_IDLE_PAST_ONE: f64 = 0.1;

/// Work expected to be left (in units of the declared job) once a job that reports only CPU
/// time has used more than it declared.
const OVERRUN_EXPECTED: f64 = 0.05;
