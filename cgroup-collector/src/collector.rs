//! One collection pass: discover → map → read → [`Snapshot`].
//!
//! The [`Collector`] owns the per-container state that must survive between passes: the job
//! mapping (looked up once per container, retried every [`MAP_RETRY_PASSES`] passes while
//! unknown) and the counter-reset tracker. A container that vanishes is dropped with its open
//! files at once; only its reset tracker is remembered ([`Departed`], bounded in time and
//! number), so one restarted under the same id keeps monotonic figures.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use qos_core::wire::{CpuSample, MAX_NAME_BYTES};
use serde::Serialize;

use crate::cgroup::CgroupDirs;
use crate::cgroup::CgroupReader;
use crate::cgroup_job::{map_cgroup, meta_path};
use crate::counters::{Counters, Departed, Trail};
use crate::discovery::{Discovered, DiscoveryConfig, Roots, Runtime, candidates};
use crate::docker_api::{ContainerRuntime, RuntimeError};
use crate::node::{NodeMetrics, NodeSampler};
use crate::reader::FdBudget;

/// Passes between two mapping attempts for a container whose job is not known yet.
pub(crate) const MAP_RETRY_PASSES: u64 = 10;

/// What a [`Collector`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Controller hierarchies.
    pub roots: Roots,
    /// Testbed directory under each root (`qos-testbed`).
    pub testbed_prefix: String,
    /// Where the testbed writes `<agent>/<task>/qos.json`.
    pub testbed_meta_dir: PathBuf,
    /// `/proc` (or a fixture).
    pub proc_root: PathBuf,
    /// Cgroups named by the user, read in addition to (or, without discovery, instead of) the
    /// discovered ones.
    pub named: Vec<PathBuf>,
    /// Whether to scan the known layouts.
    pub discover: bool,
    /// Clock ticks per second of `/proc` times (USER_HZ, `getconf CLK_TCK`).
    pub clk_tck: u64,
}

/// One container's reading, as printed by `--once` and served at `/snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSample {
    /// Container id.
    pub id: String,
    /// Display name (Docker name, Mesos task id, testbed task name), if known.
    pub name: Option<String>,
    /// What runs the container (Docker, Mesos, the testbed, or a named cgroup).
    pub runtime: Runtime,
    /// Cgroup path relative to the hierarchy root.
    pub cgroup: String,
    /// Testbed agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Where the files are (and the cgroup version); `None` for the Mesos agent source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirs: Option<Arc<CgroupDirs>>,
    /// Job UUID, if mapped.
    pub uuid: Option<String>,
    /// Docker image, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When the figures were measured, epoch seconds, if not at the pass's time (the Mesos
    /// agent's own `timestamp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<f64>,
    /// Cumulative user CPU seconds (monotonic across resets).
    pub user_secs: f64,
    /// Cumulative system CPU seconds.
    pub system_secs: f64,
    /// Cumulative total CPU seconds.
    pub total_secs: f64,
    /// Quota, CPUs (`None` = unlimited or no cpu controller).
    pub quota_cpus: Option<f64>,
    /// Raw quota, µs.
    pub quota_us: Option<u64>,
    /// CFS period, µs.
    pub period_us: Option<u64>,
    /// CFS periods (cumulative).
    pub nr_periods: Option<u64>,
    /// Throttled periods (cumulative).
    pub nr_throttled: Option<u64>,
    /// Throttled seconds (cumulative).
    pub throttled_secs: Option<f64>,
    /// Counter resets seen (container restarts under the same id).
    pub resets: u32,
}

/// `s` cut at a character boundary to at most `max` bytes (`s` is longer than `max`).
fn cut(s: &str, max: usize) -> &str {
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A display name within the supervisor's bound: cut, with an ellipsis, when longer.
fn wire_name(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        name.to_owned()
    } else {
        format!("{}…", cut(name, MAX_NAME_BYTES - '…'.len_utf8()))
    }
}

/// A container id within the supervisor's bound: when longer, cut and followed by a hash of
/// the whole id, so two long ids that differ only at the end (two instances of one Marathon
/// app) stay two containers.
fn wire_id(id: &str) -> String {
    if id.len() <= MAX_NAME_BYTES {
        return id.to_owned();
    }
    // FNV-1a, 64 bits: stable across runs and versions (a std hasher is not).
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let tail = format!("~{hash:016x}");
    format!("{}{tail}", cut(id, MAX_NAME_BYTES - tail.len()))
}

impl ContainerSample {
    /// The wire form pushed to the supervisor. Its id and name are kept within the supervisor's
    /// bound ([`MAX_NAME_BYTES`]), which refuses a whole batch with one field over it.
    #[must_use]
    pub fn to_wire(&self, at: f64) -> CpuSample {
        CpuSample {
            uuid: self.uuid.clone(),
            container_id: wire_id(&self.id),
            name: self.name.as_deref().map(wire_name),
            at: self.at.unwrap_or(at),
            user_secs: self.user_secs,
            system_secs: self.system_secs,
            total_secs: self.total_secs,
            quota_cpus: self.quota_cpus,
            throttled_secs: self.throttled_secs,
        }
    }
}

/// A cgroup that could not be read in this pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadFailure {
    /// Cgroup path.
    pub cgroup: String,
    /// What went wrong.
    pub error: String,
}

/// Everything one pass saw.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Snapshot {
    /// When, epoch seconds.
    pub at: f64,
    /// The node's own metrics at the same moment.
    pub node: NodeMetrics,
    /// Every container read.
    pub containers: Vec<ContainerSample>,
    /// Cgroups that failed.
    pub errors: Vec<ReadFailure>,
}

impl Snapshot {
    /// Containers mapped to `uuid`.
    pub fn by_uuid<'a>(&'a self, uuid: &'a str) -> impl Iterator<Item = &'a ContainerSample> + 'a {
        self.containers
            .iter()
            .filter(move |c| c.uuid.as_deref() == Some(uuid))
    }

    /// CPUs allocated to job containers (sum of their quotas).
    #[must_use]
    pub fn allocated_cpus(&self) -> f64 {
        self.containers
            .iter()
            .filter(|c| c.uuid.is_some())
            .filter_map(|c| c.quota_cpus)
            .sum()
    }

    /// The same by job UUID (what each job's containers hold).
    #[must_use]
    pub fn allocated_by_job(&self) -> std::collections::BTreeMap<String, f64> {
        let mut by = std::collections::BTreeMap::new();
        for c in &self.containers {
            if let (Some(u), Some(q)) = (&c.uuid, c.quota_cpus) {
                *by.entry(u.clone()).or_insert(0.0) += q;
            }
        }
        by
    }
}

#[derive(Debug)]
struct Tracked {
    found: Discovered,
    /// `found.dirs`, shared with every snapshot (not copied each pass).
    dirs: Arc<CgroupDirs>,
    uuid: Option<String>,
    name: Option<String>,
    image: Option<String>,
    mapped: bool,
    next_map_try: u64,
    trail: Trail,
    reader: CgroupReader,
    /// An unusable metadata file was logged.
    meta_warned: bool,
}

impl AsMut<Trail> for Tracked {
    fn as_mut(&mut self) -> &mut Trail {
        &mut self.trail
    }
}

/// The collection state; see the module docs.
#[derive(Debug)]
pub struct Collector {
    cfg: CollectorConfig,
    discovery: DiscoveryConfig,
    runtime: Option<Arc<dyn ContainerRuntime>>,
    node: NodeSampler,
    /// By cgroup path, the containers of the last scan: a pass reads them in this order, which
    /// is the snapshot's.
    tracked: BTreeMap<String, Tracked>,
    /// The reset trackers of containers that vanished.
    departed: Departed,
    pass: u64,
    resets_total: u64,
    budget: FdBudget,
    buf: Vec<u8>,
    /// After a Docker API failure, no lookups until then (a hung daemon must not stall passes).
    docker_retry_at: Option<tokio::time::Instant>,
    /// The current Docker outage was logged (once per outage, not every retry).
    docker_warned: bool,
}

/// Pause of Docker lookups after the API failed.
pub(crate) const DOCKER_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Descriptors kept free for sockets and ordinary reads when sizing the [`FdBudget`].
pub(crate) const RESERVED_FDS: u64 = 256;

impl Collector {
    /// A collector; `runtime` is the Docker API used to map Docker containers (none: Docker
    /// containers are measured but not mapped).
    #[must_use]
    pub fn new(cfg: CollectorConfig, runtime: Option<Arc<dyn ContainerRuntime>>) -> Self {
        let budget = FdBudget::from_rlimit(RESERVED_FDS);
        Self::with_budget(cfg, runtime, budget)
    }

    /// Same as [`Collector::new`] with an explicit descriptor budget ([`Collector::new`] raises
    /// the soft `RLIMIT_NOFILE` to the hard limit and keeps [`RESERVED_FDS`] free).
    #[must_use]
    pub fn with_budget(
        cfg: CollectorConfig,
        runtime: Option<Arc<dyn ContainerRuntime>>,
        budget: FdBudget,
    ) -> Self {
        let discovery = DiscoveryConfig {
            roots: cfg.roots.clone(),
            testbed_prefix: cfg.testbed_prefix.clone(),
        };
        let node = NodeSampler::new(cfg.proc_root.clone(), cfg.clk_tck);
        Self {
            cfg,
            discovery,
            runtime,
            node,
            tracked: BTreeMap::new(),
            departed: Departed::default(),
            pass: 0,
            resets_total: 0,
            budget,
            buf: Vec::with_capacity(4096),
            docker_retry_at: None,
            docker_warned: false,
        }
    }

    /// The node's online CPUs.
    #[must_use]
    pub fn cpu_count(&self) -> u32 {
        self.node.cpu_count()
    }

    /// Counter resets seen since start.
    #[must_use]
    pub fn resets_total(&self) -> u64 {
        self.resets_total
    }

    /// Named cgroups that do not resolve to a cgroup directory.
    #[must_use]
    pub fn unresolved_named(&self) -> Vec<PathBuf> {
        self.cfg
            .named
            .iter()
            .filter(|p| self.cfg.roots.resolve_named(p).is_none())
            .cloned()
            .collect()
    }

    /// Step 1: find containers (sync: a few `readdir`s, plus `stat`s for new paths only).
    pub fn scan(&mut self) {
        self.pass += 1;
        let pass = self.pass;
        // Found in this pass already: tracked ones are marked `last_seen`, new or changed ones
        // are in `fresh` (a path may be listed in v1 and v2; the first wins).
        let mut fresh: Vec<Discovered> = Vec::new();
        let mut fresh_keys: HashSet<String> = HashSet::new();
        let seen = |tracked: &BTreeMap<String, Tracked>, fresh: &HashSet<String>, rel: &str| {
            fresh.contains(rel) || tracked.get(rel).is_some_and(|t| t.trail.last_seen == pass)
        };
        if self.cfg.discover {
            for c in candidates(&self.discovery) {
                if seen(&self.tracked, &fresh_keys, &c.rel) {
                    continue;
                }
                if let Some(t) = self.tracked.get_mut(&c.rel) {
                    // A v1 cgroup found before its `cpu` twin existed is looked at again now
                    // and then, so its limit is not missed for good.
                    let recheck = matches!(t.found.dirs, CgroupDirs::V1 { cpu: None, .. })
                        && pass % MAP_RETRY_PASSES == 0;
                    if (t.found.dirs.version() == 2) == c.v2
                        && t.found.runtime == c.runtime
                        && !recheck
                    {
                        t.trail.last_seen = pass;
                        continue;
                    }
                }
                if let Some(d) = c.resolve(&self.cfg.roots) {
                    fresh_keys.insert(d.cgroup.clone());
                    fresh.push(d);
                }
            }
        }
        for p in &self.cfg.named {
            if let Some((cgroup, dirs)) = self.cfg.roots.resolve_named(p) {
                if !seen(&self.tracked, &fresh_keys, &cgroup) {
                    fresh_keys.insert(cgroup.clone());
                    fresh.push(Discovered {
                        id: cgroup.clone(),
                        runtime: Runtime::Named,
                        cgroup,
                        agent: None,
                        dirs,
                    });
                }
            }
        }
        for d in fresh {
            match self.tracked.get_mut(&d.cgroup) {
                Some(t) => {
                    if t.found.dirs != d.dirs {
                        t.reader = CgroupReader::new(&d.dirs, &self.budget);
                        t.dirs = Arc::new(d.dirs.clone());
                    }
                    t.found = d;
                    t.trail.last_seen = pass;
                }
                None => {
                    let reader = CgroupReader::new(&d.dirs, &self.budget);
                    let trail = self.departed.arrive(&d.cgroup, pass);
                    self.tracked.insert(
                        d.cgroup.clone(),
                        Tracked {
                            dirs: Arc::new(d.dirs.clone()),
                            found: d,
                            uuid: None,
                            name: None,
                            image: None,
                            mapped: false,
                            next_map_try: 0,
                            trail,
                            reader,
                            meta_warned: false,
                        },
                    );
                }
            }
        }
        // Vanished: its files are closed (not pinning the removed cgroup) and only its reset
        // tracker is kept.
        let tracked = &mut self.tracked;
        self.departed.leave(pass, |keep| tracked.retain(keep));
    }

    /// Step 2: map new containers to jobs (Docker through its API, others from files).
    pub async fn resolve(&mut self) {
        let pass = self.pass;
        let mut docker_down: Option<RuntimeError> = None;
        let docker_paused = self
            .docker_retry_at
            .is_some_and(|t| tokio::time::Instant::now() < t);
        for t in self.tracked.values_mut() {
            if t.mapped || t.trail.last_seen != pass || t.next_map_try > pass {
                continue;
            }
            t.next_map_try = pass + MAP_RETRY_PASSES;
            match t.found.runtime {
                Runtime::Docker => {
                    let Some(rt) = &self.runtime else { continue };
                    if docker_down.is_some() || docker_paused {
                        t.next_map_try = pass; // try again once the API is back
                        continue;
                    }
                    match rt.inspect(&t.found.id).await {
                        Ok(Some(info)) => {
                            self.docker_warned = false;
                            t.uuid = info.job_uuid();
                            t.name = Some(info.name);
                            t.image = info.image;
                            t.mapped = true;
                        }
                        Ok(None) => self.docker_warned = false,
                        Err(e) => {
                            docker_down = Some(e);
                            t.next_map_try = pass;
                        }
                    }
                }
                Runtime::Mesos | Runtime::Testbed | Runtime::Named | Runtime::MesosAgent => {
                    let meta = t
                        .found
                        .agent
                        .as_ref()
                        .map(|agent| meta_path(&self.cfg.testbed_meta_dir, agent, &t.found.id));
                    let m = map_cgroup(&t.found.dirs, meta.as_deref(), &self.cfg.proc_root);
                    if let Some(why) = &m.problem {
                        // Once per container: the mapping is retried every few passes.
                        if !std::mem::replace(&mut t.meta_warned, true) {
                            tracing::warn!(container = %t.found.id, "job metadata unusable, the container is mapped from its environment if it can be: {why}");
                        }
                    }
                    if let Some(name) = m.name {
                        // A name from a file or an environment can be of any length: it is a
                        // label of every container series, so it keeps the supervisor's bound.
                        t.name = Some(wire_name(&name));
                    }
                    if m.uuid.is_some() {
                        t.uuid = m.uuid;
                        t.mapped = true;
                    }
                }
            }
        }
        if let Some(e) = docker_down {
            self.docker_retry_at = Some(tokio::time::Instant::now() + DOCKER_RETRY);
            if std::mem::replace(&mut self.docker_warned, true) {
                tracing::debug!(cause = %e, "docker API still unavailable");
            } else {
                tracing::warn!(cause = %e, "docker API unavailable; docker containers stay unmapped for now");
            }
        }
    }

    /// Step 3: read every container seen in this pass, and the node.
    pub fn read(&mut self, now: f64) -> Snapshot {
        let pass = self.pass;
        let mut containers = Vec::with_capacity(self.tracked.len());
        let mut errors = Vec::new();
        // In cgroup path order (the map's), as the snapshot lists them.
        for t in self
            .tracked
            .values_mut()
            .filter(|t| t.trail.last_seen == pass)
        {
            let stats = match t.reader.read(self.cfg.clk_tck, &mut self.buf) {
                Ok(s) => s,
                Err(e) if e.is_not_found() => continue, // exited since the scan
                Err(e) => {
                    errors.push(ReadFailure {
                        cgroup: t.found.cgroup.clone(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let th = stats.throttling;
            let (c, reset) = t.trail.counters.observe(Counters {
                total_ns: stats.usage.total_ns,
                user_ns: stats.usage.user_ns,
                system_ns: stats.usage.system_ns,
                throttled_ns: th.map_or(0, |t| t.throttled_ns),
                nr_periods: th.map_or(0, |t| t.nr_periods),
                nr_throttled: th.map_or(0, |t| t.nr_throttled),
            });
            if reset {
                self.resets_total += 1;
                tracing::info!(container = %t.found.id, "counter reset (container restarted); figures continue from the previous total");
            }
            let secs = |ns: u64| ns as f64 / 1e9;
            containers.push(ContainerSample {
                id: t.found.id.clone(),
                name: t.name.clone(),
                runtime: t.found.runtime,
                cgroup: t.found.cgroup.clone(),
                agent: t.found.agent.clone(),
                dirs: Some(Arc::clone(&t.dirs)),
                uuid: t.uuid.clone(),
                image: t.image.clone(),
                at: None,
                user_secs: secs(c.user_ns),
                system_secs: secs(c.system_ns),
                total_secs: secs(c.total_ns),
                quota_cpus: stats.limit.and_then(|l| l.cpus()),
                quota_us: stats.limit.and_then(|l| l.quota_us),
                period_us: stats.limit.map(|l| l.period_us),
                nr_periods: th.map(|_| c.nr_periods),
                nr_throttled: th.map(|_| c.nr_throttled),
                throttled_secs: th.map(|_| secs(c.throttled_ns)),
                resets: t.trail.counters.resets(),
            });
        }
        Snapshot {
            at: now,
            node: self.node.sample(),
            containers,
            errors,
        }
    }

    /// A whole pass.
    pub async fn collect(&mut self, now: f64) -> Snapshot {
        self.scan();
        self.resolve().await;
        self.read(now)
    }
}

/// Epoch seconds now.
#[must_use]
pub fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::docker_api::ContainerInfo;

    #[derive(Debug, Default)]
    struct FakeDocker {
        down: Mutex<bool>,
        calls: Mutex<u32>,
    }

    #[async_trait]
    impl ContainerRuntime for FakeDocker {
        async fn inspect(&self, _id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
            *self.calls.lock().unwrap() += 1;
            if *self.down.lock().unwrap() {
                return Err(RuntimeError::Unreachable {
                    host: "fake".into(),
                    message: "down".into(),
                });
            }
            Ok(Some(ContainerInfo {
                name: "0123456789abcdef0123456789abcdef".into(),
                ..Default::default()
            }))
        }
        async fn set_cpus(&self, _id: &str, _cpus: f64) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    fn v1(root: &Path, rel: &str, with_cpu: bool) {
        let a = root.join("cpuacct").join(rel);
        fs::create_dir_all(&a).unwrap();
        fs::write(a.join("cpuacct.usage"), "1000\n").unwrap();
        fs::write(a.join("cpuacct.stat"), "user 0\nsystem 0\n").unwrap();
        fs::create_dir_all(root.join("cpu")).unwrap();
        if with_cpu {
            let c = root.join("cpu").join(rel);
            fs::create_dir_all(&c).unwrap();
            fs::write(c.join("cpu.cfs_quota_us"), "50000\n").unwrap();
            fs::write(c.join("cpu.cfs_period_us"), "100000\n").unwrap();
        }
    }

    fn cfg(root: &Path) -> CollectorConfig {
        CollectorConfig {
            roots: Roots::detect(root),
            testbed_prefix: "qos-testbed".into(),
            testbed_meta_dir: root.join("meta"),
            proc_root: root.join("proc"),
            named: Vec::new(),
            discover: true,
            clk_tck: 100,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn docker_outage_pauses_lookups_then_maps() {
        let tmp = tempfile::tempdir().unwrap();
        let id = "f".repeat(64);
        v1(tmp.path(), &format!("docker/{id}"), true);
        v1(tmp.path(), &format!("docker/{}", "e".repeat(64)), true);
        let fake = Arc::new(FakeDocker {
            down: Mutex::new(true),
            ..FakeDocker::default()
        });
        let mut c = Collector::with_budget(cfg(tmp.path()), Some(fake.clone()), FdBudget::new(64));
        let s = c.collect(1.0).await;
        assert_eq!(s.containers.len(), 2);
        assert!(s.containers.iter().all(|c| c.uuid.is_none()));
        assert_eq!(
            *fake.calls.lock().unwrap(),
            1,
            "one failed call, not one per container"
        );
        for _ in 0..5 {
            c.collect(2.0).await;
        }
        assert_eq!(
            *fake.calls.lock().unwrap(),
            1,
            "paused while the API is down"
        );
        *fake.down.lock().unwrap() = false;
        tokio::time::advance(DOCKER_RETRY).await;
        let s = c.collect(3.0).await;
        assert!(
            s.containers
                .iter()
                .all(|c| c.uuid.as_deref() == Some("0123456789abcdef0123456789abcdef"))
        );
        assert_eq!(s.allocated_cpus(), 1.0);
        assert_eq!(
            s.allocated_by_job().into_iter().collect::<Vec<_>>(),
            [("0123456789abcdef0123456789abcdef".to_owned(), 1.0)]
        );
    }

    #[tokio::test]
    async fn a_cpu_twin_created_late_is_picked_up() {
        let tmp = tempfile::tempdir().unwrap();
        v1(tmp.path(), "qos-testbed/a/t", false);
        let mut c = Collector::with_budget(cfg(tmp.path()), None, FdBudget::new(64));
        let s = c.collect(1.0).await;
        assert_eq!(s.containers[0].quota_cpus, None);
        v1(tmp.path(), "qos-testbed/a/t", true);
        let mut quota = None;
        for _ in 0..MAP_RETRY_PASSES {
            quota = c.collect(2.0).await.containers[0].quota_cpus;
        }
        assert_eq!(quota, Some(0.5));
    }

    #[tokio::test]
    async fn containers_that_come_and_go_leave_bounded_state() {
        let tmp = tempfile::tempdir().unwrap();
        // One container restarts under the same path between churn batches: its figures
        // continue from the previous total (the reset is remembered across its absence).
        let kept = "qos-testbed/a/kept";
        v1(tmp.path(), kept, true);
        fs::write(
            tmp.path().join("cpuacct").join(kept).join("cpuacct.usage"),
            "5000000000\n",
        )
        .unwrap();
        let mut c = Collector::with_budget(cfg(tmp.path()), None, FdBudget::new(64));
        c.departed = Departed::with_cap(300);
        let s0 = c.collect(0.0).await;
        assert_eq!(s0.containers.len(), 1, "{s0:?}");
        assert_eq!(s0.containers[0].total_secs, 5.0);
        fs::remove_dir_all(tmp.path().join("cpuacct").join(kept)).unwrap();
        // Thousands of short-lived containers, each seen in one pass and then gone.
        for batch in 0..12 {
            let rels: Vec<String> = (0..100)
                .map(|i| format!("qos-testbed/a/t{batch}-{i}"))
                .collect();
            for rel in &rels {
                v1(tmp.path(), rel, false);
            }
            let s = c.collect(f64::from(batch)).await;
            assert_eq!(s.containers.len(), if batch == 0 { 100 } else { 101 });
            for rel in &rels {
                fs::remove_dir_all(tmp.path().join("cpuacct").join(rel)).unwrap();
            }
            if batch == 0 {
                v1(tmp.path(), kept, true); // back, its counter from zero again
            }
        }
        let s = c.collect(20.0).await;
        assert_eq!(s.errors, []);
        let back = &s.containers[0];
        assert_eq!(
            (back.cgroup.as_str(), back.resets),
            ("/qos-testbed/a/kept", 1)
        );
        assert!(
            (back.total_secs - 5.000_001).abs() < 1e-9,
            "{}",
            back.total_secs
        );
        assert_eq!(s.containers.len(), 1, "gone containers leave the snapshot");
        assert_eq!(c.tracked.len(), 1, "only what is there is tracked");
        assert_eq!(
            c.departed.len(),
            300,
            "1,200 came and went, 300 are remembered"
        );
    }

    #[test]
    fn samples_fit_the_supervisors_bounds_whatever_the_names() {
        // A Marathon task id of a long app id (the launcher takes app ids up to 255 bytes; the
        // task id adds `.instance-<uuid>._app.1`), as an executor id or a display name: the
        // supervisor refuses a whole batch with one field over its bound, so every sample of the
        // node would be lost.
        let app = format!("/{}", "å".repeat(140));
        let task = |n: u32| {
            format!(
                "{}.instance-0b1e2f3a-1111-2222-3333-44445555666{n}._app.1",
                &app[1..]
            )
        };
        let sample = |id: String| ContainerSample {
            id: id.clone(),
            name: Some(id),
            runtime: Runtime::MesosAgent,
            cgroup: String::new(),
            agent: None,
            dirs: None,
            uuid: None,
            image: None,
            at: None,
            user_secs: 0.0,
            system_secs: 0.0,
            total_secs: 0.0,
            quota_cpus: None,
            quota_us: None,
            period_us: None,
            nr_periods: None,
            nr_throttled: None,
            throttled_secs: None,
            resets: 0,
        };
        let (a, b) = (sample(task(1)).to_wire(1.0), sample(task(2)).to_wire(1.0));
        let max = qos_core::wire::MAX_NAME_BYTES;
        for w in [&a, &b] {
            let name = w.name.as_deref().unwrap();
            assert!(w.container_id.len() <= max && name.len() <= max, "{w:?}");
            assert!(
                name.starts_with(&app[1..101]) && name.ends_with('…'),
                "{name}"
            );
        }
        assert_ne!(
            a.container_id, b.container_id,
            "two instances stay two containers"
        );
        let short = sample("web.1".into()).to_wire(1.0);
        assert_eq!(
            (short.container_id.as_str(), short.name.as_deref()),
            ("web.1", Some("web.1"))
        );
    }
}
