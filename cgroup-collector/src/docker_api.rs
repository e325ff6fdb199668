//! Container runtimes reached through their API: Docker via the Engine API (`bollard`).
//!
//! [`ContainerRuntime`] is the boundary the collector and the resize endpoint use, so tests can
//! substitute a fake. A Docker container maps to a job when its label `qos.uuid` holds a job
//! UUID, or else when its name (without the leading `/`) is one — shell-trap names containers
//! after the job's UUID.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::ContainerUpdateBody;
use tokio::sync::OnceCell;

use crate::cgroup_job::is_job_uuid;

/// Per-request timeout towards the Docker daemon, seconds (a lookup runs inside a collection
/// pass; `docker update` answers within this too).
pub(crate) const REQUEST_TIMEOUT_SECS: u64 = 5;

/// Docker label carrying the job UUID.
pub(crate) const UUID_LABEL: &str = "qos.uuid";

/// What a runtime reports about a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    /// Name without the leading `/`.
    pub name: String,
    /// Container labels, as Docker reports them.
    pub labels: BTreeMap<String, String>,
    /// Image reference, when known.
    pub image: Option<String>,
}

impl ContainerInfo {
    /// The job UUID: label [`UUID_LABEL`] first, then the name.
    #[must_use]
    pub fn job_uuid(&self) -> Option<String> {
        self.labels
            .get(UUID_LABEL)
            .filter(|v| is_job_uuid(v))
            .or(is_job_uuid(&self.name).then_some(&self.name))
            .cloned()
    }
}

/// A runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The daemon could not be reached or answered garbage.
    #[error("container runtime unreachable at {host}: {message}")]
    Unreachable {
        /// Where we tried.
        host: String,
        /// Why it failed.
        message: String,
    },
    /// The daemon refused the request.
    #[error("container runtime refused ({status}): {message}")]
    Refused {
        /// HTTP status from the daemon.
        status: u16,
        /// The daemon's own error message.
        message: String,
    },
}

/// A container runtime's API.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + fmt::Debug {
    /// Look a container up by id; `Ok(None)` if the runtime does not know it.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError>;
    /// Set the container's CPU limit in place.
    async fn set_cpus(&self, id: &str, cpus: f64) -> Result<(), RuntimeError>;
}

/// Docker Engine API client. Connects lazily and negotiates the API version on first use, so a
/// daemon that starts after the agent is picked up (even when its socket does not exist yet), and
/// an older daemon (Debian's 20.10 speaks API 1.41) is spoken to in its own version.
pub(crate) struct DockerRuntime {
    host: String,
    negotiated: OnceCell<Docker>,
}

impl fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// A client for `host`: `unix:///path`, a bare `/path`, or `tcp://host:port`. Nothing is
    /// contacted yet (see [`DockerRuntime::ping`]); a host that is not even an address is refused.
    ///
    /// # Errors
    /// [`RuntimeError::Unreachable`] for an empty host or an unsupported scheme.
    pub(crate) fn new(host: &str) -> Result<Self, RuntimeError> {
        let h = host.trim();
        let scheme_ok = h.starts_with('/')
            || ["unix://", "tcp://", "http://"]
                .iter()
                .any(|s| h.len() > s.len() && h.starts_with(s));
        if !scheme_ok {
            return Err(RuntimeError::Unreachable {
                host: host.to_string(),
                message: "expected unix:///path/to/docker.sock, /path/to/docker.sock or \
                          tcp://host:port"
                    .into(),
            });
        }
        Ok(Self {
            host: h.to_string(),
            negotiated: OnceCell::new(),
        })
    }

    /// Connects (if not yet) and asks the daemon for its API version: `Ok` when Docker answers.
    ///
    /// # Errors
    /// [`RuntimeError::Unreachable`] when there is no daemon (no socket, nobody listening).
    pub(crate) async fn ping(&self) -> Result<(), RuntimeError> {
        self.docker().await.map(drop)
    }

    async fn docker(&self) -> Result<&Docker, RuntimeError> {
        self.negotiated
            .get_or_try_init(|| async {
                let host = self.host.as_str();
                let client = if host.starts_with("tcp://") || host.starts_with("http://") {
                    Docker::connect_with_http(
                        host,
                        REQUEST_TIMEOUT_SECS,
                        bollard::API_DEFAULT_VERSION,
                    )
                } else {
                    Docker::connect_with_unix(
                        host,
                        REQUEST_TIMEOUT_SECS,
                        bollard::API_DEFAULT_VERSION,
                    )
                }
                .map_err(|e| self.err(e))?;
                client.negotiate_version().await.map_err(|e| self.err(e))
            })
            .await
    }

    fn err(&self, e: bollard::errors::Error) -> RuntimeError {
        match e {
            bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            } => RuntimeError::Refused {
                status: status_code,
                message,
            },
            other => RuntimeError::Unreachable {
                host: self.host.clone(),
                message: other.to_string(),
            },
        }
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        let docker = self.docker().await?;
        match docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(ContainerInfo {
                name: c
                    .name
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                image: c.config.and_then(|c| c.image),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Uses `NanoCpus` (what `docker run/update --cpus` sets) unless the container was created
    /// with an explicit `--cpu-quota`, in which case the quota is updated at its period: the
    /// daemon refuses to mix the two.
    async fn set_cpus(&self, id: &str, cpus: f64) -> Result<(), RuntimeError> {
        let docker = self.docker().await?;
        let c = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.err(e))?;
        let hc = c.host_config.unwrap_or_default();
        let quota_mode = hc.nano_cpus.unwrap_or(0) == 0 && hc.cpu_quota.unwrap_or(0) > 0;
        let body = if quota_mode {
            let period = hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
            ContainerUpdateBody {
                cpu_quota: Some((cpus * period as f64).round() as i64),
                cpu_period: Some(period),
                ..ContainerUpdateBody::default()
            }
        } else {
            ContainerUpdateBody {
                nano_cpus: Some((cpus * 1e9).round() as i64),
                ..ContainerUpdateBody::default()
            }
        };
        docker
            .update_container(id, body)
            .await
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_from_label_then_name() {
        let mut c = ContainerInfo {
            name: "0123456789abcdef0123456789abcdef".into(),
            ..Default::default()
        };
        assert_eq!(
            c.job_uuid().as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        c.labels.insert(
            UUID_LABEL.into(),
            "aaaaaaaa-1111-2222-3333-444455556666".into(),
        );
        assert_eq!(
            c.job_uuid().as_deref(),
            Some("aaaaaaaa-1111-2222-3333-444455556666")
        );
        let c = ContainerInfo {
            name: "web".into(),
            ..Default::default()
        };
        assert_eq!(c.job_uuid(), None);
    }
}
