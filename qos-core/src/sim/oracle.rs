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

/// One allocation of one unit: how long it takes and what it costs.
#[derive(Debug, Clone, Copy)]
struct Opt {
    cpus: Cpus,
    secs: f64,
    cost: f64,
}

/// A point of a suffix frontier: units `k..` take `time` seconds back to back for `cost`
/// CPU-seconds, unit `k` at `opt`, the rest as point `next` of the following frontier.
#[derive(Debug, Clone, Copy)]
struct Point {
    time: f64,
    cost: f64,
    opt: u16,
    next: u32,
}

/// A job prepared for the search.
struct Prep {
    submit: f64,
    /// Deadline plus the tolerance.
    due: f64,
    /// The largest allocation it can hold: no unit charges CPU-seconds faster than this.
    top: f64,
    /// The allocations worth considering for each unit (each faster than every smaller one),
    /// fastest first.
    opts: Vec<Vec<Opt>>,
    /// `suffix[k]`: the Pareto frontier (time ascending, cost strictly descending) of units
    /// `k..`; `suffix[units]` is the empty plan. Points too slow to ever meet the deadline are
    /// left out.
    suffix: Vec<Vec<Point>>,
}

impl Prep {
    fn new(job: &OracleJob, levels: &[Cpus]) -> Self {
        let opts: Vec<Vec<Opt>> = job
            .units
            .iter()
            .map(|u| {
                // A larger allocation is worth considering only if it is faster: a slower or
                // equally fast one is wider and no cheaper (beyond the threads, say). An equally
                // cheap but slower one stays, being narrower: it may pack where the other
                // cannot.
                let mut kept: Vec<Opt> = Vec::new();
                for &c in levels {
                    let secs = u.overhead + u.speed.time(c.min(job.threads));
                    if secs.is_finite() && kept.last().is_none_or(|k| secs < k.secs) {
                        kept.push(Opt {
                            cpus: c,
                            secs,
                            cost: c.as_f64() * secs,
                        });
                    }
                }
                kept.reverse();
                kept
            })
            .collect();
        let due = job.deadline_at + DEADLINE_TOLERANCE;
        let window = due - job.submit_at;
        let n = opts.len();
        // The least time units 0..k take, to leave out suffix points that can never fit.
        let mut prefix_min = vec![0.0; n + 1];
        for k in 0..n {
            let fastest = opts[k].first().map_or(f64::INFINITY, |o| o.secs);
            prefix_min[k + 1] = prefix_min[k] + fastest;
        }
        let mut suffix = vec![Vec::new(); n + 1];
        suffix[n] = vec![Point {
            time: 0.0,
            cost: 0.0,
            opt: 0,
            next: 0,
        }];
        for k in (0..n).rev() {
            suffix[k] = pareto_sum(&opts[k], &suffix[k + 1], window - prefix_min[k]);
        }
        Self {
            submit: job.submit_at,
            due,
            top: levels.last().map_or(0.0, |c| c.as_f64()),
            opts,
            suffix,
        }
    }

    fn units(&self) -> usize {
        self.opts.len()
    }

    /// The cheapest plan for units `k..` started at `from` that ends by the deadline: its cost
    /// and its point in `suffix[k]`.
    fn cheapest(&self, k: usize, from: f64) -> Option<(f64, usize)> {
        let limit = self.due - from;
        let frontier = &self.suffix[k];
        let i = frontier.partition_point(|p| p.time <= limit);
        (i > 0).then(|| (frontier[i - 1].cost, i - 1))
    }

    /// The allocations of plan `point` of `suffix[k]`, one per unit from `k`.
    fn plan(&self, k: usize, point: usize) -> Vec<Opt> {
        let mut out = Vec::with_capacity(self.units() - k);
        let mut p = self.suffix[k][point];
        for u in k..self.units() {
            out.push(self.opts[u][usize::from(p.opt)]);
            p = self.suffix[u + 1][p.next as usize];
        }
        out
    }

    /// The cheapest plan that meets the deadline alone, from the submission.
    fn alone(&self) -> Option<(f64, Vec<Opt>)> {
        self.cheapest(0, self.submit)
            .map(|(cost, point)| (cost, self.plan(0, point)))
    }
}

/// The Pareto frontier of `opts ⊕ next` (one option followed by one point of `next`, times and
/// costs added) up to `limit` seconds, time ascending: a merge of the option's shifted copies of
/// `next` (each already sorted), skipping the points a cheaper one found earlier dominates.
fn pareto_sum(opts: &[Opt], next: &[Point], limit: f64) -> Vec<Point> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// A candidate point, ordered by (time, cost, option, point).
    #[derive(PartialEq)]
    struct Head(f64, f64, usize, usize);
    impl Eq for Head {}
    impl PartialOrd for Head {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Head {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0
                .total_cmp(&o.0)
                .then(self.1.total_cmp(&o.1))
                .then(self.2.cmp(&o.2))
                .then(self.3.cmp(&o.3))
        }
    }
    let head = |oi: usize, pi: usize| {
        let (o, p) = (&opts[oi], next.get(pi)?);
        let time = o.secs + p.time;
        (time <= limit).then_some(Reverse(Head(time, o.cost + p.cost, oi, pi)))
    };
    let mut heap: BinaryHeap<Reverse<Head>> =
        (0..opts.len()).filter_map(|oi| head(oi, 0)).collect();
    let mut out = Vec::new();
    let mut best = f64::INFINITY;
    while let Some(Reverse(Head(time, cost, oi, pi))) = heap.pop() {
        if cost < best {
            best = cost;
            out.push(Point {
                time,
                cost,
                opt: oi as u16,
                next: pi as u32,
            });
        }
        // `next` is cost-descending: jump to its first point that can still beat `best`.
        let bar = best - opts[oi].cost;
        let skip = next[pi + 1..].partition_point(|p| p.cost >= bar);
        if let Some(h) = head(oi, pi + 1 + skip) {
            heap.push(h);
        }
    }
    out
}

/// A unit placed on a node: `[start, end)` holding `milli` millicores.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Interval {
    start: f64,
    end: f64,
    milli: u32,
}

/// The earliest start at or after `ready` where `milli` fits on a node of `cap` millicores for
/// `secs` seconds next to `placed`.
fn earliest(placed: &[Interval], cap: u32, ready: f64, secs: f64, milli: u32) -> f64 {
    if milli > cap {
        return f64::INFINITY;
    }
    let mut candidates: Vec<f64> = std::iter::once(ready)
        .chain(placed.iter().map(|iv| iv.end).filter(|&e| e > ready))
        .collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    for s in candidates {
        let e = s + secs;
        // The load only rises where an interval starts, so check `s` and every start inside.
        let fits = std::iter::once(s)
            .chain(placed.iter().map(|iv| iv.start).filter(|&t| t > s && t < e))
            .all(|t| {
                let load: u32 = placed
                    .iter()
                    .filter(|iv| iv.start <= t && t < iv.end)
                    .map(|iv| iv.milli)
                    .sum();
                load + milli <= cap
            });
        if fits {
            return s;
        }
    }
    f64::INFINITY
}

/// The jobs of one set, as the search sees them.
struct SetSearch<'a> {
    caps: &'a [Cpus],
    total_cap: f64,
    members: Vec<&'a Prep>,
    placed: Vec<Vec<Interval>>,
    next: Vec<usize>,
    ready: Vec<f64>,
    cost: f64,
    units: Schedule,
    /// Start and member of the last unit placed: the next must come after it.
    last: (f64, Option<usize>),
    best_cost: f64,
    best: Option<Schedule>,
    visited: u64,
    budget: u64,
    out_of_budget: bool,
}

impl<'a> SetSearch<'a> {
    fn new(caps: &'a [Cpus], members: Vec<&'a Prep>, incumbent: f64, budget: u64) -> Self {
        let n = members.len();
        Self {
            caps,
            total_cap: caps.iter().map(|c| c.as_f64()).sum(),
            ready: members.iter().map(|p| p.submit).collect(),
            members,
            placed: vec![Vec::new(); caps.len()],
            next: vec![0; n],
            cost: 0.0,
            units: vec![Vec::new(); n],
            last: (f64::NEG_INFINITY, None),
            best_cost: incumbent,
            best: None,
            visited: 0,
            budget,
            out_of_budget: false,
        }
    }

    fn place(&mut self, m: usize, opt: Opt, node: usize, start: f64) {
        let end = start + opt.secs;
        self.placed[node].push(Interval {
            start,
            end,
            milli: opt.cpus.milli(),
        });
        self.units[m].push(UnitPlan {
            cpus: opt.cpus,
            node,
            start,
            finish: end,
            cpu_seconds: opt.cost,
        });
        self.next[m] += 1;
        self.ready[m] = end;
        self.cost += opt.cost;
    }

    fn unplace(&mut self, m: usize, node: usize, ready: f64, cost: f64) {
        self.placed[node].pop();
        self.units[m].pop();
        self.next[m] -= 1;
        self.ready[m] = ready;
        self.cost -= cost;
    }

    /// The earliest start of member `m`'s next unit at `opt` on node `n` (infinite if it never
    /// fits there).
    fn start_on(&self, n: usize, m: usize, opt: Opt) -> f64 {
        earliest(
            &self.placed[n],
            self.caps[n].milli(),
            self.ready[m],
            opt.secs,
            opt.cpus.milli(),
        )
    }

    /// Greedy: whole jobs in `order`, each unit at its earliest start on the node that allows
    /// the earliest, with the plans given. `true` if every job meets its deadline.
    fn place_plans(&mut self, order: &[usize], plans: &[Vec<Opt>]) -> bool {
        for &m in order {
            for &opt in &plans[m] {
                let (node, start) = (0..self.caps.len())
                    .map(|n| {
                        let s = self.start_on(n, m, opt);
                        (n, s)
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                    .unwrap_or((0, f64::INFINITY));
                if start + opt.secs > self.members[m].due {
                    return false;
                }
                self.place(m, opt, node, start);
            }
        }
        true
    }

    /// Greedy: whole jobs in `order`, each unit at the allocation and node that `rule` prefers
    /// among those from which the job can still meet its deadline. `Err(job)`: the first job
    /// that cannot.
    fn place_adaptive(&mut self, order: &[usize], rule: Adapt) -> Result<(), usize> {
        for &m in order {
            let p = self.members[m];
            for k in 0..p.units() {
                let mut pick: Option<((f64, f64), Opt, usize, f64)> = None;
                for &opt in &p.opts[k] {
                    for n in 0..self.caps.len() {
                        let s = self.start_on(n, m, opt);
                        let end = s + opt.secs;
                        let rest = if k + 1 == p.units() {
                            (end <= p.due).then_some(0.0)
                        } else {
                            p.cheapest(k + 1, end).map(|(c, _)| c)
                        };
                        let Some(rest) = rest else { continue };
                        let key = match rule {
                            Adapt::Cheapest => (opt.cost + rest, end),
                            Adapt::Earliest => (end, opt.cost + rest),
                        };
                        if pick.as_ref().is_none_or(|b| {
                            key.0
                                .total_cmp(&b.0.0)
                                .then(key.1.total_cmp(&b.0.1))
                                .is_lt()
                        }) {
                            pick = Some((key, opt, n, s));
                        }
                    }
                }
                let Some((_, opt, n, s)) = pick else {
                    return Err(m);
                };
                self.place(m, opt, n, s);
            }
        }
        Ok(())
    }

    /// Whether the CPU-seconds still needed fit in the capacity left: for every deadline `b`,
    /// what is already placed in `[from, b]`, plus what the jobs' cheapest remaining plans must
    /// spend before `b` (all of it for a job due by `b`; for one due at `d > b`, all but what its
    /// largest allocation can spend in `(b, d]`), must fit in `Σ capacity × (b − from)`.
    fn energy_fits(&self, from: f64, need: &[(f64, f64, f64)]) -> bool {
        for &(due, _, _) in need {
            let sum: f64 = need
                .iter()
                .map(|&(d, cost, top)| (cost - top * (d - due).max(0.0)).max(0.0))
                .sum();
            let busy: f64 = self
                .placed
                .iter()
                .flatten()
                .map(|iv| {
                    let overlap = iv.end.min(due) - iv.start.max(from);
                    f64::from(iv.milli) / 1000.0 * overlap.max(0.0)
                })
                .sum();
            if sum + busy > self.total_cap * (due - from) + COST_EPS {
                return false;
            }
        }
        true
    }

    fn search(&mut self) {
        if self.out_of_budget {
            return;
        }
        self.visited += 1;
        if self.visited > self.budget {
            self.out_of_budget = true;
            return;
        }
        let (t_last, m_last) = self.last;
        // Cheapest completion of every job from now on: a bound on cost, and on feasibility.
        let mut lower = self.cost;
        let mut need: Vec<(f64, f64, f64)> = Vec::new();
        let mut each = vec![0.0; self.members.len()];
        for (m, p) in self.members.iter().enumerate() {
            if self.next[m] == p.units() {
                continue;
            }
            let Some((c, _)) = p.cheapest(self.next[m], self.ready[m].max(t_last)) else {
                return;
            };
            each[m] = c;
            lower += c;
            need.push((p.due, c, p.top));
        }
        if need.is_empty() {
            if self.cost < self.best_cost - COST_EPS {
                self.best_cost = self.cost;
                self.best = Some(self.units.clone());
            }
            return;
        }
        // Every unit still to place starts at or after the last start (or the first submission).
        let from = if t_last.is_finite() {
            t_last
        } else {
            self.ready.iter().copied().fold(f64::INFINITY, f64::min)
        };
        if lower >= self.best_cost - COST_EPS || !self.energy_fits(from, &need) {
            return;
        }
        // Every (job, allocation, node) that can come next, with the bound it leaves.
        let mut branches: Vec<(f64, f64, usize, Opt, usize)> = Vec::new();
        for (m, p) in self.members.iter().enumerate() {
            let k = self.next[m];
            if k == p.units() {
                continue;
            }
            for &opt in &p.opts[k] {
                let mut tried: Vec<usize> = Vec::new();
                for n in 0..self.caps.len() {
                    // Empty nodes of equal capacity are interchangeable.
                    if self.placed[n].is_empty()
                        && tried
                            .iter()
                            .any(|&o| self.placed[o].is_empty() && self.caps[o] == self.caps[n])
                    {
                        continue;
                    }
                    tried.push(n);
                    let s = self.start_on(n, m, opt);
                    // Nondecreasing (start, job) order; a unit that fits before the last start
                    // belongs earlier in the order and is generated there.
                    if !s.is_finite() || s < t_last || (s == t_last && Some(m) <= m_last) {
                        continue;
                    }
                    let rest = if k + 1 == p.units() {
                        (s + opt.secs <= p.due).then_some(0.0)
                    } else {
                        p.cheapest(k + 1, s + opt.secs).map(|(c, _)| c)
                    };
                    let Some(rest) = rest else { continue };
                    let bound = lower - each[m] + opt.cost + rest;
                    if bound < self.best_cost - COST_EPS {
                        branches.push((bound, s, m, opt, n));
                    }
                }
            }
        }
        // With a schedule to beat, cheapest bound first; without one, earliest start first (a
        // schedule at all is what is missing).
        let feasibility_first = !self.best_cost.is_finite();
        branches.sort_by(|a, b| {
            let (x, y) = if feasibility_first {
                (a.1.total_cmp(&b.1), a.0.total_cmp(&b.0))
            } else {
                (a.0.total_cmp(&b.0), a.1.total_cmp(&b.1))
            };
            x.then(y).then(a.2.cmp(&b.2)).then(a.4.cmp(&b.4))
        });
        for (bound, s, m, opt, n) in branches {
            if self.out_of_budget {
                break;
            }
            if bound >= self.best_cost - COST_EPS {
                continue;
            }
            let ready = self.ready[m];
            self.place(m, opt, n, s);
            self.last = (s, Some(m));
            self.search();
            self.last = (t_last, m_last);
            self.unplace(m, n, ready, opt.cost);
        }
    }
}

/// What a greedy schedule favours for each unit.
#[derive(Debug, Clone, Copy)]
enum Adapt {
    /// The cheapest allocation from which the job can still make it.
    Cheapest,
    /// The earliest end from which the job can still make it.
    Earliest,
}

/// Units placed per job of a set, in the set's order.
type Schedule = Vec<Vec<UnitPlan>>;

/// What became of one set of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Proven: no schedule meets all of them (cheaper than the incumbent, when one was given).
    RuledOut,
    /// The budget ran out before a proof.
    Unresolved,
    /// A schedule was found, proven the cheapest for this set.
    Optimal,
}

struct Solver<'a> {
    caps: &'a [Cpus],
    preps: &'a [Prep],
    budget: u64,
    visited: u64,
}

impl Solver<'_> {
    /// The energy argument over windows `[a, b]` between a submission and a deadline: `false`
    /// when the set's jobs need more CPU-seconds inside than the nodes have there. A job needs
    /// its alone-minimum, less what its largest allocation can spend in the parts of its own
    /// window outside `[a, b]`.
    fn windows_fit(&self, set: &[usize], alone: &[f64]) -> bool {
        let total: f64 = self.caps.iter().map(|c| c.as_f64()).sum();
        set.iter().all(|&a| {
            let from = self.preps[a].submit;
            set.iter().all(|&b| {
                let to = self.preps[b].due;
                if to <= from {
                    return true;
                }
                let need: f64 = set
                    .iter()
                    .map(|&j| {
                        let p = &self.preps[j];
                        let outside = (from - p.submit).max(0.0) + (p.due - to).max(0.0);
                        (alone[j] - p.top * outside).max(0.0)
                    })
                    .sum();
                need <= total * (to - from) + COST_EPS
            })
        })
    }

    /// Searches set `set` for a schedule cheaper than `incumbent`.
    fn search_set(
        &mut self,
        set: &[usize],
        plans: &[Vec<Opt>],
        incumbent: f64,
    ) -> (Verdict, Option<(f64, Schedule)>) {
        let members: Vec<&Prep> = set.iter().map(|&j| &self.preps[j]).collect();
        let set_plans: Vec<Vec<Opt>> = set.iter().map(|&j| plans[j].clone()).collect();
        let mut orders: Vec<Vec<usize>> = Vec::new();
        let mut by = |key: &dyn Fn(usize) -> f64| {
            let mut o: Vec<usize> = (0..set.len()).collect();
            o.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
            if !orders.contains(&o) {
                orders.push(o);
            }
        };
        by(&|m| members[m].due);
        by(&|m| members[m].submit);
        by(&|m| {
            members[m].due - members[m].submit - set_plans[m].iter().map(|o| o.secs).sum::<f64>()
        });
        by(&|m| {
            -set_plans[m]
                .iter()
                .map(|o| o.cpus.as_f64())
                .fold(0.0, f64::max)
        });
        // First the cheapest plans, greedily: if they fit, nothing is cheaper.
        let lower: f64 = set_plans.iter().flatten().map(|o| o.cost).sum();
        if lower < incumbent - COST_EPS {
            for order in &orders {
                let mut s = SetSearch::new(self.caps, members.clone(), incumbent, 0);
                if s.place_plans(order, &set_plans) {
                    return (Verdict::Optimal, Some((s.cost, s.units)));
                }
            }
        }
        // Then greedy schedules that adapt each unit's allocation to where it can start: a
        // schedule to beat, so that the search prunes on cost from the start.
        let mut greedy: Option<(f64, Schedule)> = None;
        for order in &orders {
            for rule in [Adapt::Cheapest, Adapt::Earliest] {
                let mut s = SetSearch::new(self.caps, members.clone(), incumbent, 0);
                let best = greedy.as_ref().map_or(incumbent, |g| g.0);
                if s.place_adaptive(order, rule).is_ok() && s.cost < best - COST_EPS {
                    greedy = Some((s.cost, s.units));
                }
            }
        }
        // Then the same from random orders (seeded by the set: deterministic), charged to the
        // search budget: until one works, and a few more to keep the cheapest.
        let mut rng = ChaCha8Rng::seed_from_u64(set.iter().fold(0x0a11_ce00, |h, &j| {
            h.wrapping_mul(31).wrapping_add(j as u64)
        }));
        let units: u64 = members.iter().map(|p| p.units() as u64).sum();
        let mut order: Vec<usize> = (0..set.len()).collect();
        let mut extra = RESTARTS_AFTER_SUCCESS;
        for _ in 0..RESTARTS {
            if extra == 0 || self.visited + units > self.budget {
                break;
            }
            self.visited += units;
            order.shuffle(&mut rng);
            for rule in [Adapt::Cheapest, Adapt::Earliest] {
                let mut s = SetSearch::new(self.caps, members.clone(), incumbent, 0);
                let best = greedy.as_ref().map_or(incumbent, |g| g.0);
                if s.place_adaptive(&order, rule).is_ok() && s.cost < best - COST_EPS {
                    greedy = Some((s.cost, s.units));
                }
            }
            if greedy.is_some() {
                extra -= 1;
            }
        }
        let incumbent = greedy.as_ref().map_or(incumbent, |g| g.0);
        let left = self.budget.saturating_sub(self.visited);
        let mut s = SetSearch::new(self.caps, members, incumbent, left);
        s.search();
        self.visited += s.visited.min(left);
        let found = s.best.map(|units| (s.best_cost, units)).or(greedy);
        let verdict = match (&found, s.out_of_budget) {
            (_, true) => Verdict::Unresolved,
            (Some(_), false) => Verdict::Optimal,
            (None, false) => Verdict::RuledOut,
        };
        (verdict, found)
    }

    fn solve(mut self) -> Oracle {
        let n = self.preps.len();
        let alone: Vec<Option<(f64, Vec<Opt>)>> = self.preps.iter().map(Prep::alone).collect();
        let feasible: Vec<usize> = (0..n).filter(|&j| alone[j].is_some()).collect();
        let alone_cost: Vec<f64> = alone
            .iter()
            .map(|a| a.as_ref().map_or(0.0, |a| a.0))
            .collect();
        let plans: Vec<Vec<Opt>> = alone
            .iter()
            .map(|a| a.as_ref().map_or_else(Vec::new, |a| a.1.clone()))
            .collect();

        // Largest sets first; within a size, cheapest lower bound first.
        let mut found: Option<(usize, f64, Vec<usize>, Schedule)> = None;
        // Per size: the least lower bound among sets not ruled out (sizes not reached: none).
        let mut open_bound: Vec<Option<f64>> = vec![None; feasible.len() + 1];
        let mut proven = true;
        let mut separable = false;
        for size in (0..=feasible.len()).rev() {
            let mut sets = match combinations(&feasible, size, MAX_SETS_PER_SIZE) {
                Some(sets) => sets,
                None => {
                    // Too many to enumerate: this size stays open, bounded by its k cheapest.
                    let mut costs: Vec<f64> = feasible.iter().map(|&j| alone_cost[j]).collect();
                    costs.sort_by(f64::total_cmp);
                    open_bound[size] = Some(costs[..size].iter().sum());
                    proven = false;
                    continue;
                }
            };
            let lower = |s: &Vec<usize>| s.iter().map(|&j| alone_cost[j]).sum::<f64>();
            sets.sort_by(|a, b| lower(a).total_cmp(&lower(b)));
            let mut best: Option<(f64, Vec<usize>, Schedule)> = None;
            for set in sets {
                let lb = lower(&set);
                let incumbent = best.as_ref().map_or(f64::INFINITY, |b| b.0);
                if lb >= incumbent - COST_EPS {
                    break;
                }
                if !self.windows_fit(&set, &alone_cost) {
                    continue;
                }
                let (verdict, schedule) = self.search_set(&set, &plans, incumbent);
                if verdict == Verdict::Unresolved {
                    proven = false;
                    let open = open_bound[size].get_or_insert(lb);
                    *open = open.min(lb);
                }
                if let Some((cost, units)) = schedule {
                    if best.is_none() && size == feasible.len() && (cost - lb).abs() <= COST_EPS {
                        separable = true;
                    }
                    best = Some((cost, set, units));
                }
            }
            if let Some((cost, set, units)) = best {
                let open = open_bound[size].get_or_insert(cost);
                *open = open.min(cost);
                found = Some((size, cost, set, units));
                break;
            }
        }

        let (met_found, cost_found, set, units) = found.unwrap_or((0, 0.0, Vec::new(), Vec::new()));
        // The bound: the largest size not ruled out, and its least open lower bound.
        let met = (met_found..=feasible.len())
            .rev()
            .find(|&s| open_bound[s].is_some())
            .unwrap_or(met_found);
        let cpu_bound = open_bound[met].unwrap_or(cost_found);
        let exact = proven && met == met_found;
        let mut per_job: Vec<OracleJobPlan> = (0..n)
            .map(|j| OracleJobPlan {
                met: false,
                alone_cpu_seconds: alone[j].as_ref().map(|a| a.0),
                units: Vec::new(),
                finish: None,
                cpu_seconds: 0.0,
            })
            .collect();
        for (m, plan) in set.iter().zip(units) {
            let job = &mut per_job[*m];
            job.met = true;
            job.finish = plan.last().map(|u| u.finish);
            job.cpu_seconds = plan.iter().map(|u| u.cpu_seconds).sum();
            job.units = plan;
        }
        let method = if exact && separable {
            format!(
                "exact: all {} jobs that can meet their deadline alone were placed together with \
                 their individually cheapest plans (a DP over the allocation grid), reaching both \
                 the upper bound on deadlines met and the lower bound on CPU-seconds",
                feasible.len()
            )
        } else if exact {
            format!(
                "exact: of the {} jobs feasible alone, every larger set and every cheaper set of \
                 {met} was ruled out by node-capacity energy over [submit, deadline] windows or \
                 by a complete branch and bound over placements ({} nodes)",
                feasible.len(),
                self.visited
            )
        } else if met == met_found {
            format!(
                "deadlines exact, CPU-s bounded: {met} met (of {} feasible alone; every larger \
                 set ruled out by energy or search), with between {cpu_bound:.1} CPU-s (the sum \
                 of individually cheapest plans of the cheapest set not ruled out) and \
                 {cost_found:.1} (the schedule found); the search budget of {} nodes ran out",
                feasible.len(),
                self.budget
            )
        } else {
            format!(
                "bound: at most {met} deadlines (of {} feasible alone; larger sets ruled out by \
                 energy or search) with at least {cpu_bound:.1} CPU-s (the sum of individually \
                 cheapest plans of the cheapest set not ruled out); the best schedule found meets \
                 {met_found} with {cost_found:.1} CPU-s; the search budget of {} nodes ran out",
                feasible.len(),
                self.budget
            )
        };
        Oracle {
            met,
            cpu_seconds: if exact { cost_found } else { cpu_bound },
            exact,
            met_exact: met == met_found,
            method,
            feasible_alone: feasible.len(),
            schedule_met: met_found,
            schedule_cpu_seconds: cost_found,
            per_job,
            search_nodes: self.visited,
        }
    }
}

/// All `size`-element subsets of `items` (in lexicographic order), or `None` if there are more
/// than `cap`.
fn combinations(items: &[usize], size: usize, cap: usize) -> Option<Vec<Vec<usize>>> {
    let n = items.len();
    let mut count: u128 = 1;
    for i in 0..size {
        count = count * (n - i) as u128 / (i + 1) as u128;
    }
    if count > cap as u128 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut idx: Vec<usize> = (0..size).collect();
    loop {
        out.push(idx.iter().map(|&i| items[i]).collect());
        // Advance to the next combination.
        let Some(pos) = (0..size).rev().find(|&i| idx[i] < n - size + i) else {
            break;
        };
        idx[pos] += 1;
        for i in pos + 1..size {
            idx[i] = idx[i - 1] + 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
