//! A Chronos job, kept as the whole JSON object so a search → change `cpus` → POST round trip
//! sends back every field, known or not.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::schedule::{Schedule, ScheduleError};
use crate::error::FrameworkError;
use crate::lenient;

/// Counters Chronos maintains itself. Its deserializer reads them back when a client sends them,
/// so a job echoed from a GET keeps its counts; they are therefore **kept** in
/// [`ChronosJob::submit_body`] (dropping them would reset the counts to zero).
pub const SERVER_COUNTERS: &[&str] = &[
    "successCount",
    "errorCount",
    "lastSuccess",
    "lastError",
    "errorsSinceLastSuccess",
];

/// A Chronos job definition (as sent to `/iso8601` or `/dependency`, or as listed by
/// `/jobs`), kept whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChronosJob(Map<String, Value>);

/// Checks a job name against Chronos' `JobUtils.jobNamePattern` `([\w\.-]+)`: ASCII letters,
/// digits, `_`, `.` and `-`, nothing else (no `/`, no spaces).
///
/// # Errors
/// [`FrameworkError::InvalidInput`] naming the job and the first bad character.
pub fn validate_job_name(name: &str) -> Result<(), FrameworkError> {
    let what = || format!("Chronos job name {name:?}");
    if name.is_empty() {
        return Err(FrameworkError::invalid_input(what(), "is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(FrameworkError::invalid_input(
            what(),
            format!("contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"),
        ));
    }
    Ok(())
}

crate::lenient::json_object_accessors!(ChronosJob, "Chronos job");

impl ChronosJob {
    /// A job with only a `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        let mut map = Map::new();
        map.insert("name".to_owned(), Value::String(name.into()));
        Self(map)
    }

    /// `name`.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.text("name")
    }

    /// `command`.
    #[must_use]
    pub fn command(&self) -> Option<&str> {
        self.text("command")
    }

    /// Sets `command`.
    pub fn set_command(&mut self, command: impl Into<String>) {
        self.0
            .insert("command".to_owned(), Value::String(command.into()));
    }

    /// `owner`.
    #[must_use]
    pub fn owner(&self) -> Option<&str> {
        self.text("owner")
    }

    /// Sets `cpus` as a JSON number (Chronos accepts both forms).
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] unless `cpus` is finite and positive. (Chronos would
    /// replace 0 with its `--mesos_task_cpu` default, which is never what a resize means.)
    pub fn set_cpus(&mut self, cpus: f64) -> Result<(), FrameworkError> {
        if !cpus.is_finite() || cpus <= 0.0 {
            return Err(FrameworkError::invalid_input(
                "cpus",
                format!("{cpus} is not a finite positive number"),
            ));
        }
        let v = serde_json::Number::from_f64(cpus)
            .map(Value::Number)
            .ok_or_else(|| {
                FrameworkError::invalid_input("cpus", format!("{cpus} is not representable"))
            })?;
        self.0.insert("cpus".to_owned(), v);
        Ok(())
    }

    /// `schedule` as written.
    #[must_use]
    pub fn schedule_str(&self) -> Option<&str> {
        self.text("schedule")
    }

    /// `schedule`, parsed; `Ok(None)` when absent.
    ///
    /// # Errors
    /// [`ScheduleError`] when the schedule is present but invalid.
    pub fn schedule(&self) -> Result<Option<Schedule>, ScheduleError> {
        self.schedule_str().map(Schedule::parse).transpose()
    }

    /// `parents` (dependency jobs); empty for scheduled jobs.
    #[must_use]
    pub fn parents(&self) -> Vec<String> {
        self.0
            .get("parents")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when the job has a `parents` array (Chronos then ignores `schedule`).
    #[must_use]
    pub fn is_dependent(&self) -> bool {
        self.0.get("parents").is_some_and(Value::is_array)
    }

    /// `disabled` (boolean or `"true"`/`"false"`); absent means false.
    #[must_use]
    pub fn disabled(&self) -> bool {
        self.0
            .get("disabled")
            .and_then(lenient::as_bool)
            .unwrap_or(false)
    }

    /// `retries`.
    #[must_use]
    pub fn retries(&self) -> Option<u64> {
        self.count("retries")
    }

    /// `successCount` (server-maintained).
    #[must_use]
    pub fn success_count(&self) -> Option<u64> {
        self.count("successCount")
    }

    /// `errorCount` (server-maintained).
    #[must_use]
    pub fn error_count(&self) -> Option<u64> {
        self.count("errorCount")
    }

    /// A string field that is not empty (Chronos writes `""` for "never").
    fn non_empty_text(&self, key: &str) -> Option<&str> {
        self.text(key).filter(|s| !s.is_empty())
    }

    /// `lastSuccess` timestamp, when not empty.
    #[must_use]
    pub fn last_success(&self) -> Option<&str> {
        self.non_empty_text("lastSuccess")
    }

    /// `lastError` timestamp, when not empty.
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.non_empty_text("lastError")
    }

    /// `container.image`.
    #[must_use]
    pub fn container_image(&self) -> Option<&str> {
        self.0.get("container")?.get("image")?.as_str()
    }

    /// The value of one `environmentVariables` entry (`[{"name", "value"}]`).
    #[must_use]
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.0
            .get("environmentVariables")?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
            .get("value")?
            .as_str()
    }

    /// The body to POST: the job as is, except that `uris` is dropped when `fetch` is also a
    /// non-empty array. (Chronos' `GET /jobs` mirrors `fetch` into `uris` "for compatibility", and
    /// refuses a job with both set: "Tried to add both uri (deprecated) and fetch parameters".)
    /// Server counters are kept on purpose, see [`SERVER_COUNTERS`].
    #[must_use]
    pub fn submit_body(&self) -> Map<String, Value> {
        let mut body = self.0.clone();
        let non_empty =
            |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if non_empty(body.get("fetch")) && non_empty(body.get("uris")) {
            body.shift_remove("uris");
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        validate_job_name("openmpLinpack1").unwrap();
        validate_job_name("a_b.c-D9").unwrap();
        for bad in ["", "a b", "a/b", "é", "job;rm"] {
            assert!(validate_job_name(bad).is_err(), "{bad:?}");
        }
        let e = validate_job_name("a/b").unwrap_err().to_string();
        assert!(e.contains("'/'") && e.contains("\"a/b\""), "{e}");
    }

    #[test]
    fn thesis_job_accessors() {
        let job = ChronosJob::try_from(json!({
            "schedule": "R4//PT5M", "name": "openmpLinpack1", "cpus": "1", "mem": "500",
            "async": "false", "container": {"type": "DOCKER", "image": "serlophug/openmplinpack"}
        }))
        .unwrap();
        assert_eq!(job.name(), Some("openmpLinpack1"));
        assert_eq!(job.cpus(), Some(1.0));
        assert_eq!(job.mem(), Some(500.0));
        assert_eq!(job.schedule().unwrap().unwrap().repetitions(), Some(4));
        assert_eq!(job.container_image(), Some("serlophug/openmplinpack"));
        assert!(!job.disabled());
        assert!(!job.is_dependent());
    }

    #[test]
    fn set_cpus_replaces_string_with_number() {
        let mut job = ChronosJob::try_from(json!({"name": "j", "cpus": "1"})).unwrap();
        job.set_cpus(1.4).unwrap();
        assert_eq!(job.get("cpus"), Some(&json!(1.4)));
        assert!(job.set_cpus(0.0).is_err());
    }

    #[test]
    fn submit_body_drops_mirrored_uris_only() {
        let job = ChronosJob::try_from(json!({
            "name": "j", "uris": ["http://x/a"], "fetch": [{"uri": "http://x/a"}], "successCount": 3
        }))
        .unwrap();
        let body = job.submit_body();
        assert!(!body.contains_key("uris"));
        assert_eq!(body.get("successCount"), Some(&json!(3)));
        let job = ChronosJob::try_from(json!({"name": "j", "uris": ["http://x/a"], "fetch": []}))
            .unwrap();
        assert!(job.submit_body().contains_key("uris"));
    }

    #[test]
    fn env_vars() {
        let job = ChronosJob::try_from(json!({
            "name": "j",
            "environmentVariables": [
                {"name": "OTHER", "value": "1"},
                {"name": "QOS_UUID", "value": "2"}
            ]
        }))
        .unwrap();
        assert_eq!(job.env_var("QOS_UUID"), Some("2"));
        assert_eq!(job.env_var("MISSING"), None);
    }
}
