//! The predictive decision in steps: the forecast and the bounds, then a waiting task's start,
//! a deadline out of reach, a grow, or a shrink (or a hold).

use std::fmt::Display;

use super::forecast::{Forecast, forecast};
use super::{PredictiveConfig, ResizeMode, margin};
use crate::cpu::Cpus;
use crate::decision::{Class, Decision, Figures};
use crate::job::{Job, Work};

/// [`decide`](fn@super::decide) for a job whose next task may have `waited` seconds for a node
/// with room: then the decision taken at its last report is taken again with what is free now
/// (`cap`). The forecast and the bounds, then one of the steps below.
pub fn decide_placing(
    cfg: &PredictiveConfig,
    job: &Job,
    now: f64,
    cap: Option<Cpus>,
    waited: Option<f64>,
) -> Decision {
    if let Some(done) = Decision::completed(job) {
        return done;
    }
    let mut figures = Figures {
        progress: Some(job.progress()),
        ..Figures::default()
    };
    let mut f = match forecast(cfg, job, now) {
        Ok(f) => f,
        Err(why) => return Decision::hold(Class::NoData, format!("{why}; not resizing"), figures),
    };
    // Its next task waits for a node with room for it: nothing runs meanwhile, so the remaining
    // work starts from now at the earliest.
    let waited = waited.filter(|_| cap.is_some_and(|c| job.cpus > c));
    let waiting = waited.is_some();
    if waiting {
        f.from = f.from.max(now);
    }
    let margin = margin(cfg, job);
    if job.framework_is_iterative() && already_acted(job) && !waiting {
        let pred = f.finish(job.cpus);
        figures.prediction = Some(pred);
        return Decision::hold(
            classify(job, pred, margin),
            "already resized for the latest iteration",
            figures,
        );
    }
    let q = &job.qos;
    let target = q.deadline_at - margin;
    let hi = cap
        .map_or(cfg.cpu_max, |c| c.min(cfg.cpu_max))
        .max(cfg.cpu_min);
    let lo = cfg.cpu_min;
    let current = job.cpus;
    let pred_now = f.finish(current);
    figures.prediction = Some(pred_now);
    figures.band_sup = Some(target);
    figures.band_inf = Some(q.deadline_at - q.desv * q.window());
    if let Work::Continuous(w) = &job.work {
        figures.cpu_consumed = Some(w.cpu.total());
    }
    // Times in reasons are relative (to now, or to the deadline): readable in logs and the UI.
    let basis = format!(
        "{} left at {:.0} s each on 1 CPU (+{:.0} s overhead){}; at {current} CPU it finishes {}, deadline in {:.0} s (margin {margin:.0} s)",
        units_text(job, f.units),
        f.model.t1(),
        f.overhead_per_unit,
        allowance_text(cfg, job, &f),
        vs_deadline(pred_now - q.deadline_at),
        q.deadline_at - now
    );
    let step = Step {
        cfg,
        job,
        now,
        f,
        margin,
        target,
        lo,
        hi,
        current,
        pred_now,
        basis,
    };
    if waiting && current > hi && hi >= lo {
        return step.waiting(waited.unwrap_or(0.0), figures);
    }
    let Some(needed) = step.needed_by(target) else {
        figures.needed = None;
        return step.out_of_reach(figures);
    };
    figures.needed = Some(needed);
    if needed > current {
        return step.grow(needed, figures);
    }
    step.shrink_or_hold(needed, figures)
}

/// What every step of a decision reads: the job, its forecast, the bounds it is sized within,
/// and where it stands at its current size.
struct Step<'a> {
    cfg: &'a PredictiveConfig,
    job: &'a Job,
    now: f64,
    f: Forecast,
    margin: f64,
    /// The deadline less the margin.
    target: f64,
    lo: Cpus,
    hi: Cpus,
    current: Cpus,
    /// The finish at `current`.
    pred_now: f64,
    /// The reasons' common opening: work left, speed, finish at the current size, deadline.
    basis: String,
}

impl Step<'_> {
    /// A reason: the common opening, then what this step concluded.
    fn reason(&self, conclusion: impl Display) -> String {
        format!("{}; {conclusion}", self.basis)
    }

    /// Where the job stands at its current size.
    fn class(&self) -> Class {
        classify(self.job, self.pred_now, self.margin)
    }

    /// The smallest allocation in `[lo, hi]` on the grid that finishes by `target`.
    fn needed_by(&self, target: f64) -> Option<Cpus> {
        self.f
            .needed(target, self.lo, self.hi, self.cfg.granularity)
    }

    /// What a shrink, or a grow by restart, aims for: `shrink_headroom` of the time left before
    /// the target earlier, so that noise early in a job does not shrink it too far and one
    /// restart does.
    fn early_target(&self) -> f64 {
        self.target - self.cfg.shrink_headroom * (self.target - self.now).max(0.0)
    }

    /// Seconds since the job's last resize (infinite before any).
    fn since_resize(&self) -> f64 {
        self.job
            .last_resize_at()
            .map_or(f64::INFINITY, |t| self.now - t)
    }

    /// Finishes this close are the same finish: noise, not a reason to pay for CPUs.
    fn tolerance(&self) -> f64 {
        (0.005 * (self.pred_now - self.now).max(0.0)).max(1.0)
    }

    /// A resize restarts a running task.
    fn restart(&self) -> bool {
        self.cfg.resize_mode == ResizeMode::Restart
            && !self.job.framework_is_iterative()
            && (self.f.change_cost > 0.0 || !self.f.change_keeps_work())
    }

    /// Whether resizing to `to` pays. A restart's cost is certain, its gain only as large as
    /// the work left: it must finish the expected work earlier too, not only the feared work.
    fn restart_pays(&self, to: Cpus) -> bool {
        let expected = self.f.as_expected();
        !self.restart() || expected.finish(to) < expected.finish(self.current)
    }

    /// Its next task has waited `w` seconds for a node with room for `current`: start it now
    /// at what the roomiest node has, or wait (the ski-rental rule).
    fn waiting(&self, w: f64, figures: Figures) -> Decision {
        let (cfg, f, current, hi) = (self.cfg, &self.f, self.current, self.hi);
        let deadline = self.job.qos.deadline_at;
        // Its next task waits for a node with room for `current`. If what the roomiest node has
        // free still meets the deadline, start it now with that. Otherwise a task started too
        // small cannot be helped until it ends (an iteration, or a restart away), while the wait
        // may end any moment or never: wait as long as starting now at `hi` would cost, then
        // start at `hi` (the ski-rental rule: never more than twice the better choice's loss).
        if let Some(to) = self.needed_by(self.target) {
            return Decision::resize(
                classify(self.job, f.finish(to), self.margin),
                to,
                self.reason(format_args!(
                    "its next task has waited for a node with {current} CPU free, and {to} CPU of the roomiest node's {hi} finishes it {}: start it now at {to} CPU",
                    vs_deadline(f.finish(to) - deadline)
                )),
                figures,
            );
        }
        // A job sized anew at each unit: this unit at `hi`, at its worst, and the ones after it
        // at `cpu_max` may still make the deadline — then starting now loses nothing the next
        // sizing cannot win back.
        let per_unit = f.per_unit_sizing && f.units > 1.0;
        if per_unit && hi > Cpus::ZERO {
            let top = f.model.time(cfg.cpu_max).min(f.time(cfg.cpu_max));
            let then = f.from + f.units * f.overhead_per_unit + f.time(hi) + (f.units - 1.0) * top;
            if then <= self.target {
                return Decision::resize(
                    classify(self.job, then, self.margin),
                    hi,
                    self.reason(format_args!(
                        "its next task has waited for a node with {current} CPU free; {hi} CPU of the roomiest node for this iteration and {} for the ones after it finish it {}: start it now at {hi} CPU",
                        cfg.cpu_max,
                        vs_deadline(then - deadline)
                    )),
                    figures,
                );
            }
        }
        // What starting now at `hi` costs against starting now at `current`: for an iterative
        // job one unit (the next one is sized again), else all that is left.
        let cost = if per_unit {
            // At worst: the unit after it is sized again, but this one may run as slowly as time
            // in proportion says.
            f.time(hi) - f.time(current)
        } else {
            f.finish(hi) - f.finish(current)
        };
        if hi > Cpus::ZERO && w >= cost {
            return Decision::resize(
                classify(self.job, f.finish(hi), self.margin),
                hi,
                self.reason(format_args!(
                    "its next task has waited {w:.0} s for a node with {current} CPU free, as long as starting it now at the roomiest node's {hi} CPU costs ({cost:.0} s{}): start it now at {hi} CPU",
                    if per_unit {
                        " for its next iteration"
                    } else {
                        ""
                    }
                )),
                figures,
            );
        }
        Decision::hold(
            self.class(),
            self.reason(format_args!(
                "its next task waits for a node with {current} CPU free: the roomiest has {hi}, too little to finish in time; it waits up to {cost:.0} s (what starting now at {hi} CPU would cost), {w:.0} s so far"
            )),
            figures,
        )
    }

    /// No allocation in `[lo, hi]` meets the deadline: the smallest that finishes earliest.
    fn out_of_reach(&self, figures: Figures) -> Decision {
        let (cfg, f, current) = (self.cfg, &self.f, self.current);
        let deadline = self.job.qos.deadline_at;
        let restart = self.restart();
        let tolerance = self.tolerance();
        // The smallest allocation that finishes as early as any can: more CPUs that the job
        // cannot turn into speed (or that a restart would cost more than they give) are waste.
        let best = f.earliest(self.lo, self.hi, cfg.granularity, tolerance);
        let best_finish = f.finish(best);
        if let Some(probe) = probe_one_cpu(f, self.lo, self.hi).filter(|_| {
            // Late by more than a whole iteration: not a forecast's noise away from making it.
            best_finish - deadline > f.overhead_per_unit + f.time(best)
        }) {
            return Decision::resize(
                Class::AtRisk,
                probe,
                self.reason(format_args!(
                    "at best ({best} CPU) it finishes {}; measured only at {current} CPU, whether CPUs past the first make it faster is the model's guess: its next iteration runs at {probe} CPU (at worst {:.0} s slower), and the next report says what the others give",
                    vs_deadline(best_finish - deadline),
                    f.time(probe) - f.time(current)
                )),
                figures,
            );
        }
        let why = format!(
            "at best ({best} CPU{}) it finishes {}",
            if best == current || !restart {
                String::new()
            } else if f.change_keeps_work() {
                format!(", after a {:.0} s restart", f.change_cost)
            } else {
                format!(
                    ", after a {:.0} s restart that loses its work",
                    f.change_cost
                )
            },
            vs_deadline(best_finish - deadline)
        );
        // Within the deadline but inside the margin: not at risk, just short of slack.
        let class = if best_finish > deadline {
            Class::AtRisk
        } else {
            Class::Under
        };
        if best > current && best_finish < self.pred_now - tolerance {
            if !self.restart_pays(best) {
                return Decision::hold(
                    class,
                    self.reason(format_args!(
                        "{why}; but by its declared work a {:.0} s restart would not finish it earlier: keeping {current} CPU",
                        f.change_cost
                    )),
                    figures,
                );
            }
            return Decision::resize(
                class,
                best,
                self.reason(format_args!("{why}; grow {current} → {best}")),
                figures,
            );
        }
        // Never a restart from scratch to shrink: that throws work away to save CPUs.
        let shrink_keeps = !restart || self.job.restart_keeps_work();
        if best < current
            && best_finish <= self.pred_now + tolerance
            && shrink_keeps
            && current - best >= cfg.hysteresis
            && self.since_resize() >= cfg.cooldown
        {
            return Decision::resize(
                class,
                best,
                self.reason(format_args!(
                    "{why}; more CPU does not make it earlier: shrink {current} → {best}"
                )),
                figures,
            );
        }
        Decision::hold(
            class,
            self.reason(format_args!("{why}; keeping {current} CPU")),
            figures,
        )
    }

    /// It needs more than it has: grow to `needed` (by restart: once, with room to spare).
    fn grow(&self, needed: Cpus, figures: Figures) -> Decision {
        let (cfg, f, current) = (self.cfg, &self.f, self.current);
        if !self.restart() {
            return Decision::resize(
                self.class(),
                needed,
                self.reason(format_args!(
                    "needs {needed} CPU to finish {:.0} s before it: grow {current} → {needed}",
                    self.margin
                )),
                figures,
            );
        }
        // One restart should do: aim a little earlier, and never restart for a crumb.
        let roomy = self
            .needed_by(self.early_target())
            .unwrap_or(needed)
            .max(needed);
        let grow = roomy.max(current + cfg.hysteresis).min(self.hi).max(needed);
        if !self.restart_pays(grow) {
            return Decision::hold(
                self.class(),
                self.reason(format_args!(
                    "{grow} CPU would be safer, but by its declared work a {:.0} s restart would not finish it earlier: keeping {current} CPU",
                    f.change_cost
                )),
                figures,
            );
        }
        let cost = if f.change_keeps_work() {
            format!("a {:.0} s restart", f.change_cost)
        } else {
            format!(
                "a {:.0} s restart that starts it again from scratch (it cannot checkpoint)",
                f.change_cost
            )
        };
        Decision::resize(
            self.class(),
            grow,
            self.reason(format_args!(
                "with {cost}, {grow} CPU finishes it {}: grow {current} → {grow}",
                vs_deadline(f.finish(grow) - self.job.qos.deadline_at)
            )),
            figures,
        )
    }

    /// It needs no more than it has: shrink when it is worth it, or hold.
    fn shrink_or_hold(&self, needed: Cpus, figures: Figures) -> Decision {
        let current = self.current;
        let class = self.class();
        // Shrinks aim for an earlier target, so noise early in a job does not shrink it too far.
        let needed = self
            .needed_by(self.early_target())
            .unwrap_or(current)
            .max(needed);
        if needed >= current {
            return Decision::hold(
                class,
                self.reason(format_args!("{current} CPU is what it needs")),
                figures,
            );
        }
        match self.why_not_shrink(needed) {
            Some(why) => Decision::hold(class, self.reason(why), figures),
            None => Decision::resize(
                class,
                needed,
                self.reason(format_args!(
                    "{needed} CPU suffice: shrink {current} → {needed}"
                )),
                figures,
            ),
        }
    }

    /// Why a shrink to `needed`, which would do, is not worth it now (`None`: it is).
    fn why_not_shrink(&self, needed: Cpus) -> Option<String> {
        let (cfg, f, current) = (self.cfg, &self.f, self.current);
        if self.restart() && !self.job.restart_keeps_work() {
            return Some(format!(
                "{needed} CPU would do, but it cannot checkpoint: a restart would throw its work away"
            ));
        }
        let saving = current - needed;
        if saving < cfg.hysteresis {
            return Some(format!(
                "{needed} CPU would do, but freeing {saving} is below the hysteresis of {}",
                cfg.hysteresis
            ));
        }
        let since_resize = self.since_resize();
        if since_resize < cfg.cooldown {
            return Some(format!(
                "could shrink to {needed}, cooling down ({since_resize:.0} s since the last resize, {} s needed)",
                cfg.cooldown
            ));
        }
        if f.change_cost > 0.0 {
            // Compare CPU-seconds allocated from now to the finish. A restart holds the current
            // allocation while it checkpoints and restores, then the job runs at `needed`.
            let stay = current.as_f64() * (self.pred_now - self.now).max(0.0);
            let run_after = (f.finish(needed) - self.now - f.change_cost).max(0.0);
            let shrink = current.as_f64() * f.change_cost + needed.as_f64() * run_after;
            if shrink >= stay {
                return Some(format!(
                    "shrinking to {needed} would allocate {shrink:.0} CPU-s to finish against {stay:.0} staying, because of the {:.0} s restart",
                    f.change_cost
                ));
            }
        }
        None
    }
}

/// For a job sized anew at each unit that cannot meet its deadline at any size and has been
/// measured at one allocation only, above one CPU: one CPU (when `[lo, hi]` allows it), to try
/// for one unit. Past one CPU the
/// model's shape is its prior until a second size is measured, and a late job that cannot use
/// its CPUs would otherwise hold them to the end.
fn probe_one_cpu(f: &Forecast, lo: Cpus, hi: Cpus) -> Option<Cpus> {
    let only = f.measured_from.filter(|&m| Some(m) == f.measured_to)?;
    let within = lo <= Cpus::ONE && Cpus::ONE <= hi;
    (f.per_unit_sizing && f.units > 1.0 && only == f.current && only > Cpus::ONE && within)
        .then_some(Cpus::ONE)
}

/// `"37 s late"`, `"12 s early"` or `"on the deadline"` for a finish `delta` seconds after it.
fn vs_deadline(delta: f64) -> String {
    if delta >= 0.5 {
        format!("{delta:.0} s late")
    } else if delta <= -0.5 {
        format!("{:.0} s early", -delta)
    } else {
        "on the deadline".into()
    }
}

/// Says when the plan allows for more work than declared (nothing has measured it yet).
fn allowance_text(cfg: &PredictiveConfig, job: &Job, f: &Forecast) -> String {
    let unmeasured = match &job.work {
        Work::Iterative(w) => w.reports.is_empty(),
        Work::Continuous(w) => w.app_progress.is_none(),
    };
    if unmeasured && cfg.duration_uncertainty > 0.0 && f.units > 0.0 {
        format!(
            ", allowing {:.0} % more work than its declared {:.0} s until it is measured",
            cfg.duration_uncertainty * 100.0,
            job.qos.duration
        )
    } else {
        String::new()
    }
}

/// What the remaining units are, in the job's own terms.
fn units_text(job: &Job, units: f64) -> String {
    match job.work {
        Work::Iterative(_) => format!("{units:.0} iteration(s)"),
        Work::Continuous(_) => format!("{:.0} % of the work", units * 100.0),
    }
}

fn classify(job: &Job, prediction: f64, margin: f64) -> Class {
    let q = &job.qos;
    if prediction > q.deadline_at - margin {
        Class::Under
    } else if prediction < q.deadline_at - q.desv * q.window() {
        Class::Over
    } else {
        Class::OnPlan
    }
}

/// Iterative jobs are resized once per report: a resize after the last report (or, before any,
/// after registration) has already acted on it.
fn already_acted(job: &Job) -> bool {
    let since = job
        .last_report()
        .map_or(job.qos.submitted_at, |r| r.finished_at);
    job.last_resize_at().is_some_and(|t| t >= since)
}

impl Job {
    fn framework_is_iterative(&self) -> bool {
        matches!(self.work, Work::Iterative(_))
    }
}
