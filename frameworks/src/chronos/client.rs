//! The Chronos REST client, for both API generations.

use std::fmt;
use std::str::FromStr;

use reqwest::{Method, Url};

use super::model::{ChronosJob, validate_job_name};
use crate::credentials::Credentials;
use crate::error::FrameworkError;
use crate::http::{ClientConfig, Flavor, HttpCore, Request};

/// Which URL layout the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChronosApiVersion {
    /// Chronos 2.x: `/scheduler/*` (the thesis used this).
    V2,
    /// Chronos 3.x: `/v1/scheduler/*`.
    V3,
}

impl ChronosApiVersion {
    /// The path segments before the endpoint (`["scheduler"]` or `["v1", "scheduler"]`).
    #[must_use]
    pub fn prefix(self) -> &'static [&'static str] {
        match self {
            Self::V2 => &["scheduler"],
            Self::V3 => &["v1", "scheduler"],
        }
    }
}

impl fmt::Display for ChronosApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
        })
    }
}

impl FromStr for ChronosApiVersion {
    type Err = FrameworkError;
    /// Accepts `v2`, `2`, `2.x` and `v3`, `3`, `3.x` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" | "2" | "2.x" => Ok(Self::V2),
            "v3" | "3" | "3.x" => Ok(Self::V3),
            other => Err(FrameworkError::invalid_input(
                "Chronos API version",
                format!(
                    "{other:?} is neither v2 (Chronos 2.x, /scheduler) nor v3 (Chronos 3.x, /v1/scheduler)"
                ),
            )),
        }
    }
}

/// How many search results are asked for per page by [`ChronosClient::find_job`] (Chronos'
/// default limit is 10, too few once names share a prefix).
const SEARCH_PAGE: usize = 1000;

/// Client for Chronos 2.x/3.x.
#[derive(Debug, Clone)]
pub struct ChronosClient {
    http: HttpCore,
    version: ChronosApiVersion,
}

impl ChronosClient {
    /// A client for a known API generation, with the default [`ClientConfig`].
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] when the HTTP client cannot be built, or for an https URL
    /// in a build without the `tls` feature.
    pub fn new(
        credentials: &Credentials,
        version: ChronosApiVersion,
    ) -> Result<Self, FrameworkError> {
        Self::with_config(credentials, version, ClientConfig::default())
    }

    /// A client for a known API generation, with explicit settings.
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] when the HTTP client cannot be built, or for an https URL
    /// in a build without the `tls` feature.
    pub fn with_config(
        credentials: &Credentials,
        version: ChronosApiVersion,
        config: ClientConfig,
    ) -> Result<Self, FrameworkError> {
        Ok(Self {
            http: HttpCore::new(credentials, config, Flavor::Chronos)?,
            version,
        })
    }

    /// Finds out which generation the server speaks: `GET /v1/scheduler/jobs` answering a JSON
    /// array means 3.x, otherwise `GET /scheduler/jobs` answering one means 2.x.
    ///
    /// # Errors
    /// The error of the 2.x probe when neither answers with a job list (e.g.
    /// [`FrameworkError::Unreachable`] or [`FrameworkError::Unauthorized`]).
    pub async fn detect(
        credentials: &Credentials,
        config: ClientConfig,
    ) -> Result<Self, FrameworkError> {
        Self::with_config(credentials, ChronosApiVersion::V3, config)?
            .probe()
            .await
    }

    /// [`ChronosClient::detect`] with this client's server, credentials and settings: asks 3.x,
    /// then 2.x, and returns the client set to the generation that answered.
    pub(crate) async fn probe(mut self) -> Result<Self, FrameworkError> {
        self.version = ChronosApiVersion::V3;
        match self.list_jobs().await {
            Ok(_) => return Ok(self),
            // Without the right credentials neither probe can succeed; say so at once.
            Err(e @ (FrameworkError::Unauthorized { .. } | FrameworkError::Unreachable { .. })) => {
                return Err(e);
            }
            Err(_) => {}
        }
        self.version = ChronosApiVersion::V2;
        self.list_jobs().await?;
        Ok(self)
    }

    /// The API generation in use.
    #[must_use]
    pub fn api_version(&self) -> ChronosApiVersion {
        self.version
    }

    /// The base URL requests go to.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        self.http.base()
    }

    fn url(&self, tail: &[&str]) -> Url {
        self.http.endpoint(self.version.prefix().iter().chain(tail))
    }

    /// `GET …/jobs`: every job.
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn list_jobs(&self) -> Result<Vec<ChronosJob>, FrameworkError> {
        let resp = self.http.execute(Request::get(self.url(&["jobs"]))).await?;
        resp.json("a JSON array of Chronos jobs")
    }

    /// `GET …/jobs/search?name=<name>&limit=<limit>&offset=<offset>`: Chronos' raw search, a
    /// **case-insensitive substring** match (`job1` also finds `JOB10`).
    ///
    /// # Errors
    /// Any [`FrameworkError`].
    pub async fn search_jobs(
        &self,
        name: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ChronosJob>, FrameworkError> {
        let mut url = self.url(&["jobs", "search"]);
        url.query_pairs_mut()
            .append_pair("name", name)
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string());
        let resp = self.http.execute(Request::get(url)).await?;
        // Some versions answer 204 with no body when nothing matches.
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        resp.json("a JSON array of Chronos jobs")
    }

    /// The job named exactly `name` (case-sensitive, as Chronos stores names), or `None`. Pages
    /// through the substring search so that similar names cannot hide it.
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] for a name Chronos could not hold, or any other
    /// [`FrameworkError`].
    pub async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError> {
        validate_job_name(name)?;
        let mut offset = 0;
        loop {
            let page = self.search_jobs(name, SEARCH_PAGE, offset).await?;
            let len = page.len();
            if let Some(job) = page.into_iter().find(|j| j.name() == Some(name)) {
                return Ok(Some(job));
            }
            if len < SEARCH_PAGE {
                return Ok(None);
            }
            offset += len;
        }
    }

    /// Like [`ChronosClient::find_job`], but a missing job is [`FrameworkError::NotFound`].
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] when no job has exactly this name, or any other
    /// [`FrameworkError`].
    pub async fn get_job(&self, name: &str) -> Result<ChronosJob, FrameworkError> {
        self.find_job(name).await?.ok_or_else(|| {
            let mut url = self.url(&["jobs", "search"]);
            url.query_pairs_mut().append_pair("name", name);
            FrameworkError::NotFound {
                method: "GET".to_owned(),
                url: url.to_string(),
                message: format!("no Chronos job is named exactly {name:?}"),
            }
        })
    }

    /// Adds or replaces (Chronos upserts by name) a job: `POST …/dependency` when it has
    /// `parents`, else `POST …/iso8601`. Sends [`ChronosJob::submit_body`]. Expects 204.
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] when the job has no valid `name`; [`FrameworkError::Invalid`]
    /// when Chronos refuses it (e.g. unparsable schedule); or any other [`FrameworkError`].
    pub async fn put_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        if job.is_dependent() {
            self.add_dependent_job(job).await
        } else {
            self.add_scheduled_job(job).await
        }
    }

    /// `POST …/iso8601`: add or replace a scheduled job.
    ///
    /// # Errors
    /// As [`ChronosClient::put_job`].
    pub async fn add_scheduled_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        self.post_job("iso8601", job).await
    }

    /// `POST …/dependency`: add or replace a job that runs after its `parents`.
    ///
    /// # Errors
    /// As [`ChronosClient::put_job`].
    pub async fn add_dependent_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        self.post_job("dependency", job).await
    }

    async fn post_job(&self, kind: &str, job: &ChronosJob) -> Result<(), FrameworkError> {
        let name = job.name().ok_or_else(|| {
            FrameworkError::invalid_input("Chronos job", "has no string \"name\" field")
        })?;
        validate_job_name(name)?;
        if let Err(e) = job.schedule() {
            return Err(FrameworkError::invalid_input(
                format!("schedule of Chronos job {name:?}"),
                e.to_string(),
            ));
        }
        // An upsert of the same body is idempotent, so it may be retried.
        let req = Request::json(Method::POST, self.url(&[kind]), &job.submit_body(), true)?;
        self.http.execute(req).await.map(drop)
    }

    /// `PUT …/job/{name}[?arguments=…]`: run the job once now. Not retried once sent, since each
    /// call starts a run.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, or any other [`FrameworkError`].
    pub async fn start_job(
        &self,
        name: &str,
        arguments: Option<&str>,
    ) -> Result<(), FrameworkError> {
        validate_job_name(name)?;
        let mut url = self.url(&["job", name]);
        if let Some(args) = arguments.filter(|a| !a.trim().is_empty()) {
            url.query_pairs_mut().append_pair("arguments", args);
        }
        self.http
            .execute(Request::without_body(Method::PUT, url, false))
            .await
            .map(drop)
    }

    /// `DELETE …/job/{name}`: remove the job (its dependants are re-parented by Chronos).
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job (also when a retried delete already
    /// succeeded), or any other [`FrameworkError`].
    pub async fn delete_job(&self, name: &str) -> Result<(), FrameworkError> {
        self.delete(&["job"], name).await
    }

    /// `DELETE …/task/kill/{name}`: kill the job's running tasks.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] for an unknown job, or any other [`FrameworkError`].
    pub async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError> {
        self.delete(&["task", "kill"], name).await
    }

    /// `DELETE …/<segments>/{name}` for a job name checked against Chronos' rule.
    async fn delete(&self, segments: &[&str], name: &str) -> Result<(), FrameworkError> {
        validate_job_name(name)?;
        let mut path = segments.to_vec();
        path.push(name);
        self.http
            .execute(Request::without_body(Method::DELETE, self.url(&path), true))
            .await
            .map(drop)
    }

    /// Reads a job, sets its `cpus` and posts it back whole (the thesis resize, minus its bugs:
    /// exact-name lookup, every field kept). Returns the job as sent.
    ///
    /// # Errors
    /// [`FrameworkError::NotFound`] when no job has this name, [`FrameworkError::InvalidInput`]
    /// for a bad `cpus`, or any other [`FrameworkError`].
    pub async fn set_job_cpus(&self, name: &str, cpus: f64) -> Result<ChronosJob, FrameworkError> {
        let mut job = self.get_job(name).await?;
        job.set_cpus(cpus)?;
        self.put_job(&job).await?;
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            "V3".parse::<ChronosApiVersion>().unwrap(),
            ChronosApiVersion::V3
        );
        assert_eq!(
            "2.x".parse::<ChronosApiVersion>().unwrap(),
            ChronosApiVersion::V2
        );
        assert!("4".parse::<ChronosApiVersion>().is_err());
        assert_eq!(ChronosApiVersion::V3.to_string(), "v3");
    }

    #[test]
    fn urls_per_version() {
        let creds = Credentials::new("http://c:4400/").unwrap();
        let v2 = ChronosClient::new(&creds, ChronosApiVersion::V2).unwrap();
        let v3 = ChronosClient::new(&creds, ChronosApiVersion::V3).unwrap();
        assert_eq!(
            v2.url(&["iso8601"]).as_str(),
            "http://c:4400/scheduler/iso8601"
        );
        assert_eq!(
            v3.url(&["job", "a.b"]).as_str(),
            "http://c:4400/v1/scheduler/job/a.b"
        );
        assert_eq!(
            v3.url(&["task", "kill", "j"]).as_str(),
            "http://c:4400/v1/scheduler/task/kill/j"
        );
    }
}
