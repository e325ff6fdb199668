//! `/metrics`: the latest [`Snapshot`] encoded on each scrape with `prometheus-client`
//! (OpenMetrics text), so vanished containers disappear at once and a scrape costs no file reads.
//!
//! Container metrics use cAdvisor's names, units and labels (`name`, `id` = cgroup path, plus
//! `qos_uuid`, empty when the container is not a job); node metrics use node-exporter's names;
//! the agent's own health is under `qos_collector_*`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::collector::Snapshot;
use crate::node::CPU_MODES;

/// The latest snapshot, shared by the pass loop (writer), `/metrics`, `/snapshot`, `/resize`
/// and the heartbeat (readers).
pub type SharedSnapshot = Arc<RwLock<Arc<Snapshot>>>;

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

/// A container's labels: a fixed array, not a `Vec`, so that encoding a thousand containers
/// does not allocate a thousand label lists per family.
fn lab(c: &crate::collector::ContainerSample) -> [(&'static str, &str); 3] {
    [
        ("id", c.cgroup.as_str()),
        ("name", c.name.as_deref().unwrap_or(c.id.as_str())),
        ("qos_uuid", c.uuid.as_deref().unwrap_or("")),
    ]
}

fn counter<'a, L: AsRef<Labels<'a>>>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    if let [(labels, v)] = rows {
        if labels.as_ref().is_empty() {
            return ConstCounter::new(*v).encode(m);
        }
    }
    for (labels, v) in rows {
        let l: &Labels<'_> = labels.as_ref();
        ConstCounter::new(*v).encode(m.encode_family(&l)?)?;
    }
    Ok(())
}

fn gauge<'a, L: AsRef<Labels<'a>>>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[(L, f64)],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if let [(labels, v)] = rows {
        if labels.as_ref().is_empty() {
            return ConstGauge::new(*v).encode(m);
        }
    }
    for (labels, v) in rows {
        let l: &Labels<'_> = labels.as_ref();
        ConstGauge::new(*v).encode(m.encode_family(&l)?)?;
    }
    Ok(())
}

fn one(v: f64) -> Vec<(Vec<(&'static str, &'static str)>, f64)> {
    vec![(Vec::new(), v)]
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = self
            .snapshot
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_default();
        let e = &mut enc;

        // --- containers (cAdvisor names) ---------------------------------------------------
        let cs = &snap.containers;
        let rows = |f: &dyn Fn(&crate::collector::ContainerSample) -> Option<f64>| {
            cs.iter()
                .filter_map(|c| f(c).map(|v| (lab(c), v)))
                .collect::<Vec<_>>()
        };
        counter(
            e,
            "container_cpu_usage_seconds",
            "Cumulative CPU time consumed, seconds.",
            &rows(&|c| Some(c.total_secs)),
        )?;
        counter(
            e,
            "container_cpu_user_seconds",
            "Cumulative user CPU time consumed, seconds.",
            &rows(&|c| Some(c.user_secs)),
        )?;
        counter(
            e,
            "container_cpu_system_seconds",
            "Cumulative system CPU time consumed, seconds.",
            &rows(&|c| Some(c.system_secs)),
        )?;
        gauge(
            e,
            "container_spec_cpu_quota",
            "CPU quota of the container, microseconds per period.",
            &rows(&|c| c.quota_us.map(|q| q as f64)),
        )?;
        gauge(
            e,
            "container_spec_cpu_period",
            "CPU period of the container, microseconds.",
            &rows(&|c| c.period_us.map(|p| p as f64)),
        )?;
        counter(
            e,
            "container_cpu_cfs_periods",
            "Number of elapsed enforcement period intervals.",
            &rows(&|c| c.nr_periods.map(|v| v as f64)),
        )?;
        counter(
            e,
            "container_cpu_cfs_throttled_periods",
            "Number of throttled period intervals.",
            &rows(&|c| c.nr_throttled.map(|v| v as f64)),
        )?;
        counter(
            e,
            "container_cpu_cfs_throttled_seconds",
            "Total time duration the container has been throttled, seconds.",
            &rows(&|c| c.throttled_secs),
        )?;

        // --- node (node-exporter names) -----------------------------------------------------
        let n = &snap.node;
        let mut cpu_rows = Vec::new();
        for core in &n.cpu_seconds {
            let num = core.cpu.trim_start_matches("cpu");
            for (mode, v) in CPU_MODES.iter().zip(core.seconds) {
                cpu_rows.push((vec![("cpu", num), ("mode", *mode)], v));
            }
        }
        counter(
            e,
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            &cpu_rows,
        )?;
        let mut usage = vec![(vec![("cpu", "total")], n.cpu_percent / 100.0)];
        for (core, p) in n.cpu_seconds.iter().zip(&n.cpu_percent_per_core) {
            usage.push((vec![("cpu", core.cpu.trim_start_matches("cpu"))], p / 100.0));
        }
        gauge(
            e,
            "qos_node_cpu_usage_ratio",
            "CPU busy fraction over the last collection interval.",
            &usage,
        )?;
        gauge(e, "node_load1", "1m load average.", &one(n.load1))?;
        gauge(e, "node_load5", "5m load average.", &one(n.load5))?;
        gauge(e, "node_load15", "15m load average.", &one(n.load15))?;
        let m = &n.memory;
        for (name, v) in [
            ("node_memory_MemTotal_bytes", m.total),
            ("node_memory_MemFree_bytes", m.free),
            ("node_memory_MemAvailable_bytes", m.available),
            ("node_memory_Buffers_bytes", m.buffers),
            ("node_memory_Cached_bytes", m.cached),
            ("node_memory_SwapTotal_bytes", m.swap_total),
            ("node_memory_SwapFree_bytes", m.swap_free),
        ] {
            gauge(
                e,
                name,
                "Memory information field from /proc/meminfo.",
                &one(v as f64),
            )?;
        }
        let fs_rows = |f: &dyn Fn(&crate::node::Filesystem) -> u64| {
            n.filesystems
                .iter()
                .map(|x| {
                    (
                        vec![
                            ("device", x.device.as_str()),
                            ("fstype", x.fstype.as_str()),
                            ("mountpoint", x.mountpoint.as_str()),
                        ],
                        f(x) as f64,
                    )
                })
                .collect::<Vec<_>>()
        };
        gauge(
            e,
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            &fs_rows(&|x| x.size),
        )?;
        gauge(
            e,
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            &fs_rows(&|x| x.free),
        )?;
        gauge(
            e,
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            &fs_rows(&|x| x.avail),
        )?;
        gauge(
            e,
            "node_filesystem_files",
            "Filesystem total file nodes.",
            &fs_rows(&|x| x.files),
        )?;
        gauge(
            e,
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            &fs_rows(&|x| x.files_free),
        )?;
        let net_rows = |f: &dyn Fn(&crate::node::NetDev) -> u64| {
            n.network
                .iter()
                .map(|x| (vec![("device", x.device.as_str())], f(x) as f64))
                .collect::<Vec<_>>()
        };
        counter(
            e,
            "node_network_receive_bytes",
            "Network device statistic receive_bytes.",
            &net_rows(&|x| x.rx_bytes),
        )?;
        counter(
            e,
            "node_network_receive_packets",
            "Network device statistic receive_packets.",
            &net_rows(&|x| x.rx_packets),
        )?;
        counter(
            e,
            "node_network_receive_errs",
            "Network device statistic receive_errs.",
            &net_rows(&|x| x.rx_errs),
        )?;
        counter(
            e,
            "node_network_receive_drop",
            "Network device statistic receive_drop.",
            &net_rows(&|x| x.rx_drop),
        )?;
        counter(
            e,
            "node_network_transmit_bytes",
            "Network device statistic transmit_bytes.",
            &net_rows(&|x| x.tx_bytes),
        )?;
        counter(
            e,
            "node_network_transmit_packets",
            "Network device statistic transmit_packets.",
            &net_rows(&|x| x.tx_packets),
        )?;
        counter(
            e,
            "node_network_transmit_errs",
            "Network device statistic transmit_errs.",
            &net_rows(&|x| x.tx_errs),
        )?;
        counter(
            e,
            "node_network_transmit_drop",
            "Network device statistic transmit_drop.",
            &net_rows(&|x| x.tx_drop),
        )?;
        gauge(
            e,
            "node_processes_pids",
            "Number of processes.",
            &one(n.processes as f64),
        )?;
        gauge(
            e,
            "node_processes_threads",
            "Number of threads (scheduling entities).",
            &one(n.threads as f64),
        )?;
        gauge(
            e,
            "node_procs_running",
            "Number of processes in runnable state.",
            &one(n.procs_running as f64),
        )?;
        gauge(
            e,
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O.",
            &one(n.procs_blocked as f64),
        )?;
        counter(
            e,
            "node_context_switches",
            "Total number of context switches.",
            &one(n.context_switches as f64),
        )?;
        counter(
            e,
            "node_forks",
            "Total number of forks.",
            &one(n.forks as f64),
        )?;
        gauge(
            e,
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            &one(n.boot_time as f64),
        )?;
        gauge(
            e,
            "node_time_seconds",
            "System time in seconds since epoch (of the last collection).",
            &one(snap.at),
        )?;
        gauge(
            e,
            "qos_node_uptime_seconds",
            "Seconds since boot.",
            &one(n.uptime_secs),
        )?;
        gauge(e, "qos_node_cpus", "Online CPUs.", &one(f64::from(n.cpus)))?;
        gauge(
            e,
            "qos_node_free_cpus",
            "CPUs idle over the last collection interval.",
            &one(n.free_cpus),
        )?;
        gauge(
            e,
            "qos_node_allocated_cpus",
            "Sum of the CPU quotas of job containers.",
            &one(snap.allocated_cpus()),
        )?;

        // --- the agent itself -----------------------------------------------------------------
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        counter(
            e,
            "qos_collector_samples_pushed",
            "Samples delivered to the supervisor.",
            &one(get(&s.samples_pushed)),
        )?;
        counter(
            e,
            "qos_collector_samples_dropped",
            "Samples dropped because the push buffer was full (oldest first).",
            &one(get(&s.samples_dropped)),
        )?;
        counter(
            e,
            "qos_collector_samples_rejected",
            "Samples the supervisor rejected as invalid.",
            &one(get(&s.samples_rejected)),
        )?;
        counter(
            e,
            "qos_collector_push_failures",
            "Failed push attempts.",
            &one(get(&s.push_failures)),
        )?;
        gauge(
            e,
            "qos_collector_samples_buffered",
            "Samples waiting to be pushed.",
            &one(get(&s.samples_buffered)),
        )?;
        counter(
            e,
            "qos_collector_passes",
            "Collection passes.",
            &one(get(&s.passes)),
        )?;
        gauge(
            e,
            "qos_collector_pass_duration_seconds",
            "Duration of the last collection pass.",
            &one(get(&s.last_pass_ns) / 1e9),
        )?;
        gauge(
            e,
            "qos_collector_containers",
            "Containers read in the last pass.",
            &one(cs.len() as f64),
        )?;
        gauge(
            e,
            "qos_collector_read_errors",
            "Cgroups that failed to read in the last pass.",
            &one(snap.errors.len() as f64),
        )?;
        counter(
            e,
            "qos_collector_counter_resets",
            "Container counter resets detected.",
            &one(get(&s.counter_resets)),
        )?;
        counter(
            e,
            "qos_collector_resizes",
            "In-place resize requests by outcome.",
            &[
                (vec![("result", "ok")], get(&s.resizes_ok)),
                (vec![("result", "error")], get(&s.resizes_failed)),
            ],
        )?;
        counter(
            e,
            "qos_collector_heartbeats",
            "Heartbeats delivered.",
            &one(get(&s.heartbeats)),
        )?;
        Ok(())
    }
}
