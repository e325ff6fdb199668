//! The study's acceptance figures, checked on every test run (they are what docs/results.md
//! reports; if a policy change moves them, this fails and the document must be redone).

use qos_core::Policy;
use qos_core::sim::{Sharing, SimConfig, scenario, simulate};
use study::{aggregate, sweep_row};

fn run(name: &str, policy: &str, sharing: Sharing) -> qos_core::sim::SimResult {
    let s = scenario(name, 1, sharing).unwrap();
    simulate(&s, &Policy::by_name(policy).unwrap(), SimConfig::default())
}

#[test]
fn predictive_meets_every_feasible_deadline_in_case1_to_case3() {
    for name in ["case1", "case2", "case3"] {
        let r = run(name, "predictive", Sharing::Shares);
        assert_eq!(
            r.totals.feasible_met, r.totals.feasible,
            "{name}: {:#?}",
            r.jobs
        );
    }
}

#[test]
fn predictive_beats_thesis_on_the_case_studies() {
    for name in ["case1", "case2"] {
        for sharing in [Sharing::Shares, Sharing::Quota] {
            let p = run(name, "predictive", sharing);
            let t = run(name, "thesis", sharing);
            assert!(
                p.totals.met >= t.totals.met,
                "{name} {sharing:?}: {} < {}",
                p.totals.met,
                t.totals.met
            );
            assert!(
                p.totals.cpu_seconds_allocated < t.totals.cpu_seconds_allocated,
                "{name} {sharing:?}: {} ≥ {}",
                p.totals.cpu_seconds_allocated,
                t.totals.cpu_seconds_allocated
            );
        }
    }
}

#[test]
fn thesis_case3_finishes_in_time_with_restarts() {
    // Case III under the thesis' own infrastructure (shares): met, with resizes by restart.
    let r = run("case3", "thesis", Sharing::Shares);
    let job = &r.jobs[0];
    assert!(job.met, "{job:?}");
    assert!(job.restarts >= 2, "{job:?}");
}

#[test]
fn sweep_200_seeds_never_fewer_deadlines_and_fewer_cpu_seconds() {
    let pred = Policy::by_name("predictive").unwrap();
    let thesis = Policy::by_name("thesis").unwrap();
    let rows: Vec<_> = (1..=200)
        .map(|s| sweep_row(s, Sharing::Quota, &pred, Some(&thesis)))
        .collect();
    let agg = aggregate(&rows);
    assert!(
        agg.seeds_fewer_met.is_empty(),
        "fewer deadlines met in seeds {:?}",
        agg.seeds_fewer_met
    );
    let base = agg.baseline.as_ref().unwrap();
    assert!(agg.policy.met > base.met);
    assert!(
        agg.policy.cpu_seconds_allocated < base.cpu_seconds_allocated,
        "{} ≥ {}",
        agg.policy.cpu_seconds_allocated,
        base.cpu_seconds_allocated
    );
}
