//! A running container, as the run loop sees it ([`Job`]): its exit status from the Engine API's
//! `wait`, its logs streamed, signals forwarded, checkpoints (`app`: SIGTERM and wait; `criu`:
//! `docker checkpoint create`) and its removal.

use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::{CreateCheckpointOptions, LogOutput};
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerStateStatusEnum, ContainerWaitResponse};
use bollard::query_parameters::{
    KillContainerOptions, LogsOptions, RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{CRIU_CHECKPOINT_ID, CRIU_SUBDIR, DockerClient, is_not_found};
use crate::checkpoints::Incarnation;
use crate::job::{Job, StopOutcome, stop_outcome};
use crate::strategy::Strategy;

type WaitStream = Pin<Box<dyn Stream<Item = Result<ContainerWaitResponse, BollardError>> + Send>>;

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
    pub(super) fn attach(
        d: &DockerClient,
        name: &str,
        id: String,
        inc: Option<Incarnation>,
    ) -> Self {
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

    pub(super) fn stream_logs(&mut self) {
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
        let exited = self.wait_until(deadline).await;
        if exited.is_none() {
            self.kill_now().await;
        }
        stop_outcome(exited, strategy)
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
