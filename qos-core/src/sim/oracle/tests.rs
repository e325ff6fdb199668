use proptest::prelude::*;

use super::*;
use crate::policy::Policy;
use crate::sim::{Sharing, SimConfig, scenario, simulate};

fn c(x: f64) -> Cpus {
    Cpus::from_f64(x)
}

fn unit(overhead: f64, alpha: f64, beta: f64) -> OracleUnit {
    OracleUnit {
        overhead,
        speed: SpeedModel { alpha, beta },
    }
}

fn job(submit_at: f64, deadline_at: f64, threads: f64, units: Vec<OracleUnit>) -> OracleJob {
    OracleJob {
        submit_at,
        deadline_at,
        threads: c(threads),
        units,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

/// Checks a schedule from scratch, sharing no code with the oracle: every met job's units in
/// order, after its submission, on the grid, timed and charged by the model, done by the
/// deadline; no node ever over its capacity. Returns (met, CPU-seconds).
fn check_schedule(
    nodes: &[Cpus],
    jobs: &[OracleJob],
    bounds: &OracleBounds,
    o: &Oracle,
) -> Result<(usize, f64), String> {
    if o.per_job.len() != jobs.len() {
        return Err(format!("{} plans for {} jobs", o.per_job.len(), jobs.len()));
    }
    let mut met = 0;
    let mut total = 0.0;
    // Per node: (time, +milli at a start / −milli at an end).
    let mut events: Vec<Vec<(f64, i64)>> = vec![Vec::new(); nodes.len()];
    for (i, (j, p)) in jobs.iter().zip(&o.per_job).enumerate() {
        if !p.met {
            if !p.units.is_empty() || p.cpu_seconds != 0.0 || p.finish.is_some() {
                return Err(format!("job {i} not met but has a schedule: {p:?}"));
            }
            continue;
        }
        met += 1;
        if p.units.len() != j.units.len() {
            return Err(format!(
                "job {i}: {} units planned of {}",
                p.units.len(),
                j.units.len()
            ));
        }
        let mut ready = j.submit_at;
        let mut sum = 0.0;
        for (k, (u, plan)) in j.units.iter().zip(&p.units).enumerate() {
            let m = plan.cpus.milli();
            let on_grid = plan.cpus == bounds.cpu_max
                || (m % bounds.granularity.milli() == 0 && plan.cpus >= bounds.cpu_min);
            if !on_grid || plan.cpus > bounds.cpu_max || plan.cpus < bounds.cpu_min {
                return Err(format!("job {i} unit {k}: {} off the grid", plan.cpus));
            }
            if plan.node >= nodes.len() || plan.cpus > nodes[plan.node] {
                return Err(format!(
                    "job {i} unit {k}: node {} cannot hold it",
                    plan.node
                ));
            }
            if plan.start < ready {
                return Err(format!(
                    "job {i} unit {k} starts at {} before {ready}",
                    plan.start
                ));
            }
            let eff = plan.cpus.as_f64().min(j.threads.as_f64());
            let secs = u.overhead + u.speed.alpha / eff.min(1.0) + u.speed.beta / eff;
            if !close(plan.finish - plan.start, secs) {
                return Err(format!(
                    "job {i} unit {k}: lasts {} not {secs}",
                    plan.finish - plan.start
                ));
            }
            if !close(plan.cpu_seconds, plan.cpus.as_f64() * secs) {
                return Err(format!("job {i} unit {k}: charged {}", plan.cpu_seconds));
            }
            sum += plan.cpu_seconds;
            ready = plan.finish;
            events[plan.node].push((plan.start, i64::from(m)));
            events[plan.node].push((plan.finish, -i64::from(m)));
        }
        if ready > j.deadline_at + DEADLINE_TOLERANCE {
            return Err(format!(
                "job {i} ends at {ready}, deadline {}",
                j.deadline_at
            ));
        }
        if p.finish != Some(ready) || !close(p.cpu_seconds, sum) {
            return Err(format!("job {i}: totals disagree with its units: {p:?}"));
        }
        total += sum;
    }
    for (n, ev) in events.iter_mut().enumerate() {
        // Ends before starts at the same instant.
        ev.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut load = 0i64;
        for &(t, d) in ev.iter() {
            load += d;
            if load > i64::from(nodes[n].milli()) {
                return Err(format!("node {n} holds {load} millicores at {t}"));
            }
        }
    }
    if met != o.schedule_met || !close(total, o.schedule_cpu_seconds) {
        return Err(format!(
            "schedule meets {met} with {total} CPU-s, oracle says {} with {}",
            o.schedule_met, o.schedule_cpu_seconds
        ));
    }
    if o.schedule_met > o.met || o.met > o.feasible_alone {
        return Err(format!("bounds out of order: {o:?}"));
    }
    if o.met_exact != (o.met == o.schedule_met) || (o.exact && !o.met_exact) {
        return Err(format!("met_exact disagrees: {o:?}"));
    }
    if o.exact && (o.met != o.schedule_met || !close(o.cpu_seconds, o.schedule_cpu_seconds)) {
        return Err(format!("exact but the schedule is not the answer: {o:?}"));
    }
    Ok((met, total))
}

fn solve(nodes: &[Cpus], jobs: &[OracleJob], bounds: &OracleBounds) -> Oracle {
    let o = oracle(nodes, jobs, bounds).unwrap();
    check_schedule(nodes, jobs, bounds, &o).unwrap();
    o
}

/// The oracle's exact answer with the default bounds, its schedule checked.
fn solve_exact(nodes: &[Cpus], jobs: &[OracleJob]) -> Oracle {
    let o = solve(nodes, jobs, &OracleBounds::default());
    assert!(o.exact, "{}", o.method);
    o
}

#[test]
fn one_job_gets_the_cheapest_allocation_that_meets_its_deadline() {
    let nodes = [c(2.0)];
    // Linear speed-up, 100 CPU-s of work, 10 s deployment held at the allocation, 100 s window:
    // 10 + 100/c ≤ 100 needs c ≥ 1.11, so 1.2 (93.3 s, 112 CPU-s); 1.1 is 0.9 s late.
    let jobs = [job(5.0, 105.0, 2.0, vec![unit(10.0, 0.0, 100.0)])];
    let o = solve_exact(&nodes, &jobs);
    assert_eq!(o.met, 1);
    let u = o.per_job[0].units[0];
    assert_eq!(u.cpus, c(1.2));
    assert!(close(u.start, 5.0), "{u:?}");
    assert!(
        close(o.cpu_seconds, 1.2 * (10.0 + 100.0 / 1.2)),
        "{}",
        o.cpu_seconds
    );
    assert!(o.method.starts_with("exact"), "{}", o.method);
}

#[test]
fn a_job_no_allocation_can_save_is_not_met_and_not_charged() {
    let nodes = [c(2.0)];
    // 100 CPU-s of linear work in 40 s needs 2.5 CPUs; the grid stops at 2.
    let jobs = [
        job(0.0, 40.0, 4.0, vec![unit(0.0, 0.0, 100.0)]),
        job(0.0, 200.0, 2.0, vec![unit(10.0, 0.0, 100.0)]),
    ];
    let o = solve_exact(&nodes, &jobs);
    assert_eq!((o.met, o.feasible_alone), (1, 1));
    assert_eq!(o.per_job[0].alone_cpu_seconds, None);
    assert!(!o.per_job[0].met && o.per_job[1].met);
    // The second holds its allocation through a 10 s deployment, so the smallest that makes
    // 200 s is cheapest: 10 + 100/c ≤ 200 → 0.6 CPU, 0.6 × 10 + 100 = 106 CPU-s.
    assert_eq!(o.per_job[1].units[0].cpus, c(0.6));
    assert!(close(o.cpu_seconds, 106.0), "{}", o.cpu_seconds);
}

#[test]
fn two_jobs_that_cannot_both_fit_meet_one_the_cheaper() {
    let nodes = [c(2.0)];
    // Each needs its whole window at ≥ 1.5 (resp. 1.6) CPUs on a 2-CPU node.
    let jobs = [
        job(0.0, 100.0, 2.0, vec![unit(0.0, 0.0, 160.0)]),
        job(0.0, 100.0, 2.0, vec![unit(0.0, 0.0, 150.0)]),
    ];
    let o = solve_exact(&nodes, &jobs);
    assert_eq!((o.met, o.feasible_alone), (1, 2));
    assert!(o.per_job[1].met && !o.per_job[0].met);
    assert!(close(o.cpu_seconds, 150.0), "{}", o.cpu_seconds);
    // The energy argument alone rules the pair out: 310 CPU-s in 100 s × 2 CPUs.
    assert_eq!(o.search_nodes, 0, "{}", o.method);
}

#[test]
fn jobs_that_fit_one_after_the_other_are_both_met() {
    let nodes = [c(1.0)];
    // 50 s each at 1 CPU, one node of 1 CPU, both due at 100 s: back to back.
    let jobs = [
        job(0.0, 100.0, 1.0, vec![unit(0.0, 50.0, 0.0)]),
        job(0.0, 100.0, 1.0, vec![unit(0.0, 50.0, 0.0)]),
    ];
    let o = solve_exact(&nodes, &jobs);
    assert_eq!(o.met, 2);
    let mut starts: Vec<f64> = o.per_job.iter().map(|p| p.units[0].start).collect();
    starts.sort_by(f64::total_cmp);
    assert!(
        close(starts[0], 0.0) && close(starts[1], 50.0),
        "{starts:?}"
    );
}

#[test]
fn chronos_iterations_get_their_own_allocations() {
    let nodes = [c(2.0)];
    // Iteration 1 is perfectly parallel (100 CPU-s), iteration 2 serial (100 s at ≥ 1 CPU);
    // 150 s for both: the first must run at 2 CPUs (50 s) and the second needs only 1.
    // One size for both would be 2 CPUs: 100 + 200 = 300 CPU-s instead of 200.
    let jobs = [job(
        0.0,
        150.0,
        2.0,
        vec![unit(0.0, 0.0, 100.0), unit(0.0, 100.0, 0.0)],
    )];
    let o = solve_exact(&nodes, &jobs);
    let cpus: Vec<Cpus> = o.per_job[0].units.iter().map(|u| u.cpus).collect();
    assert_eq!(cpus, [c(2.0), c(1.0)]);
    assert!(close(o.cpu_seconds, 200.0), "{}", o.cpu_seconds);
}

#[test]
fn cpus_beyond_the_threads_are_never_bought() {
    let nodes = [c(2.0)];
    // One thread: 100 s of work takes 100 s at 1 CPU and at 2. Due at 100 s: exactly 1 CPU.
    let jobs = [job(0.0, 100.0, 1.0, vec![unit(0.0, 0.0, 100.0)])];
    let o = solve_exact(&nodes, &jobs);
    assert_eq!(o.met, 1);
    assert_eq!(o.per_job[0].units[0].cpus, c(1.0));
    assert!(close(o.cpu_seconds, 100.0));
    // Due at 60 s it would need 1.67 effective CPUs: more allocation does not help.
    let late = [job(0.0, 60.0, 1.0, vec![unit(0.0, 0.0, 100.0)])];
    let o = solve_exact(&nodes, &late);
    assert_eq!((o.met, o.feasible_alone), (0, 0));
    assert_eq!(o.cpu_seconds, 0.0);
}

#[test]
fn packing_needs_the_search_and_a_small_budget_gives_a_bound() {
    // Two 2-CPU nodes, three jobs each needing 1.2 CPUs for their whole window: 3.6 ≤ 4 CPUs
    // in total (energy allows all three) but no node holds two of them.
    let nodes = [c(2.0), c(2.0)];
    let jobs: Vec<OracleJob> = (0..3)
        .map(|_| job(0.0, 100.0, 2.0, vec![unit(0.0, 0.0, 120.0)]))
        .collect();
    let o = solve_exact(&nodes, &jobs);
    assert_eq!(o.met, 2);
    assert!(o.search_nodes > 0);
    assert!(close(o.cpu_seconds, 240.0));

    let bounds = OracleBounds::default();
    let b = oracle_with_budget(&nodes, &jobs, &bounds, 0).unwrap();
    check_schedule(&nodes, &jobs, &bounds, &b).unwrap();
    assert!(!b.exact);
    assert_eq!((b.met, b.schedule_met), (3, 2), "{}", b.method);
    assert!(close(b.cpu_seconds, 360.0), "{}", b.cpu_seconds);
    assert!(b.method.starts_with("bound"), "{}", b.method);
}

#[test]
fn a_cheaper_set_of_the_same_size_is_preferred() {
    // One 1-CPU node, window 100 s: either job A (90 CPU-s) or B (60) and C (30) … A alone
    // fits, B+C fit together; the most met is 2 (B, C), not A.
    let nodes = [c(1.0)];
    let jobs = [
        job(0.0, 100.0, 1.0, vec![unit(0.0, 90.0, 0.0)]),
        job(0.0, 100.0, 1.0, vec![unit(0.0, 60.0, 0.0)]),
        job(0.0, 100.0, 1.0, vec![unit(0.0, 30.0, 0.0)]),
    ];
    let o = solve_exact(&nodes, &jobs);
    assert_eq!(o.met, 2);
    assert!(!o.per_job[0].met && o.per_job[1].met && o.per_job[2].met);
    assert!(close(o.cpu_seconds, 90.0));
}

#[test]
fn bad_input_names_the_field() {
    let nodes = [c(2.0)];
    let ok = job(0.0, 100.0, 2.0, vec![unit(1.0, 1.0, 1.0)]);
    let err = |nodes: &[Cpus], jobs: &[OracleJob], b: OracleBounds| {
        oracle(nodes, jobs, &b).unwrap_err().to_string()
    };
    let b = OracleBounds::default();
    let zero = OracleBounds {
        granularity: Cpus::ZERO,
        ..b
    };
    assert!(err(&nodes, &[], zero).contains("granularity"));
    let inverted = OracleBounds {
        cpu_min: c(3.0),
        ..b
    };
    assert!(err(&nodes, &[], inverted).contains("cpu_min (3) is above cpu_max (2)"));
    assert!(err(&[c(2.0), Cpus::ZERO], &[], b).contains("nodes[1]"));
    let mut j = ok.clone();
    j.units[0].overhead = f64::NAN;
    assert!(err(&nodes, &[ok.clone(), j], b).contains("jobs[1].units[0].overhead"));
    let mut j = ok.clone();
    j.units[0].speed.beta = -1.0;
    assert!(err(&nodes, &[j], b).contains("jobs[0].units[0].speed.beta"));
    let mut j = ok.clone();
    j.deadline_at = -5.0;
    assert!(err(&nodes, &[j], b).contains("jobs[0].deadline_at"));
    let mut j = ok.clone();
    j.threads = Cpus::ZERO;
    assert!(err(&nodes, &[j], b).contains("jobs[0].threads"));
    let mut j = ok;
    j.units.clear();
    assert!(err(&nodes, &[j], b).contains("jobs[0].units must not be empty"));
}

#[test]
fn scenario_jobs_carry_the_true_work() {
    let s = scenario("case1", 3, Sharing::Quota).unwrap();
    let jobs = oracle_jobs(&s);
    assert_eq!(jobs.len(), s.jobs.len());
    for (oj, spec) in jobs.iter().zip(&s.jobs) {
        let WorkSpec::Iterative {
            iterations,
            overheads,
        } = &spec.work
        else {
            panic!("case1 is Chronos");
        };
        assert_eq!(oj.units.len(), iterations.len());
        assert_eq!(oj.units[1].speed, iterations[1]);
        assert_eq!(oj.units[1].overhead, overheads[1]);
        assert_eq!(oj.deadline_at, spec.submit_at + 1800.0);
    }
    let s = scenario("case3", 3, Sharing::Quota).unwrap();
    let oj = &oracle_jobs(&s)[0];
    let WorkSpec::Continuous { speed, deploy, .. } = &s.jobs[0].work else {
        panic!("case3 is Marathon");
    };
    assert_eq!(
        oj.units,
        [OracleUnit {
            overhead: *deploy,
            speed: *speed
        }]
    );
    // Alone at 1 CPU the oracle's finish is the simulator's own "finish alone".
    let o = solve(
        &s.cluster.nodes,
        std::slice::from_ref(oj),
        &OracleBounds::default(),
    );
    let u = o.per_job[0].units[0];
    assert!(u.finish <= s.jobs[0].finish_alone(u.cpus) + 1e-9);
}

/// Every way to give each unit of one job an allocation, back to back from its submission.
fn brute_alone(j: &OracleJob, levels: &[Cpus]) -> Option<f64> {
    let mut best: Option<f64> = None;
    let n = j.units.len();
    let mut idx = vec![0usize; n];
    loop {
        let (mut time, mut cost) = (j.submit_at, 0.0);
        for (u, &i) in j.units.iter().zip(&idx) {
            let secs = u.overhead + u.speed.time(levels[i].min(j.threads));
            time += secs;
            cost += levels[i].as_f64() * secs;
        }
        if time <= j.deadline_at + DEADLINE_TOLERANCE && best.is_none_or(|b| cost < b) {
            best = Some(cost);
        }
        let Some(pos) = (0..n).rev().find(|&k| idx[k] + 1 < levels.len()) else {
            return best;
        };
        idx[pos] += 1;
        for i in &mut idx[pos + 1..] {
            *i = 0;
        }
    }
}

/// The exact optimum by exhaustion: every set of jobs, every order of units (respecting each
/// job's chain), every allocation and node per unit, each unit at its earliest feasible start.
fn brute_oracle(nodes: &[Cpus], jobs: &[OracleJob], levels: &[Cpus]) -> (usize, f64) {
    // All unit sequences: (job, unit) in an order that respects chains.
    fn orders(
        left: &mut Vec<usize>,
        lens: &[usize],
        cur: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if left.iter().all(|&l| l == 0) {
            out.push(cur.clone());
            return;
        }
        for j in 0..lens.len() {
            if left[j] > 0 {
                left[j] -= 1;
                cur.push(j);
                orders(left, lens, cur, out);
                cur.pop();
                left[j] += 1;
            }
        }
    }
    let mut best = (0usize, 0.0f64);
    for mask in 0u32..(1 << jobs.len()) {
        let set: Vec<usize> = (0..jobs.len()).filter(|&j| mask & (1 << j) != 0).collect();
        let lens: Vec<usize> = set.iter().map(|&j| jobs[j].units.len()).collect();
        let mut all = Vec::new();
        orders(&mut lens.clone(), &lens, &mut Vec::new(), &mut all);
        let total: usize = lens.iter().sum();
        let choices = levels.len() * nodes.len();
        for order in &all {
            for code in 0..choices.pow(total as u32) {
                let mut code = code;
                let mut placed: Vec<Vec<(f64, f64, u32)>> = vec![Vec::new(); nodes.len()];
                let mut ready: Vec<f64> = set.iter().map(|&j| jobs[j].submit_at).collect();
                let mut next = vec![0usize; set.len()];
                let mut cost = 0.0;
                let mut ok = true;
                for &m in order {
                    let (l, n) = (code % levels.len(), (code / levels.len()) % nodes.len());
                    code /= choices;
                    let j = &jobs[set[m]];
                    let u = j.units[next[m]];
                    next[m] += 1;
                    let secs = u.overhead + u.speed.time(levels[l].min(j.threads));
                    let milli = levels[l].milli();
                    if milli > nodes[n].milli() {
                        ok = false;
                        break;
                    }
                    // Earliest start: the ready time or an end on the node, first that fits.
                    let mut cands: Vec<f64> = vec![ready[m]];
                    cands.extend(placed[n].iter().map(|p| p.1).filter(|&e| e > ready[m]));
                    cands.sort_by(f64::total_cmp);
                    let start = cands.into_iter().find(|&s| {
                        let mut pts = vec![s];
                        pts.extend(
                            placed[n]
                                .iter()
                                .map(|p| p.0)
                                .filter(|&t| t > s && t < s + secs),
                        );
                        pts.iter().all(|&t| {
                            placed[n]
                                .iter()
                                .filter(|p| p.0 <= t && t < p.1)
                                .map(|p| p.2)
                                .sum::<u32>()
                                + milli
                                <= nodes[n].milli()
                        })
                    });
                    let start = start.expect("after the last end everything fits");
                    placed[n].push((start, start + secs, milli));
                    ready[m] = start + secs;
                    cost += levels[l].as_f64() * secs;
                }
                if !ok {
                    continue;
                }
                let met = set
                    .iter()
                    .zip(&ready)
                    .all(|(&j, &r)| r <= jobs[j].deadline_at + DEADLINE_TOLERANCE);
                if met && (set.len() > best.0 || (set.len() == best.0 && cost < best.1 - 1e-9)) {
                    best = (set.len(), cost);
                }
            }
        }
    }
    best
}

fn arb_unit() -> impl Strategy<Value = OracleUnit> {
    (0.0..20.0f64, 0.0..60.0f64, 1.0..120.0f64)
        .prop_map(|(o, a, b)| unit(o.round(), a.round(), b.round()))
}

fn arb_job(max_units: usize) -> impl Strategy<Value = OracleJob> {
    (
        0.0..100.0f64,
        20.0..300.0f64,
        prop::sample::select(vec![1.0, 1.5, 2.0, 4.0]),
        prop::collection::vec(arb_unit(), 1..=max_units),
    )
        .prop_map(|(s, w, t, units)| job(s.round(), (s + w).round(), t, units))
}

/// Jobs with little slack, so that few fit together and the search has work to do.
fn arb_tight_job() -> impl Strategy<Value = OracleJob> {
    (
        0.0..60.0f64,
        20.0..160.0f64,
        prop::sample::select(vec![1.0, 2.0]),
        prop::collection::vec(arb_unit(), 1..=2),
    )
        .prop_map(|(s, w, t, units)| job(s.round(), (s + w).round(), t, units))
}

fn arb_nodes(max: usize) -> impl Strategy<Value = Vec<Cpus>> {
    prop::collection::vec(prop::sample::select(vec![c(1.0), c(1.5), c(2.0)]), 1..=max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The per-job DP is the exhaustive optimum over per-unit allocations; the oracle's plan is
    /// feasible and it never claims more than the jobs feasible alone.
    #[test]
    fn plans_are_feasible_and_bounded(
        jobs in prop::collection::vec(arb_job(3), 1..=6),
        nodes in arb_nodes(3),
    ) {
        let bounds = OracleBounds::default();
        let o = oracle(&nodes, &jobs, &bounds).unwrap();
        if let Err(e) = check_schedule(&nodes, &jobs, &bounds, &o) {
            return Err(TestCaseError::fail(e));
        }
        let levels = grid(&bounds, nodes.iter().copied().max().unwrap());
        for (j, p) in jobs.iter().zip(&o.per_job) {
            let brute = brute_alone(j, &levels);
            prop_assert_eq!(brute.is_some(), p.alone_cpu_seconds.is_some());
            if let (Some(b), Some(a)) = (brute, p.alone_cpu_seconds) {
                prop_assert!(close(a, b), "DP {} vs exhaustive {}", a, b);
            }
            if p.met {
                prop_assert!(p.cpu_seconds >= p.alone_cpu_seconds.unwrap() - 1e-6);
            }
        }
        prop_assert!(o.feasible_alone == o.per_job.iter().filter(|p| p.alone_cpu_seconds.is_some()).count());
    }

    /// On instances small enough to exhaust, an exact answer is the exhaustive optimum.
    #[test]
    fn exact_answers_match_exhaustion(
        jobs in prop::collection::vec(arb_tight_job(), 1..=3),
        nodes in arb_nodes(2),
    ) {
        let total: usize = jobs.iter().map(|j| j.units.len()).sum();
        prop_assume!(total <= 3);
        let bounds = OracleBounds { cpu_min: c(0.5), cpu_max: c(2.0), granularity: c(0.5) };
        let o = oracle(&nodes, &jobs, &bounds).unwrap();
        if let Err(e) = check_schedule(&nodes, &jobs, &bounds, &o) {
            return Err(TestCaseError::fail(e));
        }
        let levels = grid(&bounds, nodes.iter().copied().max().unwrap());
        let (met, cost) = brute_oracle(&nodes, &jobs, &levels);
        prop_assert!(o.exact, "{}", o.method);
        prop_assert_eq!(o.met, met, "{}", o.method);
        prop_assert!(close(o.cpu_seconds, cost), "oracle {} vs exhaustive {}", o.cpu_seconds, cost);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// No run of the simulator, either policy, under quotas, meets more deadlines than the
    /// oracle allows on the same scenario (an upper bound, exact or not).
    #[test]
    fn no_policy_beats_the_oracle(seed in 0u64..10_000, pick in 0usize..4) {
        let name = match pick {
            0 => "case1".to_string(),
            1 => "case2".to_string(),
            2 => "case3".to_string(),
            _ => format!("random:{seed}"),
        };
        let s = scenario(&name, seed, Sharing::Quota).unwrap();
        let jobs = oracle_jobs(&s);
        let bounds = OracleBounds::default();
        let o = oracle(&s.cluster.nodes, &jobs, &bounds).unwrap();
        if let Err(e) = check_schedule(&s.cluster.nodes, &jobs, &bounds, &o) {
            return Err(TestCaseError::fail(format!("{name}: {e}")));
        }
        for policy in ["thesis", "predictive"] {
            let r = simulate(&s, &Policy::by_name(policy).unwrap(), SimConfig::default());
            prop_assert!(
                r.totals.met <= o.met,
                "{} {}: {} met, oracle {} ({})", name, policy, r.totals.met, o.met, o.method
            );
            // "Feasible" means the same to both: alone at cpu_max by the deadline.
            prop_assert_eq!(r.totals.feasible, o.feasible_alone, "{}", name);
        }
    }
}

/// Prints the oracle's time on the case studies and 200 random seeds against a simulation run
/// of the predictive policy on the same scenarios, and how often it is exact.
/// `cargo test -p qos-core --release oracle_timing -- --ignored --nocapture`
#[test]
#[ignore = "prints figures; run by hand"]
fn oracle_timing() {
    use std::time::Instant;
    let bounds = OracleBounds::default();
    let policy = Policy::by_name("predictive").unwrap();
    let report = |label: &str, names: Vec<(String, u64)>| {
        let (mut t_oracle, mut t_sim, mut worst) = (0.0f64, 0.0f64, (0.0f64, String::new()));
        let (mut exact, mut met_exact, mut separable, mut nodes) = (0, 0, 0, 0u64);
        for (name, seed) in &names {
            let s = scenario(name, *seed, Sharing::Quota).unwrap();
            let t = Instant::now();
            let o = oracle(&s.cluster.nodes, &oracle_jobs(&s), &bounds).unwrap();
            let dt = t.elapsed().as_secs_f64();
            t_oracle += dt;
            if dt > worst.0 {
                worst = (dt, name.clone());
            }
            let t = Instant::now();
            let _ = simulate(&s, &policy, SimConfig::default());
            t_sim += t.elapsed().as_secs_f64();
            exact += usize::from(o.exact);
            met_exact += usize::from(o.met_exact);
            separable +=
                usize::from(o.exact && o.method.contains("individually cheapest plans (a DP"));
            nodes += o.search_nodes;
            if !o.exact || names.len() < 5 {
                println!(
                    "  {name}: met {}/{} {:.1} CPU-s — {}",
                    o.met, o.feasible_alone, o.cpu_seconds, o.method
                );
            }
        }
        println!(
            "{label}: {} scenarios, exact {exact} ({separable} separable, {met_exact} with met \
             exact), oracle {:.1} ms total \
             (worst {:.1} ms on {}), {} search nodes; predictive simulation {:.1} ms total; \
             oracle/simulation = {:.2}×",
            names.len(),
            t_oracle * 1e3,
            worst.0 * 1e3,
            worst.1,
            nodes,
            t_sim * 1e3,
            t_oracle / t_sim
        );
    };
    report(
        "case studies (seed 1)",
        ["case1", "case2", "case3"]
            .iter()
            .map(|n| (n.to_string(), 1))
            .collect(),
    );
    report(
        "case studies, seeds 1..=20",
        ["case1", "case2", "case3"]
            .iter()
            .flat_map(|n| (1..=20).map(move |seed| (n.to_string(), seed)))
            .collect(),
    );
    report(
        "random:0..200",
        (0..200).map(|s| (format!("random:{s}"), s)).collect(),
    );
}
