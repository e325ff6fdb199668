//! The binary's command line: the flags ([`Args`]), the validated [`Config`] they give, and
//! [`main_with`], what `cgroup-collector` does with them — a `--once` snapshot on stdout, or
//! [`run_with`](crate::run_with) until SIGINT/SIGTERM with its ready line on stdout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::RunError;
use crate::cgroup;
use crate::cgroup_job::DEFAULT_TESTBED_META_DIR;
use crate::collector::CollectorConfig;
use crate::config::{Config, MesosConfig, SourceConfig, SupervisorConfig};
use crate::discovery::{DEFAULT_TESTBED_PREFIX, Roots};

/// Where container CPU figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// This node's cgroups (v1 and v2): discovery and `--cgroup`.
    Cgroups,
    /// A Mesos agent's `/monitor/statistics` (`--mesos-agent`), for nodes where the collector
    /// cannot read cgroups itself.
    Mesos,
}

/// How the `--once` snapshot is printed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    /// One JSON object on one line.
    Json,
    /// Indented JSON.
    JsonPretty,
}

/// Node agent: container CPU accounting from cgroups, node metrics, pushes to the supervisor,
/// in-place resize.
#[derive(Debug, Parser)]
#[command(name = "cgroup-collector", version, about)]
pub struct Args {
    /// Print one snapshot (node + every discovered or named cgroup) and exit.
    #[arg(long, env = "QOS_ONCE")]
    pub once: bool,
    /// Format of the `--once` snapshot.
    #[arg(long, value_enum, default_value = "json", env = "QOS_OUTPUT")]
    pub output: Output,
    /// Where container CPU figures come from: `cgroups` (this node's) or `mesos` (a Mesos
    /// agent's /monitor/statistics, jobs mapped by `qos.uuid` task labels in its /state and, with
    /// --supervisor, by Chronos job name / Marathon app id through the supervisor's job list).
    #[arg(long, value_enum, default_value = "cgroups", env = "QOS_SOURCE")]
    pub source: SourceKind,
    /// Mesos agent base URL for `--source mesos`, e.g. http://10.0.0.5:5051 (its /monitor/statistics
    /// and /state are read every period; node metrics still come from this host's /proc).
    #[arg(long, value_name = "URL", env = "QOS_MESOS_AGENT")]
    pub mesos_agent: Option<String>,
    /// A cgroup to read besides the discovered ones: absolute directory or path relative to the
    /// controller roots (repeatable; comma-separated in the env variable).
    #[arg(
        long = "cgroup",
        value_name = "PATH",
        env = "QOS_CGROUPS",
        value_delimiter = ','
    )]
    pub cgroups: Vec<PathBuf>,
    /// Do not scan for containers; read only the `--cgroup` ones.
    #[arg(long, env = "QOS_NO_DISCOVERY")]
    pub no_discovery: bool,
    /// Where the cgroup hierarchies are mounted.
    #[arg(long, default_value = "/sys/fs/cgroup", env = "QOS_CGROUP_ROOT")]
    pub cgroup_root: PathBuf,
    /// The proc filesystem.
    #[arg(long, default_value = "/proc", env = "QOS_PROC_ROOT")]
    pub proc_root: PathBuf,
    /// Directory under each controller root holding the testbed's `<agent>/<task-id>` cgroups.
    #[arg(long, default_value = DEFAULT_TESTBED_PREFIX, env = "QOS_TESTBED_PREFIX")]
    pub testbed_prefix: String,
    /// Directory holding the testbed's `<agent>/<task-id>/qos.json` metadata.
    #[arg(long, default_value = DEFAULT_TESTBED_META_DIR, env = "QOS_TESTBED_META_DIR")]
    pub testbed_meta_dir: PathBuf,
    /// USER_HZ for `cpuacct.stat` (default: sysconf(_SC_CLK_TCK), else 100).
    #[arg(long, env = "QOS_CLK_TCK")]
    pub clk_tck: Option<u64>,
    /// Docker daemon (`unix:///path` or `tcp://host:port`).
    #[arg(
        long,
        default_value = "unix:///var/run/docker.sock",
        env = "DOCKER_HOST"
    )]
    pub docker_host: String,
    /// Do not use the Docker API (Docker containers are still measured, not mapped).
    #[arg(long, env = "QOS_NO_DOCKER")]
    pub no_docker: bool,
    /// Address for /metrics, /snapshot, /healthz and /resize (`127.0.0.1:0` picks a port).
    #[arg(long, default_value = "0.0.0.0:9105", env = "QOS_COLLECTOR_LISTEN")]
    pub listen: String,
    /// Most HTTP connections open at once (lowered to what the open-file limit leaves); past
    /// it, new ones wait in the listen backlog until one closes.
    #[arg(long, default_value_t = 256, env = "QOS_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Seconds a connection may take to send a complete request head, from its opening or its
    /// last answer (an idle keep-alive connection included); then it is closed.
    #[arg(long, default_value_t = 30.0, env = "QOS_HEADER_TIMEOUT")]
    pub header_timeout: f64,
    /// Node id (default: host name).
    #[arg(long, env = "QOS_NODE_ID")]
    pub node_id: Option<String>,
    /// Collection and push period, seconds.
    #[arg(long, default_value_t = 1.0, env = "QOS_PERIOD")]
    pub period: f64,
    /// Supervisor base URL; without it the agent runs standalone.
    #[arg(long, env = "QOS_SUPERVISOR_URL")]
    pub supervisor: Option<String>,
    /// Bearer token for the supervisor API.
    #[arg(long, env = "QOS_SUPERVISOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Bearer token required by POST /resize (without it resizing is disabled).
    #[arg(long, env = "QOS_RESIZE_TOKEN", hide_env_values = true)]
    pub resize_token: Option<String>,
    /// Heartbeat period, seconds.
    #[arg(long, default_value_t = 5.0, env = "QOS_HEARTBEAT")]
    pub heartbeat: f64,
    /// Samples kept while the supervisor is unreachable (oldest dropped past this).
    #[arg(long, default_value_t = 100_000, env = "QOS_BUFFER_SAMPLES")]
    pub buffer_samples: usize,
    /// Largest sample batch per request.
    #[arg(long, default_value_t = 2_000, env = "QOS_MAX_BATCH")]
    pub max_batch: usize,
    /// First retry delay after a failed push, milliseconds (doubles up to --backoff-max-ms).
    #[arg(long, default_value_t = 500, env = "QOS_BACKOFF_BASE_MS")]
    pub backoff_base_ms: u64,
    /// Largest retry delay, milliseconds.
    #[arg(long, default_value_t = 30_000, env = "QOS_BACKOFF_MAX_MS")]
    pub backoff_max_ms: u64,
    /// Per-request timeout towards the supervisor (and the Mesos agent), seconds.
    #[arg(long, default_value_t = 5.0, env = "QOS_REQUEST_TIMEOUT")]
    pub request_timeout: f64,
    /// Node label `key=value` sent at registration (repeatable).
    #[arg(
        long = "label",
        value_name = "KEY=VALUE",
        env = "QOS_NODE_LABELS",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
    /// URL the supervisor uses to reach this agent's /resize (default: from --listen).
    #[arg(long, env = "QOS_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// Push samples of every container, not only those mapped to a job.
    #[arg(long, env = "QOS_PUSH_ALL")]
    pub push_all: bool,
}

fn secs(field: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("--{field} must be a number of seconds ≥ 0, got {v}"))
}

impl Args {
    /// The validated settings these flags give.
    ///
    /// # Errors
    /// A message naming the flag that is wrong.
    pub fn config(&self) -> Result<Config, String> {
        let a = self;
        let collector = CollectorConfig {
            roots: Roots::detect(&a.cgroup_root),
            testbed_prefix: a.testbed_prefix.clone(),
            testbed_meta_dir: a.testbed_meta_dir.clone(),
            proc_root: a.proc_root.clone(),
            named: a.cgroups.clone(),
            discover: !a.no_discovery,
            clk_tck: a.clk_tck.unwrap_or_else(cgroup::clk_tck),
        };
        let node_id = match &a.node_id {
            Some(n) => n.clone(),
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into()),
        };
        let mut labels = BTreeMap::new();
        for l in &a.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("--label must be KEY=VALUE, got {l:?}"))?;
            labels.insert(k.trim().to_string(), v.trim().to_string());
        }
        let supervisor = match &a.supervisor {
            Some(url) => Some(SupervisorConfig {
                url: url.clone(),
                token: a.token.clone(),
                heartbeat_every: secs("heartbeat", a.heartbeat)?,
                buffer_samples: a.buffer_samples,
                max_batch: a.max_batch,
                backoff_base: Duration::from_millis(a.backoff_base_ms),
                backoff_max: Duration::from_millis(a.backoff_max_ms),
                request_timeout: secs("request-timeout", a.request_timeout)?,
                labels,
                advertise_url: a.advertise_url.clone(),
                push_all: a.push_all,
            }),
            None => None,
        };
        let source = match (a.source, &a.mesos_agent) {
            (SourceKind::Cgroups, None) => SourceConfig::Cgroups,
            (SourceKind::Cgroups, Some(_)) => {
                return Err(
                    "invalid setting `mesos-agent`: only used with --source mesos (add --source mesos, or drop --mesos-agent)"
                        .into(),
                );
            }
            (SourceKind::Mesos, url) => SourceConfig::Mesos(MesosConfig {
                agent_url: url.clone().unwrap_or_default(),
                request_timeout: secs("request-timeout", a.request_timeout)?,
            }),
        };
        let c = Config {
            node_id,
            source,
            collector,
            period: secs("period", a.period)?,
            docker_host: (!a.no_docker).then(|| a.docker_host.clone()),
            supervisor,
            resize_token: a.resize_token.clone(),
            max_connections: a.max_connections,
            header_timeout: secs("header-timeout", a.header_timeout)?,
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// Runs the binary for `args` to the end: logging to stderr, then the `--once` snapshot or the
/// agent until SIGINT/SIGTERM.
///
/// # Errors
/// A [`RunError`]; [`RunError::exit_code`] gives the process' exit status.
pub async fn main_with(args: Args) -> Result<(), RunError> {
    binkit::init_tracing("cgroup_collector=info,warn", None).map_err(RunError::Flags)?;
    let config = args.config().map_err(RunError::Flags)?;
    if args.once {
        let snap = crate::once(&config).await?;
        let text = match args.output {
            Output::Json => serde_json::to_string(&snap),
            Output::JsonPretty => serde_json::to_string_pretty(&snap),
        }
        .map_err(|e| RunError::Output(e.to_string()))?;
        // A reader that went away (`| head`) is not an error.
        use std::io::Write as _;
        return match writeln!(std::io::stdout().lock(), "{text}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(RunError::Output(format!("writing the snapshot: {e}")))
            }
            _ => Ok(()),
        };
    }
    let listener = binkit::listen(&args.listen).await?;
    crate::run_with(config, listener, binkit::shutdown_signal(), |ready| {
        let line = serde_json::json!({
            "metrics": ready.metrics_url,
            "resize": format!("{}/resize", ready.base_url),
            "snapshot": format!("{}/snapshot", ready.base_url),
        });
        println!("{line}");
    })
    .await
}
