//! The study library: sweeps over random scenarios and their aggregate, shared by the `study`
//! binary and its tests.

use qos_core::Policy;
use qos_core::sim::{Sharing, SimConfig, Totals, scenario, simulate};
use serde::Serialize;

/// One seed of a sweep: the evaluated policy's totals and, if asked, the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// Seed of the random scenario.
    pub seed: u64,
    /// Totals under the evaluated policy.
    pub policy: Totals,
    /// Totals under the baseline policy, when compared.
    pub baseline: Option<Totals>,
}

/// Runs `random:<seed>` under `policy` (and `baseline`).
pub fn sweep_row(
    seed: u64,
    sharing: Sharing,
    policy: &Policy,
    baseline: Option<&Policy>,
) -> SweepRow {
    let s =
        scenario(&format!("random:{seed}"), seed, sharing).expect("random scenarios always build");
    let cfg = SimConfig::default();
    SweepRow {
        seed,
        policy: simulate(&s, policy, cfg).totals,
        baseline: baseline.map(|b| simulate(&s, b, cfg).totals),
    }
}

/// Aggregate of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Aggregate {
    /// Seeds run.
    pub seeds: usize,
    /// Σ over seeds of the evaluated policy's totals.
    pub policy: Totals,
    /// Σ over seeds of the baseline's totals.
    pub baseline: Option<Totals>,
    /// Seeds where the policy met fewer deadlines than the baseline.
    pub seeds_fewer_met: Vec<u64>,
    /// Seeds where the policy met more deadlines than the baseline.
    pub seeds_more_met: usize,
    /// Seeds where the policy allocated fewer CPU-seconds than the baseline.
    pub seeds_fewer_cpu: usize,
    /// Seeds where some feasible deadline was missed under the policy.
    pub seeds_feasible_missed: Vec<u64>,
}

fn add(a: &mut Totals, b: &Totals) {
    a.jobs += b.jobs;
    a.met += b.met;
    a.feasible += b.feasible;
    a.feasible_met += b.feasible_met;
    a.cpu_seconds_allocated += b.cpu_seconds_allocated;
    a.cpu_seconds_used += b.cpu_seconds_used;
    a.resizes += b.resizes;
    a.restarts += b.restarts;
}

/// Sums a sweep.
pub fn aggregate(rows: &[SweepRow]) -> Aggregate {
    let mut agg = Aggregate {
        seeds: rows.len(),
        ..Aggregate::default()
    };
    for r in rows {
        add(&mut agg.policy, &r.policy);
        if r.policy.feasible_met < r.policy.feasible {
            agg.seeds_feasible_missed.push(r.seed);
        }
        if let Some(b) = &r.baseline {
            add(agg.baseline.get_or_insert_with(Totals::default), b);
            if r.policy.met < b.met {
                agg.seeds_fewer_met.push(r.seed);
            }
            agg.seeds_more_met += usize::from(r.policy.met > b.met);
            agg.seeds_fewer_cpu +=
                usize::from(r.policy.cpu_seconds_allocated < b.cpu_seconds_allocated);
        }
    }
    agg
}

/// Human-readable aggregate.
pub fn render_aggregate(agg: &Aggregate, policy: &str, baseline: Option<&str>) -> String {
    let line = |name: &str, t: &Totals| {
        format!(
            "{name:<11} met {:>5}/{:<5} feasible met {:>5}/{:<5} cpu-s allocated {:>10.0}  used {:>10.0}  resizes {:>6}  restarts {:>5}\n",
            t.met,
            t.jobs,
            t.feasible_met,
            t.feasible,
            t.cpu_seconds_allocated,
            t.cpu_seconds_used,
            t.resizes,
            t.restarts
        )
    };
    let mut out = format!("{} random scenarios\n", agg.seeds);
    out += &line(policy, &agg.policy);
    if let (Some(b), Some(name)) = (&agg.baseline, baseline) {
        out += &line(name, b);
        out += &format!(
            "{policy} vs {name}: fewer deadlines met in {} seeds {:?}, more in {}, fewer CPU-seconds in {}/{} seeds ({:+.1} % in total)\n",
            agg.seeds_fewer_met.len(),
            agg.seeds_fewer_met,
            agg.seeds_more_met,
            agg.seeds_fewer_cpu,
            agg.seeds,
            100.0 * (agg.policy.cpu_seconds_allocated / b.cpu_seconds_allocated - 1.0)
        );
    }
    out += &format!(
        "seeds where {policy} missed a feasible deadline: {} {:?}\n",
        agg.seeds_feasible_missed.len(),
        agg.seeds_feasible_missed
    );
    out
}
