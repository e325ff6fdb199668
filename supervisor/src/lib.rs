//! The supervisor: a REST service (thesis routes plus `/api/v1`) and a reconcile loop around
//! `qos-core` that classifies each job UNDER / ON_PLAN / OVER_PERFORMANT (or AT_RISK, NO_DATA)
//! and resizes it through its framework or in place. State in SQLite, Prometheus `/metrics`.
//!
//! Start with [`run`] (what the binary does; [`cli`] around it) or, to embed or test,
//! [`Supervisor::start`] with explicit [`Deps`] (fake frameworks, a fixed [`Clock`]).
//!
//! # Layout
//! - [`config`]: command line, TOML file, validation ([`Config`]).
//! - `service`: the operations (registration, reports, samples, nodes), HTTP-free.
//! - `api`: the axum router: parsing, authorisation, status codes; `limits`: what the API
//!   accepts (string lengths, collection sizes, client clocks).
//! - `control`: the reconcile loop (queue, runner, reconcile, error policy, cleanup).
//! - `store`: SQLite on a dedicated thread with group commit, a job as a small row plus a row
//!   per report, resize and segment, the WAL bounded; `state`: the in-memory model;
//!   `summary`: what stays in memory of a finished job.
//! - [`agent`]: the node agent's in-place `POST /resize`; `metrics`: `/metrics`; `ui`: `GET /ui`.
//! - The API is served by `binkit::http::serve`: a connection cap and a request-head timeout.
//! - [`clock`]: epoch seconds on tokio's clock (pausable in tests).
//!
//! # Guarantees
//! - No lock is held across an `.await` or any I/O; every framework call has a timeout;
//!   failures back off per job; a failed resize is never recorded as applied.
//! - Reports are idempotent and durable before they are acknowledged; reports for a job not
//!   yet registered are held and applied at its registration.
//! - Killed at any moment, the supervisor resumes every job from the database on restart.

pub mod agent;
mod api;
pub mod cli;
pub mod clock;
pub mod config;
mod control;
mod error;
mod limits;
mod metrics;
mod service;
mod state;
mod store;
mod summary;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use frameworks::{ChronosApi, ChronosClient, DetectingChronos, MarathonApi, MarathonClient};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use agent::{HttpNodeAgent, NodeAgent};
pub use clock::Clock;
pub use config::{Args, Config, ConfigError};
pub use error::ApiError;
pub use service::ReportOutcome;
pub use store::HistoryRow;

use crate::config::ControlConfig;
use crate::service::Shared;
use crate::store::Store;

/// File descriptors kept beside the API's connections for everything else: the database and its
/// WAL, the framework and node-agent clients, the log file.
const RESERVED_FDS: u64 = 64;

/// Why the supervisor could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or loaded.
    #[error("database {path}: {message}")]
    Database {
        /// The database file, as configured.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A framework client could not be built.
    #[error("{0}")]
    Client(String),
    /// Serving failed.
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
    /// The listen address cannot be bound.
    #[error(transparent)]
    Listen(#[from] binkit::ListenError),
    /// The log file cannot be opened.
    #[error("{0}")]
    Logging(String),
    /// The async runtime cannot be started.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl StartError {
    /// The binary's exit status for this error: 2 for what the operator must fix in the
    /// flags, settings or credentials (and the log file), 3 for an address that cannot be
    /// bound, 1 for the rest.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Client(_) | Self::Logging(_) => 2,
            Self::Listen(_) => 3,
            Self::Database { .. } | Self::Serve(_) | Self::Runtime(_) => 1,
        }
    }
}

/// How the database is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// A dedicated thread with group commit (production).
    #[default]
    Thread,
    /// On the calling thread (tests with paused time).
    Inline,
}

/// The external systems and the clock, injectable for tests.
#[derive(Clone)]
pub struct Deps {
    /// Marathon, if configured.
    pub marathon: Option<Arc<dyn MarathonApi>>,
    /// Chronos, if configured.
    pub chronos: Option<Arc<dyn ChronosApi>>,
    /// Node agents (in-place resizes).
    pub agent: Arc<dyn NodeAgent>,
    /// Where "now" comes from: the system clock, or a test's.
    pub clock: Clock,
    /// How the database is driven.
    pub store: StoreMode,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("marathon", &self.marathon.is_some())
            .field("chronos", &self.chronos.is_some())
            .field("clock", &self.clock)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Deps {
    /// The real clients for the credentials in `config`, the system clock.
    ///
    /// # Errors
    /// [`StartError::Client`] when a client cannot be built.
    pub fn from_config(config: &Config) -> Result<Self, StartError> {
        let timeout = ControlConfig::dur(config.control.framework_timeout);
        let client_config = frameworks::ClientConfig {
            timeout,
            ..frameworks::ClientConfig::default()
        };
        let marathon = match &config.marathon {
            Some(c) => Some(Arc::new(
                MarathonClient::with_config(c, client_config.clone())
                    .map_err(|e| StartError::Client(e.to_string()))?,
            ) as Arc<dyn MarathonApi>),
            None => None,
        };
        let client = |e: frameworks::FrameworkError| StartError::Client(e.to_string());
        let chronos = match (&config.chronos, config.chronos_api) {
            (Some(c), Some(version)) => Some(Arc::new(
                ChronosClient::with_config(c, version, client_config).map_err(client)?,
            ) as Arc<dyn ChronosApi>),
            (Some(c), None) => Some(Arc::new(
                DetectingChronos::new(c, client_config).map_err(client)?,
            ) as Arc<dyn ChronosApi>),
            (None, _) => None,
        };
        Ok(Self {
            marathon,
            chronos,
            agent: Arc::new(HttpNodeAgent::new(timeout).map_err(StartError::Client)?),
            clock: Clock::system(),
            store: StoreMode::Thread,
        })
    }
}

/// A running supervisor (control loop and housekeeping started; serve it with
/// [`Supervisor::serve`] or use [`Supervisor::router`]).
pub struct Supervisor {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    control: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    maintenance: JoinHandle<()>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Validates `config`, opens and loads the database, and starts the control loop (every
    /// unfinished job is reconciled at once).
    ///
    /// # Errors
    /// An invalid configuration or an unusable database.
    pub async fn start(config: Config, deps: Deps) -> Result<Self, StartError> {
        config.validate()?;
        warn_if_insecure(&config);
        let (shared, rx) = open_shared(config, deps)?;
        let initial = service::load(&shared)
            .await
            .map_err(|e| db_error(&shared.config, &e))?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            policy = shared.config.policy.name(),
            resumed = initial.len(),
            "supervisor started"
        );
        let cancel = CancellationToken::new();
        let control = tokio::spawn(control::run(
            Arc::clone(&shared),
            rx,
            initial,
            cancel.clone(),
        ));
        let housekeeping = tokio::spawn(control::housekeeping(Arc::clone(&shared), cancel.clone()));
        let maintenance = tokio::spawn(service::maintain(Arc::clone(&shared), cancel.clone()));
        shared.ready.store(true, Ordering::Release);
        Ok(Self {
            shared,
            cancel,
            control,
            housekeeping,
            maintenance,
        })
    }

    /// The HTTP router (for in-process tests with `tower::ServiceExt::oneshot`).
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.shared))
    }

    /// Serves the API on `listener` until `shutdown` resolves, then drains (bounded) and stops
    /// the control loop.
    ///
    /// # Errors
    /// [`StartError::Serve`] when the server fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let app = self.router();
        let drain = ControlConfig::dur(self.shared.config.control.drain_timeout);
        // One signal fanned out: the shutdown future (or a stop of the supervisor) ends
        // accepting; in-flight requests get `drain` to finish; then the loop stops.
        let http_stop = CancellationToken::new();
        {
            let http_stop = http_stop.clone();
            let loop_stop = self.cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = shutdown => {}
                    () = loop_stop.cancelled() => {}
                }
                tracing::info!("shutting down: draining requests");
                http_stop.cancel();
            });
        }
        let c = &self.shared.config.control;
        let limits = binkit::http::ConnLimits {
            max_connections: binkit::http::connection_cap(
                c.max_connections,
                RESERVED_FDS,
                "control.max_connections",
            ),
            header_timeout: ControlConfig::dur(c.header_timeout),
        };
        let mut server = tokio::spawn(binkit::http::serve(
            listener,
            app,
            limits,
            http_stop.clone(),
        ));
        let result = tokio::select! {
            r = &mut server => r,
            () = http_stop.cancelled() => match tokio::time::timeout(drain, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("requests still running after the drain timeout; closing");
                    server.abort();
                    Ok(())
                }
            },
        };
        self.stop().await;
        result.map_err(|e| StartError::Serve(std::io::Error::other(e.to_string())))
    }

    /// Stops the control loop (bounded drain) and writes everything pending.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.control.await;
        let _ = self.housekeeping.await;
        let _ = self.maintenance.await;
        if let Err(e) = self.shared.store.sync().await {
            tracing::error!(error = %e, "final database sync failed");
        }
        tracing::info!("supervisor stopped");
    }

    /// A handle that stops the supervisor when cancelled.
    #[must_use]
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Epoch seconds by the supervisor's clock.
    #[must_use]
    pub fn now(&self) -> f64 {
        self.shared.clock.now()
    }

    /// Decisions the control loop has made since start (benchmarks, tests).
    #[must_use]
    pub fn decisions(&self) -> u64 {
        self.shared.metrics.decisions()
    }

    /// Jobs in memory.
    #[must_use]
    pub fn job_count(&self) -> usize {
        self.shared.lock().jobs.len()
    }

    /// Everything the supervisor would resume from after a restart, as JSON (`jobs`, each whole
    /// with its reports, resizes and progress segments; `held` reports, not the held CPU
    /// samples kept in memory only; `nodes`), sorted: two supervisors on the same database
    /// compare equal. For tests and tools.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn state(&self) -> Result<serde_json::Value, String> {
        service::state_json(&self.shared)
            .await
            .map_err(|e| e.to_string())
    }

    /// The size of the database's write-ahead log now, bytes.
    #[must_use]
    pub fn wal_bytes(&self) -> u64 {
        self.shared.store.wal_bytes()
    }

    /// Writes every pending change (CPU samples are written behind) and waits for the disk.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn flush(&self) -> Result<(), String> {
        control::flush(&self.shared);
        self.shared.store.sync().await.map_err(|e| e.to_string())
    }
}

fn db_error(config: &Config, e: &dyn std::fmt::Display) -> StartError {
    StartError::Database {
        path: config.db.display().to_string(),
        message: e.to_string(),
    }
}

/// Opens the database of `config` and builds the shared state around it (nothing loaded, nothing
/// started); the receiver of the control loop's triggers.
fn open_shared(
    config: Config,
    deps: Deps,
) -> Result<(Arc<Shared>, mpsc::UnboundedReceiver<String>), StartError> {
    let opts = config.storage.clone();
    let store = match deps.store {
        StoreMode::Thread => Store::open(&config.db, opts),
        StoreMode::Inline => Store::open_inline(&config.db, opts),
    }
    .map_err(|e| db_error(&config, &e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        clock: deps.clock,
        state: Default::default(),
        store,
        metrics: metrics::Metrics::new(),
        triggers: tx,
        marathon: deps.marathon,
        chronos: deps.chronos,
        agent: deps.agent,
        ready: AtomicBool::new(false),
        config,
    });
    Ok((shared, rx))
}

/// The state a supervisor on `config`'s database would resume from (as
/// [`Supervisor::state`] gives it), read from the database without serving, reconciling or
/// resizing anything — what a restart after `kill -9` rebuilds. Opening the database migrates
/// an older schema.
///
/// # Errors
/// An invalid configuration or an unusable database.
pub async fn dump_state(config: Config) -> Result<serde_json::Value, StartError> {
    config.validate()?;
    let timeout = ControlConfig::dur(config.control.framework_timeout);
    let deps = Deps {
        marathon: None,
        chronos: None,
        agent: Arc::new(HttpNodeAgent::new(timeout).map_err(StartError::Client)?),
        clock: Clock::system(),
        store: StoreMode::Inline,
    };
    let (shared, _triggers) = open_shared(config, deps)?;
    service::load(&shared)
        .await
        .map_err(|e| db_error(&shared.config, &e))?;
    service::state_json(&shared)
        .await
        .map_err(|e| db_error(&shared.config, &e))
}

/// `--insecure` on an address others can reach: said loudly, once, at start.
fn warn_if_insecure(config: &Config) {
    if !config.auth.insecure || config.listen.ip().is_loopback() {
        return;
    }
    let what = if config.auth_enabled() {
        "the thesis routes (/initTask, /updateTask, /initMarathonApp, /endMarathonApp) accept reports and registrations without a token"
    } else {
        "the whole API is open: anyone who can reach it can register jobs, post samples and drive resizes"
    };
    tracing::warn!(
        listen = %config.listen,
        "INSECURE: --insecure on {}, a non-loopback address: {what}. Set --admin-token and drop --insecure, or listen on 127.0.0.1",
        config.listen
    );
}

/// What the binary does: builds the real clients from `config`, loads the database, calls
/// `ready` with the URL it serves on, serves on `listener` until `shutdown`, then drains and
/// stops.
///
/// # Errors
/// A [`StartError`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&str),
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map_err(|source| binkit::ListenError {
            addr: config.listen.to_string(),
            source,
        })?;
    let deps = Deps::from_config(&config)?;
    let sup = Supervisor::start(config, deps).await?;
    let url = url_of(addr);
    tracing::info!(%url, "serving");
    ready(&url);
    sup.serve(listener, shutdown).await
}

/// The address a listener serves on, as a URL.
#[must_use]
pub fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
