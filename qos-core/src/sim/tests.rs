use super::*;
use crate::policy::Policy;

fn run(name: &str, policy: &str, seed: u64, sharing: Sharing) -> SimResult {
    let s = scenario(name, seed, sharing).unwrap();
    simulate(&s, &Policy::by_name(policy).unwrap(), SimConfig::default())
}

#[test]
fn deterministic_for_a_seed() {
    let a = run("case2", "thesis", 7, Sharing::Shares);
    let b = run("case2", "thesis", 7, Sharing::Shares);
    assert_eq!(a, b);
    let c = run("case2", "thesis", 8, Sharing::Shares);
    assert_ne!(a.jobs, c.jobs);
}

#[test]
fn every_job_finishes_and_accounts_cpu() {
    for name in ["case1", "case2", "case3", "random:3"] {
        for policy in ["thesis", "predictive"] {
            for sharing in [Sharing::Quota, Sharing::Shares] {
                let r = run(name, policy, 1, sharing);
                for j in &r.jobs {
                    assert!(
                        j.finished_at.is_some(),
                        "{name}/{policy}/{sharing:?}: {j:?}"
                    );
                    assert!(
                        j.usage.cpu_seconds_used > 0.0 && j.usage.cpu_seconds_allocated > 0.0,
                        "{j:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn quota_allocation_bounds_use() {
    // Under a hard quota a job can never use more CPU-seconds than were reserved for it.
    for policy in ["thesis", "predictive"] {
        let r = run("case1", policy, 2, Sharing::Quota);
        for j in &r.jobs {
            assert!(
                j.usage.cpu_seconds_used <= j.usage.cpu_seconds_allocated + 1e-6,
                "{policy}: {j:?}"
            );
        }
    }
}

#[test]
fn linpack_interpolation_hits_the_measurements() {
    let m = scenario::linpack(4000.0);
    assert!((m.t1() - 162.75).abs() < 1e-6);
    assert!((m.time(Cpus::from_milli(2000)) - 113.2).abs() < 1e-6);
    let mid = scenario::linpack(5000.0);
    assert!(mid.t1() > 162.75 && mid.t1() < 480.4);
}

#[test]
fn unknown_scenario_is_a_clear_error() {
    let e = scenario("case9", 0, Sharing::Quota).unwrap_err();
    assert!(
        e.to_string()
            .contains("case1, case2, case3, random:SEED or mixed:SEED")
    );
}

#[test]
fn thirty_simulated_minutes_are_fast() {
    // Not a timing assertion: just that a full case study is a handful of decisions per
    // iteration (one at each report, one at registration, and a look every 10 s while a next run
    // waits for room).
    let r = run("case1", "predictive", 1, Sharing::Shares);
    let iterations: usize = 4 + 4 + 13 + 11 + 12 + 14;
    assert!(
        r.trace.len() < 4 * iterations,
        "{} decisions",
        r.trace.len()
    );
}

#[test]
fn totals_sum_the_jobs_usage_and_serialize_it_inline() {
    let r = run("case1", "thesis", 1, Sharing::Shares);
    let mut sum = Usage::default();
    for j in &r.jobs {
        sum += j.usage;
    }
    assert_eq!(r.totals.usage, sum);
    assert!(
        sum.resizes > 0 && sum.cpu_seconds_allocated > 0.0,
        "{sum:?}"
    );

    let t = Totals {
        jobs: 2,
        met: 1,
        feasible: 2,
        feasible_met: 1,
        usage: Usage {
            cpu_seconds_allocated: 10.5,
            cpu_seconds_used: 7.25,
            resizes: 3,
            restarts: 2,
            restarts_lost: 1,
            cpu_seconds_lost: 2.0,
        },
        oracle_met: Some(2),
        oracle_cpu_seconds: Some(9.0),
        oracle_exact: Some(true),
    };
    let text = serde_json::to_string(&t).unwrap();
    assert_eq!(
        text,
        r#"{"jobs":2,"met":1,"feasible":2,"feasible_met":1,"cpu_seconds_allocated":10.5,"cpu_seconds_used":7.25,"resizes":3,"restarts":2,"restarts_lost":1,"cpu_seconds_lost":2.0,"oracle_met":2,"oracle_cpu_seconds":9.0,"oracle_exact":true}"#
    );
    assert_eq!(serde_json::from_str::<Totals>(&text).unwrap(), t);
}

#[test]
fn totals_written_before_lost_work_was_counted_still_read() {
    let old = r#"{"jobs":1,"met":1,"feasible":1,"feasible_met":1,"cpu_seconds_allocated":4.0,"cpu_seconds_used":3,"resizes":1,"restarts":0}"#;
    let t: Totals = serde_json::from_str(old).unwrap();
    assert_eq!(t.usage.cpu_seconds_used, 3.0);
    assert_eq!((t.usage.restarts_lost, t.usage.cpu_seconds_lost), (0, 0.0));
    assert_eq!(t.oracle_met, None);
    let missing =
        serde_json::from_str::<Totals>(r#"{"jobs":1,"met":1,"feasible":1,"feasible_met":1}"#)
            .unwrap_err()
            .to_string();
    assert!(missing.contains("cpu_seconds_allocated"), "{missing}");
}

/// One job alone on a 2-CPU node with a node agent: 600 CPU-seconds on one thread that
/// report only their CPU time and cannot checkpoint, declared as `declared`, filed at `cpus`,
/// due `deadline` s after submission; its result under `policy`.
fn single_threaded_alone(declared: f64, cpus: Cpus, deadline: f64, policy: &str) -> JobResult {
    use crate::spec::{Deadline, QosSpec};
    use crate::speedup::SpeedModel;
    let job = JobSpec {
        name: "serial".into(),
        submit_at: 0.0,
        qos: QosSpec {
            duration: declared,
            deadline: Deadline::Relative(deadline),
            desv_deadline: 0.1,
        },
        cpus,
        threads: Cpus::ONE,
        work: WorkSpec::Continuous {
            speed: SpeedModel::new(600.0, 0.0),
            deploy: 5.0,
            restart_costs: vec![3.0],
            reports_progress: false,
            checkpoint: false,
        },
        kind: String::new(),
    };
    alone_on_two_cpus(job, policy)
}

/// `job`'s result under `policy`, alone on a 2-CPU node with a node agent, CPU quotas.
fn alone_on_two_cpus(job: JobSpec, policy: &str) -> JobResult {
    let s = Scenario {
        name: format!("{}-alone", job.name),
        seed: 0,
        cluster: ClusterSpec {
            nodes: vec![Cpus::from_milli(2000)],
            sharing: Sharing::Quota,
            agents: true,
        },
        jobs: vec![job],
    };
    let mut r = simulate(&s, &Policy::by_name(policy).unwrap(), SimConfig::default());
    r.jobs.remove(0)
}

#[test]
fn a_single_threaded_job_grown_on_its_declared_work_gives_the_idle_cpu_back() {
    // 600 CPU-s on one thread, declared as 3000, filed at 1 CPU, due in 787 s: predictive
    // grows it to 2 CPU (3000 CPU-s cannot fit at 1), sees it use one, and shrinks it back in
    // place. It held both to its end before: 1210 CPU-s allocated against 605 left alone.
    let alone = single_threaded_alone(3000.0, Cpus::ONE, 787.0, "static");
    let pred = single_threaded_alone(3000.0, Cpus::ONE, 787.0, "predictive");
    assert!(alone.met && pred.met, "{alone:?} {pred:?}");
    assert_eq!(pred.finished_at, alone.finished_at, "{pred:?}");
    assert_eq!(pred.final_cpus, Cpus::ONE, "{pred:?}");
    let (a, p) = (
        alone.usage.cpu_seconds_allocated,
        pred.usage.cpu_seconds_allocated,
    );
    assert!(
        (a - 605.0).abs() < 1.0 && p < 800.0,
        "static {a:.0}, predictive {p:.0}"
    );
    // Filed at 2 CPU it keeps them: using one so far says nothing of a later parallel phase.
    let filed_two = single_threaded_alone(3000.0, Cpus::from_milli(2000), 787.0, "predictive");
    assert_eq!(
        filed_two.final_cpus,
        Cpus::from_milli(2000),
        "{filed_two:?}"
    );
}

/// One Chronos job alone on a 2-CPU node: 4 runs of 600 CPU-s on one thread, declared as 600 s
/// each, filed at 1 CPU, due when it would finish left alone (4 × (600 + 5 s deployment)).
fn single_threaded_chronos_alone(policy: &str) -> JobResult {
    use crate::spec::{Deadline, QosSpec};
    use crate::speedup::SpeedModel;
    let job = JobSpec {
        name: "serial-runs".into(),
        submit_at: 0.0,
        qos: QosSpec {
            duration: 600.0,
            deadline: Deadline::Relative(2420.0),
            desv_deadline: 0.1,
        },
        cpus: Cpus::ONE,
        threads: Cpus::ONE,
        work: WorkSpec::Iterative {
            iterations: vec![SpeedModel::new(600.0, 0.0); 4],
            overheads: vec![5.0; 4],
        },
        kind: String::new(),
    };
    alone_on_two_cpus(job, policy)
}

#[test]
fn a_single_threaded_chronos_job_runs_at_the_cpu_it_uses_once_measured() {
    // Grown to 2 CPU for its first run by the allowance for a short declaration (nothing is
    // measured yet), it uses one CPU of the two there: its runs' CPU samples say so, and its
    // next runs are sized at one CPU (never below the one it was filed with). It held 2 CPU to
    // its end before: 4840 CPU-s allocated against 2420 left alone.
    let alone = single_threaded_chronos_alone("static");
    let pred = single_threaded_chronos_alone("predictive");
    assert!(alone.met && pred.met, "{alone:?} {pred:?}");
    assert_eq!(pred.final_cpus, Cpus::ONE, "{pred:?}");
    let (a, p) = (
        alone.usage.cpu_seconds_allocated,
        pred.usage.cpu_seconds_allocated,
    );
    assert!(
        (a - 2420.0).abs() < 1.0 && p < 3100.0,
        "static {a:.0}, predictive {p:.0}"
    );
}
