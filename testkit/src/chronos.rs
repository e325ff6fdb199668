//! An in-memory Chronos.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use frameworks::{ChronosApi, ChronosJob, FrameworkError};
use serde_json::Value;

use crate::{lock, not_found};

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

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<String, ChronosJob>,
    calls: Vec<ChronosCall>,
    failures: VecDeque<FrameworkError>,
    down: bool,
}

/// An in-memory Chronos: jobs by exact name, every call recorded, failures on demand.
#[derive(Debug, Default)]
pub struct FakeChronos {
    state: Mutex<State>,
}

fn url(name: &str) -> String {
    format!("http://chronos.fake/scheduler/job/{name}")
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
        lock(&self.state).jobs.insert(name.to_owned(), job);
    }

    /// The job's `cpus`, if it exists.
    #[must_use]
    pub fn cpus(&self, name: &str) -> Option<f64> {
        lock(&self.state).jobs.get(name).and_then(ChronosJob::cpus)
    }

    /// Whether the job exists.
    #[must_use]
    pub fn exists(&self, name: &str) -> bool {
        lock(&self.state).jobs.contains_key(name)
    }

    /// Every call so far.
    #[must_use]
    pub fn calls(&self) -> Vec<ChronosCall> {
        lock(&self.state).calls.clone()
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
        lock(&self.state).failures.push_back(error);
    }

    /// Every call fails as unreachable while `down`.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// Removes a job behind its users' backs (as an operator's `DELETE …/job/{name}` would).
    pub fn remove_job(&self, name: &str) {
        lock(&self.state).jobs.remove(name);
    }

    fn enter(
        &self,
        call: ChronosCall,
        method: &str,
        u: &str,
    ) -> Result<std::sync::MutexGuard<'_, State>, FrameworkError> {
        let mut st = lock(&self.state);
        st.calls.push(call);
        if st.down {
            return Err(crate::unreachable(method, u));
        }
        if let Some(e) = st.failures.pop_front() {
            return Err(e);
        }
        Ok(st)
    }
}

#[async_trait]
impl ChronosApi for FakeChronos {
    async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError> {
        let st = self.enter(ChronosCall::Find(name.to_owned()), "GET", &url(name))?;
        Ok(st.jobs.get(name).cloned())
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
        let mut st = self.enter(
            ChronosCall::Put {
                name: name.clone(),
                cpus: job.cpus(),
            },
            "POST",
            "http://chronos.fake/scheduler/iso8601",
        )?;
        st.jobs.insert(name, job.clone());
        Ok(())
    }

    async fn start_job(&self, name: &str) -> Result<(), FrameworkError> {
        let st = self.enter(ChronosCall::Start(name.to_owned()), "PUT", &url(name))?;
        if st.jobs.contains_key(name) {
            Ok(())
        } else {
            Err(not_found(
                "PUT",
                &url(name),
                format!("Job '{name}' not found"),
            ))
        }
    }

    async fn delete_job(&self, name: &str) -> Result<(), FrameworkError> {
        let mut st = self.enter(ChronosCall::Delete(name.to_owned()), "DELETE", &url(name))?;
        if st.jobs.remove(name).is_some() {
            Ok(())
        } else {
            Err(not_found(
                "DELETE",
                &url(name),
                format!("Job '{name}' not found"),
            ))
        }
    }

    async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError> {
        let st = self.enter(ChronosCall::Kill(name.to_owned()), "DELETE", &url(name))?;
        if st.jobs.contains_key(name) {
            Ok(())
        } else {
            Err(not_found(
                "DELETE",
                &url(name),
                format!("JobSchedule '{name}' not found"),
            ))
        }
    }
}
