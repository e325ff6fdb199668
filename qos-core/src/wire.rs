//! Wire types of the supervisor's own API, defined once here (serde only) and shared by the
//! supervisor, the launcher, shell-trap and the node collector.
//!
//! Thesis routes (`/initTask`, `/updateTask`, `/initMarathonApp`, `/endMarathonApp`) are accepted
//! exactly as the original containers and scripts send them: numbers may arrive as strings
//! (`"finished_at": "1500000000"`). The versioned `/api/v1` types are JSON with numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::job::{Checkpointing, Framework, Job};
use crate::spec::QosSpec;

/// Lenient number readers: accept a JSON number or a numeric string.
pub mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn to_f64(v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
    }

    /// `v` as a finite number, or the error every reader of a number gives.
    fn finite<E: serde::de::Error>(v: &Value) -> Result<f64, E> {
        match to_f64(v) {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(E::custom(format!("expected a number, got {v}"))),
        }
    }

    /// A finite `f64` from a number or numeric string.
    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        finite(&Value::deserialize(d)?)
    }

    /// An optional finite `f64` from a number, a numeric string, or null/absent.
    pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        finite(&v).map(Some)
    }

    /// An optional non-negative whole number from a number, a numeric string, or null/absent.
    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(None);
        }
        match to_f64(&v) {
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) => {
                Ok(Some(x as u32))
            }
            _ => Err(serde::de::Error::custom(format!(
                "expected a whole number ≥ 0, got {v}"
            ))),
        }
    }
}

/// `POST /initTask` as the thesis launcher sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitTask {
    /// `chronos` or `marathon`.
    pub framework: Framework,
    /// Chronos job name, or Marathon app id without the leading `/`.
    pub name: String,
    /// QoS duration, seconds.
    #[serde(deserialize_with = "lenient::f64")]
    pub job_duration: f64,
    /// Chronos: absolute epoch seconds; Marathon: seconds relative to the start.
    #[serde(deserialize_with = "lenient::f64")]
    pub deadline: f64,
    /// Tolerated deviation fraction.
    #[serde(deserialize_with = "lenient::f64")]
    pub desv_deadline: f64,
    /// The job's UUID (32 hex characters in the thesis).
    pub uuid: String,
    /// Chronos only: iterations requested.
    #[serde(
        default,
        deserialize_with = "lenient::opt_u32",
        skip_serializing_if = "Option::is_none"
    )]
    pub iterations: Option<u32>,
}

/// `POST /updateTask`: one finished Chronos iteration, as the rewritten command's curl sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateTask {
    /// Job name.
    pub name: String,
    /// Epoch seconds when the command finished.
    #[serde(deserialize_with = "lenient::f64")]
    pub finished_at: f64,
    /// Epoch seconds when the command started.
    #[serde(deserialize_with = "lenient::f64")]
    pub started_at: f64,
    /// The agent it ran on.
    pub hostname: String,
    /// The job's UUID.
    pub uuid: String,
    /// The command's exit code, when the reporter knows it (the thesis did not send it).
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub exit_code: Option<f64>,
    /// The CPUs the iteration ran with, when the reporter knows (the launcher's command sends
    /// Chronos' `CHRONOS_RESOURCE_CPU`; the thesis did not): a resize decided at one report may
    /// reach Chronos only after the next run has started at the old size.
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpus: Option<f64>,
}

/// `POST /initMarathonApp`: a Marathon task started (or, with `restored`, resumed from a
/// checkpoint — the thesis sent nothing on restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitMarathonApp {
    /// The job's UUID.
    pub uuid: String,
    /// Epoch seconds.
    #[serde(deserialize_with = "lenient::f64")]
    pub started_at: f64,
    /// Whether this start restored a checkpoint: `true` resumed, `false` started from scratch,
    /// absent (the thesis' reporter) not said — the supervisor then infers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<bool>,
    /// The checkpoint strategy shell-trap runs the task with (`criu`, `app`, `none`): whether a
    /// restart keeps the job's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

/// `POST /endMarathonApp`: the Marathon task's work ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndMarathonApp {
    /// The job's UUID.
    pub uuid: String,
    /// Epoch seconds.
    #[serde(deserialize_with = "lenient::f64")]
    pub finished_at: f64,
    /// The container's exit code (absent from thesis reports: taken as success).
    #[serde(
        default,
        deserialize_with = "lenient::opt_f64",
        skip_serializing_if = "Option::is_none"
    )]
    pub exit_code: Option<f64>,
}

/// The longest job name ([`JobRegistration::name`]) the supervisor registers, in bytes of
/// UTF-8. Neither Marathon nor Chronos documents a limit; 255 bytes is what a file name, a DNS
/// name and a Prometheus label can all hold.
pub const MAX_NAME_BYTES: usize = 255;

/// The most jobs one page of `GET /api/v1/jobs` holds (its `limit`); clients that want every
/// job read pages of this size until a short one.
pub const MAX_JOBS_PAGE: usize = 10_000;

/// `POST /api/v1/jobs`: register a job before it is submitted to its framework.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRegistration {
    /// The job's UUID.
    pub uuid: String,
    /// Chronos job name or Marathon app id, at most [`MAX_NAME_BYTES`].
    pub name: String,
    /// Framework it runs on.
    pub framework: Framework,
    /// Its QoS target, in the thesis format.
    pub qos: QosSpec,
    /// Chronos: iterations requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// Initial allocation.
    pub cpus: f64,
    /// Submission time, epoch seconds (default: when the supervisor receives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<f64>,
    /// Marathon: the checkpoint strategy its tasks run with (`app`, `criu`, `none`, `auto`):
    /// whether a restart keeps its work. Absent: not known until shell-trap reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl JobRegistration {
    /// The job this registration describes, submitted at `submitted_at` (its `submitted_at`
    /// when given). Validation is separate ([`QosSpec::validate_for`], the names, `cpus`); an
    /// unknown `checkpoint` strategy reads as unknown.
    pub fn job(&self, submitted_at: f64) -> Job {
        let qos = self.qos.resolve(self.submitted_at.unwrap_or(submitted_at));
        let cpus = Cpus::from_f64(self.cpus);
        let mut job = match (self.framework, self.iterations) {
            (Framework::Chronos, Some(n)) => Job::iterative(&self.name, qos, n, cpus),
            _ => Job::continuous(&self.name, qos, cpus),
        };
        job.checkpointing = self
            .checkpoint
            .as_deref()
            .and_then(Checkpointing::from_strategy)
            .unwrap_or_default();
        job
    }
}

/// Answer to a registration: the per-job report token a container uses to report for itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The job's UUID.
    pub uuid: String,
    /// Bearer token that authorises reports for this job only.
    pub report_token: String,
    /// What the submitter should be told: resizes that would restart the job from scratch, a
    /// deadline out of reach by the job's own declared duration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `POST /api/v1/jobs/{uuid}/progress`: application-reported progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressReport {
    /// Fraction done, `[0, 1]`.
    pub fraction: f64,
    /// When, epoch seconds (default: receipt time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<f64>,
}

/// One container's cumulative CPU reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSample {
    /// Job UUID, if the container is mapped to a job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Container id (Docker id, Mesos container id, testbed task id): counters are cumulative
    /// per container.
    pub container_id: String,
    /// Container name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was read, epoch seconds.
    pub at: f64,
    /// Cumulative user CPU-seconds.
    pub user_secs: f64,
    /// Cumulative system CPU-seconds.
    pub system_secs: f64,
    /// Cumulative total CPU-seconds (may exceed user + system slightly: different sources).
    pub total_secs: f64,
    /// CPU quota in force, in CPUs (`None` = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_cpus: Option<f64>,
    /// Cumulative throttled seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_secs: Option<f64>,
}

/// `POST /api/v1/samples`: a batch from one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleBatch {
    /// Node id of the sender.
    pub node: String,
    /// The readings.
    pub samples: Vec<CpuSample>,
}

/// `POST /api/v1/nodes/register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRegistration {
    /// Stable node id.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// CPUs the node offers.
    pub cpus: f64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Base URL of the node agent (for in-place resizes), if it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_url: Option<String>,
}

/// `POST /api/v1/nodes/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When, epoch seconds.
    pub at: f64,
    /// CPUs not used by anything, averaged over the last period.
    pub free_cpus: f64,
    /// CPUs allocated to job containers (sum of quotas).
    #[serde(default)]
    pub allocated_cpus: f64,
    /// The same by job UUID: what each job's containers hold on this node. With it the
    /// supervisor knows whether a job's own task is in `allocated_cpus` (a Chronos task that has
    /// just reported, or the next run already placed) and does not count it against the job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocated_by_job: BTreeMap<String, f64>,
    /// 1-minute load average.
    #[serde(default)]
    pub load1: f64,
}

/// `s` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
#[must_use]
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end]).into()
}

/// What is wrong with `uuid` as a job UUID — 1 to 64 characters of `[A-Za-z0-9_-]` (the thesis
/// uses 32 hex digits) — said of `field`; `None` when it is one.
#[must_use]
pub fn uuid_problem(field: &str, uuid: &str) -> Option<String> {
    if uuid.is_empty() || uuid.len() > 64 {
        return Some(format!("{field} must be 1 to 64 characters long"));
    }
    if !uuid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Some(format!(
            "{field} may only contain letters, digits, '-' and '_'"
        ));
    }
    None
}

/// `POST /resize` on a node agent: set a container's CPU limit live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResizeRequest {
    /// The job whose container to resize.
    pub uuid: String,
    /// The new limit, CPUs.
    pub cpus: f64,
}

/// Answer to a resize: the limit actually in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResizeResult {
    /// The job.
    pub uuid: String,
    /// Container resized.
    pub container_id: String,
    /// Limit in force after the change, CPUs.
    pub cpus: f64,
}

/// `POST /api/v1/jobs/{uuid}/resize`: an operator sets a job's allocation by hand. It is
/// recorded as a decision with the reason `operator` and applied as the controller's own resizes
/// are (in place or by restart, per the supervisor's resize mode); the controller keeps
/// controlling the job afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResize {
    /// The new allocation, CPUs (within the policy's `cpu_min`..`cpu_max`).
    pub cpus: f64,
}

/// Answer to an operator resize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResized {
    /// The job.
    pub uuid: String,
    /// The allocation before, CPUs.
    pub from: f64,
    /// The allocation in force now, CPUs.
    pub to: f64,
    /// How it was applied: `in-place` or `restart`.
    pub mode: String,
    /// Whether anything was applied (`false` when the job already had that allocation).
    pub applied: bool,
    /// Supervisor time of the decision, epoch seconds.
    pub decided_at: f64,
}

/// Body of every error answer of the versioned API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error: machine code, human message, and the offending field when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code, e.g. `invalid_field`, `not_found`, `unauthorized`.
    pub code: String,
    /// What went wrong and how to fix it.
    pub message: String,
    /// The offending field, dotted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thesis_update_task_with_string_numbers() {
        let body = r#"{"name": "openmpLinpack1", "finished_at": "1500000445", "started_at": "1500000045", "hostname": "agent1", "uuid": "0123456789abcdef0123456789abcdef"}"#;
        let u: UpdateTask = serde_json::from_str(body).unwrap();
        assert_eq!(u.finished_at, 1_500_000_445.0);
        assert_eq!(u.exit_code, None);
    }

    #[test]
    fn thesis_init_task_both_frameworks() {
        let c: InitTask = serde_json::from_str(r#"{"framework": "chronos", "name": "openmpLinpack1", "job_duration": 400, "deadline": 1500001800.25, "desv_deadline": 0.2, "uuid": "u", "iterations": 4}"#).unwrap();
        assert_eq!((c.framework, c.iterations), (Framework::Chronos, Some(4)));
        let m: InitTask = serde_json::from_str(r#"{"framework": "marathon", "name": "openmplinpack1", "job_duration": "400", "deadline": "480", "desv_deadline": "0.1", "uuid": "u"}"#).unwrap();
        assert_eq!((m.deadline, m.iterations), (480.0, None));
        let bad = serde_json::from_str::<InitTask>(
            r#"{"framework": "k8s", "name": "x", "job_duration": 1, "deadline": 1, "desv_deadline": 0, "uuid": "u"}"#,
        );
        assert!(bad.is_err());
        let nan = serde_json::from_str::<UpdateTask>(r#"{"name": "x", "finished_at": "soon", "started_at": 1, "hostname": "h", "uuid": "u"}"#).unwrap_err();
        assert!(nan.to_string().contains("expected a number"), "{nan}");
    }

    #[test]
    fn registration_round_trip() {
        let r: JobRegistration = serde_json::from_str(r#"{"uuid": "u", "name": "n", "framework": "marathon", "qos": {"duration": 400, "deadline": 480, "desv_deadline": 0.1}, "cpus": 1}"#).unwrap();
        let back: JobRegistration =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(r, back);
    }
}
