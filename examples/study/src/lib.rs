//! The study library: sweeps over random scenarios, each policy against the clairvoyant oracle
//! and against each other, shared by the `study` binary and its tests.
//!
//! A sweep runs every seed of a workload (`mixed`: the jobs users have — Chronos and Marathon,
//! progress reported or not, checkpointing or not, parallel to serial; `random`: the thesis-era
//! LINPACK mix) under each policy, with the oracle of the same scenario, and sums per policy:
//! deadlines met against the oracle's, CPU-seconds on the jobs both met against the oracle's,
//! restarts and the work they lost, the seeds where a policy met fewer deadlines than another,
//! and the same per kind of job.

pub mod cli;
mod real;
mod report;

use std::collections::BTreeMap;

use qos_core::Policy;
use qos_core::predictive::ResizeMode;
use qos_core::sim::{JobResult, Sharing, SimConfig, SimResult, Totals, scenario, simulate};
use serde::Serialize;

/// What to sweep: the `study sweep` options (bar `--json`), and the head of the [`Sweep`] made
/// with them.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize)]
pub struct SweepOptions {
    /// mixed (the jobs users have: progress reported or not, checkpointing or not, parallel
    /// to serial) or random (the thesis-era LINPACK mix).
    #[arg(long, default_value = "mixed")]
    pub workload: String,
    /// Policies to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "static,thesis,predictive"
    )]
    #[serde(skip)] // a sweep names them in its per-policy results
    pub policies: Vec<String>,
    /// Number of scenarios (seeds 1..=N).
    #[arg(long, default_value_t = 200)]
    pub seeds: u64,
    /// How a node's CPU is shared between tasks (the oracle needs quota).
    #[arg(long, value_parser = cli::sharing_parser(), default_value = "quota")]
    #[serde(skip)]
    // not in a sweep's JSON (docs/results.md); under shares its oracle figures are null
    pub sharing: Sharing,
    /// How resizes are made.
    #[command(flatten)]
    #[serde(flatten)]
    pub resize: Resizing,
}

impl Default for SweepOptions {
    /// `study sweep`'s defaults: the mixed workload, 200 seeds, quotas, resizes by restart with
    /// node agents, the static, thesis and predictive policies.
    fn default() -> Self {
        let cmd = <Self as clap::Args>::augment_args(clap::Command::new("sweep"));
        <Self as clap::FromArgMatches>::from_arg_matches(&cmd.get_matches_from(["sweep"]))
            .expect("every sweep option has a default")
    }
}

/// How the simulated cluster resizes (`simulate` and `sweep` alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args, Serialize)]
pub struct Resizing {
    /// How resizes take effect.
    #[arg(long, value_parser = cli::resize_mode_parser(), default_value = "restart")]
    pub resize_mode: ResizeMode,
    /// Nodes without agents: no resize can be made in place.
    #[arg(long = "no-agents", action = clap::ArgAction::SetFalse)]
    pub agents: bool,
}

/// One policy's sums over a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PolicySweep {
    /// The policy, by name (`static`, `thesis`, `predictive`).
    pub policy: String,
    /// Σ of its totals over the seeds.
    pub totals: Totals,
    /// Deadlines it met / deadlines the oracle met.
    pub met_vs_oracle: Option<f64>,
    /// CPU-seconds it allocated to the jobs both it and the oracle met / the oracle's for them.
    pub cpu_vs_oracle: Option<f64>,
    /// Seeds where it met fewer deadlines than the oracle.
    pub seeds_below_oracle: Vec<u64>,
    /// Per other policy: the seeds where this one met fewer deadlines.
    pub seeds_fewer_met_than: BTreeMap<String, Vec<u64>>,
    /// Restarts of jobs that cannot checkpoint, and the CPU-seconds they lost.
    pub restarts_of_unable: u32,
    /// CPU-seconds lost by restarts of jobs that cannot checkpoint.
    pub lost_by_unable: f64,
    /// CPU-seconds lost by restarts that shrank a job.
    pub lost_by_shrinks: f64,
    /// Per kind of job (`marathon/cpu-time/no-checkpoint`, `curve:serial`, …).
    pub by_kind: BTreeMap<String, KindSweep>,
}

/// Sums over the jobs of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct KindSweep {
    /// Jobs of this kind over the seeds.
    pub jobs: usize,
    /// Those whose deadline the policy met.
    pub met: usize,
    /// Met by the oracle.
    pub oracle_met: usize,
    /// CPU-seconds allocated.
    pub cpu_seconds_allocated: f64,
    /// Restarts the policy caused (resizes that restarted a task).
    pub restarts: u32,
    /// CPU-seconds lost by restarts.
    pub cpu_seconds_lost: f64,
}

/// A whole sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// What was swept; the JSON carries its workload, seeds, resize mode and whether nodes had
    /// agents (the policies are named in `policies` below).
    #[serde(flatten)]
    pub options: SweepOptions,
    /// Deadlines the oracle met (or bounded), summed.
    pub oracle_met: Option<usize>,
    /// Seeds where the oracle's figures are exact.
    pub oracle_exact_seeds: usize,
    /// Deadlines feasible alone, summed.
    pub feasible: usize,
    /// One entry per policy, in the order asked.
    pub policies: Vec<PolicySweep>,
}

/// The per-seed results of every policy on one scenario.
fn run_seed(opts: &SweepOptions, policies: &[Policy], seed: u64) -> Vec<SimResult> {
    let mut s = scenario(&format!("{}:{seed}", opts.workload), seed, opts.sharing)
        .expect("random and mixed scenarios always build");
    s.cluster.agents = opts.resize.agents;
    let cfg = SimConfig {
        resize_mode: opts.resize.resize_mode,
        oracle: opts.sharing == Sharing::Quota,
        ..SimConfig::default()
    };
    policies.iter().map(|p| simulate(&s, p, cfg)).collect()
}

/// The kinds a job is counted under: its framework/signal/checkpointing, and its speed-up curve.
fn kinds(j: &JobResult) -> [String; 2] {
    let (head, curve) = j.kind.rsplit_once('/').unwrap_or((&j.kind, ""));
    [head.to_owned(), format!("curve:{curve}")]
}

/// Runs the sweep. `progress` is called after each seed with the number done.
///
/// # Errors
/// An unknown policy name.
pub fn sweep(opts: &SweepOptions, mut progress: impl FnMut(u64)) -> Result<Sweep, String> {
    let policies: Vec<Policy> = opts
        .policies
        .iter()
        .map(|p| Policy::by_name(p))
        .collect::<Result<_, _>>()?;
    let mut out: Vec<PolicySweep> = opts
        .policies
        .iter()
        .map(|p| PolicySweep {
            policy: p.clone(),
            ..PolicySweep::default()
        })
        .collect();
    let mut both = vec![(0.0_f64, 0.0_f64); policies.len()];
    let (mut oracle_met, mut exact, mut feasible) = (None::<usize>, 0, 0);
    for seed in 1..=opts.seeds {
        let rs = run_seed(opts, &policies, seed);
        feasible += rs.first().map_or(0, |r| r.totals.feasible);
        if let Some(m) = rs.first().and_then(|r| r.totals.oracle_met) {
            *oracle_met.get_or_insert(0) += m;
            exact += usize::from(rs[0].totals.oracle_exact == Some(true));
        }
        for (k, r) in rs.iter().enumerate() {
            let p = &mut out[k];
            p.totals.add(&r.totals);
            if r.totals.oracle_met.is_some_and(|m| r.totals.met < m) {
                p.seeds_below_oracle.push(seed);
            }
            for (other, o) in opts.policies.iter().zip(&rs) {
                if o.totals.met > r.totals.met {
                    p.seeds_fewer_met_than
                        .entry(other.clone())
                        .or_default()
                        .push(seed);
                }
            }
            for j in &r.jobs {
                if let (true, Some(o)) = (j.met, j.oracle_cpu_seconds) {
                    both[k].0 += j.usage.cpu_seconds_allocated;
                    both[k].1 += o;
                }
                if j.kind.contains("no-checkpoint") {
                    p.restarts_of_unable += j.usage.restarts;
                    p.lost_by_unable += j.usage.cpu_seconds_lost;
                }
                p.lost_by_shrinks += j.cpu_seconds_lost_by_shrinks;
                for kind in kinds(j) {
                    let e = p.by_kind.entry(kind).or_default();
                    e.jobs += 1;
                    e.met += usize::from(j.met);
                    e.oracle_met += usize::from(j.oracle_cpu_seconds.is_some());
                    e.cpu_seconds_allocated += j.usage.cpu_seconds_allocated;
                    e.restarts += j.usage.restarts;
                    e.cpu_seconds_lost += j.usage.cpu_seconds_lost;
                }
            }
        }
        progress(seed);
    }
    for (p, (mine, theirs)) in out.iter_mut().zip(both) {
        p.met_vs_oracle = oracle_met
            .filter(|&m| m > 0)
            .map(|m| p.totals.met as f64 / m as f64);
        p.cpu_vs_oracle = (theirs > 0.0).then(|| mine / theirs);
    }
    Ok(Sweep {
        options: opts.clone(),
        oracle_met,
        oracle_exact_seeds: exact,
        feasible,
        policies: out,
    })
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |r| format!("{r:.3}"))
}

/// Human-readable sweep: one line per policy, the seeds where a policy did worse than another,
/// and a table per kind of job.
pub fn render(s: &Sweep) -> String {
    let mut out = format!(
        "{} seeds of the {} workload, resizes by {}{}: {} jobs, {} feasible alone, oracle meets {} ({} of {} seeds exact)\n",
        s.options.seeds,
        s.options.workload,
        match s.options.resize.resize_mode {
            ResizeMode::Restart => "restart",
            ResizeMode::InPlace => "in-place",
        },
        if s.options.resize.agents {
            ", node agents can resize in place"
        } else {
            ", no node agents"
        },
        s.policies.first().map_or(0, |p| p.totals.jobs),
        s.feasible,
        s.oracle_met.map_or_else(|| "–".into(), |m| m.to_string()),
        s.oracle_exact_seeds,
        s.options.seeds
    );
    out += &format!(
        "{:<11} {:>6} {:>10} {:>12} {:>10} {:>9} {:>10} {:>12} {:>12}\n",
        "policy",
        "met",
        "met/oracle",
        "cpu-s alloc",
        "cpu/oracle",
        "restarts",
        "lost cpu-s",
        "lost/restart*",
        "lost@shrink"
    );
    for p in &s.policies {
        let t = &p.totals;
        out += &format!(
            "{:<11} {:>6} {:>10} {:>12.0} {:>10} {:>9} {:>10.0} {:>12} {:>12.0}\n",
            p.policy,
            t.met,
            ratio(p.met_vs_oracle),
            t.usage.cpu_seconds_allocated,
            ratio(p.cpu_vs_oracle),
            t.usage.restarts,
            t.usage.cpu_seconds_lost,
            if p.restarts_of_unable == 0 {
                "–".into()
            } else {
                format!("{:.1}", p.lost_by_unable / f64::from(p.restarts_of_unable))
            },
            p.lost_by_shrinks
        );
    }
    out += "  (cpu/oracle: on the jobs both met; lost/restart*: CPU-s lost per restart of a job that cannot checkpoint; lost@shrink: lost by restarts that shrank a job)\n";
    for p in &s.policies {
        for (other, seeds) in &p.seeds_fewer_met_than {
            out += &format!(
                "{} met fewer deadlines than {} in {} seeds {:?}\n",
                p.policy,
                other,
                seeds.len(),
                seeds
            );
        }
    }
    let mut kinds: Vec<&String> = s.policies.iter().flat_map(|p| p.by_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    out += &format!("{:<36} {:>6} {:>7}", "kind", "jobs", "oracle");
    for p in &s.policies {
        out += &format!(" {:>11}", p.policy);
    }
    out += "\n";
    for kind in kinds {
        let first = s.policies.iter().find_map(|p| p.by_kind.get(kind));
        let (jobs, oracle) = first.map_or((0, 0), |k| (k.jobs, k.oracle_met));
        out += &format!("{kind:<36} {jobs:>6} {oracle:>7}");
        for p in &s.policies {
            out += &format!(" {:>11}", p.by_kind.get(kind).map_or(0, |k| k.met));
        }
        out += "\n";
    }
    out
}
