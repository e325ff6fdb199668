//! The in-memory model: supervised jobs, reports held for jobs not yet registered, and the node
//! registry. One `std::sync::Mutex` guards it; it is never held across an `.await` or any I/O
//! (the thesis deadlocked exactly that way). Every change that must survive a crash is queued
//! to the [`crate::store::Store`] while the lock is held — so the database sees changes in the
//! order they happened — and awaited after the lock is released.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use qos_core::job::{IterationReport, ResizeRecord, Segment};
use qos_core::wire::{
    CpuSample, EndMarathonApp, Heartbeat, InitMarathonApp, NodeRegistration, ProgressReport,
    UpdateTask,
};
use qos_core::{Class, Cpus, Decision, Job, Work};
use serde::{Deserialize, Serialize};

use crate::metrics::JobGauges;
use crate::store::{Item, Op};
use crate::summary::Summary;

/// What the supervisor keeps about a job beyond the `qos_core::Job` itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobMeta {
    /// Bearer token that authorises this job's own reports.
    pub(crate) report_token: String,
    /// Supervisor time of the registration.
    pub(crate) registered_at: f64,
    /// Node (id, or host name when no node agent registered it) the job last ran on.
    pub(crate) node: Option<String>,
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
    /// The framework is known to have the job (a probe found it): resizes can be applied.
    #[serde(default)]
    pub(crate) in_framework: bool,
    /// Position of the first element kept of each of its lists (numbered as in `job_items`):
    /// past `storage.items_max_per_job` the oldest are forgotten, in memory and in the database.
    #[serde(default, skip_serializing_if = "no_offsets")]
    pub(crate) items_from: [u32; LISTS],
}

fn no_offsets(from: &[u32; LISTS]) -> bool {
    from.iter().all(|&n| n == 0)
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
    /// Probes that did not find the job in its framework yet (their backoff).
    pub(crate) probes: u32,
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
    /// The store's count of failed transactions (see [`crate::store::Store::generation`]).
    pub(crate) store_failures: Arc<AtomicU64>,
    /// What the last write of the job left in the database, as far as is known.
    pub(crate) saved: Option<Saved>,
    /// The job's lists are not in memory (finished and cleaned up; its history is read from
    /// the database when asked for): what the views show instead.
    pub(crate) archived: Option<Summary>,
    /// Elements kept of each of its lists (`storage.items_max_per_job`; 0: all of them).
    pub(crate) items_max: usize,
}

/// A supervised job.
#[derive(Debug)]
pub(crate) struct JobEntry {
    pub(crate) p: PersistedJob,
    pub(crate) rt: Runtime,
}

impl JobEntry {
    /// The write that persists this job: its row (small, of a bounded size) and the elements of
    /// its lists not yet written — or, when a write may have been lost since the last one (a
    /// failed transaction), all of them, replacing what is stored.
    ///
    /// What is appended relies on how `qos_core::Job` grows its lists: reports, resizes and
    /// restart costs are only pushed; a progress segment is pushed or its last one extended
    /// (so the last segment is always written again); a list that shrinks is written whole.
    pub(crate) fn op(&mut self, now: f64) -> Op {
        let trimmed = self.trim();
        let generation = self.rt.store_failures.load(Ordering::Acquire);
        let summary = self
            .rt
            .archived
            .clone()
            .unwrap_or_else(|| Summary::of(&self.p.job));
        let lists = Lists::take(&mut self.p.job);
        let body = serde_json::to_string(&RowOut {
            uuid: &self.p.uuid,
            job: &self.p.job,
            meta: &self.p.meta,
            summary: &summary,
        })
        .unwrap_or_default();
        let offsets = self.p.meta.items_from;
        let lens = lists.ends(offsets);
        let (items, replace_items) = if self.rt.archived.is_some() {
            (Vec::new(), false)
        } else {
            match self.rt.saved {
                Some(s)
                    if s.generation == generation
                        && lens.iter().zip(s.lens).all(|(&n, old)| n >= old) =>
                {
                    let mut from = s.lens;
                    from[usize::from(SEGMENTS)] = from[usize::from(SEGMENTS)].saturating_sub(1);
                    (lists.items(from, offsets), false)
                }
                _ => (lists.items(offsets.map(|o| o as usize), offsets), true),
            }
        };
        lists.put(&mut self.p.job);
        self.rt.saved = Some(Saved { generation, lens });
        Op::UpsertJob {
            uuid: self.p.uuid.clone(),
            name: self.p.job.name.clone(),
            framework: self.p.job.framework.as_str().to_owned(),
            terminal: self.p.job.phase.is_terminal(),
            archived: self.p.job.phase.is_terminal() && self.p.meta.cleaned_up,
            updated_at: now,
            body,
            items,
            replace_items,
            items_from: trimmed.then_some(offsets),
        }
    }

    /// Forgets the oldest elements of each list longer than `items_max` by an eighth (so that
    /// the database deletes them in batches), down to `items_max`; whether any went. Iteration
    /// reports forgotten still count as done.
    fn trim(&mut self) -> bool {
        let max = self.rt.items_max;
        if max == 0 || self.rt.archived.is_some() {
            return false;
        }
        let lens = Lists::lens_of(&self.p.job);
        let mut trimmed = false;
        for (list, &len) in lens.iter().enumerate() {
            if len <= max + max / 8 {
                continue;
            }
            let n = len - max;
            let job = &mut self.p.job;
            match (u8::try_from(list).unwrap_or(u8::MAX), &mut job.work) {
                (REPORTS, Work::Iterative(w)) => w.forget_oldest(n),
                (RESIZES, _) => drop(job.resizes.drain(..n)),
                (SEGMENTS, Work::Continuous(w)) => drop(w.segments.drain(..n)),
                (RESTART_COSTS, Work::Continuous(w)) => drop(w.restart_costs.drain(..n)),
                _ => continue,
            }
            let from = &mut self.p.meta.items_from[list];
            *from = from.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            trimmed = true;
        }
        trimmed
    }

    /// Whether a write may be missing from the database since this job's last one (a failed
    /// transaction since): its next acknowledgement must write it again.
    pub(crate) fn needs_write(&self) -> bool {
        let generation = self.rt.store_failures.load(Ordering::Acquire);
        self.rt.saved.is_none_or(|s| s.generation != generation)
    }

    /// Drops the lists from memory (a finished, cleaned-up job whose every write is known to be
    /// stored): the views show its summary, its history is read from the database.
    pub(crate) fn archive(&mut self) {
        if self.rt.archived.is_none() {
            let summary = Summary::of(&self.p.job);
            drop(Lists::take(&mut self.p.job));
            self.rt.archived = Some(summary);
        }
    }

    /// The job with its whole lists: `items` (read from the database) put back when archived.
    pub(crate) fn whole(&self, items: Option<&[Item]>) -> Result<PersistedJob, String> {
        let mut p = self.p.clone();
        if let (Some(_), Some(items)) = (&self.rt.archived, items) {
            let (lists, _) = Lists::from_items(items, p.meta.items_from)?;
            lists.put(&mut p.job);
        }
        Ok(p)
    }
}

/// A job's row and items as read back: the entry's persisted part, its summary when it was
/// archived, and whether its lists were complete (else the next write rewrites them).
pub(crate) fn decode_job(
    body: &str,
    items: &[Item],
    archived: bool,
) -> Result<(PersistedJob, Option<Summary>, bool), String> {
    let row: RowIn = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let mut p = PersistedJob {
        uuid: row.uuid,
        job: row.job,
        meta: row.meta,
    };
    match row.summary {
        // A schema-1 row: the lists are in the body; written whole at the next write.
        None => Ok((p, None, false)),
        Some(summary) if archived => Ok((p, Some(summary), true)),
        Some(_) => {
            let (lists, whole) = Lists::from_items(items, p.meta.items_from)?;
            lists.put(&mut p.job);
            Ok((p, None, whole))
        }
    }
}

/// What [`decode_job`] found to be stored of a loaded job: all of its lists when `whole`.
pub(crate) fn saved_after_load(p: &PersistedJob, whole: bool, generation: u64) -> Option<Saved> {
    whole.then(|| Saved {
        generation,
        lens: ends(Lists::lens_of(&p.job), p.meta.items_from),
    })
}

/// The lists of a job that grow with its work, kept out of its row: one `job_items` row per
/// element, appended as they come.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Lists {
    reports: Vec<IterationReport>,
    resizes: Vec<ResizeRecord>,
    segments: Vec<Segment>,
    restart_costs: Vec<f64>,
}

/// The lists, numbered as in `job_items.list`.
pub(crate) const REPORTS: u8 = 0;
const RESIZES: u8 = 1;
const SEGMENTS: u8 = 2;
const RESTART_COSTS: u8 = 3;
pub(crate) const LISTS: usize = 4;

/// Where each list ends (its position past the last element): what is kept of it, `lens`, after
/// what was forgotten, `offsets`.
fn ends(lens: [usize; LISTS], offsets: [u32; LISTS]) -> [usize; LISTS] {
    let mut out = lens;
    for (n, o) in out.iter_mut().zip(offsets) {
        *n += o as usize;
    }
    out
}

impl Lists {
    /// Moves the lists out of `job` (cheap: no element is copied).
    pub(crate) fn take(job: &mut Job) -> Self {
        let mut l = Self {
            resizes: std::mem::take(&mut job.resizes),
            ..Self::default()
        };
        match &mut job.work {
            Work::Iterative(w) => l.reports = std::mem::take(&mut w.reports),
            Work::Continuous(w) => {
                l.segments = std::mem::take(&mut w.segments);
                l.restart_costs = std::mem::take(&mut w.restart_costs);
            }
        }
        l
    }

    /// Moves the lists back into `job`.
    pub(crate) fn put(self, job: &mut Job) {
        job.resizes = self.resizes;
        match &mut job.work {
            Work::Iterative(w) => w.reports = self.reports,
            Work::Continuous(w) => {
                w.segments = self.segments;
                w.restart_costs = self.restart_costs;
            }
        }
    }

    /// The lengths of `job`'s lists.
    fn lens_of(job: &Job) -> [usize; LISTS] {
        let (reports, segments, costs) = match &job.work {
            Work::Iterative(w) => (w.reports.len(), 0, 0),
            Work::Continuous(w) => (0, w.segments.len(), w.restart_costs.len()),
        };
        [reports, job.resizes.len(), segments, costs]
    }

    fn lens(&self) -> [usize; LISTS] {
        [
            self.reports.len(),
            self.resizes.len(),
            self.segments.len(),
            self.restart_costs.len(),
        ]
    }

    /// Where each list ends, its first element at position `offsets` ([`ends`]).
    fn ends(&self, offsets: [u32; LISTS]) -> [usize; LISTS] {
        ends(self.lens(), offsets)
    }

    /// The elements from position `from` on, as rows; the first kept element of each list is at
    /// position `offsets`.
    fn items(&self, from: [usize; LISTS], offsets: [u32; LISTS]) -> Vec<Item> {
        fn rows<T: Serialize>(out: &mut Vec<Item>, list: u8, v: &[T], from: usize, offset: u32) {
            let skip = from.saturating_sub(offset as usize);
            for (i, x) in v.iter().enumerate().skip(skip) {
                out.push(Item {
                    list,
                    idx: u32::try_from(i).unwrap_or(u32::MAX).saturating_add(offset),
                    body: serde_json::to_string(x).unwrap_or_default(),
                });
            }
        }
        let mut out = Vec::new();
        rows(&mut out, REPORTS, &self.reports, from[0], offsets[0]);
        rows(&mut out, RESIZES, &self.resizes, from[1], offsets[1]);
        rows(&mut out, SEGMENTS, &self.segments, from[2], offsets[2]);
        rows(
            &mut out,
            RESTART_COSTS,
            &self.restart_costs,
            from[3],
            offsets[3],
        );
        out
    }

    /// The lists from rows (ordered by list, then position), each list's first kept element at
    /// position `offsets`. `Ok((lists, whole))`: `whole` is false when positions are missing (a
    /// write lost in a failure) or left over below `offsets`, and the job must be written whole
    /// again.
    pub(crate) fn from_items(
        items: &[Item],
        offsets: [u32; LISTS],
    ) -> Result<(Self, bool), String> {
        fn parse<T: serde::de::DeserializeOwned>(it: &Item) -> Result<T, String> {
            serde_json::from_str(&it.body).map_err(|e| format!("item {}/{}: {e}", it.list, it.idx))
        }
        let mut l = Self::default();
        let mut whole = true;
        for it in items {
            let expected = l.ends(offsets).get(usize::from(it.list)).copied();
            if expected.is_some_and(|_| it.idx < offsets[usize::from(it.list)]) {
                // Forgotten, and still stored: not kept, written again without it.
                whole = false;
                continue;
            }
            if expected != Some(it.idx as usize) {
                whole = false;
            }
            match it.list {
                REPORTS => l.reports.push(parse(it)?),
                RESIZES => l.resizes.push(parse(it)?),
                SEGMENTS => l.segments.push(parse(it)?),
                RESTART_COSTS => l.restart_costs.push(parse(it)?),
                other => return Err(format!("unknown list {other}")),
            }
        }
        Ok((l, whole))
    }
}

/// What is known to be in the database of a job's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Saved {
    /// The store's failure count when the last write of the job was queued.
    generation: u64,
    /// The lists' lengths then.
    lens: [usize; LISTS],
}

/// A job's row as stored.
#[derive(Serialize)]
struct RowOut<'a> {
    uuid: &'a str,
    job: &'a Job,
    meta: &'a JobMeta,
    summary: &'a Summary,
}

/// A job's row as read (a schema-1 row is a whole `PersistedJob`, lists in it, no summary).
#[derive(Deserialize)]
pub(crate) struct RowIn {
    pub(crate) uuid: String,
    pub(crate) job: Job,
    pub(crate) meta: JobMeta,
    #[serde(default)]
    pub(crate) summary: Option<Summary>,
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

impl From<UpdateTask> for HeldReport {
    fn from(u: UpdateTask) -> Self {
        Self::Iteration(u)
    }
}

impl From<InitMarathonApp> for HeldReport {
    fn from(m: InitMarathonApp) -> Self {
        Self::Started(m)
    }
}

impl From<EndMarathonApp> for HeldReport {
    fn from(e: EndMarathonApp) -> Self {
        Self::Ended(e)
    }
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

    use qos_core::job::Observation;
    use qos_core::spec::{Deadline, QosSpec};
    use qos_core::wire::{Heartbeat, NodeRegistration};

    use super::*;
    use crate::config::StorageConfig;
    use crate::store::Store;

    fn entry(uuid: &str, job: Job, store: &Store) -> JobEntry {
        JobEntry {
            p: PersistedJob {
                uuid: uuid.into(),
                job,
                meta: JobMeta {
                    report_token: "token".into(),
                    want: Some(Cpus::from_milli(1300)),
                    ..JobMeta::default()
                },
            },
            rt: Runtime {
                store_failures: Arc::clone(store.generation()),
                ..Runtime::default()
            },
        }
    }

    /// A Chronos job `c` of `iterations` and a Marathon job `m` started at 0, both due
    /// `deadline` seconds after 0.
    fn two_jobs(store: &Store, iterations: u32, deadline: f64) -> (JobEntry, JobEntry) {
        let qos = QosSpec {
            duration: 10.0,
            deadline: Deadline::Relative(deadline),
            desv_deadline: 0.2,
        }
        .resolve(0.0);
        let c = entry("c", Job::iterative("c", qos, iterations, Cpus::ONE), store);
        let mut m = entry("m", Job::continuous("m", qos, Cpus::ONE), store);
        m.p.job
            .observe(Observation::Started {
                at: 0.0,
                restored: None,
            })
            .unwrap();
        (c, m)
    }

    /// An iteration that ran from `t` for 9 s on `hostname`.
    fn iteration(t: f64, hostname: String) -> Observation {
        Observation::Iteration(IterationReport {
            started_at: t,
            finished_at: t + 9.0,
            hostname,
            cpus: Cpus::ZERO,
            cpus_used: None,
        })
    }

    /// `e` resized to `cpus` at `t` by a restart, restored 3 s later.
    fn restarted(e: &mut JobEntry, t: f64, cpus: Cpus) {
        e.p.job
            .observe(Observation::Resized {
                at: t,
                cpus,
                restart: true,
            })
            .unwrap();
        e.p.job
            .observe(Observation::Started {
                at: t + 3.0,
                restored: Some(true),
            })
            .unwrap();
    }

    async fn read_back(store: &Store) -> Vec<(PersistedJob, Option<Summary>, bool)> {
        let mut out: Vec<_> = store
            .load()
            .await
            .unwrap()
            .jobs
            .iter()
            .map(|j| decode_job(&j.body, &j.items, j.archived).unwrap())
            .collect();
        out.sort_by(|a, b| a.0.uuid.cmp(&b.0.uuid));
        out
    }

    /// A long job's lists are bounded (`storage.items_max_per_job`), in memory and in the
    /// database: the oldest go in batches, reports forgotten still count as done, a lost write
    /// is rewritten whole from the first element kept, and what is read back is what is kept.
    #[tokio::test]
    async fn a_long_job_keeps_its_newest_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_inline(&dir.path().join("s.db"), StorageConfig::default()).unwrap();
        let max = 16;
        let (mut c, mut m) = two_jobs(&store, 500, 1e7);
        c.rt.items_max = max;
        m.rt.items_max = max;
        for k in 0..500u32 {
            let t = f64::from(k) * 10.0;
            c.p.job.observe(iteration(t, "agent".into())).unwrap();
            // Resized by a restart every step: a resize, a segment and a restart cost each.
            restarted(&mut m, t, Cpus::from_milli(1000 + 100 * (k % 2 + 1)));
            m.p.job
                .observe(Observation::Progress {
                    at: t + 5.0,
                    fraction: f64::from(k) / 1000.0,
                })
                .unwrap();
            if k == 300 {
                drop(c.op(t));
                drop(m.op(t));
                store.generation().fetch_add(1, Ordering::AcqRel);
                continue;
            }
            store.submit(vec![c.op(t), m.op(t)]).wait().await.unwrap();
            let back = read_back(&store).await;
            assert_eq!((&back[0].0, back[0].2), (&c.p, true), "step {k}");
            assert_eq!((&back[1].0, back[1].2), (&m.p, true), "step {k}");
            for (e, lists) in [(&c, 1), (&m, 3)] {
                let rows = store.items(&e.p.uuid, usize::MAX).await.unwrap().len();
                assert!(rows <= lists * (max + max / 8), "{rows} rows at step {k}");
                let kept = Lists::lens_of(&e.p.job);
                assert!(kept.iter().all(|&n| n <= max + max / 8), "{kept:?}");
            }
            assert_eq!(c.p.job.remaining_iterations(), 500 - k - 1, "step {k}");
        }
        assert!(matches!(
            c.p.job.phase,
            qos_core::job::Phase::Completed { .. }
        ));
        assert!(c.p.meta.items_from[0] > 400, "{:?}", c.p.meta.items_from);
        assert!(m.p.meta.items_from.iter().skip(1).all(|&n| n > 400));
    }

    /// A Chronos and a Marathon job, written after every observation (rows appended, the last
    /// segment rewritten, a shrinking list and a lost write rewritten whole), read back equal;
    /// archived, their lists come back from the database.
    #[tokio::test]
    async fn a_job_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_inline(&dir.path().join("s.db"), StorageConfig::default()).unwrap();
        let (mut c, mut m) = two_jobs(&store, 60, 1e5);
        for k in 0..60u32 {
            let t = f64::from(k) * 10.0;
            c.p.job
                .observe(iteration(t, format!("agent{}", k % 3)))
                .unwrap();
            let _ = m.p.job.observe(Observation::CpuSample {
                at: t,
                source: format!("c{}", k / 20),
                cumulative_secs: f64::from(k % 20) * 5.0,
            });
            if k == 30 {
                // The application starts reporting progress: the segments are rebuilt.
                m.p.job
                    .observe(Observation::Progress {
                        at: t,
                        fraction: 0.3,
                    })
                    .unwrap();
            }
            if k % 20 == 19 {
                let cpus = c.p.job.cpus + Cpus::from_milli(100);
                c.p.job
                    .observe(Observation::Resized {
                        at: t,
                        cpus,
                        restart: true,
                    })
                    .unwrap();
                let cpus = m.p.job.cpus + Cpus::from_milli(100);
                restarted(&mut m, t, cpus);
            }
            if k == 41 {
                // A write that never reached the disk (its transaction failed): the next is
                // whole.
                drop(c.op(t));
                store.generation().fetch_add(1, Ordering::AcqRel);
                assert!(c.needs_write() && m.needs_write());
                continue;
            }
            store.submit(vec![c.op(t), m.op(t)]).wait().await.unwrap();
            let back = read_back(&store).await;
            assert_eq!(back.len(), 2);
            assert_eq!((&back[0].0, back[0].2), (&c.p, true), "step {k}");
            assert_eq!((&back[1].0, back[1].2), (&m.p, true), "step {k}");
        }
        // The lists really are rows: the Chronos job's row does not grow with its reports.
        let Op::UpsertJob { body, items, .. } = c.op(1e4) else {
            unreachable!()
        };
        assert!(items.len() <= 1, "{} items", items.len());
        assert!(body.len() < 2048, "a {} byte row", body.len());
        // Finished and archived: the row keeps the summary, the lists stay on disk.
        c.p.job
            .observe(Observation::Cancelled { at: 700.0 })
            .unwrap();
        c.p.meta.cleaned_up = true;
        let summary = Summary::of(&c.p.job);
        let before = c.p.clone();
        store.submit(vec![c.op(700.0)]).wait().await.unwrap();
        c.archive();
        assert_eq!(c.rt.archived.as_ref(), Some(&summary));
        let Work::Iterative(w) = &c.p.job.work else {
            unreachable!()
        };
        assert!(w.reports.is_empty());
        store.submit(vec![c.op(701.0)]).wait().await.unwrap();
        let back = read_back(&store).await;
        assert_eq!(back[0].1.as_ref(), Some(&summary));
        let items = store.items("c", usize::MAX).await.unwrap();
        assert_eq!(c.whole(Some(&items)).unwrap(), before);
    }

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
