//! The Docker runtime: a task with an image runs as a container through the Docker Engine API,
//! as the Mesos Docker containerizer runs it:
//!
//! - name: the task id, with characters Docker refuses in names (Chronos' `:`) replaced by `_`;
//! - `--cpus` (`NanoCpus` = cpus × 10⁹), `--cpu-shares` (1024 × cpus, the Mesos containerizer's
//!   weight) and `--memory` (the task's `mem`);
//! - host networking (`HOST`, `BRIDGE` and `USER` all map to `host`, the only network a private
//!   bridgeless daemon has; `NONE` maps to `none`);
//! - volumes as binds `hostPath:containerPath:rw|ro`, and the sandbox at `/mnt/mesos/sandbox`;
//! - label `MESOS_TASK_ID=<task id>` (what Marathon adds), `qos.uuid` when the job has one, and
//!   `qos-testbed.cluster=<cluster id>` (so a testbed that restarts after a crash finds and
//!   removes the containers of the one that died, as Mesos' `--docker_kill_orphans` does);
//! - cgroup parent = the agent's cgroup when the daemon uses the cgroupfs driver, so the agent's
//!   quota bounds its containers as it bounds its processes;
//! - a shell command (`cmd`, Chronos `shell: true`) runs as `--entrypoint /bin/sh … -c <cmd>`;
//!   an argv (`args`) replaces the image's command; no command keeps the image's own.
//!
//! Stopping sends SIGTERM, then SIGKILL after the grace (Mesos' Docker executor does
//! `docker stop -t <grace>`); the container is removed once it has exited.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, SystemInfoCgroupDriverEnum};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::config::Config;
use crate::task::{ContainerSpec, Outcome, TaskCommand, wait_kill};

/// One container to run.
pub(crate) struct DockerRun<'a> {
    pub(crate) task_id: &'a str,
    /// The testbed's cluster id (a label, for recovery after a crash).
    pub(crate) cluster: &'a str,
    pub(crate) container: &'a ContainerSpec,
    pub(crate) command: &'a TaskCommand,
    pub(crate) env: &'a [(String, String)],
    pub(crate) cpus: f64,
    pub(crate) mem: f64,
    pub(crate) cgroup_parent: Option<&'a str>,
    pub(crate) uuid: Option<&'a str>,
    pub(crate) sandbox: &'a Path,
}

/// A connected Docker daemon.
pub(crate) struct DockerRuntime {
    client: Docker,
    cgroupfs: bool,
}

/// The Docker name for a task id: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(crate) fn container_name(task_id: &str) -> String {
    let mut s: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s.insert(0, 't');
    }
    s
}

/// The daemon address to use: the configured one, else `DOCKER_HOST`, else the local socket.
pub(crate) fn docker_host(cfg: &Config) -> String {
    cfg.docker_host
        .clone()
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

fn client_for(host: &str) -> Result<Docker, String> {
    if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, 30, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_unix(host, 30, bollard::API_DEFAULT_VERSION)
    }
    .map_err(|e| format!("cannot use the Docker daemon at {host}: {e}"))
}

/// Removes, forcibly, every container of the daemon at `host` labelled as `cluster`'s; returns
/// their names.
pub(crate) async fn remove_cluster_containers(
    host: &str,
    cluster: &str,
) -> Result<Vec<String>, String> {
    let client = client_for(host)?
        .negotiate_version()
        .await
        .map_err(|e| format!("the Docker daemon at {host} does not answer: {e}"))?;
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={cluster}", crate::recovery::CLUSTER_LABEL)],
    )]);
    let found = client
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| format!("listing containers at {host}: {e}"))?;
    let mut removed = Vec::new();
    for c in found {
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map_or_else(|| id.clone(), |n| n.trim_start_matches('/').to_owned());
        match client
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => removed.push(name),
            Err(e) => return Err(format!("removing container {name}: {e}")),
        }
    }
    Ok(removed)
}

impl DockerRuntime {
    /// Connects and checks that the daemon answers.
    pub(crate) async fn connect(cfg: &Config) -> anyhow::Result<Self> {
        let host = docker_host(cfg);
        let client = client_for(&host).map_err(|e| anyhow::anyhow!(e))?;
        let client = client.negotiate_version().await.map_err(|e| {
            anyhow::anyhow!(
                "the Docker daemon at {host} does not answer ({e}); start one with \
                 `bash scripts/docker-daemon start` and export DOCKER_HOST"
            )
        })?;
        let info = client
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("docker info at {host}: {e}"))?;
        let cgroupfs = matches!(
            info.cgroup_driver,
            Some(SystemInfoCgroupDriverEnum::CGROUPFS)
        );
        if !cgroupfs {
            tracing::warn!(
                "the Docker daemon at {host} does not use the cgroupfs driver: containers are not \
                 placed under their agent's cgroup (their own --cpus limit still applies)"
            );
        }
        Ok(Self { client, cgroupfs })
    }

    async fn ensure_image(&self, image: &str, force_pull: bool) -> Result<(), String> {
        binkit::docker::ensure_image(&self.client, image, force_pull)
            .await
            .map_err(|e| {
                format!(
                    "image {image} is not present on the Docker daemon and cannot be pulled: {e}"
                )
            })
    }

    /// Runs a container until it exits or a kill is requested. `on_started(container id, pid)`
    /// is called once it runs.
    pub(crate) async fn run(
        &self,
        run: DockerRun<'_>,
        kill_rx: &mut watch::Receiver<Option<Duration>>,
        default_grace: Duration,
        on_started: impl FnOnce(&str, Option<u32>),
    ) -> Outcome {
        let name = container_name(run.task_id);
        let _ = self
            .client
            .remove_container(
                &name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        if let Err(e) = self
            .ensure_image(&run.container.image, run.container.force_pull)
            .await
        {
            return Outcome::Failed(e);
        }
        let _ = std::fs::create_dir_all(run.sandbox);
        let body = run.create_body(&name, self.cgroupfs);
        let created = self
            .client
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        let id = match created {
            Ok(r) => r.id,
            Err(e) => return Outcome::Failed(format!("docker create {name}: {e}")),
        };
        let outcome = self
            .start_and_wait(&id, kill_rx, default_grace, on_started)
            .await;
        let _ = self
            .client
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        outcome
    }

    async fn start_and_wait(
        &self,
        id: &str,
        kill_rx: &mut watch::Receiver<Option<Duration>>,
        default_grace: Duration,
        on_started: impl FnOnce(&str, Option<u32>),
    ) -> Outcome {
        if let Err(e) = self.client.start_container(id, None).await {
            return Outcome::Failed(format!("docker start: {e}"));
        }
        let pid = self
            .client
            .inspect_container(id, None)
            .await
            .ok()
            .and_then(|i| i.state)
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0);
        on_started(id, pid);
        let wait = self.wait_exit(id);
        tokio::pin!(wait);
        tokio::select! {
            code = &mut wait => code,
            grace = wait_kill(kill_rx, default_grace) => {
                self.signal(id, "SIGTERM").await;
                tokio::select! {
                    _ = &mut wait => {}
                    () = tokio::time::sleep(grace) => {
                        self.signal(id, "SIGKILL").await;
                        let _ = (&mut wait).await;
                    }
                }
                Outcome::Killed("Container terminated on request".to_owned())
            }
        }
    }

    async fn signal(&self, id: &str, signal: &str) {
        let _ = self
            .client
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: signal.to_owned(),
                }),
            )
            .await;
    }

    async fn wait_exit(&self, id: &str) -> Outcome {
        let mut stream = self.client.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".to_owned(),
            }),
        );
        match stream.next().await {
            Some(Ok(r)) => Outcome::Exited(i32::try_from(r.status_code).unwrap_or(1)),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                Outcome::Exited(i32::try_from(code).unwrap_or(1))
            }
            Some(Err(e)) => Outcome::Failed(format!("docker wait: {e}")),
            None => Outcome::Failed("docker wait ended without a status".to_owned()),
        }
    }
}

impl DockerRun<'_> {
    /// The container to create, named `name`: the task's environment and the sandbox mounted as
    /// Mesos does, its volumes, the `label`/`env`/`volume` parameters, its command, network and
    /// limits (`--cpus`, shares, memory), under the agent's cgroup when the daemon uses cgroupfs.
    fn create_body(&self, name: &str, cgroupfs: bool) -> ContainerCreateBody {
        let mut env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push("MESOS_SANDBOX=/mnt/mesos/sandbox".to_owned());
        env.push(format!("MESOS_CONTAINER_NAME={name}"));
        let mut labels = HashMap::from([
            ("MESOS_TASK_ID".to_owned(), self.task_id.to_owned()),
            (
                crate::recovery::CLUSTER_LABEL.to_owned(),
                self.cluster.to_owned(),
            ),
        ]);
        if let Some(u) = self.uuid {
            labels.insert("qos.uuid".to_owned(), u.to_owned());
        }
        let mut binds: Vec<String> = self
            .container
            .volumes
            .iter()
            .map(|v| {
                format!(
                    "{}:{}:{}",
                    v.host_path,
                    v.container_path,
                    if v.read_only { "ro" } else { "rw" }
                )
            })
            .collect();
        binds.push(format!("{}:/mnt/mesos/sandbox:rw", self.sandbox.display()));
        for (k, v) in &self.container.parameters {
            match k.as_str() {
                "label" | "l" => {
                    let (lk, lv) = v.split_once('=').unwrap_or((v, ""));
                    labels.insert(lk.to_owned(), lv.to_owned());
                }
                "env" | "e" => env.push(v.clone()),
                "volume" | "v" => binds.push(v.clone()),
                other => tracing::warn!("docker parameter {other:?} is not supported; ignored"),
            }
        }
        let (entrypoint, cmd) = match self.command {
            TaskCommand::Shell(c) => (
                Some(vec!["/bin/sh".to_owned()]),
                Some(vec!["-c".to_owned(), c.clone()]),
            ),
            TaskCommand::Argv(v) => (None, Some(v.clone())),
            TaskCommand::Image => (None, None),
        };
        let network = match self
            .container
            .network
            .as_deref()
            .map(str::to_ascii_uppercase)
        {
            Some(n) if n == "NONE" => "none",
            _ => "host",
        };
        let host_config = HostConfig {
            nano_cpus: Some((self.cpus * 1e9).round() as i64),
            cpu_shares: i64::try_from(crate::cgroups::shares(self.cpus)).ok(),
            memory: Some(((self.mem.max(6.0)) * 1_048_576.0) as i64),
            network_mode: Some(network.to_owned()),
            binds: Some(binds),
            cgroup_parent: self.cgroup_parent.filter(|_| cgroupfs).map(str::to_owned),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.container.image.clone()),
            env: Some(env),
            labels: Some(labels),
            entrypoint,
            cmd,
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(container_name("ct:1500:0:job-a:"), "ct_1500_0_job-a_");
        assert_eq!(
            container_name("grp_app.instance-1._app.1"),
            "grp_app.instance-1._app.1"
        );
        assert_eq!(container_name("_x"), "t_x");
    }
}
