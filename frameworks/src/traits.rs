//! The boundary the supervisor and the launcher program against, so they can run with fakes.
//!
//! The traits are object-safe (`Arc<dyn MarathonApi>` etc.) and cover only what a controller
//! needs: read a job or app, change its CPUs, start, delete, and see its tasks and metrics. The
//! real clients implement them by delegating to their inherent methods.

use async_trait::async_trait;

use crate::chronos::{ChronosClient, ChronosJob};
use crate::error::FrameworkError;
use crate::marathon::{
    AppChange, CreatedApp, Deployment, DeploymentResult, MarathonApp, MarathonClient, MarathonTask,
};
use crate::mesos::{ExecutorStatistics, MesosAgentClient};

/// What the supervisor and launcher do with Marathon.
#[async_trait]
pub trait MarathonApi: Send + Sync {
    /// The app, with Marathon's embeds. [`FrameworkError::NotFound`] when it does not exist.
    async fn get_app(&self, id: &str) -> Result<MarathonApp, FrameworkError>;

    /// Submits a new app.
    async fn create_app(&self, app: &MarathonApp) -> Result<CreatedApp, FrameworkError>;

    /// Sets one field of the app (`PUT` with only that field, [`AppChange::field`]).
    /// [`FrameworkError::Locked`] while another deployment holds it, unless the change forces.
    async fn change_app(
        &self,
        id: &str,
        change: AppChange,
    ) -> Result<DeploymentResult, FrameworkError>;

    /// The preferred resize: `PUT /v2/apps/{id}` with `{"cpus": cpus}`. Marathon restarts the
    /// app's tasks with the new size (a `RestartApplication` deployment). A `cpus` Marathon would
    /// reject (non-finite, < 0.001) is refused with [`FrameworkError::InvalidInput`] before
    /// anything is sent.
    async fn set_app_cpus(
        &self,
        id: &str,
        cpus: f64,
        force: bool,
    ) -> Result<DeploymentResult, FrameworkError> {
        self.change_app(id, AppChange::Cpus { cpus, force }).await
    }

    /// Removes the app and stops its tasks.
    async fn delete_app(&self, id: &str, force: bool) -> Result<DeploymentResult, FrameworkError>;

    /// The app's tasks.
    async fn app_tasks(&self, id: &str) -> Result<Vec<MarathonTask>, FrameworkError>;

    /// Running deployments.
    async fn deployments(&self) -> Result<Vec<Deployment>, FrameworkError>;

    /// Sets the app's instance count (`PUT {"instances": n}`), e.g. 0 to stop it but keep its
    /// definition.
    async fn scale_app(
        &self,
        id: &str,
        instances: u32,
        force: bool,
    ) -> Result<DeploymentResult, FrameworkError> {
        self.change_app(id, AppChange::Instances { instances, force })
            .await
    }
}

/// What the supervisor and launcher do with Chronos.
#[async_trait]
pub trait ChronosApi: Send + Sync {
    /// The job named exactly `name`, if any.
    async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError>;

    /// The job named exactly `name`; [`FrameworkError::NotFound`] when absent.
    async fn get_job(&self, name: &str) -> Result<ChronosJob, FrameworkError>;

    /// Adds or replaces a job (upsert by name).
    async fn put_job(&self, job: &ChronosJob) -> Result<(), FrameworkError>;

    /// Runs the job once now.
    async fn start_job(&self, name: &str) -> Result<(), FrameworkError>;

    /// Removes the job.
    async fn delete_job(&self, name: &str) -> Result<(), FrameworkError>;

    /// Kills the job's running tasks.
    async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError>;

    /// Reads the job, sets `cpus`, and posts it back whole; returns the job as sent.
    async fn set_job_cpus(&self, name: &str, cpus: f64) -> Result<ChronosJob, FrameworkError> {
        let mut job = self.get_job(name).await?;
        job.set_cpus(cpus)?;
        self.put_job(&job).await?;
        Ok(job)
    }
}

/// What the supervisor reads from a Mesos agent.
#[async_trait]
pub trait MesosAgentApi: Send + Sync {
    /// Per-executor resource statistics.
    async fn statistics(&self) -> Result<Vec<ExecutorStatistics>, FrameworkError>;
}

#[async_trait]
impl MarathonApi for MarathonClient {
    async fn get_app(&self, id: &str) -> Result<MarathonApp, FrameworkError> {
        Self::get_app(self, id).await
    }

    async fn create_app(&self, app: &MarathonApp) -> Result<CreatedApp, FrameworkError> {
        Self::create_app(self, app).await
    }

    async fn change_app(
        &self,
        id: &str,
        change: AppChange,
    ) -> Result<DeploymentResult, FrameworkError> {
        Self::change_app(self, id, change).await
    }

    async fn delete_app(&self, id: &str, force: bool) -> Result<DeploymentResult, FrameworkError> {
        Self::delete_app(self, id, force).await
    }

    async fn app_tasks(&self, id: &str) -> Result<Vec<MarathonTask>, FrameworkError> {
        Self::app_tasks(self, id).await
    }

    async fn deployments(&self) -> Result<Vec<Deployment>, FrameworkError> {
        Self::deployments(self).await
    }
}

#[async_trait]
impl ChronosApi for ChronosClient {
    async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError> {
        Self::find_job(self, name).await
    }

    async fn get_job(&self, name: &str) -> Result<ChronosJob, FrameworkError> {
        Self::get_job(self, name).await
    }

    async fn put_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        Self::put_job(self, job).await
    }

    async fn start_job(&self, name: &str) -> Result<(), FrameworkError> {
        Self::start_job(self, name, None).await
    }

    async fn delete_job(&self, name: &str) -> Result<(), FrameworkError> {
        Self::delete_job(self, name).await
    }

    async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError> {
        Self::kill_job_tasks(self, name).await
    }

    async fn set_job_cpus(&self, name: &str, cpus: f64) -> Result<ChronosJob, FrameworkError> {
        Self::set_job_cpus(self, name, cpus).await
    }
}

#[async_trait]
impl MesosAgentApi for MesosAgentClient {
    async fn statistics(&self) -> Result<Vec<ExecutorStatistics>, FrameworkError> {
        Self::statistics(self).await
    }
}
