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
                        j.cpu_seconds_used > 0.0 && j.cpu_seconds_allocated > 0.0,
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
                j.cpu_seconds_used <= j.cpu_seconds_allocated + 1e-6,
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
