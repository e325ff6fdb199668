//! The policy front: one enum over the thesis, predictive and static policies, and the
//! arbitration of a node's CPUs between jobs that want more than it has.

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::decision::{Action, Decision};
use crate::job::{Job, Work};
use crate::predictive::{self, PredictiveConfig, ResizeMode};
use crate::thesis::{self, ThesisConfig};

/// A control policy with its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Policy {
    /// The thesis controller, exactly (the baseline).
    Thesis(ThesisConfig),
    /// The predictive controller (the default).
    Predictive(PredictiveConfig),
    /// The do-nothing baseline: every job keeps the size it was filed with. It still
    /// classifies and predicts (with the predictive policy's forecast), so its runs are
    /// watched like any other; it never resizes.
    Static(PredictiveConfig),
}

impl Default for Policy {
    fn default() -> Self {
        Self::Predictive(PredictiveConfig::default())
    }
}

impl Policy {
    /// The policy's name (`thesis`, `predictive`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Thesis(_) => "thesis",
            Self::Predictive(_) => "predictive",
            Self::Static(_) => "static",
        }
    }

    /// The default configuration of the policy called `name`.
    pub fn by_name(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "thesis" => Ok(Self::Thesis(ThesisConfig::default())),
            "predictive" => Ok(Self::Predictive(PredictiveConfig::default())),
            "static" => Ok(Self::Static(PredictiveConfig::default())),
            other => Err(format!(
                "unknown policy {other:?} (expected thesis, predictive or static)"
            )),
        }
    }

    /// The allocation bounds `[cpu_min, cpu_max]`.
    pub fn bounds(&self) -> (Cpus, Cpus) {
        match self {
            Self::Thesis(c) => (c.cpu_min, c.cpu_max),
            Self::Predictive(c) | Self::Static(c) => (c.cpu_min, c.cpu_max),
        }
    }

    /// The policy's own verdict on `job` at `now`, before arbitration, staleness and the other
    /// rules of [`crate::control`] (call that instead). `cap` is the most the job may have on its
    /// node (its allocation plus the node's free CPU); the thesis policy ignores it, as the
    /// original did.
    pub fn decide(&self, job: &Job, now: f64, cap: Option<Cpus>) -> Decision {
        self.decide_placing(job, now, cap, None)
    }

    /// [`Policy::decide`] for a job whose next task may have `waited` seconds for a node with
    /// room (`cap` is then what the roomiest node has free).
    pub fn decide_placing(
        &self,
        job: &Job,
        now: f64,
        cap: Option<Cpus>,
        waited: Option<f64>,
    ) -> Decision {
        match self {
            Self::Thesis(c) => thesis::decide(c, job, now),
            Self::Predictive(c) => predictive::decide_placing(c, job, now, cap, waited),
            Self::Static(c) => {
                let d = predictive::decide(c, job, now, cap);
                if matches!(d.action, Action::Resize { .. }) {
                    Decision::hold(
                        d.class,
                        format!(
                            "static policy: keeps its filed {} CPU (the predictive policy would resize: {})",
                            job.cpus, d.reason
                        ),
                        d.figures,
                    )
                } else {
                    d
                }
            }
        }
    }

    /// The same policy with resizes taking effect by `mode` (the predictive policy prices a
    /// restart into its predictions; the thesis policy ignores the mode).
    pub fn with_resize_mode(mut self, mode: ResizeMode) -> Self {
        if let Self::Predictive(c) | Self::Static(c) = &mut self {
            c.resize_mode = mode;
        }
        self
    }

    /// Whether the policy resizes jobs by need, with node arbitration (predictive), as opposed
    /// to stepping blindly (thesis) or never (static).
    pub fn arbitrates(&self) -> bool {
        matches!(self, Self::Predictive(_))
    }

    /// How often a continuous job should be evaluated, seconds (iterative jobs are evaluated on
    /// each report and at registration).
    pub fn period(&self, job: &Job) -> Option<f64> {
        match (&job.work, self) {
            (Work::Iterative(_), _) => None,
            (Work::Continuous(_), Self::Thesis(c)) => Some(c.monitoring_period),
            (Work::Continuous(_), Self::Predictive(_) | Self::Static(_)) => {
                Some(DEFAULT_PREDICTIVE_PERIOD)
            }
        }
    }

    /// Slack, in seconds, the job would have at the largest allocation (least laxity is
    /// served first when a node is short of CPU).
    pub fn laxity(&self, job: &Job, now: f64) -> f64 {
        match self {
            Self::Predictive(c) | Self::Static(c) => predictive::laxity(c, job, now),
            Self::Thesis(c) => {
                let p = PredictiveConfig {
                    cpu_max: c.cpu_max,
                    ..PredictiveConfig::default()
                };
                predictive::laxity(&p, job, now)
            }
        }
    }
}

/// Evaluation period of continuous jobs under the predictive policy, seconds.
///
/// The thesis used 120 s for a 480 s deadline — a quarter of the job's life between looks.
/// Cumulative CPU samples arrive every second and a decision costs microseconds, so the limit is
/// not cost but noise and restarts; cooldown and hysteresis handle those, so 10 s lets a job be
/// corrected within 2 % of a typical window.
pub const DEFAULT_PREDICTIVE_PERIOD: f64 = 10.0;

/// One job's claim on its node's CPUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// What the job's policy wants it to have.
    pub wanted: Cpus,
    /// The least it may have (`cpu_min`).
    pub floor: Cpus,
    /// Slack at the largest allocation, seconds (negative: cannot make it anyway).
    pub laxity: f64,
}

/// Shares `capacity` among `claims` so that the most deadlines are met: every job first gets its
/// floor, then jobs that can still make it are served least laxity first, and jobs that cannot
/// make it at all get only what is left (they must not sink the others). Returns the grant of
/// each claim, in order; the grants never exceed `capacity` in total unless the floors alone do.
pub fn arbitrate(capacity: Cpus, claims: &[Claim]) -> Vec<Cpus> {
    let mut grants: Vec<Cpus> = claims.iter().map(|c| c.floor.min(c.wanted)).collect();
    let mut left = capacity.saturating_sub(grants.iter().fold(Cpus::ZERO, |a, &g| a + g));
    let mut order: Vec<usize> = (0..claims.len()).collect();
    order.sort_by(|&a, &b| {
        let (la, lb) = (claims[a].laxity, claims[b].laxity);
        // Feasible jobs (laxity ≥ 0) first, least laxity first; then infeasible ones.
        (la < 0.0)
            .cmp(&(lb < 0.0))
            .then(la.total_cmp(&lb))
            .then(a.cmp(&b))
    });
    for i in order {
        let extra = claims[i].wanted.saturating_sub(grants[i]).min(left);
        grants[i] = grants[i] + extra;
        left = left.saturating_sub(extra);
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64) -> Cpus {
        Cpus::from_f64(x)
    }

    #[test]
    fn least_laxity_first_and_infeasible_last() {
        let claims = [
            Claim {
                wanted: c(1.5),
                floor: c(0.1),
                laxity: 300.0,
            },
            Claim {
                wanted: c(1.5),
                floor: c(0.1),
                laxity: 20.0,
            },
            Claim {
                wanted: c(2.0),
                floor: c(0.1),
                laxity: -50.0,
            },
        ];
        let g = arbitrate(c(2.0), &claims);
        assert_eq!(g, [c(0.4), c(1.5), c(0.1)]);
    }

    #[test]
    fn everyone_fits() {
        let claims = [
            Claim {
                wanted: c(0.5),
                floor: c(0.1),
                laxity: 1.0,
            },
            Claim {
                wanted: c(0.7),
                floor: c(0.1),
                laxity: 2.0,
            },
        ];
        assert_eq!(arbitrate(c(2.0), &claims), [c(0.5), c(0.7)]);
    }

    proptest::proptest! {
        /// The promises of `arbitrate` for any node and any claims: each grant lies between the
        /// job's floor (or what it wants, if less) and what it wants; the total stays within the
        /// capacity unless the floors alone exceed it; no CPU is left idle while a job wants more;
        /// a feasible job is never short while a less urgent feasible one got more than its floor.
        #[test]
        fn arbitration_keeps_its_promises(
            capacity in 0u32..8000,
            raw in proptest::collection::vec((0u32..3000, 0u32..600, -500.0f64..500.0), 0..8),
        ) {
            let capacity = Cpus::from_milli(capacity);
            let claims: Vec<Claim> = raw
                .iter()
                .map(|&(w, f, l)| Claim { wanted: Cpus::from_milli(w), floor: Cpus::from_milli(f), laxity: l })
                .collect();
            let g = arbitrate(capacity, &claims);
            proptest::prop_assert_eq!(g.len(), claims.len());
            let total = g.iter().fold(Cpus::ZERO, |a, &x| a + x);
            let floors = claims.iter().fold(Cpus::ZERO, |a, c| a + c.floor.min(c.wanted));
            for (c, &x) in claims.iter().zip(&g) {
                proptest::prop_assert!(x >= c.floor.min(c.wanted) && x <= c.wanted, "{c:?} got {x:?}");
            }
            proptest::prop_assert!(total <= capacity.max(floors), "{total:?} of {capacity:?}");
            let short = claims.iter().zip(&g).any(|(c, &x)| x < c.wanted);
            if short {
                proptest::prop_assert!(total >= capacity, "idle CPU while a job wants more");
            }
            for (i, (a, &ga)) in claims.iter().zip(&g).enumerate() {
                for (j, (b, &gb)) in claims.iter().zip(&g).enumerate() {
                    let more_urgent = a.laxity >= 0.0 && b.laxity >= 0.0 && (a.laxity, i) < (b.laxity, j);
                    if more_urgent && ga < a.wanted {
                        proptest::prop_assert!(gb <= b.floor.min(b.wanted), "{i} short while {j} got {gb:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn policy_names() {
        assert_eq!(Policy::by_name("Thesis").unwrap().name(), "thesis");
        assert_eq!(Policy::default().name(), "predictive");
        assert!(
            Policy::by_name("vpa")
                .unwrap_err()
                .contains("unknown policy")
        );
    }
}
