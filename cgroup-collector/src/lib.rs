//! cgroup-collector: the node agent. Discovers containers (Docker, Mesos, testbed cgroups), reads
//! their cumulative CPU time (cgroup v1 `cpuacct`, v2 `cpu.stat`), maps them to job UUIDs, pushes
//! samples to the supervisor, serves node and container metrics with cAdvisor-compatible names,
//! registers and heartbeats, and applies in-place CPU limits when asked.
//!
//! # Layout
//! - `cgroup`: v1/v2 file readers and writers (pure parsers + path readers);
//!   `reader`: files kept open and re-read with `pread` (one syscall per file per pass).
//! - `discovery`: the known cgroup layouts under configurable roots.
//! - `cgroup_job`: container → job UUID from testbed metadata and process environments;
//!   `docker_api`: the Docker Engine API (names, labels, `docker update`).
//! - `counters`: counter-reset handling (figures never decrease).
//! - `node`: node metrics from `/proc`.
//! - `collector`: one pass = scan → map → read → [`Snapshot`].
//! - `source`: the `source::Source` trait both sources implement: the cgroup
//!   [`Collector`], and `mesos_source::MesosSource`, which reads a Mesos agent's
//!   `/monitor/statistics` (`--source mesos`) with its pure part in `mesos_map` (entries read
//!   one by one, `/state` index, executor → job UUID).
//! - `metrics`: `/metrics` encoding; `server`: the HTTP routes including `POST /resize`.
//! - `push`: batched delivery with backoff and a bounded buffer, registration, heartbeats,
//!   over the workspace's typed supervisor client ([`frameworks::SupervisorClient`]).
//! - [`config`]: validated settings; [`run`] wires it all together; [`cli`]: the binary's flags
//!   and what it does with them.

mod cgroup;
mod cgroup_job;
pub mod cli;
mod collector;
pub mod config;
mod counters;
mod discovery;
mod docker_api;
mod mesos_map;
mod mesos_source;
mod metrics;
mod node;
mod push;
mod reader;
mod server;
mod source;

pub use cgroup::{CgroupDirs, CgroupReader, clk_tck};
pub use collector::{Collector, CollectorConfig, Snapshot, epoch_now};
pub use counters::{Counters, Monotonic};
pub use discovery::Roots;
pub use docker_api::RuntimeError;
pub use metrics::{AgentStats, encode as encode_metrics, registry as metrics_registry};
pub use reader::FdBudget;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use qos_core::wire::NodeRegistration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use frameworks::{ClientConfig, Credentials, FrameworkError, MesosAgentClient, RetryPolicy};

use crate::config::{Config, MesosConfig, SourceConfig, SupervisorConfig};
use crate::docker_api::{ContainerRuntime, DockerRuntime};
use crate::mesos_source::{JobRegistry, MesosSource};
use crate::metrics::SharedSnapshot;
use crate::node::NodeSampler;
use crate::push::{HeartbeatConfig, PushConfig, Pusher, SupervisorApi};
use crate::source::Source;

/// How long shutdown waits for the tasks to finish (last push included).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The agent could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Settings are unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The Docker client could not be built.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The supervisor or Mesos agent client could not be built.
    #[error(transparent)]
    Client(#[from] FrameworkError),
    /// The Mesos agent could not be read (`--once`).
    #[error("{0}")]
    Agent(String),
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
    /// Cgroups named with `--cgroup` do not exist.
    #[error("no such cgroup: {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoSuchCgroup(Vec<std::path::PathBuf>),
    /// A flag is wrong (the message names it).
    #[error("{0}")]
    Flags(String),
    /// The listen address cannot be bound.
    #[error(transparent)]
    Listen(#[from] binkit::ListenError),
    /// The `--once` snapshot cannot be written.
    #[error("{0}")]
    Output(String),
}

impl RunError {
    /// The binary's exit status: 2 for what the operator must fix in the flags or settings
    /// (a named cgroup that does not exist, an address that cannot be bound), 1 for the rest.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::NoSuchCgroup(_) | Self::Flags(_) | Self::Listen(_) => 2,
            Self::Runtime(_) | Self::Client(_) | Self::Agent(_) | Self::Io(_) | Self::Output(_) => {
                1
            }
        }
    }
}

/// Where the running agent can be reached, handed out once it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The bound address.
    pub addr: SocketAddr,
    /// `http://…/metrics`.
    pub metrics_url: String,
    /// `http://…` (base of `/resize`, `/snapshot`).
    pub base_url: String,
}

/// How long the startup check waits for the Docker daemon.
pub const DOCKER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Docker API, when one is configured. The daemon is asked once at startup; when it does not
/// answer (a host without Docker, as cAdvisor also allows) one warning says so and the agent goes
/// on with raw cgroups: Docker containers are measured but not mapped to jobs, as with
/// `--no-docker`. With `keep_when_down` (the long-running agent) the client is kept, so a daemon
/// that starts later is picked up; `--once` drops it.
async fn docker(
    config: &Config,
    keep_when_down: bool,
) -> Result<Option<Arc<dyn ContainerRuntime>>, RunError> {
    let Some(host) = &config.docker_host else {
        return Ok(None);
    };
    let rt = DockerRuntime::new(host)?;
    let answer = match tokio::time::timeout(DOCKER_PROBE_TIMEOUT, rt.ping()).await {
        Ok(r) => r,
        Err(_) => Err(RuntimeError::Unreachable {
            host: host.clone(),
            message: format!("no answer within {DOCKER_PROBE_TIMEOUT:?}"),
        }),
    };
    if let Err(e) = answer {
        tracing::warn!(
            cause = %e,
            "Docker is not available; measuring raw cgroups: Docker containers are measured but \
             not mapped to jobs (as with --no-docker){}",
            if keep_when_down {
                "; the daemon is looked for again while the agent runs"
            } else {
                ""
            }
        );
        if !keep_when_down {
            return Ok(None);
        }
    }
    Ok(Some(Arc::new(rt) as Arc<dyn ContainerRuntime>))
}

fn mesos_client(m: &MesosConfig) -> Result<MesosAgentClient, FrameworkError> {
    let creds = Credentials::new(&m.agent_url).map_err(|e| {
        FrameworkError::invalid_input("Mesos agent URL (--mesos-agent)", e.to_string())
    })?;
    MesosAgentClient::with_config(
        &creds,
        ClientConfig {
            timeout: m.request_timeout,
            connect_timeout: m.request_timeout,
            // A pass must not stall on retries: the next pass is the retry.
            retry: RetryPolicy::none(),
            user_agent: concat!("cgroup-collector/", env!("CARGO_PKG_VERSION")).to_owned(),
        },
    )
}

/// The supervisor client, when one is configured.
fn supervisor(config: &Config) -> Result<Option<Arc<frameworks::SupervisorClient>>, RunError> {
    Ok(match &config.supervisor {
        Some(s) => Some(Arc::new(push::supervisor_client(
            &s.url,
            s.token.as_deref(),
            s.request_timeout,
        )?)),
        None => None,
    })
}

/// The configured source: the cgroup collector, or a Mesos agent's statistics (mapped through
/// `registry` when a supervisor is configured).
fn source(
    config: &Config,
    runtime: Option<Arc<dyn ContainerRuntime>>,
    registry: Option<Arc<dyn JobRegistry>>,
) -> Result<Box<dyn Source>, RunError> {
    Ok(match &config.source {
        // The HTTP connections' descriptors are kept out of the cgroup files' budget.
        SourceConfig::Cgroups => Box::new(Collector::with_budget(
            config.collector.clone(),
            runtime,
            FdBudget::from_rlimit(
                collector::RESERVED_FDS
                    .saturating_add(u64::try_from(config.max_connections).unwrap_or(u64::MAX)),
            ),
        )),
        SourceConfig::Mesos(m) => Box::new(MesosSource::new(
            Arc::new(mesos_client(m)?),
            registry,
            NodeSampler::new(config.collector.proc_root.clone(), config.collector.clk_tck),
        )),
    })
}

/// One snapshot (the `--once` mode): a pass, a short pause so CPU percentages cover an
/// interval, and a second pass. With `--source mesos`, an agent that cannot be read is an error.
pub async fn once(config: &Config) -> Result<Snapshot, RunError> {
    config.validate()?;
    let mut c: Box<dyn Source> = match &config.source {
        SourceConfig::Cgroups => {
            let c = Collector::new(config.collector.clone(), docker(config, false).await?);
            let missing = c.unresolved_named();
            if !missing.is_empty() {
                return Err(RunError::NoSuchCgroup(missing));
            }
            Box::new(c)
        }
        SourceConfig::Mesos(_) => {
            let registry = supervisor(config)?.map(|s| s as Arc<dyn JobRegistry>);
            source(config, None, registry)?
        }
    };
    c.collect(epoch_now()).await;
    if let Some(why) = c.unavailable() {
        return Err(RunError::Agent(why));
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let snap = c.collect(epoch_now()).await;
    match c.unavailable() {
        Some(why) => Err(RunError::Agent(why)),
        None => Ok(snap),
    }
}

/// Run the agent until `shutdown` resolves; see [`run_with`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with(config, listener, shutdown, |_| {}).await
}

/// The tasks of a running agent: cancelled together, awaited together at shutdown.
struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// What is pushed to the supervisor: the pusher, and whether every container is pushed (not
/// only those mapped to a job).
type Pushing = (Arc<Pusher>, bool);

/// Run the agent: a first pass, then `/metrics` etc. on `listener` (`ready` is called once it
/// serves), a pass every period, pushes and heartbeats when a supervisor is configured. On
/// `shutdown` everything stops within [`SHUTDOWN_GRACE`], after a last push attempt.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(Ready) + Send,
) -> Result<(), RunError> {
    config.validate()?;
    let runtime = match config.source {
        SourceConfig::Cgroups => docker(&config, true).await?,
        SourceConfig::Mesos(_) => None,
    };
    let stats = Arc::new(AgentStats::default());
    let client = supervisor(&config)?;
    let mut collector = source(
        &config,
        runtime.clone(),
        client.clone().map(|s| s as Arc<dyn JobRegistry>),
    )?;
    let node_cpus = collector.cpu_count();
    let first = collector.collect(epoch_now()).await;
    let snapshot: SharedSnapshot = Arc::new(RwLock::new(Arc::new(first)));
    let registry = Arc::new(metrics::registry(Arc::clone(&snapshot), Arc::clone(&stats)));
    let addr = listener.local_addr()?;
    let base_url = base_url(addr);
    let tasks = Tasks {
        token: CancellationToken::new(),
        tracker: TaskTracker::new(),
    };
    let pushing = match (&config.supervisor, client) {
        (Some(s), Some(client)) => {
            let registration = registration(&config, s, &snapshot, node_cpus, addr, &base_url);
            Some(spawn_push(
                &tasks,
                &config,
                s,
                client,
                registration,
                &snapshot,
                &stats,
            ))
        }
        _ => None,
    };
    spawn_passes(&tasks, config.period, collector, &snapshot, &stats, pushing);
    let app = server::router(server::AppState {
        snapshot,
        registry,
        stats,
        resize_token: config.resize_token.clone(),
        node_cpus,
        runtime,
        clk_tck: config.collector.clk_tck,
    });
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, node = %config.node_id, cpus = node_cpus, "cgroup-collector serving");
    ready(Ready {
        addr,
        metrics_url: format!("{base_url}/metrics"),
        base_url,
    });
    let limits = binkit::http::ConnLimits {
        max_connections: binkit::http::connection_cap(
            config.max_connections,
            collector::RESERVED_FDS,
            "--max-connections",
        ),
        header_timeout: config.header_timeout,
    };
    let server = tokio::spawn(binkit::http::serve(
        listener,
        app,
        limits,
        tasks.token.clone(),
    ));
    shutdown.await;
    tracing::info!("shutting down");
    tasks.token.cancel();
    tasks.tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks did not stop within the grace period");
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(cause = %e, "HTTP server task failed"),
        Err(_) => tracing::warn!("HTTP server did not stop within the grace period"),
    }
    Ok(())
}

/// `http://host:port` for a bound address (loopback for an unspecified one).
fn base_url(addr: SocketAddr) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let host = if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("[{host}]")
    } else {
        host
    };
    format!("http://{host}:{}", addr.port())
}

/// What the agent registers with the supervisor: the node as the first pass saw it, and (when
/// resizing is enabled) the URL the supervisor reaches its `/resize` at.
fn registration(
    config: &Config,
    s: &SupervisorConfig,
    snapshot: &SharedSnapshot,
    node_cpus: u32,
    addr: SocketAddr,
    base_url: &str,
) -> NodeRegistration {
    let (hostname, memory_bytes) = match snapshot.read() {
        Ok(g) => (g.node.hostname.clone(), g.node.memory.total),
        Err(_) => (String::new(), 0),
    };
    let advertise = s.advertise_url.clone().unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            format!("http://{hostname}:{}", addr.port())
        } else {
            base_url.to_owned()
        }
    });
    NodeRegistration {
        id: config.node_id.clone(),
        hostname,
        cpus: f64::from(node_cpus),
        memory_bytes,
        labels: s.labels.clone(),
        agent_url: config.resize_token.is_some().then_some(advertise),
    }
}

/// Starts the pusher and the heartbeat loop towards the supervisor.
fn spawn_push(
    tasks: &Tasks,
    config: &Config,
    s: &SupervisorConfig,
    client: Arc<frameworks::SupervisorClient>,
    registration: NodeRegistration,
    snapshot: &SharedSnapshot,
    stats: &Arc<AgentStats>,
) -> Pushing {
    let api: Arc<dyn SupervisorApi> = client;
    let pusher = Arc::new(Pusher::new(
        PushConfig {
            node: config.node_id.clone(),
            capacity: s.buffer_samples,
            max_batch: s.max_batch,
            backoff_base: s.backoff_base,
            backoff_max: s.backoff_max,
        },
        Arc::clone(stats),
    ));
    tasks
        .tracker
        .spawn(Arc::clone(&pusher).run(Arc::clone(&api), tasks.token.clone()));
    let hb = HeartbeatConfig {
        registration,
        every: s.heartbeat_every,
        backoff_base: s.backoff_base,
        backoff_max: s.backoff_max,
    };
    tasks.tracker.spawn(push::heartbeat_loop(
        api,
        hb,
        Arc::clone(snapshot),
        Arc::clone(stats),
        tasks.token.clone(),
    ));
    (pusher, s.push_all)
}

/// Starts the pass loop: a pass every `period` (the first already ran), its samples queued
/// for the supervisor, the shared snapshot replaced.
fn spawn_passes(
    tasks: &Tasks,
    period: Duration,
    mut collector: Box<dyn Source>,
    snapshot: &SharedSnapshot,
    stats: &Arc<AgentStats>,
    pushing: Option<Pushing>,
) {
    let snapshot = Arc::clone(snapshot);
    let stats = Arc::clone(stats);
    let token = tasks.token.clone();
    tasks.tracker.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await; // the first pass already ran
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            let started = tokio::time::Instant::now();
            let snap = collector.collect(epoch_now()).await;
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.last_pass_ns.store(ns, Ordering::Relaxed);
            AgentStats::add(&stats.passes, 1);
            stats
                .counter_resets
                .store(collector.resets_total(), Ordering::Relaxed);
            if let Some((pusher, push_all)) = &pushing {
                let samples = snap
                    .containers
                    .iter()
                    .filter(|c| *push_all || c.uuid.is_some())
                    .map(|c| c.to_wire(snap.at))
                    .collect::<Vec<_>>();
                if !samples.is_empty() {
                    pusher.enqueue(samples);
                }
            }
            if let Ok(mut g) = snapshot.write() {
                *g = Arc::new(snap);
            }
        }
    });
}
