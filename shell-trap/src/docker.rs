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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::{CreateCheckpointOptions, LogOutput};
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerWaitResponse, DeviceMapping,
    HostConfig, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, LogsOptions, RemoveContainerOptions,
    WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::checkpoints::{Incarnation, Store};
use crate::cli::CONTAINER_CHECKPOINT_DIR;
use crate::container_options::ContainerOptions;
use crate::error::SetupError;
use crate::job::{Job, StopOutcome};
use crate::strategy::Strategy;

/// The checkpoint id used for CRIU checkpoints.
pub const CRIU_CHECKPOINT_ID: &str = "ckpt";
/// The sub-directory of an incarnation that holds CRIU images.
pub const CRIU_SUBDIR: &str = "criu";

type WaitStream = Pin<Box<dyn Stream<Item = Result<ContainerWaitResponse, BollardError>> + Send>>;

/// A connected daemon.
#[derive(Debug, Clone)]
pub struct DockerClient {
    client: Docker,
    host: String,
}

/// Everything needed to create the container of one incarnation.
#[derive(Debug, Clone)]
pub struct ContainerSpec<'a> {
    /// The job.
    pub uuid: &'a str,
    /// Image.
    pub image: &'a str,
    /// Command (empty: the image's).
    pub cmd: &'a [String],
    /// User options.
    pub options: &'a ContainerOptions,
    /// CPU bound.
    pub cpus: Option<f64>,
    /// `QOS_*` variables.
    pub env: Vec<(String, String)>,
    /// Strategy in use.
    pub strategy: Strategy,
    /// The incarnation.
    pub inc: Option<&'a Incarnation>,
    /// `qos.owner` label value.
    pub owner: String,
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

/// The `qos.owner` value of this process: `<boot id>:<pid>:<start time in ticks>`.
#[must_use]
pub fn owner_token() -> String {
    let pid = std::process::id();
    format!(
        "{}:{pid}:{}",
        boot_id(),
        start_time(pid).unwrap_or_default()
    )
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the shell-trap named by a `qos.owner` value is still alive on this host.
#[must_use]
pub fn owner_alive(token: &str) -> bool {
    let mut it = token.split(':');
    let (Some(boot), Some(pid), Some(start)) = (it.next(), it.next(), it.next()) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    boot == boot_id() && pid != std::process::id() && start_time(pid) == Some(start)
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The create body of one incarnation's container (pure, for tests).
#[must_use]
pub fn container_body(spec: &ContainerSpec<'_>) -> ContainerCreateBody {
    let o = spec.options;
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(o.env.iter().cloned());
    let mut labels: HashMap<String, String> = o.labels.clone().into_iter().collect();
    labels.insert("qos.uuid".into(), spec.uuid.to_owned());
    labels.insert("qos.strategy".into(), spec.strategy.as_str().to_owned());
    labels.insert("qos.owner".into(), spec.owner.clone());
    let mut binds = o.binds.clone();
    if let Some(inc) = spec.inc {
        labels.insert("qos.incarnation".into(), inc.seq.to_string());
        labels.insert("qos.checkpoint-dir".into(), inc.dir.display().to_string());
        if let Some(r) = inc.restored_from {
            labels.insert("qos.restored-from".into(), r.to_string());
        }
        if spec.strategy == Strategy::App {
            binds.push(format!(
                "{}:{CONTAINER_CHECKPOINT_DIR}:rw",
                inc.dir.display()
            ));
        }
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "cpus is validated finite in (0, 1024]"
    )]
    let nano_cpus = spec.cpus.map(|c| (c * 1e9).round() as i64);
    let devices = o
        .devices
        .iter()
        .map(|d| {
            let mut p = d.splitn(3, ':');
            let host = p.next().unwrap_or_default().to_owned();
            let ctr = p.next().map_or_else(|| host.clone(), str::to_owned);
            DeviceMapping {
                path_on_host: Some(host),
                path_in_container: Some(ctr),
                cgroup_permissions: Some(p.next().unwrap_or("rwm").to_owned()),
            }
        })
        .collect::<Vec<_>>();
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let host_config = HostConfig {
        nano_cpus,
        network_mode: Some(o.network.clone().unwrap_or_else(|| "host".into())),
        binds: (!binds.is_empty()).then_some(binds),
        privileged: o.privileged.then_some(true),
        memory: o.memory,
        memory_swap: o.memory_swap,
        memory_reservation: o.memory_reservation,
        shm_size: o.shm_size,
        cap_add: some_vec(&o.cap_add),
        cap_drop: some_vec(&o.cap_drop),
        devices: (!devices.is_empty()).then_some(devices),
        extra_hosts: some_vec(&o.extra_hosts),
        security_opt: some_vec(&o.security_opt),
        ulimits: (!o.ulimits.is_empty()).then(|| {
            o.ulimits
                .iter()
                .map(|(name, soft, hard)| ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        pids_limit: o.pids_limit,
        readonly_rootfs: o.read_only.then_some(true),
        tmpfs: (!o.tmpfs.is_empty()).then(|| o.tmpfs.clone().into_iter().collect()),
        init: o.init,
        dns: some_vec(&o.dns),
        group_add: some_vec(&o.group_add),
        ipc_mode: o.ipc.clone(),
        pid_mode: o.pid.clone(),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.to_vec()),
        entrypoint: o.entrypoint.clone().map(|e| vec![e]),
        env: Some(env),
        labels: Some(labels),
        user: o.user.clone(),
        working_dir: o.workdir.clone(),
        hostname: o.hostname.clone(),
        host_config: Some(host_config),
        ..Default::default()
    }
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
        store: &Store,
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
            // --checkpoint-dir), at the place its label names.
            let ours = |seq: u64| {
                labels
                    .get("qos.checkpoint-dir")
                    .is_some_and(|d| Path::new(d) == store.incarnation_dir(seq))
            };
            let inc = seq.filter(|s| ours(*s)).map(|seq| Incarnation {
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
            match (&outcome, inc) {
                (StopOutcome::Checkpointed, Some(inc)) if inc.dir.is_dir() => {
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

/// A running container.
pub struct DockerJob {
    client: Docker,
    name: String,
    id: String,
    inc: Option<Incarnation>,
    wait: Option<WaitStream>,
    status: Option<i32>,
    logs: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DockerJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerJob")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl DockerJob {
    fn attach(d: &DockerClient, name: &str, id: String, inc: Option<Incarnation>) -> Self {
        Self {
            client: d.client.clone(),
            name: name.to_owned(),
            id,
            inc,
            wait: None,
            status: None,
            logs: None,
        }
    }

    /// The container id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    fn stream_logs(&mut self) {
        let mut logs = self.client.logs(
            &self.id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        );
        self.logs = Some(tokio::spawn(async move {
            let mut out = tokio::io::stdout();
            let mut err = tokio::io::stderr();
            while let Some(item) = logs.next().await {
                let r = match item {
                    Ok(LogOutput::StdErr { message }) => err.write_all(&message).await,
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        out.write_all(&message).await.and(out.flush().await)
                    }
                    Ok(LogOutput::StdIn { .. }) => Ok(()),
                    Err(e) => {
                        tracing::warn!("container log stream ended: {e} (the job is not affected)");
                        break;
                    }
                };
                if r.is_err() {
                    break;
                }
            }
        }));
    }

    async fn inspect_status(&self) -> Result<Option<i32>, BollardError> {
        let i = self.client.inspect_container(&self.id, None).await?;
        let st = i.state.unwrap_or_default();
        let running = st.running.unwrap_or(false)
            || matches!(
                st.status,
                Some(
                    ContainerStateStatusEnum::RUNNING
                        | ContainerStateStatusEnum::RESTARTING
                        | ContainerStateStatusEnum::PAUSED
                )
            );
        Ok(if running {
            None
        } else {
            Some(
                st.exit_code
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(255),
            )
        })
    }

    async fn wait_exit(&mut self) -> Result<i32, String> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let mut broken = 0u32;
        loop {
            let stream = self.wait.get_or_insert_with(|| {
                Box::pin(self.client.wait_container(
                    &self.id,
                    Some(WaitContainerOptions {
                        condition: "not-running".to_owned(),
                    }),
                ))
            });
            let item = stream.next().await;
            self.wait = None;
            let why = match item {
                Some(Ok(r)) => {
                    let code = i32::try_from(r.status_code).unwrap_or(255);
                    self.status = Some(code);
                    return Ok(code);
                }
                Some(Err(BollardError::DockerContainerWaitError { code, .. })) => {
                    let code = i32::try_from(code).unwrap_or(255);
                    self.status = Some(code);
                    return Ok(code);
                }
                Some(Err(e)) => e.to_string(),
                None => "the wait stream ended without a status".to_owned(),
            };
            // Thesis bug 24: a broken stream is not the end of the job. Ask the daemon.
            broken += 1;
            if broken == 1 || broken % 30 == 0 {
                tracing::warn!("docker wait {}: {why}; checking the container", self.name);
            }
            match self.inspect_status().await {
                Ok(Some(code)) => {
                    self.status = Some(code);
                    return Ok(code);
                }
                Ok(None) => {}
                Err(e) if is_not_found(&e) => {
                    return Err(format!(
                        "container {} disappeared (removed by someone else); its exit status is \
                         unknown",
                        self.name
                    ));
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn kill(&self, sig: &str) -> Result<(), String> {
        match self
            .client
            .kill_container(
                &self.id,
                Some(KillContainerOptions {
                    signal: sig.to_owned(),
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            // 409: not running any more.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(format!("docker kill --signal {sig} {}: {e}", self.name)),
        }
    }

    async fn wait_until(&mut self, until: Instant) -> Option<i32> {
        match tokio::time::timeout_at(until, self.wait_exit()).await {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                tracing::error!("{e}");
                Some(255)
            }
            Err(_) => None,
        }
    }

    async fn criu_checkpoint(&mut self, deadline: Instant) -> StopOutcome {
        let Some(inc) = self.inc.clone() else {
            return StopOutcome::Failed("no incarnation directory for the CRIU images".into());
        };
        let dir = inc.dir.join(CRIU_SUBDIR);
        // The images this incarnation was restored from are not needed any more.
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            return StopOutcome::Failed(format!("mkdir {}: {e}", dir.display()));
        }
        let opts = CreateCheckpointOptions {
            checkpoint_id: CRIU_CHECKPOINT_ID.to_owned(),
            checkpoint_dir: Some(dir.display().to_string()),
            exit: true,
        };
        let r =
            tokio::time::timeout_at(deadline, self.client.create_checkpoint(&self.id, opts)).await;
        let why = match r {
            Ok(Ok(())) => {
                let _ = self.wait_until(deadline).await;
                return StopOutcome::Checkpointed;
            }
            Ok(Err(e)) => format!("docker checkpoint create failed: {e}"),
            Err(_) => "docker checkpoint create did not finish within the grace period".to_owned(),
        };
        // The container may still run: stop it for good.
        let _ = self.kill("SIGKILL").await;
        let _ = self
            .wait_until(Instant::now() + Duration::from_secs(5))
            .await;
        StopOutcome::Failed(why)
    }
}

impl Job for DockerJob {
    async fn wait(&mut self) -> Result<i32, String> {
        self.wait_exit().await
    }

    async fn forward(&mut self, sig: Signal) {
        tracing::info!("forwarding {sig} to container {}", self.name);
        if let Err(e) = self.kill(sig.as_str()).await {
            tracing::warn!("{e}");
        }
    }

    async fn checkpoint_and_stop(&mut self, strategy: Strategy, deadline: Instant) -> StopOutcome {
        if let Ok(Some(code)) = self.inspect_status().await {
            self.status = Some(code);
            return StopOutcome::Exited(code);
        }
        if strategy == Strategy::Criu {
            return self.criu_checkpoint(deadline).await;
        }
        if let Err(e) = self.kill("SIGTERM").await {
            tracing::warn!("{e}");
        }
        match (self.wait_until(deadline).await, strategy) {
            (Some(0), Strategy::App) => StopOutcome::Checkpointed,
            (Some(code), Strategy::App) => StopOutcome::Failed(format!(
                "the job exited with status {code} after SIGTERM, not 0: its checkpoint is not \
                 trusted"
            )),
            (Some(code), _) => StopOutcome::Stopped { code },
            (None, s) => {
                let _ = self.kill("SIGKILL").await;
                let _ = self
                    .wait_until(Instant::now() + Duration::from_secs(5))
                    .await;
                if s == Strategy::App {
                    StopOutcome::Failed(
                        "the job did not save its state and stop within the grace period; killed"
                            .into(),
                    )
                } else {
                    StopOutcome::Stopped { code: 137 }
                }
            }
        }
    }

    async fn kill_now(&mut self) {
        if let Err(e) = self.kill("SIGKILL").await {
            tracing::warn!("{e}");
        }
        let _ = self
            .wait_until(Instant::now() + Duration::from_secs(5))
            .await;
    }

    async fn cleanup(&mut self) {
        if let Some(logs) = self.logs.take() {
            // Let the tail of the output through.
            let abort = logs.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), logs)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            self.client.remove_container(
                &self.id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            ),
        )
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) if is_not_found(&e) => {}
            Ok(Err(e)) => tracing::warn!("docker rm {}: {e}", self.name),
            Err(_) => tracing::warn!("docker rm {} timed out", self.name),
        }
    }

    fn describe(&self) -> String {
        format!(
            "container {} ({})",
            self.name,
            &self.id[..self.id.len().min(12)]
        )
    }
}

/// The directory a CRIU restore reads, for an incarnation restored from a `criu` seal.
#[must_use]
pub fn criu_dir(inc: &Incarnation) -> PathBuf {
    inc.dir.join(CRIU_SUBDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_tokens() {
        let me = owner_token();
        assert_eq!(me.split(':').count(), 3);
        // Our own token is not "another live shell-trap".
        assert!(!owner_alive(&me));
        let parent = std::os::unix::process::parent_id();
        let t = format!("{}:{parent}:{}", boot_id(), start_time(parent).unwrap());
        assert!(owner_alive(&t));
        assert!(!owner_alive(&format!("{}:{parent}:1", boot_id())));
        assert!(!owner_alive(&format!(
            "other-boot:{parent}:{}",
            start_time(parent).unwrap()
        )));
        assert!(!owner_alive(""));
        assert!(!owner_alive("a:b:c"));
    }

    #[test]
    fn query_values() {
        assert_eq!(
            query_encode("/var/lib/x y/inc-000001/criu"),
            "/var/lib/x%20y/inc-000001/criu"
        );
        assert_eq!(query_encode("a&b=c"), "a%26b%3Dc");
    }

    #[test]
    fn create_body() {
        let mut o = ContainerOptions::default();
        o.apply_opt("memory=256m", "t").unwrap();
        o.apply_opt("label=team=x", "t").unwrap();
        o.apply_opt("volume=/h:/c:ro", "t").unwrap();
        o.apply_opt("device=/dev/fuse", "t").unwrap();
        o.env.push("A=1".into());
        let inc = Incarnation {
            seq: 3,
            dir: PathBuf::from("/ck/u1/inc-000003"),
            restored_from: Some(2),
            restored_bytes: 10,
        };
        let cmd = vec!["/qos-counter".to_owned(), "100".to_owned()];
        let spec = ContainerSpec {
            uuid: "u1",
            image: "img:1",
            cmd: &cmd,
            options: &o,
            cpus: Some(1.5),
            env: vec![("QOS_UUID".into(), "u1".into())],
            strategy: Strategy::App,
            inc: Some(&inc),
            owner: "b:1:2".into(),
        };
        let b = container_body(&spec);
        let h = b.host_config.as_ref().unwrap();
        assert_eq!(h.nano_cpus, Some(1_500_000_000));
        assert_eq!(h.network_mode.as_deref(), Some("host"));
        assert_eq!(h.memory, Some(256 << 20));
        assert_eq!(
            h.binds.as_deref().unwrap(),
            ["/h:/c:ro", "/ck/u1/inc-000003:/qos-checkpoint:rw"]
        );
        let dev = &h.devices.as_ref().unwrap()[0];
        assert_eq!(dev.path_in_container.as_deref(), Some("/dev/fuse"));
        let labels = b.labels.as_ref().unwrap();
        assert_eq!(labels["qos.uuid"], "u1");
        assert_eq!(labels["qos.incarnation"], "3");
        assert_eq!(labels["qos.restored-from"], "2");
        assert_eq!(labels["qos.strategy"], "app");
        assert_eq!(labels["qos.checkpoint-dir"], "/ck/u1/inc-000003");
        assert_eq!(labels["team"], "x");
        assert_eq!(b.env.as_deref().unwrap(), ["QOS_UUID=u1", "A=1"]);
        assert_eq!(b.cmd.as_deref().unwrap(), cmd.as_slice());

        // criu: nothing mounted; no cpus: no bound.
        let spec = ContainerSpec {
            strategy: Strategy::Criu,
            cpus: None,
            cmd: &[],
            ..spec
        };
        let b = container_body(&spec);
        let h = b.host_config.as_ref().unwrap();
        assert_eq!(h.binds.as_deref().unwrap(), ["/h:/c:ro"]);
        assert_eq!(h.nano_cpus, None);
        assert!(b.cmd.is_none());
    }
}
