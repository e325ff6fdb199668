//! Starting and stopping a whole testbed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::Config;

/// Descriptors kept clear of the servers' connections: tasks' pipes, cgroup files, the Docker
/// and health-check clients, recovery records.
const RESERVED_FDS: u64 = 256;

/// Where a running testbed answers; the binary prints this as its one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Urls {
    /// Marathon base URL (`/v2/...` below it).
    pub marathon: String,
    /// Chronos base URL (`/scheduler/...` and `/v1/scheduler/...` below it).
    pub chronos: String,
    /// One base URL per agent (`/monitor/statistics`, `/state`).
    pub agents: Vec<String>,
}

/// A running testbed. Dropping it does not stop it: call [`Testbed::stop`] (or fire the
/// `shutdown` future given to [`serve`]) and await it.
pub struct Testbed {
    urls: Urls,
    stop: CancellationToken,
    done: JoinHandle<()>,
    cluster: Arc<Cluster>,
}

impl std::fmt::Debug for Testbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Testbed")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl Testbed {
    /// The base URLs of the Marathon, Chronos and agent emulators.
    #[must_use]
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// Whether CPU limits are enforced by cgroups (false without root or with `no_cgroups`).
    #[must_use]
    pub fn cpu_limits_enforced(&self) -> bool {
        self.cluster.limits_enforced()
    }

    /// Why CPU limits are not enforced, when they are not.
    #[must_use]
    pub fn cpu_limits_note(&self) -> Option<&str> {
        self.cluster.cgroup_note.as_deref()
    }

    /// The Mesos agent ids (`<cluster uuid>-S<n>`), which are also the agents' cgroup directory
    /// names under `<cgroup root>/<controller>/<cgroup_prefix>/`.
    #[must_use]
    pub fn agent_ids(&self) -> Vec<String> {
        self.cluster.agents.iter().map(|a| a.id.clone()).collect()
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cluster.cfg
    }

    /// Stops everything (every task killed with its grace period, cgroups and containers
    /// removed) and waits until it is done.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }

    /// Waits until the testbed has stopped (after the `shutdown` future fired).
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Starts a testbed: Marathon and Chronos on `listener`, each agent on a fresh port of the same
/// IP. Returns once every server accepts connections. Everything stops when `shutdown`
/// resolves or [`Testbed::stop`] is called.
///
/// # Errors
/// An invalid configuration, an unreachable Docker daemon (`runtime = docker`), or a port that
/// cannot be bound.
pub async fn serve<F>(config: Config, listener: TcpListener, shutdown: F) -> anyhow::Result<Testbed>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr()?;
    let cluster = Cluster::start(config).await?;
    let stop = CancellationToken::new();
    let mut servers: Vec<JoinHandle<()>> = Vec::new();
    let mut agent_urls = Vec::new();
    // Every server within bounds a stuck client cannot pass: a capped number of connections
    // (together below the open-file limit) and a request-head timeout.
    let servers_n = cluster.agents.len() + 1;
    let limits = binkit::http::ConnLimits {
        max_connections: (binkit::http::connection_cap(
            cluster.cfg.max_connections.saturating_mul(servers_n),
            RESERVED_FDS,
            &format!("max_connections × {servers_n} servers"),
        ) / servers_n)
            .max(1),
        header_timeout: Duration::from_secs_f64(cluster.cfg.header_timeout_secs),
    };
    let serve_until = |l: TcpListener, router: axum::Router, token: CancellationToken| {
        tokio::spawn(binkit::http::serve(l, router, limits, token))
    };
    let http_stop = CancellationToken::new();
    for a in &cluster.agents {
        let l = match TcpListener::bind(SocketAddr::new(addr.ip(), 0)).await {
            Ok(l) => l,
            Err(e) => {
                cluster.shutdown().await;
                return Err(e.into());
            }
        };
        let url = format!("http://{}", display_addr(l.local_addr()?));
        let _ = a.url.set(url.clone());
        agent_urls.push(url);
        servers.push(serve_until(
            l,
            crate::agent::router(Arc::clone(&cluster), a.index),
            http_stop.clone(),
        ));
    }
    let base = format!("http://{}", display_addr(addr));
    let marathon = crate::marathon::Marathon::start(&cluster, &base);
    let chronos = crate::chronos::Chronos::start(&cluster);
    let router =
        crate::marathon::router(Arc::clone(&marathon)).merge(crate::chronos::router(&chronos));
    servers.push(serve_until(listener, router, http_stop.clone()));
    let urls = Urls {
        marathon: base.clone(),
        chronos: base,
        agents: agent_urls,
    };
    let token = stop.clone();
    let c = Arc::clone(&cluster);
    let done = tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {}
            () = token.cancelled() => {}
        }
        marathon.stop();
        chronos.stop();
        c.shutdown().await;
        http_stop.cancel();
        for s in servers {
            let _ = s.await;
        }
    });
    Ok(Testbed {
        urls,
        stop,
        done,
        cluster,
    })
}

fn display_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}
