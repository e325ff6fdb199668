//! The `testbed` command line: `testbed serve` parses its flags over an optional TOML file, starts
//! the emulated cluster ([`crate::serve`]), prints one JSON line of URLs on stdout once ready and
//! serves until SIGTERM/SIGINT. Logs go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{ChronosVersion, Config, ConfigError, RuntimeKind};

/// Why `testbed serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration file or a flag is wrong (exit code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Marathon + Chronos address (`--listen`) cannot be bound.
    #[error(transparent)]
    Listen(#[from] binkit::ListenError),
    /// The cluster did not start (cgroups, Docker, the agents' ports, recovery).
    #[error(transparent)]
    Start(anyhow::Error),
    /// The ready line could not be written to stdout.
    #[error("cannot write the ready line: {0}")]
    Output(std::io::Error),
    /// Logging could not be set up.
    #[error("{0}")]
    Tracing(String),
    /// The async runtime could not be created.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl CliError {
    /// The process exit code: 2 for a wrong configuration, 1 for anything else.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 1,
        }
    }
}

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
    /// Seconds an ended task's sandbox is kept before it is removed (Mesos' `--gc_delay`;
    /// 0: as the task ends) [default: 3600].
    #[arg(long)]
    sandbox_gc_delay_secs: Option<f64>,
    /// Delay before Chronos retries a failed run, milliseconds.
    #[arg(long)]
    chronos_failure_retry_ms: Option<u64>,
    /// Which Chronos to be: 2 (2.5.1 on /scheduler), 3 (3.0.2 on /v1/scheduler) or both
    /// (default: both prefixes over one job store).
    #[arg(long, value_name = "2|3|both")]
    chronos_version: Option<ChronosVersion>,
    /// Most connections each server (Marathon + Chronos, each agent) keeps open at once; more
    /// wait in the listen backlog [default: 256].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Seconds a connection may take to send a complete request head (from its opening or its
    /// last answer) before it is closed [default: 30].
    #[arg(long)]
    header_timeout_secs: Option<f64>,
}

impl ServeArgs {
    /// The configuration: the file (or the defaults), then the flags over it, then checked.
    fn config(&self) -> Result<Config, ConfigError> {
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
        if let Some(v) = self.sandbox_gc_delay_secs {
            cfg.sandbox_gc_delay_secs = v;
        }
        if let Some(v) = self.chronos_failure_retry_ms {
            cfg.chronos_failure_retry_ms = v;
        }
        if let Some(v) = self.chronos_version {
            cfg.chronos_version = v;
        }
        if let Some(v) = self.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = self.header_timeout_secs {
            cfg.header_timeout_secs = v;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

async fn serve(args: &ServeArgs) -> Result<(), CliError> {
    let cfg = args.config()?;
    let listener = binkit::listen(&args.listen).await?;
    let tb = crate::serve(cfg, listener, binkit::shutdown_signal())
        .await
        .map_err(CliError::Start)?;
    if let Some(note) = tb.cpu_limits_note() {
        eprintln!("testbed: WARNING: CPU limits are NOT enforced: {note}");
    }
    let line = serde_json::to_string(tb.urls()).map_err(|e| CliError::Output(e.into()))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").map_err(CliError::Output)?;
        out.flush().map_err(CliError::Output)?;
    }
    tracing::info!("testbed ready: {line}");
    tb.wait().await;
    tracing::info!("testbed stopped");
    Ok(())
}

/// Parses the command line and runs the command; logs go to stderr.
///
/// # Errors
/// [`CliError`]: a wrong configuration, an address that cannot be bound, a cluster that cannot
/// start.
pub fn run() -> Result<(), CliError> {
    let cli = Cli::parse();
    binkit::init_tracing("info", None).map_err(CliError::Tracing)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    match &cli.command {
        Command::Serve(args) => rt.block_on(serve(args)),
    }
}

/// [`run`], with its error printed on stderr and mapped to the exit code.
#[must_use]
pub fn main_entry() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
