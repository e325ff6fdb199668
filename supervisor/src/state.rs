//! The in-memory model: supervised jobs, reports held for jobs not yet registered, and the node
//! registry. One `std::sync::Mutex` guards it; it is never held across an `.await` or any I/O
//! (the thesis deadlocked exactly that way). Every change that must survive a crash is queued
//! to the [`crate::store::Store`] while the lock is held — so the database sees changes in the
//! order they happened — and awaited after the lock is released.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use qos_core::wire::{
    CpuSample, EndMarathonApp, Heartbeat, InitMarathonApp, NodeRegistration, ProgressReport,
    UpdateTask,
};
use qos_core::{Class, Cpus, Decision, Job};
use serde::{Deserialize, Serialize};

use crate::metrics::JobGauges;
use crate::store::Op;

/// What the supervisor keeps about a job beyond the `qos_core::Job` itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobMeta {
    /// Bearer token that authorises this job's own reports.
    pub(crate) report_token: String,
    /// Supervisor time of the registration.
    pub(crate) registered_at: f64,
    /// Node (id, or host name when no node agent registered it) the job last ran on.
    pub(crate) node: Option<String>,
    /// Containers seen in CPU samples (a new one while restarting means the task is back).
    pub(crate) containers: BTreeSet<String>,
    /// Registered through `/initTask`, which carries no `cpus`: read it from the framework.
    pub(crate) cpus_unknown: bool,
    /// The framework job/app has been removed (or scaled to 0) after the job ended.
    pub(crate) cleaned_up: bool,
    /// Supervisor time at which the job reached a terminal phase.
    pub(crate) finished_wall: Option<f64>,
    /// Since when Marathon has refused resizes because a deployment locks the app.
    pub(crate) locked_since: Option<f64>,
    /// The class of the last stored decision.
    pub(crate) last_class: Option<Class>,
    /// What the policy wants for the job, uncapped (its claim when its node is short).
    pub(crate) want: Option<Cpus>,
    /// Resizes applied.
    pub(crate) resizes_applied: u64,
    /// Last downsampled sample written per container (supervisor time).
    #[serde(default)]
    pub(crate) last_sample_stored: Option<f64>,
    /// Cancelled with its checkpoints kept (shell-trap then saves the work as for a restart).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) keep_checkpoints: bool,
    /// Why the job is `LOST` (its framework no longer has it), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lost_reason: Option<String>,
}

/// The persisted form of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PersistedJob {
    pub(crate) uuid: String,
    pub(crate) job: Job,
    pub(crate) meta: JobMeta,
}

/// Bookkeeping that does not outlive the process.
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    /// Consecutive failed applies (error policy backoff).
    pub(crate) failures: u32,
    /// When a hold decision was last stored.
    pub(crate) last_history_at: Option<f64>,
    /// Changed since the last write (CPU samples are written behind).
    pub(crate) dirty: bool,
    /// The latest decision (shown by the API).
    pub(crate) last_decision: Option<(f64, Decision)>,
    /// Metric handles.
    pub(crate) gauges: Option<JobGauges>,
    /// The last apply error, shown by the API.
    pub(crate) last_error: Option<String>,
    /// Consecutive answers from the framework that it has no such job or app.
    pub(crate) not_found: u32,
}

/// A supervised job.
#[derive(Debug)]
pub(crate) struct JobEntry {
    pub(crate) p: PersistedJob,
    pub(crate) rt: Runtime,
}

impl JobEntry {
    /// The write that persists this job.
    pub(crate) fn op(&self, now: f64) -> Op {
        Op::UpsertJob {
            uuid: self.p.uuid.clone(),
            name: self.p.job.name.clone(),
            framework: self.p.job.framework.as_str().to_owned(),
            terminal: self.p.job.phase.is_terminal(),
            updated_at: now,
            body: serde_json::to_string(&self.p).unwrap_or_default(),
        }
    }
}

/// A report for a job that is not registered yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum HeldReport {
    /// `/updateTask`.
    Iteration(UpdateTask),
    /// `/initMarathonApp`.
    Started(InitMarathonApp),
    /// `/endMarathonApp`.
    Ended(EndMarathonApp),
    /// `/api/v1/jobs/{uuid}/progress` (with `at` filled in).
    Progress(ProgressReport),
    /// A CPU sample (kept in memory only: the next cumulative reading supersedes it).
    Sample { node: String, sample: CpuSample },
}

/// Held reports of one unknown UUID.
#[derive(Debug, Default)]
pub(crate) struct Held {
    pub(crate) first_at: f64,
    /// `(received_at, report)`, oldest first.
    pub(crate) reports: VecDeque<(f64, HeldReport)>,
    /// What the reports weigh ([`HeldReport::weight`]), summed.
    pub(crate) bytes: usize,
}

impl HeldReport {
    /// What holding the report costs, bytes: its JSON for the reports held in the database, an
    /// estimate of the memory for samples (kept in memory only).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Self::Sample { node, sample } => {
                128 + node.len()
                    + sample.container_id.len()
                    + sample.uuid.as_ref().map_or(0, String::len)
                    + sample.name.as_ref().map_or(0, String::len)
            }
            other => serde_json::to_string(other).map_or(0, |s| s.len()),
        }
    }
}

/// Most reports held for one unknown UUID.
pub(crate) const HELD_PER_JOB: usize = 256;

/// A node of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeEntry {
    pub(crate) reg: NodeRegistration,
    /// Supervisor time of registration or the last heartbeat.
    pub(crate) last_seen: f64,
    pub(crate) beat: Option<Heartbeat>,
    /// CPUs granted to jobs on this node since the last heartbeat (not yet visible in it).
    #[serde(default)]
    pub(crate) reserved: Cpus,
}

impl NodeEntry {
    pub(crate) fn alive(&self, now: f64, timeout: f64) -> bool {
        now - self.last_seen <= timeout
    }

    /// Free CPU by the last heartbeat — the node's CPUs not reserved by job containers (a
    /// framework places a task only where its reservation fits; idle CPU is not the measure,
    /// since a job busy within its own quota makes the node look full) — minus what was
    /// granted since.
    pub(crate) fn free(&self) -> Cpus {
        let free = self.beat.as_ref().map_or(0.0, |b| {
            (self.reg.cpus - b.allocated_cpus.max(0.0)).max(0.0)
        });
        Cpus::from_f64(free).saturating_sub(self.reserved)
    }

    /// The most job `uuid` may hold on this node: what is free plus what its own containers
    /// hold, when the heartbeat says (`allocated_by_job`, from collectors that send it); `None`
    /// from an older collector's heartbeat, which cannot tell.
    pub(crate) fn room_for(&self, uuid: &str) -> Option<Cpus> {
        let b = self.beat.as_ref()?;
        if b.allocated_by_job.is_empty() && b.allocated_cpus > 0.0 {
            return None;
        }
        let mine = b
            .allocated_by_job
            .get(uuid)
            .copied()
            .unwrap_or(0.0)
            .max(0.0);
        Some(self.free() + Cpus::from_f64(mine))
    }

    pub(crate) fn op(&self) -> Op {
        Op::UpsertNode {
            id: self.reg.id.clone(),
            updated_at: self.last_seen,
            body: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// Everything in memory.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) jobs: HashMap<String, JobEntry>,
    pub(crate) held: HashMap<String, Held>,
    /// What every held report weighs together (an upper bound: expiry elsewhere may drop reports
    /// without subtracting; recomputed before a refusal).
    pub(crate) held_bytes: usize,
    pub(crate) nodes: HashMap<String, NodeEntry>,
    /// Host name → node id.
    pub(crate) hosts: HashMap<String, String>,
    /// Node (id or host name) → jobs that last ran there.
    pub(crate) by_node: HashMap<String, HashSet<String>>,
    /// Finished jobs waiting for their metric series to be retired: `(finished_wall, uuid)`.
    pub(crate) retiring: VecDeque<(f64, String)>,
}

impl State {
    /// The node id a host name or node id refers to, when registered.
    pub(crate) fn node_of(&self, key: &str) -> Option<&NodeEntry> {
        self.nodes
            .get(key)
            .or_else(|| self.hosts.get(key).and_then(|id| self.nodes.get(id)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use qos_core::wire::{Heartbeat, NodeRegistration};

    use super::*;

    fn node(free: f64, allocated: f64) -> NodeEntry {
        NodeEntry {
            reg: NodeRegistration {
                id: "n".into(),
                hostname: "n".into(),
                cpus: 2.0,
                memory_bytes: 0,
                labels: BTreeMap::new(),
                agent_url: None,
            },
            last_seen: 0.0,
            beat: Some(Heartbeat {
                at: 0.0,
                free_cpus: free,
                allocated_cpus: allocated,
                allocated_by_job: BTreeMap::new(),
                load1: 0.0,
            }),
            reserved: Cpus::ZERO,
        }
    }

    #[test]
    fn free_is_unreserved() {
        // CPU reserved by job containers cannot take a new task, idle or not.
        assert_eq!(node(1.5, 1.2).free(), Cpus::from_milli(800));
        // A job busy within its own quota does not make the rest of the node look full.
        assert_eq!(node(0.1, 0.5).free(), Cpus::from_milli(1500));
        // Grants since the heartbeat come off.
        let mut n = node(1.5, 0.0);
        n.reserved = Cpus::from_milli(400);
        assert_eq!(n.free(), Cpus::from_milli(1600));
    }

    #[test]
    fn room_for_a_job_counts_its_own_containers() {
        let mut n = node(0.5, 1.4);
        // An older collector: no breakdown, no answer.
        assert_eq!(n.room_for("a"), None);
        let b = n.beat.as_mut().unwrap();
        b.allocated_by_job = [("a".to_owned(), 0.5), ("b".to_owned(), 0.9)].into();
        // Free 0.6, plus a's own 0.5 (its task just reported, or its next run is placed).
        assert_eq!(n.room_for("a"), Some(Cpus::from_milli(1100)));
        assert_eq!(n.room_for("b"), Some(Cpus::from_milli(1500)));
        // A job with nothing on the node: just what is free.
        assert_eq!(n.room_for("c"), Some(Cpus::from_milli(600)));
        // An empty node says so with an empty breakdown.
        let idle = node(2.0, 0.0);
        assert_eq!(idle.room_for("a"), Some(Cpus::from_milli(2000)));
    }
}
