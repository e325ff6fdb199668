//! An in-memory Chronos.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use frameworks::{ChronosApi, ChronosJob, FrameworkError};
use serde_json::Value;

use crate::not_found;
use crate::recorder::Recorder;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum ChronosCall {
    /// `find_job` / `get_job`.
    Find(String),
    /// `put_job`, with the `cpus` it carried.
    Put {
        /// Job name.
        name: String,
        /// Its `cpus`.
        cpus: Option<f64>,
    },
    /// `start_job` (a forced run).
    Start(String),
    /// `delete_job`.
    Delete(String),
    /// `kill_job_tasks`.
    Kill(String),
}

/// An in-memory Chronos: jobs by exact name, every call recorded, failures on demand.
#[derive(Debug, Default)]
pub struct FakeChronos {
    rec: Recorder<BTreeMap<String, ChronosJob>, ChronosCall>,
}

fn url(name: &str) -> String {
    format!("http://chronos.fake/scheduler/job/{name}")
}

/// `Ok` when the job `exists`, else Chronos' 404 for `method` on it, `"{what} '{name}' not found"`.
fn found(exists: bool, method: &str, name: &str, what: &str) -> Result<(), FrameworkError> {
    if exists {
        Ok(())
    } else {
        Err(not_found(
            method,
            &url(name),
            format!("{what} '{name}' not found"),
        ))
    }
}

impl FakeChronos {
    /// An empty Chronos.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a job with `cpus` and the schedule `R<iterations>//PT1S`.
    pub fn add_job(&self, name: &str, cpus: f64, iterations: u32) {
        let mut job = ChronosJob::new(name);
        job.insert("cpus", Value::from(cpus));
        job.insert("schedule", Value::from(format!("R{iterations}//PT1S")));
        job.insert("command", Value::from("true"));
        self.rec.state(|jobs| jobs.insert(name.to_owned(), job));
    }

    /// Every job, by name (what `GET /scheduler/jobs` lists; not recorded as a call).
    #[must_use]
    pub fn jobs(&self) -> Vec<ChronosJob> {
        self.rec.state(|jobs| jobs.values().cloned().collect())
    }

    /// The job's `cpus`, if it exists.
    #[must_use]
    pub fn cpus(&self, name: &str) -> Option<f64> {
        self.rec
            .state(|jobs| jobs.get(name).and_then(ChronosJob::cpus))
    }

    /// Whether the job exists.
    #[must_use]
    pub fn exists(&self, name: &str) -> bool {
        self.rec.state(|jobs| jobs.contains_key(name))
    }

    /// Every call so far.
    #[must_use]
    pub fn calls(&self) -> Vec<ChronosCall> {
        self.rec.calls()
    }

    /// The `cpus` of every `put_job` so far.
    #[must_use]
    pub fn puts(&self) -> Vec<f64> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                ChronosCall::Put { cpus, .. } => cpus,
                _ => None,
            })
            .collect()
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: FrameworkError) {
        self.rec.fail_next(error);
    }

    /// Every call fails as unreachable while `down`.
    pub fn set_down(&self, down: bool) {
        self.rec.set_down(down);
    }

    /// Removes a job behind its users' backs (as an operator's `DELETE …/job/{name}` would).
    pub fn remove_job(&self, name: &str) {
        self.rec.state(|jobs| jobs.remove(name));
    }
}

#[async_trait]
impl ChronosApi for FakeChronos {
    async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError> {
        let books = self
            .rec
            .enter(ChronosCall::Find(name.to_owned()), "GET", &url(name))?;
        Ok(books.state.get(name).cloned())
    }

    async fn get_job(&self, name: &str) -> Result<ChronosJob, FrameworkError> {
        self.find_job(name).await?.ok_or_else(|| {
            not_found(
                "GET",
                &url(name),
                format!("no Chronos job is named exactly {name:?}"),
            )
        })
    }

    async fn put_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        let name = job.name().unwrap_or_default().to_owned();
        let mut books = self.rec.enter(
            ChronosCall::Put {
                name: name.clone(),
                cpus: job.cpus(),
            },
            "POST",
            "http://chronos.fake/scheduler/iso8601",
        )?;
        books.state.insert(name, job.clone());
        Ok(())
    }

    async fn start_job(&self, name: &str) -> Result<(), FrameworkError> {
        let books = self
            .rec
            .enter(ChronosCall::Start(name.to_owned()), "PUT", &url(name))?;
        found(books.state.contains_key(name), "PUT", name, "Job")
    }

    async fn delete_job(&self, name: &str) -> Result<(), FrameworkError> {
        let mut books =
            self.rec
                .enter(ChronosCall::Delete(name.to_owned()), "DELETE", &url(name))?;
        found(books.state.remove(name).is_some(), "DELETE", name, "Job")
    }

    async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError> {
        let books = self
            .rec
            .enter(ChronosCall::Kill(name.to_owned()), "DELETE", &url(name))?;
        found(
            books.state.contains_key(name),
            "DELETE",
            name,
            "JobSchedule",
        )
    }
}
