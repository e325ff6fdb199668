//! The event loop: nodes, tasks, placement, progress at a constant rate between events, and
//! what the frameworks do (deployments, restarts, Chronos' next run, samples and reports).

use super::*;

mod decide;
mod outcome;

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
    /// What it has used so far, but for `usage.resizes` (left at zero): the resizes are the job's
    /// own record (`job.resizes`), counted into its result at the end.
    usage: Usage,
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
    /// Seconds spent waiting for an offer that fits.
    waited: f64,
    /// The restart under way shrinks the job.
    shrinking: bool,
    /// CPU-seconds of work thrown away by shrinking restarts.
    lost_by_shrinks: f64,
}

impl SimJob {
    /// Its task runs from `now`: its container's CPU counter starts at zero (a continuous job's
    /// new incarnation, or a Chronos job's next run), and the supervisor is told (`restored`:
    /// from a checkpoint).
    fn task_started(
        &mut self,
        log: &mut Option<Vec<Recorded>>,
        i: usize,
        now: f64,
        restored: bool,
    ) {
        // A new container (a continuous job's new incarnation, or a Chronos run): its CPU
        // counter starts at zero.
        self.incarnation += 1;
        self.cpu_base = self.usage.cpu_seconds_used;
        let started = Observation::Started {
            at: now,
            restored: Some(restored),
        };
        observe(log, now, i, &mut self.job, started);
    }

    /// What the collector reports at `now` of the CPU its current task has used.
    fn cpu_sample(&self, now: f64) -> Observation {
        Observation::CpuSample {
            at: now,
            source: format!("incarnation-{}", self.incarnation),
            cumulative_secs: self.usage.cpu_seconds_used - self.cpu_base,
        }
    }
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

pub(super) fn run_scenario(
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
                    usage: Usage::default(),
                    finished_at: None,
                    incarnation: 0,
                    cpu_base: 0.0,
                    waiting_since: 0.0,
                    last_node: None,
                    submitted: false,
                    want: None,
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
    if !scenario.jobs.is_empty() {
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
                    j.usage.cpu_seconds_allocated += j.held.as_f64() * dt;
                }
                if j.state == Some(TaskState::Waiting) {
                    j.waited += dt;
                }
                if j.state == Some(TaskState::Running) {
                    j.unit_progress = (j.unit_progress + rate * dt).min(1.0);
                    j.usage.cpu_seconds_used += rate * dt * t1;
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
        j.task_started(&mut self.log, i, now, false);
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
                        j.lost_by_shrinks += j.usage.cpu_seconds_used - j.usage.cpu_seconds_lost;
                    }
                    j.usage.cpu_seconds_lost = j.usage.cpu_seconds_used;
                    j.unit_progress = 0.0;
                    j.usage.restarts_lost += 1;
                }
                j.usage.restarts += 1;
                j.task_started(&mut self.log, i, now, checkpoint);
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
            if j.state != Some(TaskState::Running) {
                continue;
            }
            // The collector samples every container, a Chronos run's too.
            let sample = j.cpu_sample(now);
            observe(&mut self.log, now, i, &mut j.job, sample);
            if let WorkSpec::Continuous {
                reports_progress, ..
            } = &j.spec.work
            {
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
                    cpus_used: None,
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
                let sample = j.cpu_sample(now);
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
}
