//! The Docker runtime, through the Engine API (bollard; `DOCKER_HOST` or the local socket).
//!
//! # The container
//! - name = the job's UUID; labels `qos.uuid`, `qos.incarnation`, `qos.checkpoint-dir`,
//!   `qos.strategy`, `qos.restored-from` and `qos.owner` (`<boot id>:<pid>:<start time>` of the shell-trap that
//!   runs it) plus the user's;
//! - `NanoCpus` = `--cpus` × 10⁹ (`MARATHON_APP_RESOURCE_CPUS`; the thesis set no bound);
//! - host networking unless `QOS_CONTAINER`/`--docker-opt network=` says otherwise;
//! - `app`: the incarnation's checkpoint directory bind-mounted at `/qos-checkpoint`, named by
//!   `QOS_CHECKPOINT_DIR`; `criu`: nothing mounted (CRIU restores mounts as they were, and the
//!   incarnation directory changes every time);
//! - environment: `QOS_UUID`, `QOS_SUPERVISOR_URL`, `QOS_REPORT_TOKEN` (the job's own, for its
//!   progress reports), `QOS_INCARNATION`, `QOS_RESTORED` (0/1), `QOS_CPUS`, the app's forwarded
//!   variables (`QOS_FORWARD_ENV`) and `--docker-opt env=…`;
//! - the options of `QOS_CONTAINER` and `--docker-opt` (see [`crate::container_options`]).
//!
//! # Waiting
//! The exit status comes from the Engine API's `wait` (condition `not-running`), never from the
//! log stream (thesis bug 24: a broken `docker logs -f` made the thesis report the end of a job
//! that was still running). If the wait connection breaks, the container is inspected: still
//! running → wait again; exited → its `ExitCode`; gone → the status is unknown and no end is
//! reported. Logs are streamed to shell-trap's stdout/stderr by a separate task.
//!
//! # A container of the same UUID already exists (thesis bug 22)
//! The thesis ran `docker rm -f <uuid>` first, killing a live, un-checkpointed container of the
//! old task. Here, after taking the job's store lock:
//! - a container not created by shell-trap for this UUID (no matching `qos.uuid` label): refuse;
//! - not running: removed;
//! - running, and its `qos.owner` shell-trap is alive: wait up to the grace period for it to
//!   checkpoint and stop; if it is still running, refuse (exit 125) — never kill it;
//! - running, and its owner is dead (it was SIGKILLed): an orphan. It is checkpointed with its
//!   own strategy first (`app`: SIGTERM, and if it exits 0 within the grace period its
//!   incarnation is sealed; `criu`: `docker checkpoint create`), then removed.
//!
//! # CRIU
//! `POST /containers/{id}/checkpoints {CheckpointID, CheckpointDir, Exit: true}` into
//! `inc-N/criu/`, and on restore `POST /containers/{id}/start?checkpoint=ckpt&checkpoint-dir=…`
//! (bollard's typed start call lacks these parameters; a request modifier adds them). Docker ≥
//! 18.x resolves both to `<checkpoint-dir>/<checkpoint-id>` (the 17.x asymmetry the thesis worked
//! around is gone).

mod container;
mod owner;
mod running;

use container::query_encode;
pub use container::{ContainerSpec, container_body};
pub use owner::{owner_alive, owner_token};
pub use running::DockerJob;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};
use tokio::time::Instant;

use crate::checkpoints::{Incarnation, Store};
use crate::error::SetupError;
use crate::job::{Job, StopOutcome};
use crate::strategy::Strategy;

/// The checkpoint id used for CRIU checkpoints.
pub const CRIU_CHECKPOINT_ID: &str = "ckpt";
/// The sub-directory of an incarnation that holds CRIU images.
pub const CRIU_SUBDIR: &str = "criu";

/// A connected daemon.
#[derive(Debug, Clone)]
pub struct DockerClient {
    client: Docker,
    host: String,
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerClient {
    /// Connects (`DOCKER_HOST`, else the local socket) and negotiates the API version.
    ///
    /// # Errors
    /// [`SetupError::Runtime`] when no daemon answers.
    pub async fn connect() -> Result<Self, SetupError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let client = Docker::connect_with_defaults().map_err(|e| {
            SetupError::Runtime(format!("cannot use the Docker daemon at {host}: {e}"))
        })?;
        let client = tokio::time::timeout(Duration::from_secs(15), client.negotiate_version())
            .await
            .map_err(|_| {
                SetupError::Runtime(format!(
                    "the Docker daemon at {host} does not answer (15 s)"
                ))
            })?
            .map_err(|e| {
                SetupError::Runtime(format!("the Docker daemon at {host} does not answer: {e}"))
            })?;
        Ok(Self { client, host })
    }

    /// The daemon address.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether CRIU checkpoints work: the daemon is experimental and `criu check` passes.
    ///
    /// # Errors
    /// The reason they do not.
    pub async fn criu_status(&self) -> Result<(), String> {
        let info = self
            .client
            .info()
            .await
            .map_err(|e| format!("docker info at {}: {e}", self.host))?;
        if info.experimental_build != Some(true) {
            return Err(format!(
                "the Docker daemon at {} is not experimental (checkpoints need dockerd \
                 --experimental)",
                self.host
            ));
        }
        crate::strategy::criu_check().await
    }

    /// Makes sure `image` is present (pulling it when absent or when `force_pull`) and returns
    /// its labels.
    ///
    /// # Errors
    /// [`SetupError::Runtime`] when it is absent and cannot be pulled.
    pub async fn prepare_image(
        &self,
        image: &str,
        force_pull: bool,
    ) -> Result<HashMap<String, String>, SetupError> {
        binkit::docker::ensure_image(&self.client, image, force_pull)
            .await
            .map_err(|e| {
                SetupError::Runtime(format!(
                    "image {image} is not on the Docker daemon at {} and cannot be pulled: {e}",
                    self.host
                ))
            })?;
        let inspected = self
            .client
            .inspect_image(image)
            .await
            .map_err(|e| SetupError::Runtime(format!("docker image inspect {image}: {e}")))?;
        Ok(inspected.config.and_then(|c| c.labels).unwrap_or_default())
    }

    /// Deals with an existing container named `uuid` (see the module docs): removes it when
    /// that is safe, after checkpointing it when it is a running orphan.
    ///
    /// # Errors
    /// [`SetupError::Busy`] when it is not ours or still owned by a live shell-trap after
    /// `grace`; [`SetupError::Runtime`] for API failures.
    pub async fn adopt_existing(
        &self,
        uuid: &str,
        store: Option<&Store>,
        grace: Duration,
    ) -> Result<(), SetupError> {
        let info = match self.client.inspect_container(uuid, None).await {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(SetupError::Runtime(format!("docker inspect {uuid}: {e}"))),
        };
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if labels.get("qos.uuid").map(String::as_str) != Some(uuid) {
            return Err(SetupError::Busy(format!(
                "a container named {uuid} exists that shell-trap did not create for this job (no \
                 qos.uuid={uuid} label); refusing to touch it — remove it yourself if it is stale"
            )));
        }
        let running = |i: &bollard::models::ContainerInspectResponse| {
            i.state.as_ref().and_then(|s| s.running).unwrap_or(false)
        };
        let owner = labels.get("qos.owner").cloned().unwrap_or_default();
        if running(&info) && owner_alive(&owner) {
            tracing::warn!(
                "container {uuid} is still run by a live shell-trap ({owner}); waiting up to {:.0} s \
                 for it to checkpoint and stop",
                grace.as_secs_f64()
            );
            let until = Instant::now() + grace;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                match self.client.inspect_container(uuid, None).await {
                    Err(e) if is_not_found(&e) => return Ok(()),
                    Ok(i) if !running(&i) => break,
                    _ if Instant::now() >= until => {
                        return Err(SetupError::Busy(format!(
                            "container {uuid} is still running under a live shell-trap ({owner}) \
                             after {:.0} s; refusing to remove an un-checkpointed container (it \
                             will be checkpointed when its task is killed)",
                            grace.as_secs_f64()
                        )));
                    }
                    _ => {}
                }
            }
        } else if running(&info) {
            let strategy = labels.get("qos.strategy").map_or("none", String::as_str);
            let seq = labels
                .get("qos.incarnation")
                .and_then(|s| s.parse::<u64>().ok());
            tracing::warn!(
                "container {uuid} is running but the shell-trap that started it is gone; \
                 checkpointing it ({strategy}) before removing it"
            );
            // Its checkpoint can be sealed only if it is in this store (the same
            // --checkpoint-dir), at the place its label names — and not at all without one.
            let ours = |store: &Store, seq: u64| {
                labels
                    .get("qos.checkpoint-dir")
                    .is_some_and(|d| Path::new(d) == store.incarnation_dir(seq))
            };
            let mine = store.zip(seq).filter(|(store, seq)| ours(store, *seq));
            let inc = mine.map(|(store, seq)| Incarnation {
                seq,
                dir: store.incarnation_dir(seq),
                restored_from: labels.get("qos.restored-from").and_then(|s| s.parse().ok()),
                restored_bytes: 0,
            });
            let strategy = match strategy {
                "app" => Strategy::App,
                "criu" => Strategy::Criu,
                _ => Strategy::None,
            };
            let mut job =
                DockerJob::attach(self, uuid, info.id.clone().unwrap_or_default(), inc.clone());
            let outcome = job
                .checkpoint_and_stop(strategy, Instant::now() + grace)
                .await;
            match (&outcome, inc.zip(store)) {
                (StopOutcome::Checkpointed, Some((inc, store))) if inc.dir.is_dir() => {
                    match store.seal(&inc, strategy.as_str()) {
                        Ok(m) => tracing::info!(
                            "sealed the orphan's checkpoint (incarnation {}, {} bytes)",
                            inc.seq,
                            m.bytes()
                        ),
                        Err(e) => tracing::error!("cannot seal the orphan's checkpoint: {e}"),
                    }
                }
                (o, _) => tracing::warn!(
                    "the orphan container stopped without a usable checkpoint: {o:?}"
                ),
            }
        } else {
            let status = info.state.as_ref().and_then(|s| s.status);
            tracing::info!(
                "removing the stopped container {uuid} of an earlier incarnation ({status:?})"
            );
        }
        self.remove(uuid).await
    }

    async fn remove(&self, name: &str) -> Result<(), SetupError> {
        match self
            .client
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(SetupError::Runtime(format!("docker rm {name}: {e}"))),
        }
    }

    /// Creates and starts the container (restoring the CRIU checkpoint `criu_restore` when given),
    /// and starts streaming its logs.
    ///
    /// # Errors
    /// [`SetupError::Runtime`] with the daemon's message.
    pub async fn start(
        &self,
        spec: &ContainerSpec<'_>,
        criu_restore: Option<&Path>,
    ) -> Result<DockerJob, SetupError> {
        let body = container_body(spec);
        let created = self
            .client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.uuid.to_owned()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| SetupError::Runtime(format!("docker create {}: {e}", spec.uuid)))?;
        for w in &created.warnings {
            tracing::warn!("docker create: {w}");
        }
        let started = match criu_restore {
            None => self.client.start_container(&created.id, None).await,
            Some(dir) => {
                let q = format!(
                    "checkpoint={CRIU_CHECKPOINT_ID}&checkpoint-dir={}",
                    query_encode(&dir.display().to_string())
                );
                let with_checkpoint = self.client.clone().with_request_modifier(move |mut req| {
                    if req.uri().path().ends_with("/start") {
                        let uri = req.uri().to_string();
                        let sep = if uri.contains('?') { '&' } else { '?' };
                        if let Ok(u) = format!("{uri}{sep}{q}").parse() {
                            *req.uri_mut() = u;
                        }
                    }
                    req
                });
                with_checkpoint.start_container(&created.id, None).await
            }
        };
        if let Err(e) = started {
            let _ = self.remove(&created.id).await;
            return Err(SetupError::Runtime(format!(
                "docker start {}{}: {e}",
                spec.uuid,
                if criu_restore.is_some() {
                    " --checkpoint"
                } else {
                    ""
                }
            )));
        }
        let mut job = DockerJob::attach(self, spec.uuid, created.id, spec.inc.cloned());
        job.stream_logs();
        Ok(job)
    }
}

/// The directory a CRIU restore reads, for an incarnation restored from a `criu` seal.
#[must_use]
pub fn criu_dir(inc: &Incarnation) -> PathBuf {
    inc.dir.join(CRIU_SUBDIR)
}
