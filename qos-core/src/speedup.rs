//! An online speed-up model: how long a unit of work takes at a given allocation.
//!
//! `t(c) = α / min(c, 1) + β / c` — Amdahl's law with `α` the serial part and `β` the parallel
//! part of the 1-CPU time, extended below one CPU (where a quota slows everything down alike:
//! `t(c) = t(1)/c`). It is linear in `(α, β)`, so it is fitted by least squares on relative error
//! with the prior as pseudo-observations: with no data it is the prior (seeded from the QoS
//! `duration`), with data at one allocation it rescales, with data at two or more it learns the
//! parallel fraction too.
//!
//! Thesis LINPACK figures give the shape: N=6000 480.4 s at 1 CPU, 362.2 s at 2 → parallel
//! fraction ≈ 0.49.

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;

/// `t(c) = α / min(c, 1) + β / c`, seconds per unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpeedModel {
    /// Serial seconds at one CPU.
    pub alpha: f64,
    /// Parallel seconds at one CPU.
    pub beta: f64,
}

/// One measured unit of work: the allocation, seconds taken, and how much it counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Allocation it ran with.
    pub cpus: Cpus,
    /// Seconds per unit of work observed.
    pub secs: f64,
    /// Weight (e.g. the fraction of the job the observation covers).
    pub weight: f64,
}

impl SpeedModel {
    /// A model taking `t1` seconds at one CPU with parallel fraction `p`.
    pub fn new(t1: f64, p: f64) -> Self {
        let p = p.clamp(0.0, 1.0);
        Self {
            alpha: t1 * (1.0 - p),
            beta: t1 * p,
        }
    }

    /// Measured LINPACK-like shape from the time at one and two CPUs.
    pub fn from_two_points(t1: f64, t2: f64) -> Self {
        // t2 = α + β/2 and t1 = α + β → β = 2(t1 − t2), α = t1 − β.
        let beta = (2.0 * (t1 - t2)).clamp(0.0, t1);
        Self {
            alpha: t1 - beta,
            beta,
        }
    }

    /// Seconds per unit of work at `cpus` (infinite at zero CPU).
    pub fn time(&self, cpus: Cpus) -> f64 {
        let c = cpus.as_f64();
        if c <= 0.0 {
            return f64::INFINITY;
        }
        self.alpha / c.min(1.0) + self.beta / c
    }

    /// Time at one CPU.
    pub fn t1(&self) -> f64 {
        self.alpha + self.beta
    }

    /// Parallel fraction `β / (α + β)`.
    pub fn parallel_fraction(&self) -> f64 {
        let t1 = self.t1();
        if t1 > 0.0 { self.beta / t1 } else { 0.0 }
    }

    /// Fits the model to `samples`.
    ///
    /// With no usable sample it is `prior`. The prior's *shape* (parallel fraction) is first
    /// rescaled so that it matches the measured times on average — measurements, not the user's
    /// estimate, set the speed. With samples at two or more allocations the parallel fraction is
    /// then fitted too, by least squares on relative error, regularised towards the rescaled prior
    /// with `prior_weight` pseudo-samples.
    pub fn fit(prior: Self, prior_weight: f64, samples: &[Sample]) -> Self {
        let usable: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.secs.is_finite() && s.secs > 0.0 && s.weight > 0.0 && s.cpus > Cpus::ZERO)
            .collect();
        if usable.is_empty() || prior.t1() <= 0.0 {
            return prior;
        }
        // Rescale the prior: weighted mean of t_i / shape(c_i).
        let (mut num, mut den) = (0.0, 0.0);
        for s in &usable {
            num += s.weight * s.secs / prior.time(s.cpus) * prior.t1();
            den += s.weight;
        }
        let scale = num / den / prior.t1();
        let base = Self {
            alpha: prior.alpha * scale,
            beta: prior.beta * scale,
        };
        let first = usable[0].cpus;
        if usable.iter().all(|s| s.cpus == first) {
            return base;
        }
        let t1 = base.t1();
        // Rows (r1, r2, y, w): minimise Σ w (r1·α + r2·β − y)².
        let mut rows: Vec<(f64, f64, f64, f64)> = Vec::with_capacity(usable.len() + 2);
        for s in &usable {
            let c = s.cpus.as_f64();
            rows.push((1.0 / c.min(1.0) / s.secs, 1.0 / c / s.secs, 1.0, s.weight));
        }
        rows.push((1.0 / t1, 0.0, base.alpha / t1, prior_weight));
        rows.push((0.0, 1.0 / t1, base.beta / t1, prior_weight));
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(r1, r2, y, w) in &rows {
            a11 += w * r1 * r1;
            a12 += w * r1 * r2;
            a22 += w * r2 * r2;
            b1 += w * r1 * y;
            b2 += w * r2 * y;
        }
        let det = a11 * a22 - a12 * a12;
        if det.abs() <= 1e-18 {
            return base;
        }
        let (mut alpha, mut beta) = ((b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det);
        if alpha < 0.0 {
            alpha = 0.0;
            beta = b2 / a22;
        }
        if beta < 0.0 {
            beta = 0.0;
            alpha = b1 / a11;
        }
        Self {
            alpha: alpha.max(0.0),
            beta: beta.max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64) -> Cpus {
        Cpus::from_f64(x)
    }

    #[test]
    fn thesis_linpack_shape() {
        let m = SpeedModel::from_two_points(480.4, 362.2);
        assert!((m.time(c(1.0)) - 480.4).abs() < 1e-9);
        assert!((m.time(c(2.0)) - 362.2).abs() < 1e-9);
        assert!((m.time(c(0.5)) - 960.8).abs() < 1e-9);
        assert!((m.parallel_fraction() - 0.492).abs() < 0.001);
    }

    #[test]
    fn learns_from_two_levels() {
        let truth = SpeedModel::from_two_points(162.75, 113.2);
        let prior = SpeedModel::new(130.0, 0.5);
        let samples: Vec<Sample> = [1.0, 1.0, 1.4, 1.8, 2.0]
            .iter()
            .map(|&x| Sample {
                cpus: c(x),
                secs: truth.time(c(x)),
                weight: 1.0,
            })
            .collect();
        let fit = SpeedModel::fit(prior, 0.1, &samples);
        for x in [1.0, 1.5, 2.0] {
            let rel = (fit.time(c(x)) - truth.time(c(x))).abs() / truth.time(c(x));
            assert!(
                rel < 0.03,
                "at {x}: {} vs {}",
                fit.time(c(x)),
                truth.time(c(x))
            );
        }
    }

    #[test]
    fn one_level_rescales_keeping_the_prior_shape() {
        let prior = SpeedModel::new(400.0, 0.5);
        let fit = SpeedModel::fit(
            prior,
            1.0,
            &[Sample {
                cpus: c(1.0),
                secs: 480.0,
                weight: 3.0,
            }],
        );
        assert!((fit.time(c(1.0)) - 480.0).abs() < 1e-9, "{fit:?}");
        assert!((fit.parallel_fraction() - 0.5).abs() < 1e-12);
        assert_eq!(SpeedModel::fit(prior, 1.0, &[]), prior);
    }

    #[test]
    fn time_never_increases_with_cpus() {
        let m = SpeedModel::new(100.0, 0.3);
        let mut last = f64::INFINITY;
        for milli in (100..=4000).step_by(100) {
            let t = m.time(Cpus::from_milli(milli));
            assert!(t <= last);
            last = t;
        }
    }
}
