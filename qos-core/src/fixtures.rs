//! What the unit tests build again and again: jobs submitted at 0 and the observations they are
//! fed.

use crate::cpu::Cpus;
use crate::job::{IterationReport, Job, Observation};
use crate::spec::{Deadline, QosSpec, ResolvedQos};

/// The QoS of a job submitted at 0: `duration` seconds of work (per iteration), due `deadline`
/// seconds later, `desv` the tolerated deviation.
pub(crate) fn qos(duration: f64, deadline: f64, desv: f64) -> ResolvedQos {
    QosSpec {
        duration,
        deadline: Deadline::Relative(deadline),
        desv_deadline: desv,
    }
    .resolve(0.0)
}

/// A Chronos job of `iterations` of `duration` seconds at 1 CPU, due `deadline` seconds after
/// its submission at 0 (tolerated deviation 0.2).
pub(crate) fn chronos(iterations: u32, duration: f64, deadline: f64) -> Job {
    Job::iterative("j", qos(duration, deadline, 0.2), iterations, Cpus::ONE)
}

/// A Marathon job of `duration` CPU-seconds at `cpus`, due `deadline` seconds after its
/// submission at 0 (tolerated deviation 0.1), not started yet.
pub(crate) fn marathon(duration: f64, deadline: f64, cpus: Cpus) -> Job {
    Job::continuous("m", qos(duration, deadline, 0.1), cpus)
}

/// An iteration that ran from `started_at` to `finished_at` at the size the job had.
pub(crate) fn iteration(started_at: f64, finished_at: f64) -> Observation {
    Observation::Iteration(IterationReport {
        started_at,
        finished_at,
        hostname: "agent1".into(),
        cpus: Cpus::ZERO,
        cpus_used: None,
    })
}

/// The job's task started at `at`, afresh.
pub(crate) fn started(at: f64) -> Observation {
    Observation::Started { at, restored: None }
}

/// Resized to `cpus` at `at` without a restart.
pub(crate) fn resized(at: f64, cpus: Cpus) -> Observation {
    Observation::Resized {
        at,
        cpus,
        restart: false,
    }
}

/// The task's container had used `cumulative_secs` CPU-seconds at `at`.
pub(crate) fn cpu_sample(at: f64, cumulative_secs: f64) -> Observation {
    Observation::CpuSample {
        at,
        source: "c1".into(),
        cumulative_secs,
    }
}

/// `job` reports an iteration that ran from `started_at` to `finished_at`.
pub(crate) fn report(job: &mut Job, started_at: f64, finished_at: f64) {
    job.observe(iteration(started_at, finished_at))
        .expect("the report applies");
}
