//! [`DetectingChronos`]: a Chronos client that finds out the server's API generation on its
//! first request, for a long-running service that may start before Chronos answers.

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::client::{ChronosApiVersion, ChronosClient};
use super::model::ChronosJob;
use crate::credentials::Credentials;
use crate::error::FrameworkError;
use crate::http::ClientConfig;
use crate::traits::ChronosApi;

/// A [`ChronosApi`] that probes the server (as [`ChronosClient::detect`]) before its first request
/// and keeps the generation it found. A probe that fails (Chronos down, wrong credentials) fails
/// that request and is tried again by the next one, so a service started before Chronos is up
/// is not stuck with a guess.
#[derive(Debug)]
pub struct DetectingChronos {
    /// The server, credentials and settings, not yet set to a generation.
    unprobed: ChronosClient,
    client: OnceCell<ChronosClient>,
}

impl DetectingChronos {
    /// A client for the server of `credentials`; nothing is sent until the first request.
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] when an HTTP client cannot be built with `config` (or
    /// for an https URL in a build without the `tls` feature): checked now, not at the probe.
    pub fn new(credentials: &Credentials, config: ClientConfig) -> Result<Self, FrameworkError> {
        Ok(Self {
            unprobed: ChronosClient::with_config(credentials, ChronosApiVersion::V3, config)?,
            client: OnceCell::new(),
        })
    }

    /// The generation found, once a probe has succeeded.
    #[must_use]
    pub fn api_version(&self) -> Option<ChronosApiVersion> {
        self.client.get().map(ChronosClient::api_version)
    }

    async fn client(&self) -> Result<&ChronosClient, FrameworkError> {
        self.client
            .get_or_try_init(|| async {
                let c = self.unprobed.clone().probe().await?;
                tracing::info!(
                    chronos = %c.base_url(),
                    api = %c.api_version(),
                    "Chronos API generation detected"
                );
                Ok(c)
            })
            .await
    }
}

#[async_trait]
impl ChronosApi for DetectingChronos {
    async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError> {
        self.client().await?.find_job(name).await
    }

    async fn get_job(&self, name: &str) -> Result<ChronosJob, FrameworkError> {
        self.client().await?.get_job(name).await
    }

    async fn put_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        self.client().await?.put_job(job).await
    }

    async fn start_job(&self, name: &str) -> Result<(), FrameworkError> {
        self.client().await?.start_job(name, None).await
    }

    async fn delete_job(&self, name: &str) -> Result<(), FrameworkError> {
        self.client().await?.delete_job(name).await
    }

    async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError> {
        self.client().await?.kill_job_tasks(name).await
    }

    async fn set_job_cpus(&self, name: &str, cpus: f64) -> Result<ChronosJob, FrameworkError> {
        self.client().await?.set_job_cpus(name, cpus).await
    }
}
