//! The Mesos agent source, pure part: reading `/monitor/statistics` entry by entry, indexing the
//! agent's `/state`, and mapping each executor to the job UUID it runs. No I/O here; the fetching
//! is in [`crate::mesos_source`].
//!
//! # Mapping an executor to a job (first match wins)
//! 1. **Labels in the agent's `/state`**: a task of the executor (then the executor itself) with
//!    label `qos.uuid` (also `QOS_UUID`, `qos_uuid`) holding a job UUID. Marathon copies an app's
//!    labels into its tasks, and the launcher labels every Marathon app `qos.uuid`, so on a real
//!    agent Marathon jobs map this way. Labels are read in Mesos' form
//!    `[{"key", "value"}]` and as a plain object.
//! 2. **The supervisor's job registry** (`GET /api/v1/jobs`, when a supervisor is configured),
//!    joined on the framework's name for the task: a Chronos task id is
//!    `ct:<due ms>:<attempt>:<job name>:<arguments>`, a Marathon task id is the app id with `/`
//!    written `_`, then `.instance-<uuid>._app.<n>` (1.5+), `.marathon-<uuid>` or `.<uuid>`
//!    (older). Chronos passes the job's `QOS_UUID` only in the task environment, which the agent
//!    does not publish, so Chronos jobs map this way; so do Marathon jobs on agents whose `/state`
//!    has no labels. A name held by several registered jobs goes to the one still active, then to
//!    the latest registered.
//!
//! For command tasks (how Marathon and Chronos launch) `executor_id == source == task id`; a
//! custom executor's tasks are found through `/state`.

use std::collections::HashMap;

use frameworks::ExecutorStatistics;
use serde_json::Value;

use crate::cgroup_job::is_job_uuid;
use crate::counters::Counters;

/// Label keys that carry a job UUID.
pub(crate) const UUID_LABELS: [&str; 3] = ["qos.uuid", "QOS_UUID", "qos_uuid"];

/// Mesos' CFS period (`CPU_CFS_PERIOD`, 100 ms): the agent reports `cpus_limit` only, and its
/// quota is `cpus_limit × 100 ms` per period.
pub(crate) const MESOS_CFS_PERIOD_US: u64 = 100_000;

/// A statistics answer, or one entry of it, that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {message}", .entry.as_ref().map(|e| format!("{e}: ")).unwrap_or_default())]
pub(crate) struct EntryError {
    /// `entry [2] (executor "x")`, or `None` for the answer as a whole.
    pub entry: Option<String>,
    /// JSON path of the field inside the entry (`statistics.cpus_user_time_secs`), or `(answer)`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// One executor's usable reading.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    /// Executor id (the task id for command tasks).
    pub executor_id: String,
    /// Framework id.
    pub framework_id: String,
    /// When the agent took it, epoch seconds.
    pub timestamp: f64,
    /// Cumulative counters, ns (`total = user + system`).
    pub counters: Counters,
    /// `cpus_limit`.
    pub cpus_limit: Option<f64>,
    /// Whether the agent reported CFS throttling (only with a CFS quota).
    pub throttling: bool,
}

impl Reading {
    /// Key of the executor: executor ids are unique per framework only.
    #[must_use]
    pub(crate) fn key(&self) -> String {
        format!("{}/{}", self.framework_id, self.executor_id)
    }
}

fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=60).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn ns(secs: f64) -> u64 {
    (secs * 1e9).round() as u64
}

/// Read a `/monitor/statistics` answer entry by entry: the usable readings, and one error per
/// entry that is not (naming the entry and field). An answer that is not an array is one error.
#[must_use]
pub(crate) fn parse_statistics(body: &Value) -> (Vec<Reading>, Vec<EntryError>) {
    let Some(entries) = body.as_array() else {
        let got = match body {
            Value::Object(_) => "an object",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "null",
            Value::Array(_) => "an array",
        };
        return (
            Vec::new(),
            vec![EntryError {
                entry: None,
                field: "(answer)".into(),
                message: format!("expected a JSON array of executor statistics, got {got}"),
            }],
        );
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut errors = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match parse_entry(e) {
            Ok(r) => out.push(r),
            Err((field, message)) => {
                let exec = e
                    .get("executor_id")
                    .and_then(Value::as_str)
                    .map(|x| format!(" (executor {x:?})"))
                    .unwrap_or_default();
                errors.push(EntryError {
                    entry: Some(format!("entry [{i}]{exec}")),
                    field,
                    message,
                });
            }
        }
    }
    (out, errors)
}

fn parse_entry(e: &Value) -> Result<Reading, (String, String)> {
    let stats: ExecutorStatistics = serde_path_to_error::deserialize(e).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // "missing field `x`" is reported at the enclosing object: name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split_once('`'))
            .map(|(f, _)| f.to_owned());
        let field = match (path.as_str(), missing) {
            (".", Some(f)) => f,
            (".", None) => "(entry)".to_owned(),
            (p, Some(f)) => format!("{p}.{f}"),
            (p, None) => p.to_owned(),
        };
        (field, message)
    })?;
    if stats.executor_id.is_empty() {
        return Err(("executor_id".into(), "must not be empty".into()));
    }
    let s = &stats.statistics;
    if !s.timestamp.is_finite() || s.timestamp <= 0.0 {
        return Err((
            "statistics.timestamp".into(),
            format!("must be epoch seconds > 0, got {}", s.timestamp),
        ));
    }
    let raw = |k: &str| e.get("statistics").and_then(|s| s.get(k));
    let secs = |k: &str, v: Option<f64>| -> Result<f64, (String, String)> {
        let field = format!("statistics.{k}");
        match v {
            Some(x) if x >= 0.0 => Ok(x),
            Some(x) => Err((field, format!("must be a number of seconds ≥ 0, got {x}"))),
            None => Err((
                field,
                match raw(k) {
                    None | Some(Value::Null) => "missing: the agent reports no CPU time for this \
                                                 executor (is its cgroups/cpu isolator enabled?)"
                        .to_owned(),
                    Some(v) => format!("must be a number of seconds, got {}", short(v)),
                },
            )),
        }
    };
    let user = secs("cpus_user_time_secs", s.cpus_user_time_secs)?;
    let system = secs("cpus_system_time_secs", s.cpus_system_time_secs)?;
    let limit = match (s.cpus_limit, raw("cpus_limit")) {
        (Some(c), _) if c > 0.0 => Some(c),
        (None, None | Some(Value::Null)) => None,
        (Some(c), _) => {
            return Err((
                "statistics.cpus_limit".into(),
                format!("must be a number of CPUs > 0, got {c}"),
            ));
        }
        (None, Some(v)) => {
            return Err((
                "statistics.cpus_limit".into(),
                format!("must be a number of CPUs, got {}", short(v)),
            ));
        }
    };
    let throttled = match s.cpus_throttled_time_secs {
        Some(t) if t >= 0.0 => Some(t),
        Some(t) => {
            return Err((
                "statistics.cpus_throttled_time_secs".into(),
                format!("must be a number of seconds ≥ 0, got {t}"),
            ));
        }
        None => None,
    };
    let throttling =
        throttled.is_some() || s.cpus_nr_periods.is_some() || s.cpus_nr_throttled.is_some();
    let (u, sy) = (ns(user), ns(system));
    Ok(Reading {
        executor_id: stats.executor_id.clone(),
        framework_id: stats.framework_id.clone(),
        timestamp: s.timestamp,
        counters: Counters {
            total_ns: u.saturating_add(sy),
            user_ns: u,
            system_ns: sy,
            throttled_ns: throttled.map_or(0, ns),
            nr_periods: s.cpus_nr_periods.unwrap_or(0),
            nr_throttled: s.cpus_nr_throttled.unwrap_or(0),
        },
        cpus_limit: limit,
        throttling,
    })
}

/// A job UUID among `labels`, in Mesos' `[{"key", "value"}]` form or as an object.
#[must_use]
pub(crate) fn uuid_in_labels(labels: &Value) -> Option<String> {
    let pick = |k: &str, v: &Value| {
        let v = v.as_str()?;
        (UUID_LABELS.contains(&k) && is_job_uuid(v)).then(|| v.to_owned())
    };
    match labels {
        Value::Array(items) => items.iter().find_map(|l| {
            let k = l.get("key")?.as_str()?;
            pick(k, l.get("value")?)
        }),
        Value::Object(m) => m.iter().find_map(|(k, v)| pick(k, v)),
        _ => None,
    }
}

/// What the agent's `/state` says about one executor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExecutorInfo {
    /// Its tasks' ids (launched and queued).
    pub task_ids: Vec<String>,
    /// Its first task's name.
    pub task_name: Option<String>,
    /// Job UUID from a task's or the executor's labels.
    pub uuid: Option<String>,
    /// The container (Mesos container id, or whatever the agent puts in `container`).
    pub container: Option<String>,
}

/// The agent's `/state`, indexed by executor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AgentIndex {
    /// The agent's id.
    pub agent_id: Option<String>,
    /// `(framework id, executor id)` → what the agent says.
    pub executors: HashMap<(String, String), ExecutorInfo>,
}

impl AgentIndex {
    /// Index a `/state` answer (fields it lacks are simply not used).
    #[must_use]
    pub(crate) fn from_state(state: &Value) -> Self {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut idx = Self {
            agent_id: text(state, "id"),
            executors: HashMap::new(),
        };
        let list = |v: &Value, k: &str| -> Vec<Value> {
            v.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for fw in list(state, "frameworks") {
            let fid = text(&fw, "id").unwrap_or_default();
            for ex in list(&fw, "executors") {
                let Some(eid) = text(&ex, "id") else { continue };
                let mut info = ExecutorInfo {
                    container: text(&ex, "container").filter(|c| !c.is_empty()),
                    ..ExecutorInfo::default()
                };
                for t in list(&ex, "tasks").iter().chain(&list(&ex, "queued_tasks")) {
                    if let Some(id) = text(t, "id") {
                        info.task_ids.push(id);
                    }
                    if info.task_name.is_none() {
                        info.task_name = text(t, "name").filter(|n| !n.is_empty());
                    }
                    if info.uuid.is_none() {
                        info.uuid = t.get("labels").and_then(uuid_in_labels);
                    }
                }
                if info.uuid.is_none() {
                    info.uuid = ex.get("labels").and_then(uuid_in_labels);
                }
                idx.executors.insert((fid.clone(), eid), info);
            }
        }
        idx
    }

    /// What the agent says about `executor` of `framework`.
    #[must_use]
    pub(crate) fn get(&self, framework: &str, executor: &str) -> Option<&ExecutorInfo> {
        self.executors
            .get(&(framework.to_owned(), executor.to_owned()))
    }
}

/// The framework job a task belongs to, read from its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FrameworkJob {
    /// A Chronos job name.
    Chronos(String),
    /// A Marathon app id in task-id form (no leading `/`, `/` written `_`).
    Marathon(String),
}

fn dashed_uuid(s: &str) -> bool {
    s.len() == 36 && is_job_uuid(s)
}

/// Which framework job `task_id` is a task of, when its form says so.
#[must_use]
pub(crate) fn job_of_task(task_id: &str) -> Option<FrameworkJob> {
    if let Some(rest) = task_id.strip_prefix("ct:") {
        let mut parts = rest.splitn(4, ':');
        let due = parts.next()?;
        let attempt = parts.next()?;
        let name = parts.next()?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        return (digits(due) && digits(attempt) && !name.is_empty())
            .then(|| FrameworkJob::Chronos(name.to_owned()));
    }
    for marker in [".instance-", ".marathon-"] {
        if let Some(pos) = task_id.find(marker) {
            return (pos > 0).then(|| FrameworkJob::Marathon(task_id[..pos].to_owned()));
        }
    }
    let (prefix, suffix) = task_id.rsplit_once('.')?;
    (!prefix.is_empty() && dashed_uuid(suffix)).then(|| FrameworkJob::Marathon(prefix.to_owned()))
}

/// A Marathon app id in the form its task ids use.
#[must_use]
pub(crate) fn marathon_task_prefix(app_id: &str) -> String {
    app_id.trim_start_matches('/').replace('/', "_")
}

/// The supervisor's registered jobs, by framework name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct JobDirectory {
    by_job: HashMap<FrameworkJob, String>,
}

/// Job states that will not run again.
const FINISHED_STATES: [&str; 4] = ["completed", "failed", "cancelled", "finished"];

impl JobDirectory {
    /// From a `GET /api/v1/jobs` answer: `[{"uuid", "name", "framework", "state",
    /// "registered_at"}, …]`; entries without a valid uuid, name or framework are skipped.
    #[must_use]
    pub(crate) fn from_jobs(jobs: &Value) -> Self {
        // Rank: active before finished, then the latest registration.
        let mut best: HashMap<FrameworkJob, (bool, f64, String)> = HashMap::new();
        for j in jobs.as_array().into_iter().flatten() {
            let s = |k: &str| j.get(k).and_then(Value::as_str);
            let (Some(uuid), Some(name), Some(fw)) = (s("uuid"), s("name"), s("framework")) else {
                continue;
            };
            if !is_job_uuid(uuid) || name.is_empty() {
                continue;
            }
            let key = match fw {
                "chronos" => FrameworkJob::Chronos(name.to_owned()),
                "marathon" => FrameworkJob::Marathon(marathon_task_prefix(name)),
                _ => continue,
            };
            let active = !s("state").is_some_and(|st| FINISHED_STATES.contains(&st));
            let at = j
                .get("registered_at")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let better = best
                .get(&key)
                .is_none_or(|(a, t, _)| (active, at) > (*a, *t));
            if better {
                best.insert(key, (active, at, uuid.to_owned()));
            }
        }
        Self {
            by_job: best.into_iter().map(|(k, (_, _, u))| (k, u)).collect(),
        }
    }

    /// The UUID of the job `task_id` is a task of.
    #[must_use]
    pub(crate) fn uuid_for_task(&self, task_id: &str) -> Option<&str> {
        self.by_job.get(&job_of_task(task_id)?).map(String::as_str)
    }

    /// Jobs known.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.by_job.len()
    }

    /// Whether no job is known.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_job.is_empty()
    }
}

/// How an executor was mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MappedBy {
    /// A `qos.uuid` label in the agent's `/state`.
    AgentLabels,
    /// The supervisor's job registry, by Chronos job name or Marathon app id.
    Registry,
}

/// The result of mapping one executor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ExecutorMapping {
    /// Job UUID and how it was found.
    pub uuid: Option<(String, MappedBy)>,
    /// Display name: the task's name, else the task id.
    pub name: Option<String>,
    /// Container, from `/state`.
    pub container: Option<String>,
}

/// Map one executor, from what `/state` and the registry say (either may be absent).
#[must_use]
pub(crate) fn map_executor(
    framework_id: &str,
    executor_id: &str,
    index: Option<&AgentIndex>,
    jobs: Option<&JobDirectory>,
) -> ExecutorMapping {
    let info = index.and_then(|i| i.get(framework_id, executor_id));
    let mut m = ExecutorMapping {
        uuid: info
            .and_then(|i| i.uuid.clone())
            .map(|u| (u, MappedBy::AgentLabels)),
        name: info.and_then(|i| i.task_name.clone()),
        container: info.and_then(|i| i.container.clone()),
    };
    if m.uuid.is_none() {
        if let Some(jobs) = jobs {
            let tasks = info.map(|i| i.task_ids.as_slice()).unwrap_or_default();
            m.uuid = std::iter::once(executor_id)
                .chain(tasks.iter().map(String::as_str))
                .find_map(|t| jobs.uuid_for_task(t))
                .map(|u| (u.to_owned(), MappedBy::Registry));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const U1: &str = "0123456789abcdef0123456789abcdef";
    const U2: &str = "aaaaaaaa-1111-2222-3333-444455556666";

    #[test]
    fn reads_the_reference_sample() {
        let body = json!([{
            "executor_id": "qos_job-a.instance-1._app.1", "framework_id": "f-0001",
            "source": "qos_job-a.instance-1._app.1",
            "statistics": {"timestamp": 1388534400.0, "cpus_user_time_secs": 96348.84,
                "cpus_system_time_secs": "34501.45", "cpus_limit": 0.6, "cpus_nr_periods": 769021,
                "cpus_nr_throttled": 1046, "cpus_throttled_time_secs": 352.59, "perf": {}}
        }, {
            "executor_id": "ct:1:0:job:", "framework_id": "f-0002",
            "statistics": {"timestamp": 5, "cpus_user_time_secs": 1, "cpus_system_time_secs": 0.5}
        }]);
        let (r, e) = parse_statistics(&body);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r[0].counters.user_ns, 96_348_840_000_000);
        assert_eq!(r[0].counters.system_ns, 34_501_450_000_000);
        assert_eq!(r[0].counters.total_ns, 130_850_290_000_000);
        assert_eq!(r[0].counters.throttled_ns, 352_590_000_000);
        assert_eq!(r[0].counters.nr_throttled, 1046);
        assert_eq!(r[0].cpus_limit, Some(0.6));
        assert!(r[0].throttling);
        assert_eq!(r[0].key(), "f-0001/qos_job-a.instance-1._app.1");
        assert!(!r[1].throttling, "CFS off: no throttling fields");
        assert_eq!(r[1].counters.total_ns, 1_500_000_000);
    }

    #[test]
    fn bad_entries_name_their_field_and_spare_the_others() {
        let good = json!({"executor_id": "ok", "statistics": {"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}});
        let cases = [
            (
                json!({"statistics": {"timestamp": 1}}),
                "executor_id",
                "missing field",
            ),
            (json!({"executor_id": "x"}), "statistics", "missing field"),
            (
                json!({"executor_id": "x", "statistics": {}}),
                "statistics.timestamp",
                "missing field",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": "soon"}}),
                "statistics.timestamp",
                "invalid type",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": 1}}),
                "statistics.cpus_user_time_secs",
                "missing",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": 1, "cpus_user_time_secs": "lots", "cpus_system_time_secs": 1}}),
                "statistics.cpus_user_time_secs",
                "got \"lots\"",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": -2}}),
                "statistics.cpus_system_time_secs",
                "≥ 0",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1, "cpus_limit": 0}}),
                "statistics.cpus_limit",
                "> 0",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1, "cpus_limit": [1]}}),
                "statistics.cpus_limit",
                "got [1]",
            ),
            (
                json!({"executor_id": "", "statistics": {"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}}),
                "executor_id",
                "empty",
            ),
            (
                json!({"executor_id": "x", "statistics": {"timestamp": -1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}}),
                "statistics.timestamp",
                "> 0",
            ),
            (json!(7), "(entry)", "invalid type"),
        ];
        for (bad, field, words) in cases {
            let (r, e) = parse_statistics(&json!([good, bad]));
            assert_eq!(r.len(), 1, "the good entry survives {bad}");
            assert_eq!(e.len(), 1, "{bad}");
            assert_eq!(e[0].field, field, "{bad}: {}", e[0]);
            assert!(e[0].message.contains(words), "{bad}: {}", e[0]);
            let text = e[0].to_string();
            assert!(
                text.starts_with("entry [1]") && text.contains(field),
                "{text}"
            );
        }
        let (r, e) = parse_statistics(&json!({"message": "not here"}));
        assert!(r.is_empty());
        assert_eq!(
            e[0].to_string(),
            "(answer): expected a JSON array of executor statistics, got an object"
        );
    }

    #[test]
    fn labels_in_both_forms() {
        assert_eq!(
            uuid_in_labels(&json!([{"key": "x", "value": "y"}, {"key": "qos.uuid", "value": U1}])),
            Some(U1.into())
        );
        assert_eq!(uuid_in_labels(&json!({"QOS_UUID": U2})), Some(U2.into()));
        assert_eq!(uuid_in_labels(&json!({"qos.uuid": "not-a-uuid"})), None);
        assert_eq!(uuid_in_labels(&json!([{"key": "qos.uuid"}])), None);
        assert_eq!(uuid_in_labels(&json!("qos.uuid")), None);
    }

    #[test]
    fn task_ids_of_both_frameworks() {
        let chronos = |n: &str| Some(FrameworkJob::Chronos(n.into()));
        let marathon = |n: &str| Some(FrameworkJob::Marathon(n.into()));
        let cases = [
            (
                "ct:1499688000000:0:openmpLinpack1:",
                chronos("openmpLinpack1"),
            ),
            ("ct:1:2:job.with-dots:a b:c", chronos("job.with-dots")),
            ("ct:x:0:job:", None),
            ("ct:1:0::", None),
            (
                "grp_my.app.instance-0b1e2f3a-1111-2222-3333-444455556666._app.1",
                marathon("grp_my.app"),
            ),
            (
                "linpack.marathon-0b1e2f3a-1111-2222-3333-444455556666",
                marathon("linpack"),
            ),
            ("web.0b1e2f3a-1111-2222-3333-444455556666", marathon("web")),
            ("web.1", None),
            ("plain", None),
        ];
        for (task, want) in cases {
            assert_eq!(job_of_task(task), want, "{task}");
        }
        assert_eq!(marathon_task_prefix("/grp/my.app"), "grp_my.app");
    }

    fn state() -> Value {
        json!({"id": "S0", "frameworks": [
            {"id": "marathon-fw", "executors": [
                {"id": "lab.instance-1._app.1", "container": "c-1", "tasks": [
                    {"id": "lab.instance-1._app.1", "name": "lab",
                     "labels": [{"key": "qos.uuid", "value": U1}]}]},
                {"id": "custom-exec", "labels": [{"key": "qos_uuid", "value": U2}],
                 "tasks": [], "queued_tasks": [{"id": "q.instance-2._app.1", "name": "q"}]},
                {"id": "nolabel.instance-3._app.1", "tasks": [{"id": "nolabel.instance-3._app.1"}]}
            ]},
            {"id": "chronos-fw", "executors": [{"id": "ct:5:0:nightly:", "container": "",
                "tasks": [{"id": "ct:5:0:nightly:", "name": "ChronosTask:nightly"}]}]}
        ]})
    }

    #[test]
    fn agent_state_index() {
        let idx = AgentIndex::from_state(&state());
        assert_eq!(idx.agent_id.as_deref(), Some("S0"));
        let e = idx.get("marathon-fw", "lab.instance-1._app.1").unwrap();
        assert_eq!(
            (
                e.uuid.as_deref(),
                e.task_name.as_deref(),
                e.container.as_deref()
            ),
            (Some(U1), Some("lab"), Some("c-1"))
        );
        let e = idx.get("marathon-fw", "custom-exec").unwrap();
        assert_eq!(e.uuid.as_deref(), Some(U2), "executor labels");
        assert_eq!(e.task_ids, ["q.instance-2._app.1"]);
        assert_eq!(
            idx.get("chronos-fw", "ct:5:0:nightly:").unwrap().container,
            None
        );
        assert!(idx.get("other-fw", "lab.instance-1._app.1").is_none());
        assert_eq!(
            AgentIndex::from_state(&json!("garbage")),
            AgentIndex::default()
        );
    }

    #[test]
    fn registry_ranks_active_then_latest() {
        let jobs = json!([
            {"uuid": U1, "name": "nightly", "framework": "chronos", "state": "completed", "registered_at": 9.0},
            {"uuid": U2, "name": "nightly", "framework": "chronos", "state": "running", "registered_at": 1.0},
            {"uuid": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "name": "/nolabel", "framework": "marathon", "state": "running", "registered_at": 1.0},
            {"uuid": "cccccccccccccccccccccccccccccccc", "name": "/nolabel", "framework": "marathon", "state": "running", "registered_at": 2.0},
            {"uuid": "bad", "name": "x", "framework": "chronos"},
            {"uuid": U1, "name": "y", "framework": "aurora"},
            "junk"
        ]);
        let d = JobDirectory::from_jobs(&jobs);
        assert_eq!(d.len(), 2);
        assert_eq!(d.uuid_for_task("ct:5:0:nightly:"), Some(U2));
        assert_eq!(
            d.uuid_for_task("nolabel.instance-3._app.1"),
            Some("cccccccccccccccccccccccccccccccc")
        );
        assert_eq!(d.uuid_for_task("ct:5:0:other:"), None);
        assert!(JobDirectory::from_jobs(&json!({"jobs": []})).is_empty());
    }

    #[test]
    fn mapping_precedence() {
        let idx = AgentIndex::from_state(&state());
        let jobs = JobDirectory::from_jobs(&json!([
            {"uuid": U2, "name": "/lab", "framework": "marathon", "state": "running"},
            {"uuid": U2, "name": "nightly", "framework": "chronos", "state": "running"},
            {"uuid": U1, "name": "q", "framework": "marathon", "state": "running"}
        ]));
        // Labels first, even when the registry knows the app.
        let m = map_executor(
            "marathon-fw",
            "lab.instance-1._app.1",
            Some(&idx),
            Some(&jobs),
        );
        assert_eq!(m.uuid, Some((U1.into(), MappedBy::AgentLabels)));
        assert_eq!(m.name.as_deref(), Some("lab"));
        // No labels: the registry, by the executor id or by a task of a custom executor.
        let m = map_executor("chronos-fw", "ct:5:0:nightly:", Some(&idx), Some(&jobs));
        assert_eq!(m.uuid, Some((U2.into(), MappedBy::Registry)));
        let m = map_executor("chronos-fw", "ct:5:0:nightly:", None, Some(&jobs));
        assert_eq!(
            m.uuid,
            Some((U2.into(), MappedBy::Registry)),
            "without /state"
        );
        // Neither source: measured, unmapped.
        let m = map_executor("marathon-fw", "nolabel.instance-3._app.1", Some(&idx), None);
        assert_eq!(m.uuid, None);
        assert_eq!(
            map_executor("f", "e", None, None),
            ExecutorMapping::default()
        );
    }
}
