//! The one typed client for the supervisor's own REST API (default port 30000), used by the
//! launcher, shell-trap and the node collector. Wire types come from [`qos_core::wire`].
//!
//! Routes: the thesis ones (`POST /initTask`, `/updateTask`, `/initMarathonApp`,
//! `/endMarathonApp`) and the versioned `/api/v1` ones (jobs, operator resizes, progress, samples,
//! nodes), plus
//! `/healthz` and `/readyz`. Errors of the versioned API, `{"error": {"code", "message",
//! "field"?}}`, become [`FrameworkError`]s whose message is the server's and whose
//! [`crate::ErrorDetail::path`] is the offending field.
//!
//! Authentication: a client-wide bearer token ([`Credentials::with_bearer_token`]) for
//! administrative calls, and a per-call report token for a job's own reports
//! ([`SupervisorClient::report_progress`]).
//!
//! Retries: reports, samples and heartbeats are idempotent on the supervisor (a repeated
//! iteration report never counts twice), so they are retried on 5xx and timeouts like GETs; a job
//! registration is retried only when the connection was never made.

use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::Value;

use qos_core::wire::{
    EndMarathonApp, Heartbeat, InitMarathonApp, InitTask, JobRegistration, JobResize, JobResized,
    MAX_JOBS_PAGE, NodeRegistration, ProgressReport, Registered, SampleBatch, UpdateTask,
};

use crate::credentials::Credentials;
use crate::error::FrameworkError;
use crate::http::{ClientConfig, Flavor, HttpCore, Request, sensitive_header};

/// Client for the supervisor's API.
#[derive(Debug, Clone)]
pub struct SupervisorClient {
    http: HttpCore,
}

impl SupervisorClient {
    crate::http::client_constructors!(Flavor::Supervisor);

    /// The supervisor's base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    async fn post<T: Serialize>(
        &self,
        segments: &[&str],
        body: &T,
        idempotent: bool,
        authorization: Option<HeaderValue>,
    ) -> Result<Vec<u8>, FrameworkError> {
        let mut req = Request::json(Method::POST, self.http.endpoint(segments), body, idempotent)?;
        req.authorization = authorization;
        Ok(self.http.execute(req).await?.body)
    }

    async fn get_value(&self, segments: &[&str], what: &str) -> Result<Value, FrameworkError> {
        self.http
            .execute(Request::get(self.http.endpoint(segments)))
            .await?
            .json(what)
    }

    /// `POST /initTask` (thesis launcher registration).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn init_task(&self, body: &InitTask) -> Result<(), FrameworkError> {
        self.post(&["initTask"], body, true, None).await.map(drop)
    }

    /// `POST /updateTask` (one finished Chronos iteration).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn update_task(&self, body: &UpdateTask) -> Result<(), FrameworkError> {
        self.post(&["updateTask"], body, true, None).await.map(drop)
    }

    /// `POST /initMarathonApp` (a Marathon task started or was restored).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn init_marathon_app(&self, body: &InitMarathonApp) -> Result<(), FrameworkError> {
        self.post(&["initMarathonApp"], body, true, None)
            .await
            .map(drop)
    }

    /// `POST /endMarathonApp` (a Marathon task's work ended).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn end_marathon_app(&self, body: &EndMarathonApp) -> Result<(), FrameworkError> {
        self.post(&["endMarathonApp"], body, true, None)
            .await
            .map(drop)
    }

    /// `POST /api/v1/jobs`: registers a job before it is submitted; returns its report token.
    ///
    /// # Errors
    /// [`FrameworkError::Invalid`] (with the offending field) or any other [`FrameworkError`].
    pub async fn register_job(&self, body: &JobRegistration) -> Result<Registered, FrameworkError> {
        let url = self.http.endpoint(["api", "v1", "jobs"]);
        let resp = self
            .http
            .execute(Request::json(Method::POST, url, body, false)?)
            .await?;
        resp.json("a registration answer ({\"uuid\", \"report_token\"})")
    }

    /// `GET /api/v1/jobs`: every job the supervisor remembers, as one JSON array (oldest first).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn jobs(&self) -> Result<Value, FrameworkError> {
        self.jobs_matching(&[]).await
    }

    /// `GET /api/v1/jobs?…` with `filter` (e.g. `[("state", "active")]`): every matching job, as
    /// one JSON array (oldest first). The supervisor answers a page at a time; this reads pages of
    /// [`MAX_JOBS_PAGE`] until a short one.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn jobs_matching(&self, filter: &[(&str, &str)]) -> Result<Value, FrameworkError> {
        let mut all = Vec::new();
        loop {
            let mut url = self.http.endpoint(["api", "v1", "jobs"]);
            url.query_pairs_mut()
                .extend_pairs(filter)
                .append_pair("limit", &MAX_JOBS_PAGE.to_string())
                .append_pair("offset", &all.len().to_string());
            let page: Value = self
                .http
                .execute(Request::get(url))
                .await?
                .json("a job list")?;
            let Value::Array(page) = page else {
                // Not a list: handed back as it came, for the caller to say what it got.
                return Ok(page);
            };
            let short = page.len() < MAX_JOBS_PAGE;
            all.extend(page);
            if short {
                return Ok(Value::Array(all));
            }
        }
    }

    /// `GET /api/v1/jobs/{uuid}`, as JSON.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, or any other [`FrameworkError`].
    pub async fn job(&self, uuid: &str) -> Result<Value, FrameworkError> {
        self.get_value(&["api", "v1", "jobs", uuid], "a job").await
    }

    /// `GET /api/v1/jobs/{uuid}/history`, as JSON.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, or any other [`FrameworkError`].
    pub async fn job_history(&self, uuid: &str) -> Result<Value, FrameworkError> {
        self.get_value(&["api", "v1", "jobs", uuid, "history"], "a job history")
            .await
    }

    /// `DELETE /api/v1/jobs/{uuid}`: stop supervising (and cancel) the job.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, or any other [`FrameworkError`].
    pub async fn cancel_job(&self, uuid: &str) -> Result<(), FrameworkError> {
        self.cancel_job_with(uuid, false).await
    }

    /// `DELETE /api/v1/jobs/{uuid}[?keep_checkpoints=true]`: cancel the job; with
    /// `keep_checkpoints`, shell-trap saves a Marathon job's work as for a restart instead of
    /// deleting its checkpoints.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, or any other [`FrameworkError`].
    pub async fn cancel_job_with(
        &self,
        uuid: &str,
        keep_checkpoints: bool,
    ) -> Result<(), FrameworkError> {
        let mut url = self.http.endpoint(["api", "v1", "jobs", uuid]);
        if keep_checkpoints {
            url.set_query(Some("keep_checkpoints=true"));
        }
        self.http
            .execute(Request::without_body(Method::DELETE, url, true))
            .await
            .map(drop)
    }

    /// `POST /api/v1/jobs/{uuid}/resize`: an operator sets the job's allocation; answers once
    /// the new size is applied (not retried: a resize by restart restarts the task).
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, [`FrameworkError::Invalid`] naming `cpus`
    /// outside the policy's bounds, or any other [`FrameworkError`] (the framework or node agent
    /// refused: the server's message says which).
    pub async fn resize_job(&self, uuid: &str, cpus: f64) -> Result<JobResized, FrameworkError> {
        let url = self.http.endpoint(["api", "v1", "jobs", uuid, "resize"]);
        let resp = self
            .http
            .execute(Request::json(
                Method::POST,
                url,
                &JobResize { cpus },
                false,
            )?)
            .await?;
        resp.json("an operator resize answer ({\"uuid\", \"from\", \"to\", …})")
    }

    /// `POST /api/v1/jobs/{uuid}/progress`, authorised by the job's own report token when given
    /// (`Authorization: Bearer <report_token>`), else by the client's credentials.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn report_progress(
        &self,
        uuid: &str,
        report: &ProgressReport,
        report_token: Option<&str>,
    ) -> Result<(), FrameworkError> {
        let auth = report_token
            .map(|t| sensitive_header(&format!("Bearer {t}"), "report token"))
            .transpose()?;
        self.post(&["api", "v1", "jobs", uuid, "progress"], report, true, auth)
            .await
            .map(drop)
    }

    /// `POST /api/v1/samples`: a batch of cumulative CPU readings from one node.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn push_samples(&self, batch: &SampleBatch) -> Result<(), FrameworkError> {
        self.post(&["api", "v1", "samples"], batch, true, None)
            .await
            .map(drop)
    }

    /// `POST /api/v1/nodes/register`.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn register_node(&self, node: &NodeRegistration) -> Result<(), FrameworkError> {
        self.post(&["api", "v1", "nodes", "register"], node, true, None)
            .await
            .map(drop)
    }

    /// `POST /api/v1/nodes/{id}/heartbeat`.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] when the node is not registered, or any other
    /// [`FrameworkError`].
    pub async fn heartbeat(&self, node_id: &str, beat: &Heartbeat) -> Result<(), FrameworkError> {
        self.post(
            &["api", "v1", "nodes", node_id, "heartbeat"],
            beat,
            true,
            None,
        )
        .await
        .map(drop)
    }

    /// `GET /api/v1/nodes`, as JSON.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn nodes(&self) -> Result<Value, FrameworkError> {
        self.get_value(&["api", "v1", "nodes"], "a node list").await
    }

    /// `GET /healthz`: the process is up.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn healthz(&self) -> Result<(), FrameworkError> {
        self.http
            .execute(Request::get(self.http.endpoint(["healthz"])))
            .await
            .map(drop)
    }

    /// `GET /readyz`: the supervisor is ready to take work.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn readyz(&self) -> Result<(), FrameworkError> {
        self.http
            .execute(Request::get(self.http.endpoint(["readyz"])))
            .await
            .map(drop)
    }
}
