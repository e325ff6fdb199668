//! The thesis case studies and random mixes, built deterministically from a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{ClusterSpec, JobSpec, Sharing, WorkSpec};
use crate::cpu::Cpus;
use crate::spec::{Deadline, QosSpec};
use crate::speedup::SpeedModel;

/// A complete simulated experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Name (`case1`, `random:7`, …).
    pub name: String,
    /// Seed every random draw came from.
    pub seed: u64,
    /// The cluster.
    pub cluster: ClusterSpec,
    /// The jobs, in submission order.
    pub jobs: Vec<JobSpec>,
}

impl Scenario {
    /// Scenario `name` of `jobs` (put in submission order) on the thesis' cluster.
    fn on_thesis_cluster(
        name: String,
        seed: u64,
        sharing: Sharing,
        mut jobs: Vec<JobSpec>,
    ) -> Self {
        jobs.sort_by(|a, b| a.submit_at.total_cmp(&b.submit_at));
        Self {
            name,
            seed,
            cluster: thesis_cluster(sharing),
            jobs,
        }
    }
}

/// An unknown scenario name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario {0:?} (expected case1, case2, case3, random:SEED or mixed:SEED)")]
pub struct ScenarioError(pub String);

/// LINPACK seconds at 1 and 2 CPUs measured in the thesis (Table 1), by matrix order.
const LINPACK: [(f64, f64, f64); 3] = [
    (3500.0, 92.36, 66.32),
    (4000.0, 162.75, 113.2),
    (6000.0, 480.4, 362.2),
];

/// True speed of LINPACK at matrix order `n`: log-log interpolation between the thesis'
/// measurements (extrapolated with the nearest segment's slope).
pub(crate) fn linpack(n: f64) -> SpeedModel {
    let seg = if n <= LINPACK[1].0 {
        (LINPACK[0], LINPACK[1])
    } else {
        (LINPACK[1], LINPACK[2])
    };
    let (a, b) = seg;
    let interp = |ya: f64, yb: f64| {
        let k = (yb.ln() - ya.ln()) / (b.0.ln() - a.0.ln());
        (ya.ln() + k * (n.ln() - a.0.ln())).exp()
    };
    SpeedModel::from_two_points(interp(a.1, b.1), interp(a.2, b.2))
}

fn thesis_cluster(sharing: Sharing) -> ClusterSpec {
    ClusterSpec {
        nodes: vec![Cpus::from_milli(2000); 5],
        sharing,
        agents: true,
    }
}

fn noisy(rng: &mut ChaCha8Rng, m: SpeedModel, noise: f64) -> SpeedModel {
    let f = 1.0 + rng.random_range(-noise..=noise);
    SpeedModel {
        alpha: m.alpha * f,
        beta: m.beta * f,
    }
}

/// Table 1 of the thesis: (name, iterations, QoS duration, matrix order).
const CASE1: [(&str, usize, f64, f64); 6] = [
    ("openmpLinpack1", 4, 400.0, 6000.0),
    ("openmpLinpack2", 4, 400.0, 6000.0),
    ("openmpLinpack3", 13, 130.0, 4000.0),
    ("openmpLinpack4", 11, 130.0, 4000.0),
    ("openmpLinpack5", 12, 130.0, 4000.0),
    ("openmpLinpack6", 14, 80.0, 3500.0),
];

fn chronos_case(name: &str, seed: u64, n_jitter: f64, sharing: Sharing) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let jobs = CASE1
        .iter()
        .enumerate()
        .map(|(k, &(job, iterations, duration, n))| {
            let models = (0..iterations)
                .map(|_| {
                    let jitter = if n_jitter > 0.0 {
                        rng.random_range(-n_jitter..=n_jitter)
                    } else {
                        0.0
                    };
                    noisy(&mut rng, linpack(n + jitter), 0.03)
                })
                .collect();
            let overheads = (0..iterations)
                .map(|_| rng.random_range(30.0..=45.0))
                .collect();
            JobSpec {
                name: job.into(),
                submit_at: 2.0 * k as f64,
                qos: QosSpec {
                    duration,
                    deadline: Deadline::Relative(1800.0),
                    desv_deadline: 0.2,
                },
                cpus: Cpus::ONE,
                threads: Cpus::from_milli(2000),
                work: WorkSpec::Iterative {
                    iterations: models,
                    overheads,
                },
                kind: "chronos/iterations/linpack".into(),
            }
        })
        .collect();
    Scenario::on_thesis_cluster(name.into(), seed, sharing, jobs)
}

fn case3(seed: u64, sharing: Sharing) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let restart_costs = (0..16).map(|_| rng.random_range(15.0..=25.0)).collect();
    let job = JobSpec {
        name: "openmplinpack1".into(),
        submit_at: 0.0,
        qos: QosSpec {
            duration: 400.0,
            deadline: Deadline::Relative(480.0),
            desv_deadline: 0.1,
        },
        cpus: Cpus::ONE,
        threads: Cpus::from_milli(2000),
        work: WorkSpec::Continuous {
            speed: noisy(&mut rng, linpack(6000.0), 0.02),
            deploy: rng.random_range(5.0..=10.0),
            restart_costs,
            reports_progress: true,
            checkpoint: true,
        },
        kind: "marathon/progress/checkpoint/linpack".into(),
    };
    Scenario::on_thesis_cluster("case3".into(), seed, sharing, vec![job])
}

/// What the user of job `index` of a random workload files, drawn in this order in both random
/// workloads before the job's own draws.
struct Filed {
    index: usize,
    /// The user's estimate of the 1-CPU duration, off by up to ±30 %.
    estimate: f64,
    /// Deadline factor against what the job needs at 1 CPU: < 0.75 is usually infeasible even
    /// at 2 CPUs.
    factor: f64,
    submit_at: f64,
    cpus: Cpus,
    threads: Cpus,
}

impl Filed {
    /// Draws the filing of job `index`, whose 1-CPU duration is `t1`, that runs `threads` and
    /// files from `min_tenths` tenths of a CPU up to 1.5 CPU.
    fn draw(rng: &mut ChaCha8Rng, index: usize, t1: f64, min_tenths: u32, threads: Cpus) -> Self {
        let estimate = (t1 * rng.random_range(0.7..=1.3)).round().max(1.0);
        let factor = rng.random_range(0.65..=1.8);
        let submit_at = rng.random_range(0.0..=600.0_f64).round();
        let cpus = Cpus::from_milli(rng.random_range(min_tenths..=15) * 100);
        Self {
            index,
            estimate,
            factor,
            submit_at,
            cpus,
            threads,
        }
    }

    /// The `framework` job (`chronos`, `marathon`) of `work` and `kind`, filed with `duration`,
    /// due `factor` times `need` (its seconds at 1 CPU) after its submission.
    fn job(
        &self,
        framework: &str,
        duration: f64,
        need: f64,
        desv_deadline: f64,
        work: WorkSpec,
        kind: String,
    ) -> JobSpec {
        JobSpec {
            name: format!("{framework}-{}", self.index),
            submit_at: self.submit_at,
            qos: QosSpec {
                duration,
                deadline: Deadline::Relative((need * self.factor).round()),
                desv_deadline,
            },
            cpus: self.cpus,
            threads: self.threads,
            work,
            kind,
        }
    }
}

/// A random mix of Chronos and Marathon LINPACK jobs on the thesis' cluster, with deadlines
/// drawn around what each job needs at 1 CPU — some loose, some tight, some infeasible.
fn random(seed: u64, sharing: Sharing) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = rng.random_range(4..=9);
    let mut jobs = Vec::with_capacity(count);
    for k in 0..count {
        let n = rng.random_range(3000.0..=6500.0_f64).round();
        let truth = linpack(n);
        let filed = Filed::draw(&mut rng, k, truth.t1(), 5, Cpus::from_milli(2000));
        let job = if rng.random_bool(0.6) {
            let (work, need) = drawn_iterations(&mut rng, truth, truth.t1(), 12);
            let desv_deadline = rng.random_range(0.05..=0.3);
            let kind = "chronos/iterations/linpack".into();
            filed.job("chronos", filed.estimate, need, desv_deadline, work, kind)
        } else {
            let scale = rng.random_range(1.0..=4.0_f64).round();
            let speed = SpeedModel {
                alpha: truth.alpha * scale,
                beta: truth.beta * scale,
            };
            let desv_deadline = rng.random_range(0.05..=0.3);
            let work = WorkSpec::Continuous {
                speed: noisy(&mut rng, speed, 0.03),
                deploy: rng.random_range(5.0..=15.0),
                restart_costs: (0..16).map(|_| rng.random_range(10.0..=30.0)).collect(),
                reports_progress: rng.random_bool(0.5),
                checkpoint: true,
            };
            let duration = (filed.estimate * scale).round();
            let kind = "marathon/linpack".into();
            filed.job("marathon", duration, speed.t1(), desv_deadline, work, kind)
        };
        jobs.push(job);
    }
    Scenario::on_thesis_cluster(format!("random:{seed}"), seed, sharing, jobs)
}

/// The work of a random workload's Chronos job: 2 to `max_iterations` iterations, each 5 % off
/// `truth` (whose 1-CPU duration is `t1`), and their deployment overheads; and what it needs at
/// 1 CPU, overheads included.
fn drawn_iterations(
    rng: &mut ChaCha8Rng,
    truth: SpeedModel,
    t1: f64,
    max_iterations: i32,
) -> (WorkSpec, f64) {
    let count = rng.random_range(2..=max_iterations);
    let overheads: Vec<f64> = (0..count).map(|_| rng.random_range(30.0..=45.0)).collect();
    let models = (0..count).map(|_| noisy(rng, truth, 0.05)).collect();
    let work = WorkSpec::Iterative {
        iterations: models,
        overheads,
    };
    (work, f64::from(count) * (t1 + 37.5))
}

/// How a job's time falls with more CPUs, in the mixed workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    /// Perfectly parallel on 2 threads (a plain CPU-bound program): `t(c) = t1 / c`.
    Linear,
    /// The thesis' LINPACK as measured (N = 6000: 1.33× at 2 CPUs).
    Linpack,
    /// Amdahl with a parallel fraction drawn from [0.1, 0.95].
    Amdahl,
    /// One thread: nothing past 1 CPU helps.
    Serial,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Linpack => "linpack",
            Self::Amdahl => "amdahl",
            Self::Serial => "serial",
        }
    }
}

/// The mixed workload: the jobs users really have, on the thesis' cluster with node agents.
/// Chronos jobs (iterations reported) and Marathon jobs that report their progress or nothing
/// (CPU time only), that can checkpoint or not; perfectly parallel, LINPACK-like, Amdahl with a
/// random parallel fraction, or single-threaded; users' duration estimates off by up to ±30 %,
/// run-time noise, deployment and restart costs, filed sizes from 0.3 to 1.5 CPU, deadlines from
/// infeasible to loose.
fn mixed(seed: u64, sharing: Sharing) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = rng.random_range(4..=9);
    let mut jobs = Vec::with_capacity(count);
    for k in 0..count {
        let curve = match rng.random_range(0..4) {
            0 => Curve::Linear,
            1 => Curve::Linpack,
            2 => Curve::Amdahl,
            _ => Curve::Serial,
        };
        let chronos = rng.random_bool(0.4);
        let t1 = if chronos {
            rng.random_range(60.0..=500.0_f64)
        } else {
            rng.random_range(100.0..=1500.0_f64)
        }
        .round();
        let (truth, threads) = match curve {
            Curve::Linear => (SpeedModel::new(t1, 1.0), 2000),
            Curve::Linpack => {
                let shape = linpack(6000.0);
                (SpeedModel::new(t1, shape.parallel_fraction()), 2000)
            }
            Curve::Amdahl => (SpeedModel::new(t1, rng.random_range(0.1..=0.95)), 2000),
            Curve::Serial => (SpeedModel::new(t1, 0.0), 1000),
        };
        let filed = Filed::draw(&mut rng, k, t1, 3, Cpus::from_milli(threads));
        let desv_deadline = rng.random_range(0.05..=0.3);
        let job = if chronos {
            let (work, need) = drawn_iterations(&mut rng, truth, t1, 10);
            let kind = format!("chronos/iterations/{}", curve.name());
            filed.job("chronos", filed.estimate, need, desv_deadline, work, kind)
        } else {
            let reports_progress = rng.random_bool(0.5);
            let checkpoint = rng.random_bool(0.5);
            let deploy = rng.random_range(5.0..=15.0);
            let work = WorkSpec::Continuous {
                speed: noisy(&mut rng, truth, 0.03),
                deploy,
                restart_costs: (0..16).map(|_| rng.random_range(10.0..=30.0)).collect(),
                reports_progress,
                checkpoint,
            };
            let kind = format!(
                "marathon/{}/{}/{}",
                if reports_progress {
                    "progress"
                } else {
                    "cpu-time"
                },
                if checkpoint {
                    "checkpoint"
                } else {
                    "no-checkpoint"
                },
                curve.name()
            );
            filed.job(
                "marathon",
                filed.estimate,
                deploy + t1,
                desv_deadline,
                work,
                kind,
            )
        };
        jobs.push(job);
    }
    Scenario::on_thesis_cluster(format!("mixed:{seed}"), seed, sharing, jobs)
}

/// Builds scenario `name` (`case1`, `case2`, `case3`, `random:SEED`, `mixed:SEED`) with `seed`
/// for its random draws (`random:SEED` and `mixed:SEED` use their own seed) and the given
/// sharing mode.
pub fn scenario(name: &str, seed: u64, sharing: Sharing) -> Result<Scenario, ScenarioError> {
    match name {
        "case1" => Ok(chronos_case("case1", seed, 0.0, sharing)),
        "case2" => Ok(chronos_case("case2", seed, 250.0, sharing)),
        "case3" => Ok(case3(seed, sharing)),
        other => {
            if let Some(Ok(s)) = other.strip_prefix("random:").map(str::parse::<u64>) {
                Ok(random(s, sharing))
            } else if let Some(Ok(s)) = other.strip_prefix("mixed:").map(str::parse::<u64>) {
                Ok(mixed(s, sharing))
            } else {
                Err(ScenarioError(other.into()))
            }
        }
    }
}
