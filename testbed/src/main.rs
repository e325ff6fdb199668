//! `testbed serve`: an emulated Mesos cluster with Marathon and Chronos on one address and each
//! agent on its own. Prints one JSON line `{"marathon": URL, "chronos": URL, "agents": [URL…]}`
//! on stdout once ready; logs go to stderr; SIGTERM/SIGINT stop every task and remove its cgroups
//! and containers before exiting.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use testbed::{Config, RuntimeKind};

#[derive(Parser)]
#[command(
    name = "testbed",
    version,
    about = "A local stand-in for a Mesos cluster (Marathon, Chronos, agents)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the emulated cluster and serve until SIGTERM/SIGINT.
    Serve(Box<ServeArgs>),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration (keys as the long flags, with `_`); flags override it.
    #[arg(long, short = 'c', env = "QOS_TESTBED_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the Marathon + Chronos server (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Number of agents.
    #[arg(long)]
    agents: Option<usize>,
    /// CPU capacity of each agent.
    #[arg(long)]
    cpus_per_agent: Option<f64>,
    /// Memory of each agent, MiB.
    #[arg(long)]
    mem_per_agent: Option<f64>,
    /// Task runtime: process or docker.
    #[arg(long)]
    runtime: Option<RuntimeKind>,
    /// Directory under each cgroup controller root for the agents' cgroups.
    #[arg(long)]
    cgroup_prefix: Option<String>,
    /// Do not use cgroups (CPU limits not enforced).
    #[arg(long)]
    no_cgroups: bool,
    /// Directory of the `<agent>/<task>/qos.json` files for cgroup-collector.
    #[arg(long)]
    meta_dir: Option<PathBuf>,
    /// Directory of the recovery records: on start, the tasks, cgroups and containers of any
    /// testbed that died with a record there are killed and removed [default: /var/lib/qos-testbed].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Directory for task sandboxes (default: a temporary directory removed at exit).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Docker daemon (default: DOCKER_HOST, else the local socket).
    #[arg(long)]
    docker_host: Option<String>,
    /// Delay before Chronos retries a failed run, milliseconds.
    #[arg(long)]
    chronos_failure_retry_ms: Option<u64>,
    /// Which Chronos to be: 2 (2.5.1 on /scheduler), 3 (3.0.2 on /v1/scheduler) or both
    /// (default: both prefixes over one job store).
    #[arg(long, value_name = "2|3|both")]
    chronos_version: Option<testbed::ChronosVersion>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(v) = self.agents {
            cfg.agents = v;
        }
        if let Some(v) = self.cpus_per_agent {
            cfg.cpus_per_agent = v;
        }
        if let Some(v) = self.mem_per_agent {
            cfg.mem_per_agent = v;
        }
        if let Some(v) = self.runtime {
            cfg.runtime = v;
        }
        if let Some(v) = &self.cgroup_prefix {
            cfg.cgroup_prefix.clone_from(v);
        }
        if self.no_cgroups {
            cfg.no_cgroups = true;
        }
        if let Some(v) = &self.meta_dir {
            cfg.meta_dir.clone_from(v);
        }
        if let Some(v) = &self.state_dir {
            cfg.state_dir.clone_from(v);
        }
        if let Some(v) = &self.work_dir {
            cfg.work_dir = Some(v.clone());
        }
        if let Some(v) = &self.docker_host {
            cfg.docker_host = Some(v.clone());
        }
        if let Some(v) = self.chronos_failure_retry_ms {
            cfg.chronos_failure_retry_ms = v;
        }
        if let Some(v) = self.chronos_version {
            cfg.chronos_version = v;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let tb = testbed::serve(cfg, listener, binkit::shutdown_signal()).await?;
    if let Some(note) = tb.cpu_limits_note() {
        eprintln!("testbed: WARNING: CPU limits are NOT enforced: {note}");
    }
    let line = serde_json::to_string(tb.urls())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    tracing::info!("testbed ready: {line}");
    tb.wait().await;
    tracing::info!("testbed stopped");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = binkit::init_tracing("info", None) {
        eprintln!("testbed: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("testbed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        Command::Serve(args) => rt.block_on(serve(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
