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
//! - **Chronos** jobs: each iteration is deployed (seeded overhead, 30–45 s in the thesis), runs,
//!   and reports; the controller decides at registration and on each report, then the next
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

pub mod oracle;
mod scenario;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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
    /// How often node collectors sample Marathon containers, seconds.
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
    /// CPU-seconds reserved for it: ∫ allocation dt over its tasks' lives.
    pub cpu_seconds_allocated: f64,
    /// CPU-seconds it actually consumed.
    pub cpu_seconds_used: f64,
    /// Resizes applied.
    pub resizes: u32,
    /// Task restarts caused by resizes.
    pub restarts: u32,
    /// Restarts that started the work again from zero (the job could not checkpoint).
    pub restarts_lost: u32,
    /// CPU-seconds consumed by work that a restart threw away.
    pub cpu_seconds_lost: f64,
    /// The part of `cpu_seconds_lost` thrown away by restarts that shrank the job.
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
    /// Σ CPU-seconds allocated.
    pub cpu_seconds_allocated: f64,
    /// Σ CPU-seconds used.
    pub cpu_seconds_used: f64,
    /// Σ resizes.
    pub resizes: u32,
    /// Σ restarts.
    pub restarts: u32,
    /// Σ restarts that lost the work done.
    #[serde(default)]
    pub restarts_lost: u32,
    /// Σ CPU-seconds of work lost by restarts.
    #[serde(default)]
    pub cpu_seconds_lost: f64,
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum EventKind {
    Submit(usize),
    Launch(usize),
    DeployDone(usize),
    RestartDone(usize),
    Sample,
    Monitor(usize),
    /// A task waiting for a node with room is looked at again.
    Recheck(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Event {
    at: f64,
    seq: u64,
    kind: EventKind,
}

impl Eq for Event {}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on (at, seq).
        other.at.total_cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TaskState {
    /// Not placed: waiting for an offer that fits.
    Waiting,
    /// Placed, container starting.
    Deploying,
    /// Computing.
    Running,
    /// Checkpointed, restarting to a new size.
    Restarting,
}

#[derive(Debug, Clone)]
struct SimJob {
    spec: JobSpec,
    job: Job,
    state: Option<TaskState>,
    node: Option<usize>,
    /// Allocation held on the node by the current task.
    held: Cpus,
    /// Progress through the current unit (iteration, or the whole job).
    unit_progress: f64,
    /// Index of the current iteration.
    iteration: usize,
    iteration_started_at: f64,
    effective: Cpus,
    cpu_used: f64,
    allocated: f64,
    restarts: u32,
    finished_at: Option<f64>,
    incarnation: u32,
    /// CPU-seconds used before the current incarnation (its counter starts at zero).
    cpu_base: f64,
    waiting_since: f64,
    /// The node the job last ran on (the supervisor's view of where it is).
    last_node: Option<usize>,
    /// Registered with the controller and submitted to its framework.
    submitted: bool,
    /// Its last uncapped wish (its claim on a short node).
    want: Option<Cpus>,
    /// Restarts that threw the work away.
    restarts_lost: u32,
    /// CPU-seconds of work thrown away.
    lost: f64,
    /// Seconds spent waiting for an offer that fits.
    waited: f64,
    /// The restart under way shrinks the job.
    shrinking: bool,
    /// CPU-seconds of work thrown away by shrinking restarts.
    lost_by_shrinks: f64,
}

struct Sim {
    /// What the supervisor would have seen and decided, when recording.
    log: Option<Vec<Recorded>>,
    now: f64,
    seq: u64,
    events: BinaryHeap<Event>,
    nodes: Vec<Cpus>,
    sharing: Sharing,
    agents: bool,
    jobs: Vec<SimJob>,
    ctl: Controller,
    cfg: SimConfig,
    trace: Vec<TracePoint>,
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

fn run_scenario(
    scenario: &Scenario,
    policy: &Policy,
    cfg: SimConfig,
    log: &mut Option<Vec<Recorded>>,
) -> SimResult {
    let mut sim = Sim {
        log: log.take(),
        now: 0.0,
        seq: 0,
        events: BinaryHeap::new(),
        nodes: scenario.cluster.nodes.clone(),
        sharing: scenario.cluster.sharing,
        agents: scenario.cluster.agents,
        jobs: scenario
            .jobs
            .iter()
            .map(|spec| {
                let qos = spec.qos.resolve(spec.submit_at);
                let job = match &spec.work {
                    WorkSpec::Iterative { iterations, .. } => {
                        Job::iterative(&spec.name, qos, iterations.len() as u32, spec.cpus)
                    }
                    WorkSpec::Continuous { checkpoint, .. } => {
                        // The launcher tells the supervisor from the job's checkpoint strategy.
                        let mut job = Job::continuous(&spec.name, qos, spec.cpus);
                        job.checkpointing = if *checkpoint {
                            Checkpointing::Able
                        } else {
                            Checkpointing::Unable
                        };
                        job
                    }
                };
                SimJob {
                    spec: spec.clone(),
                    job,
                    state: None,
                    node: None,
                    held: Cpus::ZERO,
                    unit_progress: 0.0,
                    iteration: 0,
                    iteration_started_at: 0.0,
                    effective: Cpus::ZERO,
                    cpu_used: 0.0,
                    allocated: 0.0,
                    restarts: 0,
                    finished_at: None,
                    incarnation: 0,
                    cpu_base: 0.0,
                    waiting_since: 0.0,
                    last_node: None,
                    submitted: false,
                    want: None,
                    restarts_lost: 0,
                    lost: 0.0,
                    waited: 0.0,
                    shrinking: false,
                    lost_by_shrinks: 0.0,
                }
            })
            .collect(),
        ctl: Controller::new(*policy, cfg.resize_mode),
        cfg,
        trace: Vec::new(),
    };
    for (i, j) in scenario.jobs.iter().enumerate() {
        sim.push(j.submit_at, EventKind::Submit(i));
    }
    if scenario
        .jobs
        .iter()
        .any(|j| j.framework() == Framework::Marathon)
    {
        sim.push(cfg.sample_period, EventKind::Sample);
    }
    let horizon = sim
        .jobs
        .iter()
        .map(|j| j.job.qos.deadline_at)
        .fold(0.0, f64::max)
        + cfg.horizon_after_deadline;
    sim.run(horizon);
    let r = sim.result(scenario);
    *log = sim.log.take();
    r
}

impl Sim {
    fn push(&mut self, at: f64, kind: EventKind) {
        self.seq += 1;
        self.events.push(Event {
            at,
            seq: self.seq,
            kind,
        });
    }

    fn active(&self) -> bool {
        self.jobs
            .iter()
            .any(|j| j.finished_at.is_none() && !j.job.phase.is_terminal())
    }

    fn run(&mut self, horizon: f64) {
        while self.active() {
            self.rebalance();
            let next_event = self.events.peek().map_or(f64::INFINITY, |e| e.at);
            let (next_done, who) = self.next_completion();
            let t = next_event.min(next_done);
            if !t.is_finite() || t > horizon {
                self.advance(horizon.max(self.now));
                break;
            }
            self.advance(t);
            if next_done <= next_event {
                if let Some(i) = who {
                    self.complete_unit(i);
                }
            } else if let Some(ev) = self.events.pop() {
                self.handle(ev.kind);
            }
        }
    }

    fn unit_model(&self, i: usize) -> SpeedModel {
        let j = &self.jobs[i];
        match &j.spec.work {
            WorkSpec::Iterative { iterations, .. } => {
                iterations[j.iteration.min(iterations.len() - 1)]
            }
            WorkSpec::Continuous { speed, .. } => *speed,
        }
    }

    /// Recomputes every running task's effective CPUs.
    fn rebalance(&mut self) {
        for n in 0..self.nodes.len() {
            let running: Vec<usize> = (0..self.jobs.len())
                .filter(|&i| {
                    self.jobs[i].node == Some(n) && self.jobs[i].state == Some(TaskState::Running)
                })
                .collect();
            match self.sharing {
                Sharing::Quota => {
                    for &i in &running {
                        self.jobs[i].effective = self.jobs[i].held.min(self.jobs[i].spec.threads);
                    }
                }
                Sharing::Shares => {
                    // Water-filling: shares ∝ allocation, capped by threads; leftovers go round.
                    let mut left = self.nodes[n].as_f64();
                    let mut open: Vec<usize> = running.clone();
                    let mut grant = vec![0.0_f64; self.jobs.len()];
                    while !open.is_empty() && left > 1e-9 {
                        let weight: f64 = open
                            .iter()
                            .map(|&i| self.jobs[i].held.as_f64().max(0.001))
                            .sum();
                        let mut next = Vec::new();
                        let mut used = 0.0;
                        for &i in &open {
                            let share = left * self.jobs[i].held.as_f64().max(0.001) / weight;
                            let cap = self.jobs[i].spec.threads.as_f64() - grant[i];
                            let g = share.min(cap);
                            grant[i] += g;
                            used += g;
                            if cap - g > 1e-9 {
                                next.push(i);
                            }
                        }
                        left -= used;
                        if next.len() == open.len() {
                            break;
                        }
                        open = next;
                    }
                    for &i in &running {
                        self.jobs[i].effective = Cpus::from_f64(grant[i]);
                    }
                }
            }
        }
    }

    fn rate(&self, i: usize) -> f64 {
        let t = self.unit_model(i).time(self.jobs[i].effective);
        if t.is_finite() && t > 0.0 {
            1.0 / t
        } else {
            0.0
        }
    }

    fn next_completion(&self) -> (f64, Option<usize>) {
        let mut best = (f64::INFINITY, None);
        for (i, j) in self.jobs.iter().enumerate() {
            if j.state == Some(TaskState::Running) {
                let r = self.rate(i);
                if r > 0.0 {
                    let t = self.now + (1.0 - j.unit_progress).max(0.0) / r;
                    if t < best.0 {
                        best = (t, Some(i));
                    }
                }
            }
        }
        best
    }

    fn advance(&mut self, t: f64) {
        let dt = t - self.now;
        if dt > 0.0 {
            for i in 0..self.jobs.len() {
                let rate = self.rate(i);
                let t1 = self.unit_model(i).t1();
                let j = &mut self.jobs[i];
                if matches!(
                    j.state,
                    Some(TaskState::Deploying | TaskState::Running | TaskState::Restarting)
                ) {
                    j.allocated += j.held.as_f64() * dt;
                }
                if j.state == Some(TaskState::Waiting) {
                    j.waited += dt;
                }
                if j.state == Some(TaskState::Running) {
                    j.unit_progress = (j.unit_progress + rate * dt).min(1.0);
                    j.cpu_used += rate * dt * t1;
                }
            }
        }
        self.now = t;
    }

    fn handle(&mut self, kind: EventKind) {
        match kind {
            EventKind::Submit(i) => self.on_submit(i),
            EventKind::Launch(i) => self.try_launch(i),
            EventKind::DeployDone(i) => self.on_deployed(i),
            EventKind::RestartDone(i) => self.on_restored(i),
            EventKind::Sample => self.on_sample(),
            EventKind::Monitor(i) => self.on_monitor(i),
            EventKind::Recheck(i) => self.on_recheck(i),
        }
    }

    fn on_submit(&mut self, i: usize) {
        // Registered, then submitted: the supervisor reconciles it at once (the predictive
        // policy sizes it before its first run; the thesis policy waits for data).
        self.jobs[i].submitted = true;
        if let Some(log) = &mut self.log {
            log.push(Recorded::Submitted {
                at: self.now,
                job: i,
            });
        }
        self.decide_and_apply(i);
        self.try_launch(i);
        if let Some(period) = self.ctl.policy.period(&self.jobs[i].job) {
            self.push(self.now + period, EventKind::Monitor(i));
        }
    }

    fn free(&self, n: usize) -> Cpus {
        let used = self
            .jobs
            .iter()
            .filter(|j| j.node == Some(n))
            .fold(Cpus::ZERO, |a, j| a + j.held);
        self.nodes[n].saturating_sub(used)
    }

    /// Where a task of size `want` goes. Under hard quotas, best fit (the node whose free CPU
    /// fits most tightly, keeping large holes for large tasks); under shares, the least loaded
    /// node (spreading lets each task use more idle CPU). Lowest index on ties.
    fn best_fit(&self, want: Cpus) -> Option<usize> {
        let fits = (0..self.nodes.len()).filter(|&n| self.free(n) >= want);
        match self.sharing {
            Sharing::Quota => fits.min_by(|&a, &b| self.free(a).cmp(&self.free(b)).then(a.cmp(&b))),
            Sharing::Shares => {
                fits.max_by(|&a, &b| self.free(a).cmp(&self.free(b)).then(b.cmp(&a)))
            }
        }
    }

    /// Places job `i`'s next task where an offer fits, or leaves it waiting for CPU to free up
    /// (Mesos frameworks wait for an offer that fits).
    fn try_launch(&mut self, i: usize) {
        let want = self.jobs[i].job.cpus;
        let Some(n) = self.best_fit(want) else {
            let j = &mut self.jobs[i];
            if j.state != Some(TaskState::Waiting) {
                j.waiting_since = self.now;
                self.push(self.now + WAIT_GRACE, EventKind::Recheck(i));
            }
            self.jobs[i].state = Some(TaskState::Waiting);
            return;
        };
        let j = &mut self.jobs[i];
        j.node = Some(n);
        j.last_node = Some(n);
        j.held = want;
        j.state = Some(TaskState::Deploying);
        let deploy = match &j.spec.work {
            WorkSpec::Iterative { overheads, .. } => {
                overheads[j.iteration.min(overheads.len() - 1)]
            }
            WorkSpec::Continuous { deploy, .. } => *deploy,
        };
        self.push(self.now + deploy, EventKind::DeployDone(i));
    }

    /// Launches waiting tasks when CPU frees, in the order they started waiting.
    fn launch_waiting(&mut self) {
        let mut waiting: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].state == Some(TaskState::Waiting))
            .collect();
        waiting.sort_by(|&a, &b| {
            self.jobs[a]
                .waiting_since
                .total_cmp(&self.jobs[b].waiting_since)
        });
        for i in waiting {
            self.try_launch(i);
        }
    }

    fn on_deployed(&mut self, i: usize) {
        let now = self.now;
        let j = &mut self.jobs[i];
        if j.state != Some(TaskState::Deploying) {
            // Restarted to a new size while it was still deploying: that task is gone.
            return;
        }
        j.state = Some(TaskState::Running);
        j.iteration_started_at = now;
        if let WorkSpec::Continuous { .. } = j.spec.work {
            j.incarnation += 1;
            j.cpu_base = j.cpu_used;
        }
        observe(
            &mut self.log,
            now,
            i,
            &mut j.job,
            Observation::Started {
                at: now,
                restored: Some(false),
            },
        );
    }

    fn on_restored(&mut self, i: usize) {
        let now = self.now;
        let j = &mut self.jobs[i];
        // The restarted task needs room for its new size; it may land on another node.
        let want = j.job.cpus;
        j.node = None;
        j.held = Cpus::ZERO;
        let fit = self.best_fit(want);
        let j = &mut self.jobs[i];
        let WorkSpec::Continuous { checkpoint, .. } = j.spec.work else {
            return;
        };
        match fit {
            Some(n) => {
                j.node = Some(n);
                j.last_node = Some(n);
                j.held = want;
                j.state = Some(TaskState::Running);
                if !checkpoint {
                    // Started again from zero: everything this job consumed so far was for
                    // nothing.
                    if j.shrinking {
                        j.lost_by_shrinks += j.cpu_used - j.lost;
                    }
                    j.lost = j.cpu_used;
                    j.unit_progress = 0.0;
                    j.restarts_lost += 1;
                }
                j.incarnation += 1;
                j.cpu_base = j.cpu_used;
                j.restarts += 1;
                observe(
                    &mut self.log,
                    now,
                    i,
                    &mut j.job,
                    Observation::Started {
                        at: now,
                        restored: Some(checkpoint),
                    },
                );
            }
            None => {
                // No room anywhere yet: stay checkpointed and try again shortly.
                j.state = Some(TaskState::Restarting);
                self.push(now + 5.0, EventKind::RestartDone(i));
            }
        }
    }

    fn on_sample(&mut self) {
        let now = self.now;
        if let Some(log) = &mut self.log {
            for (n, &capacity) in self.nodes.iter().enumerate() {
                let held = (0..self.jobs.len())
                    .filter(|&i| self.jobs[i].node == Some(n))
                    .map(|i| (i, self.jobs[i].held))
                    .collect();
                log.push(Recorded::Node {
                    at: now,
                    node: n,
                    capacity,
                    held,
                });
            }
        }
        for (i, j) in self.jobs.iter_mut().enumerate() {
            if let (
                Some(TaskState::Running),
                WorkSpec::Continuous {
                    reports_progress, ..
                },
            ) = (j.state, &j.spec.work)
            {
                let sample = Observation::CpuSample {
                    at: now,
                    source: format!("incarnation-{}", j.incarnation),
                    cumulative_secs: j.cpu_used - j.cpu_base,
                };
                observe(&mut self.log, now, i, &mut j.job, sample);
                if *reports_progress {
                    let progress = Observation::Progress {
                        at: now,
                        fraction: j.unit_progress,
                    };
                    observe(&mut self.log, now, i, &mut j.job, progress);
                }
            }
        }
        if self.active() {
            self.push(now + self.cfg.sample_period, EventKind::Sample);
        }
    }

    /// A task still waiting for room after [`WAIT_GRACE`]: the supervisor sees no node holding
    /// it and decides again with what is free; then again every [`WAIT_GRACE`] while it waits.
    fn on_recheck(&mut self, i: usize) {
        if self.jobs[i].state != Some(TaskState::Waiting) {
            return;
        }
        self.decide_and_apply(i);
        if self.jobs[i].state == Some(TaskState::Waiting) {
            self.push(self.now + WAIT_GRACE, EventKind::Recheck(i));
        }
    }

    fn on_monitor(&mut self, i: usize) {
        if self.jobs[i].finished_at.is_some() || self.jobs[i].job.phase.is_terminal() {
            return;
        }
        self.decide_and_apply(i);
        if let Some(period) = self.ctl.policy.period(&self.jobs[i].job) {
            self.push(self.now + period, EventKind::Monitor(i));
        }
    }

    fn complete_unit(&mut self, i: usize) {
        let now = self.now;
        let n_iter;
        {
            let j = &mut self.jobs[i];
            j.unit_progress = 1.0;
            n_iter = j.iteration;
        }
        match self.jobs[i].spec.work {
            WorkSpec::Iterative { .. } => {
                let j = &mut self.jobs[i];
                let report = IterationReport {
                    started_at: j.iteration_started_at,
                    finished_at: now,
                    hostname: format!("node{}", j.node.unwrap_or(0)),
                    cpus: Cpus::ZERO,
                };
                observe(
                    &mut self.log,
                    now,
                    i,
                    &mut j.job,
                    Observation::Iteration(report),
                );
                j.state = None;
                j.node = None;
                j.held = Cpus::ZERO;
                j.iteration = n_iter + 1;
                j.unit_progress = 0.0;
                self.decide_and_apply(i);
                let j = &mut self.jobs[i];
                if j.job.remaining_iterations() == 0 {
                    j.finished_at = Some(now);
                } else {
                    let sleep = match self.ctl.policy {
                        Policy::Thesis(c) => c.sleeping_time,
                        Policy::Predictive(_) | Policy::Static(_) => 0.0,
                    };
                    self.push(now + sleep, EventKind::Launch(i));
                }
            }
            WorkSpec::Continuous { .. } => {
                let j = &mut self.jobs[i];
                let sample = Observation::CpuSample {
                    at: now,
                    source: format!("incarnation-{}", j.incarnation),
                    cumulative_secs: j.cpu_used - j.cpu_base,
                };
                observe(&mut self.log, now, i, &mut j.job, sample);
                let ended = Observation::Ended {
                    at: now,
                    success: true,
                };
                observe(&mut self.log, now, i, &mut j.job, ended);
                j.finished_at = Some(now);
                j.state = None;
                j.node = None;
                j.held = Cpus::ZERO;
            }
        }
        self.launch_waiting();
    }

    /// What the supervisor would know of job `i`'s node at this instant: the node it runs (or
    /// last ran) on, its room there, and the claims of the other jobs on it.
    fn context(&self, i: usize) -> Context {
        let now = self.now;
        let j = &self.jobs[i];
        let node = j.node.or(j.last_node).map(|n| {
            let own = if j.node == Some(n) {
                j.held
            } else {
                Cpus::ZERO
            };
            let peers = self
                .jobs
                .iter()
                .enumerate()
                .filter(|&(k, p)| {
                    k != i
                        && p.submitted
                        && p.finished_at.is_none()
                        && !p.job.phase.is_terminal()
                        && p.node.or(p.last_node) == Some(n)
                })
                .map(|(_, p)| self.ctl.claim(&p.job, p.want, now))
                .collect();
            NodeView {
                capacity: self.nodes[n],
                room: self.free(n) + own,
                peers,
                in_place: self.agents,
            }
        });
        let unplaced_room = (0..self.nodes.len()).map(|n| self.free(n)).max();
        Context {
            now,
            node,
            unplaced_room,
            in_framework: j.submitted,
            idle_for: (j.state == Some(TaskState::Waiting)).then_some(now - j.waiting_since),
        }
    }

    fn decide_and_apply(&mut self, i: usize) {
        let now = self.now;
        let ctx = self.context(i);
        let verdict = self.ctl.decide(&self.jobs[i].job, &ctx);
        let decision = &verdict.decision;
        if let Some(log) = &mut self.log {
            log.push(Recorded::Decided {
                at: now,
                job: i,
                decision: decision.clone(),
            });
        }
        {
            let j = &mut self.jobs[i];
            j.want = verdict.want;
            self.trace.push(TracePoint {
                t: now,
                job: i,
                cpus: j.job.cpus,
                prediction_vs_deadline: decision
                    .figures
                    .prediction
                    .map(|p| p - j.job.qos.deadline_at),
                progress: j.job.progress(),
                ratio: decision.figures.ratio,
                class: decision.class,
                resize_to: decision.resize_to(),
                reason: decision.reason.clone(),
            });
        }
        let Action::Resize { cpus } = decision.action else {
            return;
        };
        let j = &mut self.jobs[i];
        let live = matches!(j.state, Some(TaskState::Deploying | TaskState::Running));
        match (&j.spec.work, verdict.mode, live) {
            // Iterative jobs: applies to the next iteration (the job is re-posted); continuous
            // jobs not running yet: their task starts at the new size.
            (WorkSpec::Iterative { .. }, _, _) | (WorkSpec::Continuous { .. }, _, false) => {
                if j.state != Some(TaskState::Restarting) {
                    let _ = j.job.observe(Observation::Resized {
                        at: now,
                        cpus,
                        restart: false,
                    });
                }
                if j.state == Some(TaskState::Waiting) {
                    // Re-posted at a size that may fit now.
                    self.try_launch(i);
                }
            }
            (WorkSpec::Continuous { .. }, ResizeMode::InPlace, true) => {
                // The quota changes at once; a grow takes only what the node has free.
                let room = j.node.map_or(Cpus::ZERO, |n| self.free(n)) + self.jobs[i].held;
                let j = &mut self.jobs[i];
                let cpus = cpus.min(room);
                if cpus != j.held {
                    j.held = cpus;
                    let _ = j.job.observe(Observation::Resized {
                        at: now,
                        cpus,
                        restart: false,
                    });
                }
            }
            (WorkSpec::Continuous { restart_costs, .. }, ResizeMode::Restart, true) => {
                let cost = restart_costs[(j.restarts as usize) % restart_costs.len().max(1)];
                j.shrinking = cpus < j.job.cpus;
                let _ = j.job.observe(Observation::Resized {
                    at: now,
                    cpus,
                    restart: true,
                });
                j.state = Some(TaskState::Restarting);
                // The checkpointing task keeps its old reservation until it is gone.
                self.push(now + cost, EventKind::RestartDone(i));
            }
        }
    }

    fn result(&self, scenario: &Scenario) -> SimResult {
        let (_, cpu_max) = self.ctl.policy.bounds();
        // The clairvoyant schedule of the same scenario (Quota sharing: what it assumes); with
        // the policy's own allocation bounds and grid.
        let best = (self.cfg.oracle && scenario.cluster.sharing == Sharing::Quota)
            .then(|| {
                let (cpu_min, cpu_max) = self.ctl.policy.bounds();
                let granularity = match self.ctl.policy {
                    Policy::Predictive(c) | Policy::Static(c) => c.granularity,
                    Policy::Thesis(_) => Cpus::from_milli(100),
                };
                let bounds = oracle::OracleBounds {
                    cpu_min,
                    cpu_max,
                    granularity,
                };
                oracle::oracle(&self.nodes, &oracle::oracle_jobs(scenario), &bounds).ok()
            })
            .flatten();
        let jobs: Vec<JobResult> = self
            .jobs
            .iter()
            .enumerate()
            .map(|(k, j)| {
                let deadline = j.job.qos.deadline_at;
                let finished_at = j.finished_at;
                JobResult {
                    name: j.spec.name.clone(),
                    framework: j.spec.framework(),
                    submitted_at: j.spec.submit_at,
                    deadline,
                    finished_at,
                    met: finished_at.is_some_and(|f| f <= deadline)
                        && !matches!(j.job.phase, Phase::Failed { .. }),
                    feasible: j.spec.finish_alone(cpu_max) <= deadline,
                    cpu_seconds_allocated: j.allocated,
                    cpu_seconds_used: j.cpu_used,
                    resizes: j.job.resizes.len() as u32,
                    restarts: j.restarts,
                    restarts_lost: j.restarts_lost,
                    cpu_seconds_lost: j.lost,
                    cpu_seconds_lost_by_shrinks: j.lost_by_shrinks,
                    final_cpus: j.job.cpus,
                    kind: j.spec.kind.clone(),
                    waited: j.waited,
                    oracle_cpu_seconds: best
                        .as_ref()
                        .and_then(|o| o.per_job.get(k))
                        .filter(|p| p.met)
                        .map(|p| p.cpu_seconds),
                }
            })
            .collect();
        let mut totals = Totals {
            jobs: jobs.len(),
            ..Totals::default()
        };
        for r in &jobs {
            totals.met += usize::from(r.met);
            totals.feasible += usize::from(r.feasible);
            totals.feasible_met += usize::from(r.feasible && r.met);
            totals.cpu_seconds_allocated += r.cpu_seconds_allocated;
            totals.cpu_seconds_used += r.cpu_seconds_used;
            totals.resizes += r.resizes;
            totals.restarts += r.restarts;
            totals.restarts_lost += r.restarts_lost;
            totals.cpu_seconds_lost += r.cpu_seconds_lost;
        }
        if let Some(o) = &best {
            totals.oracle_met = Some(o.met);
            totals.oracle_cpu_seconds = Some(o.cpu_seconds);
            totals.oracle_exact = Some(o.exact);
        }
        SimResult {
            scenario: scenario.name.clone(),
            policy: self.ctl.policy.name().into(),
            seed: scenario.seed,
            sharing: self.sharing,
            jobs,
            totals,
            trace: self.trace.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
