//! The `study` command line: `simulate`, `sweep`, `real` and `report` (see `study --help`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::{Resizing, SweepOptions, real, report};
use anyhow::{Context, Result, bail};
use clap::builder::{EnumValueParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use qos_core::Policy;
use qos_core::predictive::ResizeMode;
use qos_core::sim::{Sharing, SimConfig, SimResult, scenario, simulate};

/// Reproduce the thesis case studies and compare control policies.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  study simulate --scenario case1 --policy thesis        # the thesis' Case I under its own policy
  study simulate --scenario case3 --policy predictive --json
  study sweep --seeds 200                          # the mixed workload, every policy vs the oracle
  study sweep --resize-mode in-place --workload random
  study real --case 3 --policy thesis --scale 0.1  # as root: testbed, supervisor, LINPACK
  study report                                     # writes docs/study/README.md and plots";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SharingArg {
    /// Hard CFS quota = allocation (qos-elastic's containers).
    Quota,
    /// Proportional CPU shares, idle CPU usable (the thesis' Docker-on-Mesos containers).
    Shares,
}

impl From<SharingArg> for Sharing {
    fn from(s: SharingArg) -> Self {
        match s {
            SharingArg::Quota => Sharing::Quota,
            SharingArg::Shares => Sharing::Shares,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Through the framework: the task restarts (checkpointed or from scratch).
    Restart,
    /// The node agent changes the container's quota live.
    InPlace,
}

impl From<ModeArg> for ResizeMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Restart => ResizeMode::Restart,
            ModeArg::InPlace => ResizeMode::InPlace,
        }
    }
}

/// Parses `--sharing` by its spellings and their help above, into the simulator's [`Sharing`].
pub(crate) fn sharing_parser() -> impl TypedValueParser<Value = Sharing> {
    EnumValueParser::<SharingArg>::new().map(Sharing::from)
}

/// Parses `--resize-mode` by its spellings and their help above, into a [`ResizeMode`].
pub(crate) fn resize_mode_parser() -> impl TypedValueParser<Value = ResizeMode> {
    EnumValueParser::<ModeArg>::new().map(ResizeMode::from)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one scenario under one policy and print per-job results and totals.
    Simulate {
        /// case1 | case2 | case3 | random:SEED | mixed:SEED
        #[arg(long, default_value = "case1")]
        scenario: String,
        /// thesis | predictive | static
        #[arg(long, default_value = "predictive")]
        policy: String,
        /// Seed of the scenario's random draws (overheads, noise, case 2's matrix sizes).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How a node's CPU is shared between tasks [default: shares for case1-3, the thesis'
        /// infrastructure; quota for random mixes, qos-elastic's own]
        #[arg(long, value_parser = sharing_parser())]
        sharing: Option<Sharing>,
        /// How resizes are made.
        #[command(flatten)]
        resize: Resizing,
        /// Print the full result as one JSON document (see docs/results.md for its shape). Under
        /// quota sharing, totals carry the clairvoyant oracle's figures (oracle_met,
        /// oracle_cpu_seconds, oracle_exact).
        #[arg(long)]
        json: bool,
    },
    /// Run many random scenarios under every policy and the clairvoyant oracle; print deadlines
    /// met and CPU-seconds against the oracle's, restarts and lost work, the seeds where a policy
    /// did worse than another, and the same per kind of job.
    Sweep {
        #[command(flatten)]
        options: SweepOptions,
        /// Print the sweep as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a thesis case study for real (as root): the testbed's agents emulate the thesis'
    /// nodes on this machine, with the real supervisor, launcher, shell-trap, collector and
    /// LINPACK; times scaled by --scale, CPUs to fit 2 cores. Everything is recorded in a run
    /// directory (target/study/real/case<N>-<policy>-<time>/).
    Real(real::RealArgs),
    /// Write docs/study/ (README.md and PNG plots) from the newest real run of each case and
    /// policy and from the simulator.
    Report {
        /// Where the real runs are [default: target/study/real].
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Output directory [default: docs/study].
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Parses the command line, runs the command, prints its error on stderr; every error exits 2.
#[must_use]
pub fn main_entry() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("study: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The case studies ran on the thesis' Docker-on-Mesos cluster (CPU shares); random mixes run
/// the way qos-elastic runs containers (hard quotas).
fn default_sharing(scenario: &str) -> Sharing {
    if scenario.starts_with("case") {
        Sharing::Shares
    } else {
        Sharing::Quota
    }
}

fn policy(name: &str) -> Result<Policy> {
    Policy::by_name(name)
        .map_err(anyhow::Error::msg)
        .context("--policy")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Real(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let dir = rt.block_on(real::run(&args))?;
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            println!("{}", dir.display());
        }
        Command::Report { runs, out } => {
            let root = demo::binaries::workspace_root().unwrap_or_else(|| PathBuf::from("."));
            let runs = runs.unwrap_or_else(|| root.join("target/study/real"));
            let out = out.unwrap_or_else(|| root.join("docs/study"));
            let written = report::write(&runs, &out)?;
            println!("{}", written.display());
        }
        Command::Simulate {
            scenario: name,
            policy: p,
            seed,
            sharing,
            resize,
            json,
        } => {
            let sharing = sharing.unwrap_or_else(|| default_sharing(&name));
            let mut s = scenario(&name, seed, sharing).context("--scenario")?;
            s.cluster.agents &= resize.agents;
            let cfg = SimConfig {
                resize_mode: resize.resize_mode,
                oracle: sharing == Sharing::Quota,
                ..SimConfig::default()
            };
            let r = simulate(&s, &policy(&p)?, cfg);
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_result(&r);
            }
        }
        Command::Sweep { options, json } => {
            let seeds = options.seeds;
            if seeds == 0 {
                bail!("--seeds must be at least 1");
            }
            let workload = &options.workload;
            if !matches!(workload.as_str(), "mixed" | "random") {
                bail!("--workload: unknown workload {workload:?} (expected mixed or random)");
            }
            let quiet = json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
            let sweep = crate::sweep(&options, |done| {
                if !quiet && (done % 20 == 0 || done == seeds) {
                    eprint!("\r{done}/{seeds} seeds");
                    if done == seeds {
                        eprintln!();
                    }
                }
            })
            .map_err(anyhow::Error::msg)
            .context("--policies")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&sweep)?);
            } else {
                print!("{}", crate::render(&sweep));
            }
        }
    }
    Ok(())
}

fn print_result(r: &SimResult) {
    println!(
        "scenario {} · policy {} · seed {}",
        r.scenario, r.policy, r.seed
    );
    println!(
        "{:<16} {:<9} {:>8} {:>9} {:>4} {:>8} {:>10} {:>9} {:>7} {:>8}",
        "job",
        "framework",
        "deadline",
        "finished",
        "met",
        "feasible",
        "cpu-s alloc",
        "cpu-s used",
        "resizes",
        "restarts"
    );
    for j in &r.jobs {
        println!(
            "{:<16} {:<9} {:>8.0} {:>9} {:>4} {:>8} {:>10.0} {:>9.0} {:>7} {:>8}",
            j.name,
            j.framework.as_str(),
            j.deadline,
            j.finished_at.map_or("-".into(), |f| format!("{f:.0}")),
            if j.met { "yes" } else { "NO" },
            if j.feasible { "yes" } else { "no" },
            j.usage.cpu_seconds_allocated,
            j.usage.cpu_seconds_used,
            j.usage.resizes,
            j.usage.restarts
        );
    }
    let t = &r.totals;
    println!(
        "total: met {}/{} (feasible met {}/{}), cpu-s allocated {:.0}, used {:.0}, resizes {}, restarts {} ({} from scratch, {:.0} CPU-s lost)",
        t.met,
        t.jobs,
        t.feasible_met,
        t.feasible,
        t.usage.cpu_seconds_allocated,
        t.usage.cpu_seconds_used,
        t.usage.resizes,
        t.usage.restarts,
        t.usage.restarts_lost,
        t.usage.cpu_seconds_lost
    );
    if let (Some(m), Some(c)) = (t.oracle_met, t.oracle_cpu_seconds) {
        println!(
            "oracle: met {m} with {c:.0} CPU-s ({})",
            if t.oracle_exact == Some(true) {
                "exact"
            } else {
                "a bound"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_takes_the_demos_build_flags() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Real(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        };
        let a = parse(&["study", "real", "--case", "3"]);
        assert_eq!((a.case, a.scale, a.policy.as_str()), (3, 0.1, "predictive"));
        assert_eq!(
            (a.build.bin_dir, a.build.no_build, a.build.profile.as_str()),
            (None, false, "release")
        );
        let a = parse(&[
            "study",
            "real",
            "--case",
            "1",
            "--bin-dir",
            "/b",
            "--no-build",
            "--profile",
            "dev",
        ]);
        assert_eq!(
            (a.build.bin_dir, a.build.no_build, a.build.profile.as_str()),
            (Some(PathBuf::from("/b")), true, "dev")
        );
        assert!(Cli::try_parse_from(["study", "real", "--case", "4"]).is_err());
    }

    #[test]
    fn sweep_flags_are_the_options_a_sweep_reports() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Sweep { options, .. }) => options,
            other => panic!("{args:?}: {other:?}"),
        };
        let d = parse(&["study", "sweep"]);
        assert_eq!(d, SweepOptions::default());
        assert_eq!(
            (
                d.workload.as_str(),
                d.seeds,
                d.sharing,
                d.policies.join(",")
            ),
            (
                "mixed",
                200,
                Sharing::Quota,
                "static,thesis,predictive".into()
            )
        );
        assert_eq!(
            d.resize,
            Resizing {
                resize_mode: ResizeMode::Restart,
                agents: true
            }
        );
        let o = parse(&[
            "study",
            "sweep",
            "--workload",
            "random",
            "--seeds",
            "2",
            "--sharing",
            "shares",
            "--resize-mode",
            "in-place",
            "--no-agents",
            "--policies",
            "thesis",
        ]);
        let expected = SweepOptions {
            workload: "random".into(),
            policies: vec!["thesis".into()],
            seeds: 2,
            sharing: Sharing::Shares,
            resize: Resizing {
                resize_mode: ResizeMode::InPlace,
                agents: false,
            },
        };
        assert_eq!(o, expected);
        // The sweep's JSON opens with what was swept, as docs/results.md lists it.
        let json = serde_json::to_string(&crate::sweep(&o, |_| {}).unwrap()).unwrap();
        assert!(
            json.starts_with(
                r#"{"workload":"random","seeds":2,"resize_mode":"in-place","agents":false,"oracle_met":null,"#
            ),
            "{json}"
        );
    }
}
