//! A clairvoyant offline oracle: the most deadlines that can be met on a scenario's nodes, and the
//! fewest CPU-seconds that meet them, for a scheduler that knows every job's true speed curve and
//! overheads in advance.
//!
//! # The schedules it considers
//! - Every job is a chain of **units** ([`OracleUnit`]): a Chronos job one per iteration (each
//!   iteration is its own task and may get its own allocation, at no extra cost), a Marathon job
//!   one (deployment, then the whole work). A unit holds one allocation `c` from deployment to
//!   its end, on one node; units of a job run in order, a unit no earlier than the previous one
//!   ends and the first no earlier than the job's submission. Waiting between units is free
//!   (nothing is held). The oracle never resizes a running unit (no restarts).
//! - Allocations are on the grid of [`OracleBounds`]: multiples of `granularity` from
//!   `cpu_min` rounded up, plus `cpu_max` itself, never above the largest node.
//! - Hard quotas ([`super::Sharing::Quota`]): a unit at `c` runs at `min(c, threads)` effective
//!   CPUs, so it takes `overhead + t(min(c, threads))` seconds ([`SpeedModel::time`]).
//! - On every node, the allocations of the units running there never add up to more than its
//!   capacity at any instant.
//! - A job is met when its last unit ends by its deadline (within [`DEADLINE_TOLERANCE`]).
//!
//! # What it optimises, and what CPU-seconds count
//! Lexicographically: the most deadlines met, then the fewest CPU-seconds *allocated* to the jobs
//! it meets — `Σ c × (overhead + t(min(c, threads)))` over their units, the simulator's
//! `∫ allocation dt` while a task deploys and runs. Not counted: jobs the oracle does not meet
//! (they can run after the met ones, or not at all, and never take capacity from them), idle
//! capacity, and the time between units (no task exists then).
//!
//! # Exactness
//! 1. **Each job alone.** A dynamic programme over the units (a Pareto frontier of total time
//!    against CPU-seconds, one point per combination of per-unit allocations that nothing else
//!    beats) gives each job's cheapest plan that meets its deadline alone on an idle node —
//!    exactly, per-iteration allocations mixed freely. Its CPU-seconds are a lower bound for that
//!    job in any schedule, and the jobs feasible alone bound the met count from above.
//! 2. **Separable.** If those cheapest plans can all be placed on the nodes together, both bounds
//!    are reached: the result is exact.
//! 3. **Search.** Otherwise sets of jobs are tried largest first, cheapest lower bound first. A set
//!    is ruled out by an energy argument (inside any `[a, b]` from a submission to a deadline,
//!    each job needs at least its alone-minimum CPU-seconds less what its largest allocation
//!    could spend in the parts of its own window outside `[a, b]`, and the nodes offer
//!    `Σ capacity × (b − a)`), or searched by branch and bound over placements: units are placed
//!    one by one in nondecreasing start order, each on a chosen node at a chosen allocation at its
//!    earliest feasible start. Every feasible schedule can be left-shifted into one this
//!    generates (a schedule rebuilt in its own start order never starts a unit later, and a
//!    fixed point of that rebuilding is generated exactly), so a search that runs to the end is a
//!    proof. Bounds prune it: each job's cheapest remaining plan from the current time, and the
//!    energy argument from the current time. Greedy schedules that adapt each unit's allocation
//!    to where it can start (in a few fixed job orders, then seeded random ones) give it a cost
//!    to beat from the start; they only find schedules, they prove nothing.
//! 4. **Bound.** If the search budget runs out first, the answer is a proven bound: `met` is the
//!    size of the largest set not ruled out (an upper bound), `cpu_seconds` the smallest lower
//!    bound among the sets of that size not ruled out, and `exact` is `false`. The schedule in
//!    [`Oracle::per_job`] is then the best one found (a lower bound on what can be met); when it
//!    meets `met` deadlines, `met_exact` is `true` and only the CPU-seconds are a bound.
//!
//! The bounds hold for the schedules described above. A policy that resizes a running task (in
//! place, or by a restart that keeps its work) is outside them: it could in principle mix two
//! grid sizes within one unit and spend a little less, or squeeze a running job to admit
//! another. The simulator's restarts cost 10–30 s each with the allocation held, which makes
//! that rare; the property tests check that no simulated run of either policy meets more.
//!
//! # Cost
//! `cargo test -p qos-core --release --lib oracle_timing -- --ignored --nocapture` times it on
//! this project's scenarios under quotas (2-core machine shared with other builds, so figures
//! are rough): case1/case2/case3 over seeds 1–20, 60 of 60 exact (all separable), ≈ 8 ms each;
//! `random:0`–`random:199`, 199 of 200 exact (all separable), 1.7 s in all (≈ 4× a predictive
//! simulation of the same scenarios), the worst 0.3 s on `random:83` — the one bound: 9 jobs
//! feasible alone whose cheapest plans do not fit together, the search finds 8 within its
//! budget, so it answers "at most 9, at least 17 949 CPU-s for 9" with `exact: false`.
//!
//! [`Oracle::method`] says which of these produced the answer. The search is deterministic:
//! the same input gives the same answer and schedule.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Scenario, WorkSpec};
use crate::cpu::Cpus;
use crate::predictive::PredictiveConfig;
use crate::speedup::SpeedModel;

mod search;
mod solver;

use search::Prep;
use solver::Solver;

/// A unit may end this many seconds after its job's deadline and still count as met (float
/// rounding only: the same schedule computed another way may differ by far less).
pub const DEADLINE_TOLERANCE: f64 = 1e-6;

/// Search work ([`Oracle::search_nodes`]) [`oracle`] may do before it settles for a bound.
pub const DEFAULT_SEARCH_BUDGET: u64 = 200_000;

/// Random job orders a greedy schedule is tried in, per set of jobs, when fixed orders fail.
const RESTARTS: usize = 128;

/// Further random orders tried once one works, to keep the cheapest.
const RESTARTS_AFTER_SUCCESS: usize = 32;

/// Sets of jobs of one size the search enumerates at most; beyond it that size stays unresolved.
const MAX_SETS_PER_SIZE: usize = 5_000;

/// CPU-seconds closer than this are equal (costs are sums of a few hundred products).
const COST_EPS: f64 = 1e-9;

/// One unit of a job's true work: deployment, then computation, one allocation held throughout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OracleUnit {
    /// Deployment before the unit computes, seconds; the allocation is held meanwhile.
    pub overhead: f64,
    /// True speed of the unit's work.
    pub speed: SpeedModel,
}

/// A job as the oracle sees it: its true work, when it may start and when it must end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleJob {
    /// Earliest start, seconds from the start of the run.
    pub submit_at: f64,
    /// Absolute deadline, seconds from the start of the run.
    pub deadline_at: f64,
    /// The most CPUs it can use at once.
    pub threads: Cpus,
    /// Its units, in order.
    pub units: Vec<OracleUnit>,
}

/// The allocations the oracle may give, as a policy would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleBounds {
    /// Smallest allocation.
    pub cpu_min: Cpus,
    /// Largest allocation.
    pub cpu_max: Cpus,
    /// Allocations are multiples of this (and `cpu_max`).
    pub granularity: Cpus,
}

impl Default for OracleBounds {
    /// The predictive policy's defaults: 0.1 to 2 CPUs in steps of 0.1.
    fn default() -> Self {
        Self::from(&PredictiveConfig::default())
    }
}

impl From<&PredictiveConfig> for OracleBounds {
    fn from(cfg: &PredictiveConfig) -> Self {
        Self {
            cpu_min: cfg.cpu_min,
            cpu_max: cfg.cpu_max,
            granularity: cfg.granularity,
        }
    }
}

/// One unit of a met job in the oracle's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UnitPlan {
    /// Allocation held from `start` to `finish`.
    pub cpus: Cpus,
    /// Index of the node it runs on.
    pub node: usize,
    /// When its deployment starts.
    pub start: f64,
    /// When it ends.
    pub finish: f64,
    /// `cpus × (finish − start)`.
    pub cpu_seconds: f64,
}

/// What the oracle does with one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleJobPlan {
    /// Met in the schedule of [`Oracle::per_job`].
    pub met: bool,
    /// The fewest CPU-seconds that meet its deadline alone on an idle node (`None`: no
    /// allocation on the grid meets it even alone).
    pub alone_cpu_seconds: Option<f64>,
    /// Its units, in order (empty when not met).
    pub units: Vec<UnitPlan>,
    /// When its last unit ends (`None` when not met).
    pub finish: Option<f64>,
    /// CPU-seconds allocated to it (0 when not met).
    pub cpu_seconds: f64,
}

/// The oracle's answer for a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Oracle {
    /// The most deadlines that can be met: exact when `exact`, else a proven upper bound.
    pub met: usize,
    /// The fewest CPU-seconds allocated to meet `met` deadlines: exact when `exact`, else a
    /// proven lower bound.
    pub cpu_seconds: f64,
    /// Whether `met` and `cpu_seconds` are the optimum (else bounds).
    pub exact: bool,
    /// Whether `met` is the optimum (the schedule meets that many) even when `cpu_seconds` is
    /// only a lower bound.
    pub met_exact: bool,
    /// What was proven and how, in one sentence.
    pub method: String,
    /// Jobs that can meet their deadline alone on an idle node (an upper bound on `met`).
    pub feasible_alone: usize,
    /// Deadlines met by the schedule in `per_job` (equals `met` when `exact`).
    pub schedule_met: usize,
    /// CPU-seconds allocated by the schedule in `per_job` (equals `cpu_seconds` when `exact`).
    pub schedule_cpu_seconds: f64,
    /// The schedule, per job in input order: optimal when `exact`, else the best one found.
    pub per_job: Vec<OracleJobPlan>,
    /// Search work done: branch-and-bound nodes, plus one per unit placed by greedy schedules
    /// tried in random job orders (the budget counts both).
    pub search_nodes: u64,
}

/// A bad input, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OracleError {
    /// A bound is unusable.
    #[error("oracle bounds: {field} {problem}")]
    Bounds {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A node is unusable.
    #[error("oracle: nodes[{node}] has no capacity (capacity must be positive)")]
    Node {
        /// Index of the node.
        node: usize,
    },
    /// A job is unusable.
    #[error("oracle: jobs[{job}].{field} {problem}")]
    Job {
        /// Index of the job.
        job: usize,
        /// The field (`units[2].overhead`, …).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The oracle's view of a scenario's jobs: per job its submission, deadline, threads and true
/// units (what the simulator runs, not what the user declared).
pub fn oracle_jobs(scenario: &Scenario) -> Vec<OracleJob> {
    scenario
        .jobs
        .iter()
        .map(|spec| {
            let units = match &spec.work {
                WorkSpec::Iterative {
                    iterations,
                    overheads,
                } => iterations
                    .iter()
                    .enumerate()
                    .map(|(k, &speed)| OracleUnit {
                        // As the simulator does: the last overhead repeats if the list is short.
                        overhead: overheads
                            .get(k)
                            .or(overheads.last())
                            .copied()
                            .unwrap_or(0.0),
                        speed,
                    })
                    .collect(),
                WorkSpec::Continuous { speed, deploy, .. } => vec![OracleUnit {
                    overhead: *deploy,
                    speed: *speed,
                }],
            };
            OracleJob {
                submit_at: spec.submit_at,
                deadline_at: spec.qos.resolve(spec.submit_at).deadline_at,
                threads: spec.threads,
                units,
            }
        })
        .collect()
}

/// Solves `jobs` on `nodes` (their capacities) within `bounds`, with the default search budget.
pub fn oracle(
    nodes: &[Cpus],
    jobs: &[OracleJob],
    bounds: &OracleBounds,
) -> Result<Oracle, OracleError> {
    oracle_with_budget(nodes, jobs, bounds, DEFAULT_SEARCH_BUDGET)
}

/// [`oracle`] with at most `budget` branch-and-bound nodes before it settles for a bound.
pub fn oracle_with_budget(
    nodes: &[Cpus],
    jobs: &[OracleJob],
    bounds: &OracleBounds,
    budget: u64,
) -> Result<Oracle, OracleError> {
    validate(nodes, jobs, bounds)?;
    let levels = grid(bounds, nodes.iter().copied().max().unwrap_or(Cpus::ZERO));
    let preps: Vec<Prep> = jobs.iter().map(|j| Prep::new(j, &levels)).collect();
    Ok(Solver {
        caps: nodes,
        preps: &preps,
        budget,
        visited: 0,
    }
    .solve())
}

fn validate(nodes: &[Cpus], jobs: &[OracleJob], bounds: &OracleBounds) -> Result<(), OracleError> {
    let bound = |field, problem: &str| OracleError::Bounds {
        field,
        problem: problem.into(),
    };
    if bounds.granularity == Cpus::ZERO {
        return Err(bound("granularity", "must be positive"));
    }
    if bounds.cpu_min == Cpus::ZERO {
        return Err(bound("cpu_min", "must be positive"));
    }
    if bounds.cpu_min > bounds.cpu_max {
        return Err(bound(
            "cpu_min",
            &format!("({}) is above cpu_max ({})", bounds.cpu_min, bounds.cpu_max),
        ));
    }
    if let Some(node) = nodes.iter().position(|&c| c == Cpus::ZERO) {
        return Err(OracleError::Node { node });
    }
    for (job, j) in jobs.iter().enumerate() {
        let bad = |field: String, problem: String| OracleError::Job {
            job,
            field,
            problem,
        };
        if !j.submit_at.is_finite() {
            return Err(bad(
                "submit_at".into(),
                format!("must be finite, got {}", j.submit_at),
            ));
        }
        if !j.deadline_at.is_finite() || j.deadline_at < j.submit_at {
            return Err(bad(
                "deadline_at".into(),
                format!(
                    "must be finite and not before submit_at ({}), got {}",
                    j.submit_at, j.deadline_at
                ),
            ));
        }
        if j.threads == Cpus::ZERO {
            return Err(bad("threads".into(), "must be positive".into()));
        }
        if j.units.is_empty() {
            return Err(bad("units".into(), "must not be empty".into()));
        }
        for (k, u) in j.units.iter().enumerate() {
            if !u.overhead.is_finite() || u.overhead < 0.0 {
                return Err(bad(
                    format!("units[{k}].overhead"),
                    format!("must be a finite number of seconds ≥ 0, got {}", u.overhead),
                ));
            }
            for (name, v) in [("alpha", u.speed.alpha), ("beta", u.speed.beta)] {
                if !v.is_finite() || v < 0.0 {
                    return Err(bad(
                        format!("units[{k}].speed.{name}"),
                        format!("must be a finite number of seconds ≥ 0, got {v}"),
                    ));
                }
            }
            if u.speed.t1() <= 0.0 && u.overhead <= 0.0 {
                return Err(bad(
                    format!("units[{k}]"),
                    "takes no time at all (overhead, alpha and beta all 0)".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The allocation grid: multiples of the granularity from `cpu_min` rounded up, and `cpu_max`;
/// nothing above the largest node.
fn grid(bounds: &OracleBounds, largest_node: Cpus) -> Vec<Cpus> {
    let step = bounds.granularity.milli();
    let hi = bounds.cpu_max.min(largest_node);
    let mut out = Vec::new();
    let mut c = bounds
        .cpu_min
        .round_up_to(bounds.granularity)
        .min(bounds.cpu_max);
    while c <= hi {
        out.push(c);
        if c >= bounds.cpu_max {
            break;
        }
        c = Cpus::from_milli(c.milli() + step).min(bounds.cpu_max);
    }
    out
}
#[cfg(test)]
mod tests;
