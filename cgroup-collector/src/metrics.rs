//! `/metrics`: the latest [`Snapshot`] encoded on each scrape with `prometheus-client`
//! (OpenMetrics text), so vanished containers disappear at once and a scrape costs no file reads.
//!
//! Container metrics use cAdvisor's names, units and labels (`name`, `id` = cgroup path, plus
//! `qos_uuid`, empty when the container is not a job); node metrics use node-exporter's names;
//! the agent's own health is under `qos_collector_*`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::collector::{ContainerSample, Snapshot};
use crate::node::{CPU_MODES, Filesystem, NetDev};

/// The latest snapshot, shared by the pass loop (writer), `/metrics`, `/snapshot`, `/resize`
/// and the heartbeat (readers).
pub(crate) type SharedSnapshot = Arc<RwLock<Arc<Snapshot>>>;

/// The agent's own counters.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Samples delivered to the supervisor.
    pub samples_pushed: AtomicU64,
    /// Samples dropped because the buffer was full (oldest first).
    pub samples_dropped: AtomicU64,
    /// Samples the supervisor rejected as invalid (not retried).
    pub samples_rejected: AtomicU64,
    /// Failed push attempts.
    pub push_failures: AtomicU64,
    /// Samples waiting in the buffer.
    pub samples_buffered: AtomicU64,
    /// Collection passes.
    pub passes: AtomicU64,
    /// Duration of the last pass, ns.
    pub last_pass_ns: AtomicU64,
    /// Counter resets detected.
    pub counter_resets: AtomicU64,
    /// Resizes applied.
    pub resizes_ok: AtomicU64,
    /// Resizes refused or failed.
    pub resizes_failed: AtomicU64,
    /// Heartbeats delivered.
    pub heartbeats: AtomicU64,
}

impl AgentStats {
    /// Add to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct SnapshotCollector {
    snapshot: SharedSnapshot,
    stats: Arc<AgentStats>,
}

/// Build the registry serving `snapshot` and `stats`.
#[must_use]
pub fn registry(snapshot: SharedSnapshot, stats: Arc<AgentStats>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(SnapshotCollector { snapshot, stats }));
    r
}

/// Encode the registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    // Sized like the previous answer (a megabyte with a thousand containers), so that the text
    // is not copied again at every doubling of its buffer.
    static LAST_LEN: AtomicU64 = AtomicU64::new(64 * 1024);
    let hint = usize::try_from(LAST_LEN.load(Ordering::Relaxed)).unwrap_or(64 * 1024);
    let mut out = String::with_capacity(hint + hint / 8);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    LAST_LEN.store(out.len() as u64, Ordering::Relaxed);
    Ok(out)
}

type Labels<'a> = [(&'static str, &'a str)];

/// A family's OpenMetrics type.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}
use Kind::{Counter, Gauge};

/// A family of metrics: its name, help, type, and its value for one `T` (none: no sample).
type Family<T> = (&'static str, &'static str, Kind, fn(&T) -> Option<f64>);

/// Container families, cAdvisor's names and units; labelled by [`lab`].
#[rustfmt::skip]
const CONTAINER: &[Family<ContainerSample>] = &[
    ("container_cpu_usage_seconds", "Cumulative CPU time consumed, seconds.", Counter, |c| Some(c.total_secs)),
    ("container_cpu_user_seconds", "Cumulative user CPU time consumed, seconds.", Counter, |c| Some(c.user_secs)),
    ("container_cpu_system_seconds", "Cumulative system CPU time consumed, seconds.", Counter, |c| Some(c.system_secs)),
    ("container_spec_cpu_quota", "CPU quota of the container, microseconds per period.", Gauge, |c| c.quota_us.map(|q| q as f64)),
    ("container_spec_cpu_period", "CPU period of the container, microseconds.", Gauge, |c| c.period_us.map(|p| p as f64)),
    ("container_cpu_cfs_periods", "Number of elapsed enforcement period intervals.", Counter, |c| c.nr_periods.map(|v| v as f64)),
    ("container_cpu_cfs_throttled_periods", "Number of throttled period intervals.", Counter, |c| c.nr_throttled.map(|v| v as f64)),
    ("container_cpu_cfs_throttled_seconds", "Total time duration the container has been throttled, seconds.", Counter, |c| c.throttled_secs),
];

/// Filesystem families, node-exporter's names; labelled by device, type and mount point.
#[rustfmt::skip]
const FILESYSTEM: &[Family<Filesystem>] = &[
    ("node_filesystem_size_bytes", "Filesystem size in bytes.", Gauge, |x| Some(x.size as f64)),
    ("node_filesystem_free_bytes", "Filesystem free space in bytes.", Gauge, |x| Some(x.free as f64)),
    ("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", Gauge, |x| Some(x.avail as f64)),
    ("node_filesystem_files", "Filesystem total file nodes.", Gauge, |x| Some(x.files as f64)),
    ("node_filesystem_files_free", "Filesystem total free file nodes.", Gauge, |x| Some(x.files_free as f64)),
];

/// Network device families, node-exporter's names; labelled by device.
#[rustfmt::skip]
const NETWORK: &[Family<NetDev>] = &[
    ("node_network_receive_bytes", "Network device statistic receive_bytes.", Counter, |x| Some(x.rx_bytes as f64)),
    ("node_network_receive_packets", "Network device statistic receive_packets.", Counter, |x| Some(x.rx_packets as f64)),
    ("node_network_receive_errs", "Network device statistic receive_errs.", Counter, |x| Some(x.rx_errs as f64)),
    ("node_network_receive_drop", "Network device statistic receive_drop.", Counter, |x| Some(x.rx_drop as f64)),
    ("node_network_transmit_bytes", "Network device statistic transmit_bytes.", Counter, |x| Some(x.tx_bytes as f64)),
    ("node_network_transmit_packets", "Network device statistic transmit_packets.", Counter, |x| Some(x.tx_packets as f64)),
    ("node_network_transmit_errs", "Network device statistic transmit_errs.", Counter, |x| Some(x.tx_errs as f64)),
    ("node_network_transmit_drop", "Network device statistic transmit_drop.", Counter, |x| Some(x.tx_drop as f64)),
];

const MEMINFO: &str = "Memory information field from /proc/meminfo.";

/// The node's unlabelled families (node-exporter's names, `qos_node_*` for ours).
#[rustfmt::skip]
const NODE: &[Family<Snapshot>] = &[
    ("node_load1", "1m load average.", Gauge, |s| Some(s.node.load1)),
    ("node_load5", "5m load average.", Gauge, |s| Some(s.node.load5)),
    ("node_load15", "15m load average.", Gauge, |s| Some(s.node.load15)),
    ("node_memory_MemTotal_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.total as f64)),
    ("node_memory_MemFree_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.free as f64)),
    ("node_memory_MemAvailable_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.available as f64)),
    ("node_memory_Buffers_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.buffers as f64)),
    ("node_memory_Cached_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.cached as f64)),
    ("node_memory_SwapTotal_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.swap_total as f64)),
    ("node_memory_SwapFree_bytes", MEMINFO, Gauge, |s| Some(s.node.memory.swap_free as f64)),
    ("node_processes_pids", "Number of processes.", Gauge, |s| Some(s.node.processes as f64)),
    ("node_processes_threads", "Number of threads (scheduling entities).", Gauge, |s| Some(s.node.threads as f64)),
    ("node_procs_running", "Number of processes in runnable state.", Gauge, |s| Some(s.node.kernel.procs_running as f64)),
    ("node_procs_blocked", "Number of processes blocked waiting for I/O.", Gauge, |s| Some(s.node.kernel.procs_blocked as f64)),
    ("node_context_switches", "Total number of context switches.", Counter, |s| Some(s.node.kernel.context_switches as f64)),
    ("node_forks", "Total number of forks.", Counter, |s| Some(s.node.kernel.forks as f64)),
    ("node_boot_time_seconds", "Node boot time, in unixtime.", Gauge, |s| Some(s.node.kernel.boot_time as f64)),
    ("node_time_seconds", "System time in seconds since epoch (of the last collection).", Gauge, |s| Some(s.at)),
    ("qos_node_uptime_seconds", "Seconds since boot.", Gauge, |s| Some(s.node.uptime_secs)),
    ("qos_node_cpus", "Online CPUs.", Gauge, |s| Some(f64::from(s.node.cpus))),
    ("qos_node_free_cpus", "CPUs idle over the last collection interval.", Gauge, |s| Some(s.node.free_cpus)),
    ("qos_node_allocated_cpus", "Sum of the CPU quotas of job containers.", Gauge, |s| Some(s.allocated_cpus())),
    ("qos_collector_containers", "Containers read in the last pass.", Gauge, |s| Some(s.containers.len() as f64)),
    ("qos_collector_read_errors", "Cgroups that failed to read in the last pass.", Gauge, |s| Some(s.errors.len() as f64)),
];

fn get(a: &AtomicU64) -> Option<f64> {
    Some(a.load(Ordering::Relaxed) as f64)
}

/// The agent's own unlabelled families.
#[rustfmt::skip]
const AGENT: &[Family<AgentStats>] = &[
    ("qos_collector_samples_pushed", "Samples delivered to the supervisor.", Counter, |s| get(&s.samples_pushed)),
    ("qos_collector_samples_dropped", "Samples dropped because the push buffer was full (oldest first).", Counter, |s| get(&s.samples_dropped)),
    ("qos_collector_samples_rejected", "Samples the supervisor rejected as invalid.", Counter, |s| get(&s.samples_rejected)),
    ("qos_collector_push_failures", "Failed push attempts.", Counter, |s| get(&s.push_failures)),
    ("qos_collector_samples_buffered", "Samples waiting to be pushed.", Gauge, |s| get(&s.samples_buffered)),
    ("qos_collector_passes", "Collection passes.", Counter, |s| get(&s.passes)),
    ("qos_collector_pass_duration_seconds", "Duration of the last collection pass.", Gauge, |s| get(&s.last_pass_ns).map(|ns| ns / 1e9)),
    ("qos_collector_counter_resets", "Container counter resets detected.", Counter, |s| get(&s.counter_resets)),
    ("qos_collector_heartbeats", "Heartbeats delivered.", Counter, |s| get(&s.heartbeats)),
];

/// A container's labels: a fixed array, not a `Vec`, so that encoding a thousand containers
/// does not allocate a thousand label lists per family.
fn lab(c: &ContainerSample) -> [(&'static str, &str); 3] {
    [
        ("id", c.cgroup.as_str()),
        ("name", c.name.as_deref().unwrap_or(c.id.as_str())),
        ("qos_uuid", c.uuid.as_deref().unwrap_or("")),
    ]
}

/// Encodes one family from its rows (nothing when there are none; one unlabelled row is a
/// plain metric).
fn family<'a, L: AsRef<Labels<'a>>>(
    enc: &mut DescriptorEncoder<'_>,
    (name, help, kind): (&str, &str, Kind),
    rows: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let metric_type = match kind {
        Counter => MetricType::Counter,
        Gauge => MetricType::Gauge,
    };
    let mut m = enc.encode_descriptor(name, help, None, metric_type)?;
    if let [(labels, v)] = rows {
        if labels.as_ref().is_empty() {
            return sample(kind, m, *v);
        }
    }
    for (labels, v) in rows {
        let l: &Labels<'_> = labels.as_ref();
        sample(kind, m.encode_family(&l)?, *v)?;
    }
    Ok(())
}

fn sample(kind: Kind, m: MetricEncoder<'_>, v: f64) -> Result<(), std::fmt::Error> {
    match kind {
        Counter => ConstCounter::new(v).encode(m),
        Gauge => ConstGauge::new(v).encode(m),
    }
}

/// Encodes every family of `table` over `items`, each item labelled by `labels`.
fn families<'a, T, L: AsRef<Labels<'a>>>(
    enc: &mut DescriptorEncoder<'_>,
    table: &[Family<T>],
    items: &'a [T],
    labels: impl Fn(&'a T) -> L,
) -> Result<(), std::fmt::Error> {
    for &(name, help, kind, value) in table {
        let rows: Vec<(L, f64)> = items
            .iter()
            .filter_map(|x| value(x).map(|v| (labels(x), v)))
            .collect();
        family(enc, (name, help, kind), &rows)?;
    }
    Ok(())
}

const NO_LABELS: [(&str, &str); 0] = [];

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = self
            .snapshot
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_default();
        let e = &mut enc;
        families(e, CONTAINER, &snap.containers, lab)?;

        let n = &snap.node;
        let mut cpu_rows = Vec::new();
        for core in &n.cpu_seconds {
            let num = core.cpu.trim_start_matches("cpu");
            for (mode, v) in CPU_MODES.iter().zip(core.seconds) {
                cpu_rows.push(([("cpu", num), ("mode", *mode)], v));
            }
        }
        let cpu_seconds = ("node_cpu_seconds", "Seconds the CPUs spent in each mode.");
        family(e, (cpu_seconds.0, cpu_seconds.1, Counter), &cpu_rows)?;
        let mut usage = vec![([("cpu", "total")], n.cpu_percent / 100.0)];
        for (core, p) in n.cpu_seconds.iter().zip(&n.cpu_percent_per_core) {
            usage.push(([("cpu", core.cpu.trim_start_matches("cpu"))], p / 100.0));
        }
        let usage_help = "CPU busy fraction over the last collection interval.";
        family(e, ("qos_node_cpu_usage_ratio", usage_help, Gauge), &usage)?;
        families(e, FILESYSTEM, &n.filesystems, |x| {
            [
                ("device", x.device.as_str()),
                ("fstype", x.fstype.as_str()),
                ("mountpoint", x.mountpoint.as_str()),
            ]
        })?;
        families(e, NETWORK, &n.network, |x| [("device", x.device.as_str())])?;
        families(e, NODE, std::slice::from_ref(&*snap), |_| NO_LABELS)?;
        families(e, AGENT, std::slice::from_ref(&*self.stats), |_| NO_LABELS)?;
        let resizes = [
            (
                [("result", "ok")],
                get(&self.stats.resizes_ok).unwrap_or(0.0),
            ),
            (
                [("result", "error")],
                get(&self.stats.resizes_failed).unwrap_or(0.0),
            ),
        ];
        let resizes_help = "In-place resize requests by outcome.";
        family(
            e,
            ("qos_collector_resizes", resizes_help, Counter),
            &resizes,
        )
    }
}
