//! The thesis policy, reproduced exactly as the baseline (every constant configurable, defaulting
//! to the thesis values).
//!
//! - Chronos, at each iteration report (Eq. 1):
//!   `prediction = finished_at + remaining × (duration + sleeping_time + deployment_time)`;
//!   `deadline_sup = deadline − 0.05·W`, `deadline_inf = deadline − desv·W` (thesis text) or
//!   `submitted + desv·W` (the code at HEAD), with `W` the window at registration. Above sup →
//!   UNDER (grow), below inf → OVER (shrink), else ON_PLAN.
//! - Marathon, every `monitoring_period` (Eq. 2, Eq. 3):
//!   `desired = min(1, elapsed/deadline) × duration`, `ratio = consumed/desired`; below `1 − desv`
//!   (text) or `0.95` (code) → UNDER, above `1 + desv` → OVER.
//! - Step ±`cpu_increment`/`cpu_decrement` clamped to `[cpu_min, cpu_max]`, exact in millicores.
//!
//! Known bugs of the original are fixed by default (missing CPU data is `NO_DATA`, not "0 CPU
//! used"; a failed resize does not shift the accounting window because accounting is cumulative
//! per container), and the one that matters for reproduction is selectable
//! ([`ThesisConfig::missing_cpu_as_zero`]).

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::decision::{Class, Decision, Figures};
use crate::job::{Job, Phase, Work};

/// Which lower band the Chronos controller uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChronosInfBand {
    /// Thesis text (and commit ab5093e): `deadline − desv·W`.
    #[default]
    Text,
    /// Code at HEAD: `submitted + desv·W` (OVER practically unreachable).
    Code,
}

/// Which UNDER threshold the Marathon controller uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarathonUnderThreshold {
    /// Thesis text: `ratio < 1 − desv`.
    #[default]
    Text,
    /// Code at HEAD: `ratio < 0.95`, hard-coded.
    Code,
}

/// Every constant of the thesis controller.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThesisConfig {
    /// Lower CPU bound (`cpu_min_slave`, 0.1).
    pub cpu_min: Cpus,
    /// Upper CPU bound (`cpu_max_slave`, 2.0).
    pub cpu_max: Cpus,
    /// Step up (0.4).
    pub cpu_increment: Cpus,
    /// Step down (0.4).
    pub cpu_decrement: Cpus,
    /// Assumed per-iteration deployment overhead in Eq. 1, seconds (45).
    pub deployment_time: f64,
    /// Sleep before forcing the next Chronos run, seconds (0; 5 in the first commit).
    pub sleeping_time: f64,
    /// `deadline_sup` margin as a fraction of the window (0.05).
    pub sup_margin: f64,
    /// Chronos lower band variant.
    pub chronos_inf_band: ChronosInfBand,
    /// Marathon UNDER threshold variant.
    pub marathon_under: MarathonUnderThreshold,
    /// Marathon control period, seconds (120).
    pub monitoring_period: f64,
    /// Reproduce the original's handling of missing CPU data (treat it as 0 CPU used, which
    /// grows the job). Off by default: missing data is `NO_DATA` and changes nothing.
    pub missing_cpu_as_zero: bool,
}

impl Default for ThesisConfig {
    fn default() -> Self {
        Self {
            cpu_min: Cpus::from_milli(100),
            cpu_max: Cpus::from_milli(2000),
            cpu_increment: Cpus::from_milli(400),
            cpu_decrement: Cpus::from_milli(400),
            deployment_time: 45.0,
            sleeping_time: 0.0,
            sup_margin: 0.05,
            chronos_inf_band: ChronosInfBand::Text,
            marathon_under: MarathonUnderThreshold::Text,
            monitoring_period: 120.0,
            missing_cpu_as_zero: false,
        }
    }
}

/// The Chronos bands `(deadline_inf, deadline_sup)` of a job (absolute times).
pub fn chronos_bands(cfg: &ThesisConfig, job: &Job) -> (f64, f64) {
    let q = &job.qos;
    let w = q.window();
    let sup = q.deadline_at - cfg.sup_margin * w;
    let inf = match cfg.chronos_inf_band {
        ChronosInfBand::Text => q.deadline_at - q.desv * w,
        ChronosInfBand::Code => q.submitted_at + q.desv * w,
    };
    (inf, sup)
}

/// Eq. 1: the predicted finish of an iterative job after a report finished at `current` with
/// `remaining` iterations left.
pub fn eq1_prediction(cfg: &ThesisConfig, duration: f64, current: f64, remaining: u32) -> f64 {
    current + (duration + cfg.sleeping_time + cfg.deployment_time) * f64::from(remaining)
}

/// Eq. 2: CPU-seconds a continuous job should have consumed `elapsed` seconds after its start.
pub fn eq2_desired(duration: f64, deadline_window: f64, elapsed: f64) -> f64 {
    (elapsed / deadline_window).clamp(0.0, 1.0) * duration
}

/// Eq. 3: the progress ratio `consumed / desired` (`None` when nothing is desired yet).
pub fn eq3_ratio(consumed: f64, desired: f64) -> Option<f64> {
    (desired > 0.0).then(|| consumed / desired)
}

/// The thesis step for a class: UNDER grows by `cpu_increment`, OVER shrinks by `cpu_decrement`,
/// clamped; `None` when nothing changes (ON_PLAN, or already at the bound).
pub fn step(cfg: &ThesisConfig, current: Cpus, class: Class) -> Option<Cpus> {
    match class {
        Class::Under => current.step_up(cfg.cpu_increment, cfg.cpu_max),
        Class::Over => current.step_down(cfg.cpu_decrement, cfg.cpu_min),
        _ => None,
    }
}

/// The thesis controller's decision for `job` at `now`.
pub fn decide(cfg: &ThesisConfig, job: &Job, now: f64) -> Decision {
    if let Some(done) = Decision::completed(job) {
        return done;
    }
    match &job.work {
        Work::Iterative(_) => decide_chronos(cfg, job),
        Work::Continuous(_) => decide_marathon(cfg, job, now),
    }
}

fn finish(cfg: &ThesisConfig, job: &Job, class: Class, figures: Figures, why: &str) -> Decision {
    match step(cfg, job.cpus, class) {
        Some(cpus) => Decision::resize(
            class,
            cpus,
            format!("{why}; {} {} → {cpus} CPU", step_word(class), job.cpus),
            figures,
        ),
        None => {
            let tail = match class {
                Class::Under | Class::Over => format!("; already at the bound ({} CPU)", job.cpus),
                _ => String::new(),
            };
            Decision::hold(class, format!("{why}{tail}"), figures)
        }
    }
}

fn step_word(class: Class) -> &'static str {
    if class == Class::Under {
        "grow"
    } else {
        "shrink"
    }
}

fn decide_chronos(cfg: &ThesisConfig, job: &Job) -> Decision {
    let (inf, sup) = chronos_bands(cfg, job);
    let mut figures = Figures {
        band_inf: Some(inf),
        band_sup: Some(sup),
        progress: Some(job.progress()),
        ..Figures::default()
    };
    let Some(last) = job.last_report() else {
        return Decision::hold(Class::NoData, "no iteration has finished yet", figures);
    };
    // Edge-triggered in the thesis: one step per report. A resize already applied after this
    // report means this report has been acted on.
    let acted = job.last_resize_at().is_some_and(|t| t >= last.finished_at);
    let remaining = job.remaining_iterations();
    let prediction = eq1_prediction(cfg, job.qos.duration, last.finished_at, remaining);
    figures.prediction = Some(prediction);
    let class = if prediction > sup {
        Class::Under
    } else if prediction < inf {
        Class::Over
    } else {
        Class::OnPlan
    };
    let d = job.qos.deadline_at;
    let why = format!(
        "Eq.1: last report + {remaining} × ({} + {} + {}) s = deadline {:+.0} s, bands [{:+.0}, {:+.0}] → {class}",
        job.qos.duration,
        cfg.sleeping_time,
        cfg.deployment_time,
        prediction - d,
        inf - d,
        sup - d
    );
    if acted {
        return Decision::hold(
            class,
            format!("{why}; already resized for this report"),
            figures,
        );
    }
    finish(cfg, job, class, figures, &why)
}

fn decide_marathon(cfg: &ThesisConfig, job: &Job, now: f64) -> Decision {
    let Work::Continuous(w) = &job.work else {
        unreachable!("checked by caller")
    };
    let mut figures = Figures {
        progress: Some(job.progress()),
        ..Figures::default()
    };
    let Some(start) = w.started_at else {
        return Decision::hold(Class::NoData, "the task has not started yet", figures);
    };
    if matches!(job.phase, Phase::Restarting { .. }) {
        return Decision::hold(Class::NoData, "a restart is under way", figures);
    }
    let elapsed = now - start;
    let desired = eq2_desired(job.qos.duration, job.qos.window(), elapsed);
    let has_data = w
        .cpu
        .last_sample_at()
        .is_some_and(|t| w.incarnation_started_at.is_none_or(|inc| t >= inc));
    if !has_data && !cfg.missing_cpu_as_zero {
        return Decision::hold(
            Class::NoData,
            "no CPU sample since the task (re)started; not resizing on missing data",
            figures,
        );
    }
    let consumed = w.cpu.total();
    figures.cpu_consumed = Some(consumed);
    figures.cpu_desired = Some(desired);
    let Some(ratio) = eq3_ratio(consumed, desired) else {
        return Decision::hold(
            Class::NoData,
            "no time has elapsed since the start",
            figures,
        );
    };
    figures.ratio = Some(ratio);
    let under = match cfg.marathon_under {
        MarathonUnderThreshold::Text => 1.0 - job.qos.desv,
        MarathonUnderThreshold::Code => 0.95,
    };
    let over = 1.0 + job.qos.desv;
    let class = if ratio < under {
        Class::Under
    } else if ratio > over {
        Class::Over
    } else {
        Class::OnPlan
    };
    let why = format!(
        "Eq.3 ratio {ratio:.3} = {consumed:.1} CPU-s consumed / {desired:.1} desired (Eq.2, {elapsed:.0} s of {:.0}) vs [{under:.2}, {over:.2}] → {class}",
        job.qos.window()
    );
    finish(cfg, job, class, figures, &why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Action;
    use crate::fixtures::{chronos, cpu_sample, marathon, report, resized, started};
    use crate::job::Observation;

    /// openmpLinpack1 of the worked example, `iterations` of `duration` seconds due in 1800 s.
    fn chronos_job(iterations: u32, duration: f64) -> Job {
        chronos(iterations, duration, 1800.0)
    }

    /// thesis-code.md §3.5 worked example: openmpLinpack1, R4, duration 400, desv 0.2,
    /// deadline 1800 → deadline_sup = t0+1710, deadline_inf = t0+360 (code) or t0+1440 (text).
    #[test]
    fn worked_example_bands() {
        let job = chronos_job(4, 400.0);
        let code = ThesisConfig {
            chronos_inf_band: ChronosInfBand::Code,
            ..Default::default()
        };
        assert_eq!(chronos_bands(&code, &job), (360.0, 1710.0));
        assert_eq!(
            chronos_bands(&ThesisConfig::default(), &job),
            (1440.0, 1710.0)
        );
    }

    /// After iteration k at t_k the prediction is t_k + (4−k)·445; UNDER when above 1710.
    #[test]
    fn worked_example_predictions_and_classes() {
        let cfg = ThesisConfig::default();
        let mut job = chronos_job(4, 400.0);
        report(&mut job, 45.0, 525.0); // k=1: 525 + 3·445 = 1860 > 1710 → UNDER
        let d = decide(&cfg, &job, 525.0);
        assert_eq!(d.figures.prediction, Some(1860.0));
        assert_eq!(d.class, Class::Under);
        assert_eq!(d.resize_to(), Some(Cpus::from_milli(1400)));
        // Level-triggered callers may ask again: the same report is not acted on twice.
        job.observe(resized(525.0, Cpus::from_milli(1400))).unwrap();
        let again = decide(&cfg, &job, 530.0);
        assert_eq!(again.action, Action::Hold);
        report(&mut job, 560.0, 880.0); // k=2: 880 + 2·445 = 1770 → UNDER
        let d = decide(&cfg, &job, 880.0);
        assert_eq!(d.figures.prediction, Some(1770.0));
        assert_eq!(d.resize_to(), Some(Cpus::from_milli(1800)));
    }

    #[test]
    fn over_unreachable_with_code_band_reachable_with_text_band() {
        let code = ThesisConfig {
            chronos_inf_band: ChronosInfBand::Code,
            ..Default::default()
        };
        let text = ThesisConfig::default();
        let mut job = chronos_job(4, 400.0);
        report(&mut job, 0.0, 100.0); // a very fast first iteration: 100 + 3·445 = 1435
        assert_eq!(decide(&code, &job, 100.0).class, Class::OnPlan);
        let d = decide(&text, &job, 100.0);
        assert_eq!(d.class, Class::Over);
        assert_eq!(d.resize_to(), Some(Cpus::from_milli(600)));
    }

    #[test]
    fn at_the_bound_nothing_is_sent() {
        let cfg = ThesisConfig::default();
        let mut job = chronos_job(4, 400.0);
        job.cpus = cfg.cpu_max;
        report(&mut job, 45.0, 1000.0);
        let d = decide(&cfg, &job, 1000.0);
        assert_eq!(d.class, Class::Under);
        assert_eq!(d.action, Action::Hold);
        assert!(d.reason.contains("already at the bound"), "{}", d.reason);
    }

    #[test]
    fn last_report_completes() {
        let cfg = ThesisConfig::default();
        let mut job = chronos_job(1, 400.0);
        report(&mut job, 45.0, 500.0);
        assert_eq!(
            decide(&cfg, &job, 500.0).action,
            Action::Complete { met: true }
        );
    }

    fn marathon_job() -> Job {
        let mut job = marathon(400.0, 480.0, Cpus::ONE);
        job.observe(started(0.0)).unwrap();
        job
    }

    /// Case III: at t = 120 the desired consumption is 120/480 × 400 = 100 CPU-s.
    #[test]
    fn eq2_eq3_golden() {
        assert_eq!(eq2_desired(400.0, 480.0, 120.0), 100.0);
        assert_eq!(eq2_desired(400.0, 480.0, 600.0), 400.0);
        assert_eq!(eq3_ratio(240.0, 100.0), Some(2.4));
        assert_eq!(eq3_ratio(1.0, 0.0), None);
        assert_eq!(
            eq1_prediction(&ThesisConfig::default(), 400.0, 1000.0, 3),
            2335.0
        );
    }

    #[test]
    fn marathon_thresholds_both_variants() {
        let text = ThesisConfig::default();
        let code = ThesisConfig {
            marathon_under: MarathonUnderThreshold::Code,
            ..Default::default()
        };
        let mut job = marathon_job();
        job.observe(cpu_sample(120.0, 92.0)).unwrap(); // ratio 0.92: text UNDER needs < 0.9, code < 0.95
        assert_eq!(decide(&text, &job, 120.0).class, Class::OnPlan);
        let d = decide(&code, &job, 120.0);
        assert_eq!(d.class, Class::Under);
        assert_eq!(d.resize_to(), Some(Cpus::from_milli(1400)));
        let mut fast = marathon_job();
        fast.observe(cpu_sample(120.0, 240.0)).unwrap();
        let d = decide(&text, &fast, 120.0);
        assert_eq!(
            (d.class, d.resize_to()),
            (Class::Over, Some(Cpus::from_milli(600)))
        );
        assert_eq!(d.figures.ratio, Some(2.4));
    }

    #[test]
    fn missing_cpu_data_never_resizes_by_default() {
        let mut job = marathon_job();
        let d = decide(&ThesisConfig::default(), &job, 120.0);
        assert_eq!((d.class, d.action), (Class::NoData, Action::Hold));
        // The original treated it as 0 CPU used and grew the job.
        let bug = ThesisConfig {
            missing_cpu_as_zero: true,
            ..Default::default()
        };
        assert_eq!(
            decide(&bug, &job, 120.0).resize_to(),
            Some(Cpus::from_milli(1400))
        );
        // Samples from before a restart do not count as fresh data for the new incarnation.
        job.observe(cpu_sample(100.0, 100.0)).unwrap();
        job.observe(Observation::Resized {
            at: 120.0,
            cpus: Cpus::from_milli(600),
            restart: true,
        })
        .unwrap();
        job.observe(Observation::Started {
            at: 135.0,
            restored: Some(true),
        })
        .unwrap();
        assert_eq!(
            decide(&ThesisConfig::default(), &job, 240.0).class,
            Class::NoData
        );
    }
}
