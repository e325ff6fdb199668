//! A deterministic, seeded, discrete-event simulator of a Mesos cluster running QoS jobs under a
//! policy — the same [`Job`] model and the same [`Controller::decide`] the supervisor uses, with
//! the same context: the job's node's room and capacity, the claims of the jobs sharing it, the
//! resize mode, whether a node agent can resize in place.
//!
//! # Model
//! - **Nodes** have a CPU capacity. Tasks are placed, as Mesos offers would, on a node whose
//!   unreserved CPUs fit the task's allocation (least loaded first); otherwise they wait.
//! - **Sharing**: [`Sharing::Quota`] enforces each task's allocation as a hard CFS quota (what
//!   qos-elastic's shell-trap and testbed do); [`Sharing::Shares`] gives each task CPU shares
//!   proportional to its allocation with idle CPU redistributed (how Docker on Mesos ran the
//!   thesis' containers: `--cpu-shares`, no quota). A task never uses more CPUs than its
//!   threads (LINPACK/OpenMP starts one per core of its node).
//! - **Speed**: a unit of work (one Chronos iteration, or a whole Marathon job) takes
//!   `t(e) = α/min(e,1) + β/e` seconds at `e` effective CPUs ([`SpeedModel`]); CPU time consumed is
//!   the work done times `t(1)`.
//! - **Chronos** jobs: each iteration is deployed (seeded overhead, 30–45 s in the thesis), runs
//!   (its container sampled every `sample_period`, as the node collector does), and reports; the controller decides at registration and on each report, then the next
//!   iteration is launched with the job's allocation (as the thesis' forced runs did), where an
//!   offer fits — a task that fits nowhere waits, as on Mesos.
//! - **Marathon** jobs: deployed once, sampled every `sample_period` (CPU time, and the progress
//!   fraction when the application reports one), evaluated every policy period from
//!   registration on. A resize in restart mode restarts the task (paused for a seeded restart
//!   cost, possibly on another node): a job that checkpoints keeps its work, one that cannot
//!   starts again from zero and its CPU-seconds so far are *lost*. In place (node agents, see
//!   [`ClusterSpec::agents`]) the new quota applies at once.
//!
//! Between events every task progresses at a constant rate, so the next completion is computed
//! exactly; 30 simulated minutes of the thesis' case study take well under a millisecond per job.

mod engine;

use engine::run_scenario;
pub mod oracle;
mod scenario;

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

pub use scenario::{Scenario, ScenarioError, scenario};

use crate::control::{Context, Controller, NodeView, WAIT_GRACE};
use crate::cpu::Cpus;
use crate::decision::{Action, Class, Decision};
use crate::job::{Checkpointing, Framework, IterationReport, Job, Observation, Phase};
use crate::policy::Policy;
use crate::predictive::ResizeMode;
use crate::spec::QosSpec;
use crate::speedup::SpeedModel;

/// How a node's CPU is divided between its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// Each task gets exactly its allocation (hard quota).
    Quota,
    /// Proportional shares; idle CPU is used by whoever can.
    Shares,
}

/// The simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// CPU capacity of each node.
    pub nodes: Vec<Cpus>,
    /// How CPU is divided on a node.
    pub sharing: Sharing,
    /// Every node runs a node agent that can change a container's CPU quota in place (the
    /// collector); without, in-place resizes are impossible.
    #[serde(default)]
    pub agents: bool,
}

/// What a simulated job does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkSpec {
    /// A Chronos job: one speed model per iteration (they may differ, e.g. case 2's random N)
    /// and one deployment overhead per iteration, all drawn up front from the seed.
    Iterative {
        /// True speed of each iteration.
        iterations: Vec<SpeedModel>,
        /// Deployment overhead before each iteration, seconds.
        overheads: Vec<f64>,
    },
    /// A Marathon job.
    Continuous {
        /// True speed of the whole job.
        speed: SpeedModel,
        /// Deployment overhead of the first start, seconds.
        deploy: f64,
        /// Cost of each restart, seconds (cycled if more restarts happen).
        restart_costs: Vec<f64>,
        /// Whether the application reports its progress fraction (LINPACK does); if not, only
        /// its CPU time is known.
        reports_progress: bool,
        /// Whether a restart keeps its work (it checkpoints on SIGTERM); if not, every restart
        /// starts it again from zero.
        #[serde(default = "yes")]
        checkpoint: bool,
    },
}

/// One simulated job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Name.
    pub name: String,
    /// When it is submitted, seconds from the start of the run.
    pub submit_at: f64,
    /// The QoS target from its job file.
    pub qos: QosSpec,
    /// The `cpus` of its job file.
    pub cpus: Cpus,
    /// Threads it runs (the most CPUs it can use at once).
    pub threads: Cpus,
    /// What it does.
    pub work: WorkSpec,
    /// A label of the kind of job (`chronos`, `marathon/progress/checkpoint`, …) for reports.
    #[serde(default)]
    pub kind: String,
}

fn yes() -> bool {
    true
}

impl JobSpec {
    /// The framework the job runs on.
    pub fn framework(&self) -> Framework {
        match self.work {
            WorkSpec::Iterative { .. } => Framework::Chronos,
            WorkSpec::Continuous { .. } => Framework::Marathon,
        }
    }

    /// The finish time the job would reach alone on an idle node at `cpus` (no resizes), i.e.
    /// whether its deadline was achievable at all.
    pub fn finish_alone(&self, cpus: Cpus) -> f64 {
        let e = cpus.min(self.threads);
        match &self.work {
            WorkSpec::Iterative {
                iterations,
                overheads,
            } => {
                self.submit_at
                    + iterations
                        .iter()
                        .zip(overheads)
                        .map(|(m, o)| o + m.time(e))
                        .sum::<f64>()
            }
            WorkSpec::Continuous { speed, deploy, .. } => self.submit_at + deploy + speed.time(e),
        }
    }
}

/// Simulation knobs that are not the scenario's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// How often node collectors sample the containers (Marathon tasks and Chronos runs), seconds.
    pub sample_period: f64,
    /// Give up after this many simulated seconds past the last deadline.
    pub horizon_after_deadline: f64,
    /// How resizes take effect (the supervisor's `resize_mode`).
    pub resize_mode: ResizeMode,
    /// Also compute the clairvoyant oracle's schedule of the scenario ([`Totals::oracle_met`]).
    pub oracle: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            sample_period: 1.0,
            horizon_after_deadline: 3600.0,
            resize_mode: ResizeMode::Restart,
            oracle: false,
        }
    }
}

/// What a job used — or, summed, a run's jobs: the CPU-seconds allocated and consumed, the resizes
/// applied and the restarts they caused, with the work those threw away. One declaration for
/// [`JobResult`] and [`Totals`], which serialize it inline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Usage {
    /// CPU-seconds reserved: ∫ allocation dt over the tasks' lives.
    pub cpu_seconds_allocated: f64,
    /// CPU-seconds actually consumed.
    pub cpu_seconds_used: f64,
    /// Resizes applied.
    pub resizes: u32,
    /// Task restarts caused by resizes.
    pub restarts: u32,
    /// Restarts that started the work again from zero (the job could not checkpoint); absent
    /// from results written before it was counted.
    #[serde(default)]
    pub restarts_lost: u32,
    /// CPU-seconds consumed by work that a restart threw away; absent from results written
    /// before it was counted.
    #[serde(default)]
    pub cpu_seconds_lost: f64,
}

impl AddAssign for Usage {
    /// Sums every figure: the one place that lists what a usage sums.
    fn add_assign(&mut self, other: Usage) {
        self.cpu_seconds_allocated += other.cpu_seconds_allocated;
        self.cpu_seconds_used += other.cpu_seconds_used;
        self.resizes += other.resizes;
        self.restarts += other.restarts;
        self.restarts_lost += other.restarts_lost;
        self.cpu_seconds_lost += other.cpu_seconds_lost;
    }
}

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// Name.
    pub name: String,
    /// `chronos` or `marathon`.
    pub framework: Framework,
    /// Submission time, seconds from the start of the run.
    pub submitted_at: f64,
    /// Absolute deadline, seconds from the start of the run.
    pub deadline: f64,
    /// When the last work finished (`None`: still running at the horizon).
    pub finished_at: Option<f64>,
    /// Finished by the deadline.
    pub met: bool,
    /// Could it have been met at all (alone, at `cpu_max`, no resizes)?
    pub feasible: bool,
    /// The CPU-seconds it was allocated and used, its resizes and the restarts they caused
    /// (serialized inline: `cpu_seconds_allocated`, `cpu_seconds_used`, …).
    #[serde(flatten)]
    pub usage: Usage,
    /// The part of `usage.cpu_seconds_lost` thrown away by restarts that shrank the job.
    pub cpu_seconds_lost_by_shrinks: f64,
    /// Allocation at the end.
    pub final_cpus: Cpus,
    /// The kind of job ([`JobSpec::kind`]).
    pub kind: String,
    /// Seconds its tasks waited for a node with room (an offer that fits).
    pub waited: f64,
    /// CPU-seconds the oracle allocates to meet this job's deadline, when it meets it (and was
    /// asked for).
    pub oracle_cpu_seconds: Option<f64>,
}

/// Totals over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Totals {
    /// Jobs.
    pub jobs: usize,
    /// Deadlines met.
    pub met: usize,
    /// Deadlines that were feasible.
    pub feasible: usize,
    /// Feasible deadlines met.
    pub feasible_met: usize,
    /// Σ of the jobs' usage (serialized inline, like a job's).
    #[serde(flatten)]
    pub usage: Usage,
    /// Deadlines the clairvoyant oracle meets on the same nodes ([`oracle`]), when computed.
    #[serde(default)]
    pub oracle_met: Option<usize>,
    /// CPU-seconds the oracle allocates to the jobs it meets, when computed.
    #[serde(default)]
    pub oracle_cpu_seconds: Option<f64>,
    /// Whether the oracle's figures are exact (otherwise bounds: at most that many met, at least
    /// that many CPU-seconds).
    #[serde(default)]
    pub oracle_exact: Option<bool>,
}

impl Totals {
    /// Adds `other`'s counts and sums to these: the one place that lists what a total sums. The
    /// oracle's figures are summed where `other` has them; `oracle_exact` is per scenario and
    /// left as it is.
    pub fn add(&mut self, other: &Totals) {
        self.jobs += other.jobs;
        self.met += other.met;
        self.feasible += other.feasible;
        self.feasible_met += other.feasible_met;
        self.usage += other.usage;
        if let Some(m) = other.oracle_met {
            *self.oracle_met.get_or_insert(0) += m;
        }
        if let Some(c) = other.oracle_cpu_seconds {
            *self.oracle_cpu_seconds.get_or_insert(0.0) += c;
        }
    }
}

impl From<&JobResult> for Totals {
    /// One job's share of a run's totals (no oracle figures: those are the scenario's).
    fn from(r: &JobResult) -> Self {
        Self {
            jobs: 1,
            met: usize::from(r.met),
            feasible: usize::from(r.feasible),
            feasible_met: usize::from(r.feasible && r.met),
            usage: r.usage,
            ..Self::default()
        }
    }
}

/// A sampled point of a job's trajectory (for plots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Time, seconds from the start of the run.
    pub t: f64,
    /// Job index in the scenario.
    pub job: usize,
    /// Allocation.
    pub cpus: Cpus,
    /// Predicted finish minus deadline, seconds (positive: late), when the policy predicted.
    pub prediction_vs_deadline: Option<f64>,
    /// Fraction done.
    pub progress: f64,
    /// Consumed/desired CPU-time ratio (thesis Eq. 3), continuous jobs.
    pub ratio: Option<f64>,
    /// The class decided.
    pub class: Class,
    /// The allocation decided, when the decision resizes.
    pub resize_to: Option<Cpus>,
    /// The decision's reason, as the supervisor would log it.
    pub reason: String,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    /// Scenario name.
    pub scenario: String,
    /// Policy name.
    pub policy: String,
    /// Seed.
    pub seed: u64,
    /// How node CPU was shared.
    pub sharing: Sharing,
    /// Per job, in scenario order.
    pub jobs: Vec<JobResult>,
    /// Totals.
    pub totals: Totals,
    /// Trajectory samples taken at every decision.
    pub trace: Vec<TracePoint>,
}

/// What happened in a run, as the supervisor would have been told it — for replaying a run
/// through the service ([`simulate_recorded`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Recorded {
    /// Job `job` was registered and submitted.
    Submitted {
        /// When.
        at: f64,
        /// Index of the job in the scenario.
        job: usize,
    },
    /// A report or measurement of job `job` (not its resizes: those follow from decisions).
    Observed {
        /// When.
        at: f64,
        /// Index of the job in the scenario.
        job: usize,
        /// What was observed.
        observation: Observation,
    },
    /// A node as its agent's heartbeat shows it: the CPUs each job's task holds there.
    Node {
        /// When.
        at: f64,
        /// Index of the node.
        node: usize,
        /// Its CPUs.
        capacity: Cpus,
        /// `(job, CPUs held)` per task on it.
        held: Vec<(usize, Cpus)>,
    },
    /// The controller's verdict on job `job`.
    Decided {
        /// When.
        at: f64,
        /// Index of the job in the scenario.
        job: usize,
        /// The decision.
        decision: Decision,
    },
}

/// `job.observe(o)`, and the observation in `log` when there is one.
fn observe(log: &mut Option<Vec<Recorded>>, at: f64, i: usize, job: &mut Job, o: Observation) {
    if let Some(log) = log {
        if !matches!(o, Observation::Resized { .. }) {
            log.push(Recorded::Observed {
                at,
                job: i,
                observation: o.clone(),
            });
        }
    }
    let _ = job.observe(o);
}

/// [`simulate`], also returning everything the supervisor would have seen and decided, in
/// order.
pub fn simulate_recorded(
    scenario: &Scenario,
    policy: &Policy,
    cfg: SimConfig,
) -> (SimResult, Vec<Recorded>) {
    let mut log = Some(Vec::new());
    let r = run_scenario(scenario, policy, cfg, &mut log);
    (r, log.unwrap_or_default())
}

/// Runs `scenario` under `policy`, resizes taking effect by `cfg.resize_mode`.
pub fn simulate(scenario: &Scenario, policy: &Policy, cfg: SimConfig) -> SimResult {
    run_scenario(scenario, policy, cfg, &mut None)
}

#[cfg(test)]
mod tests;
