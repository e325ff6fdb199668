//! Node metrics from `/proc` (root configurable, so fixture trees can stand in for it).
//!
//! | figure | source |
//! |---|---|
//! | CPU seconds per core and mode, CPU % total and per core, free CPUs | `stat` (`cpuN` lines, two readings) |
//! | processes running/blocked, boot time, context switches, forks | `stat` |
//! | load 1/5/15, threads (scheduling entities) | `loadavg` |
//! | memory and swap | `meminfo` |
//! | uptime | `uptime` |
//! | network bytes/packets/errors/drops per interface | `net/dev` |
//! | disk size/free/available/inodes per mount | `mounts` + `statvfs(2)` |
//! | process count | numeric entries of the proc root |
//! | host name | `sys/kernel/hostname`, else `gethostname(2)` |

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::reader::{CachedFile, FdBudget};

/// The eight `/proc/stat` CPU modes, in file order (guest time is already inside user/nice).
pub(crate) const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Filesystem types that are not disks (skipped, as node-exporter does by default).
const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
    "ramfs",
];

/// Mount point prefixes that are skipped (container runtimes' private mounts, kernel trees).
const SKIP_MOUNT_PREFIXES: &[&str] = &[
    "/proc",
    "/sys",
    "/dev/",
    "/run/docker",
    "/run/qos-docker",
    "/var/lib/docker",
    "/var/lib/qos-docker",
    "/run/containerd",
];

/// Per-core CPU seconds by mode (order of [`CPU_MODES`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreTimes {
    /// `cpu0`, `cpu1` … (the kernel's numbering; node-exporter's `cpu` label is the number).
    pub cpu: String,
    /// Seconds per mode.
    pub seconds: [f64; 8],
}

impl CoreTimes {
    fn busy(&self) -> f64 {
        self.seconds.iter().sum::<f64>() - self.seconds[3] - self.seconds[4]
    }
    fn all(&self) -> f64 {
        self.seconds.iter().sum()
    }
}

/// Parsed `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub(crate) struct ProcStat {
    /// The aggregate `cpu` line.
    pub total: Option<CoreTimes>,
    /// One per online core.
    pub cores: Vec<CoreTimes>,
    /// The other lines.
    pub kernel: KernelActivity,
}

/// What `/proc/stat` tells besides CPU times (its `btime`, `ctxt`, `processes`, `procs_running`
/// and `procs_blocked` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct KernelActivity {
    /// Boot time, epoch seconds.
    pub boot_time: u64,
    /// Context switches since boot.
    pub context_switches: u64,
    /// Forks since boot.
    pub forks: u64,
    /// Runnable processes.
    pub procs_running: u64,
    /// Processes blocked on I/O.
    pub procs_blocked: u64,
}

/// Parse `/proc/stat`; `clk_tck` converts ticks to seconds.
#[must_use]
pub(crate) fn parse_stat(text: &str, clk_tck: u64) -> ProcStat {
    let tck = clk_tck.max(1) as f64;
    let mut s = ProcStat::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(key) = it.next() else { continue };
        if let Some(rest) = key.strip_prefix("cpu") {
            let mut seconds = [0.0; 8];
            for (slot, v) in seconds.iter_mut().zip(it.by_ref()) {
                *slot = v.parse::<u64>().unwrap_or(0) as f64 / tck;
            }
            let t = CoreTimes {
                cpu: key.to_string(),
                seconds,
            };
            if rest.is_empty() {
                s.total = Some(t);
            } else {
                s.cores.push(t);
            }
            continue;
        }
        let v = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match key {
            "btime" => s.kernel.boot_time = v,
            "ctxt" => s.kernel.context_switches = v,
            "processes" => s.kernel.forks = v,
            "procs_running" => s.kernel.procs_running = v,
            "procs_blocked" => s.kernel.procs_blocked = v,
            _ => {}
        }
    }
    s
}

/// Memory and swap, bytes (`/proc/meminfo`, kB × 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Memory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `MemAvailable`.
    pub available: u64,
    /// `Buffers`.
    pub buffers: u64,
    /// `Cached`.
    pub cached: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

/// Parse `/proc/meminfo`.
#[must_use]
pub(crate) fn parse_meminfo(text: &str) -> Memory {
    let mut m = Memory::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let bytes = v.parse::<u64>().unwrap_or(0).saturating_mul(1024);
        match k {
            "MemTotal:" => m.total = bytes,
            "MemFree:" => m.free = bytes,
            "MemAvailable:" => m.available = bytes,
            "Buffers:" => m.buffers = bytes,
            "Cached:" => m.cached = bytes,
            "SwapTotal:" => m.swap_total = bytes,
            "SwapFree:" => m.swap_free = bytes,
            _ => {}
        }
    }
    m
}

/// One network interface's counters (`/proc/net/dev`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDev {
    /// Interface name.
    pub device: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errs: u64,
    /// Receive drops.
    pub rx_drop: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errs: u64,
    /// Send drops.
    pub tx_drop: u64,
}

/// Parse `/proc/net/dev`.
#[must_use]
pub(crate) fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            (v.len() >= 16).then(|| NetDev {
                device: name.trim().to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errs: v[2],
                rx_drop: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errs: v[10],
                tx_drop: v[11],
            })
        })
        .collect()
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    /// Device as `/proc/mounts` names it (`/dev/vda1`, `overlay`, …).
    pub device: String,
    /// Mount point.
    pub mountpoint: String,
    /// File-system type (`ext4`, `xfs`, …).
    pub fstype: String,
    /// Size, bytes.
    pub size: u64,
    /// Free, bytes.
    pub free: u64,
    /// Available to unprivileged users, bytes.
    pub avail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// Disk mounts listed in a `/proc/mounts` text: `(device, mountpoint, fstype)`, pseudo
/// filesystems and runtime-private mounts skipped, each mount point once.
#[must_use]
pub(crate) fn parse_mounts(text: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let mp = f[1].replace("\\040", " ");
        if PSEUDO_FS.contains(&f[2])
            || SKIP_MOUNT_PREFIXES
                .iter()
                .any(|p| mp == p.trim_end_matches('/') || mp.starts_with(p))
        {
            continue;
        }
        if let Some(i) = out.iter().position(|m| m.1 == mp) {
            out.remove(i); // the later mount hides the earlier one
        }
        out.push((f[0].to_string(), mp, f[2].to_string()));
    }
    out
}

fn statvfs(path: &Path) -> Option<(u64, u64, u64, u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = s.fragment_size() as u64;
    Some((
        s.blocks() as u64 * frag,
        s.blocks_free() as u64 * frag,
        s.blocks_available() as u64 * frag,
        s.files() as u64,
        s.files_free() as u64,
    ))
}

/// One reading of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct NodeMetrics {
    /// Host name.
    pub hostname: String,
    /// Online CPUs.
    pub cpus: u32,
    /// Seconds since boot.
    pub uptime_secs: f64,
    /// Load averages.
    pub load1: f64,
    /// 5-minute load.
    pub load5: f64,
    /// 15-minute load.
    pub load15: f64,
    /// CPU busy % of the whole node over the last interval (since boot on the first reading).
    pub cpu_percent: f64,
    /// CPU busy % per core, same interval.
    pub cpu_percent_per_core: Vec<f64>,
    /// CPUs idle over the last interval: `cpus × (1 − busy fraction)`.
    pub free_cpus: f64,
    /// Cumulative CPU seconds per core and mode.
    pub cpu_seconds: Vec<CoreTimes>,
    /// Memory and swap.
    pub memory: Memory,
    /// Mounted file systems with their sizes and free space.
    pub filesystems: Vec<Filesystem>,
    /// Network interfaces.
    pub network: Vec<NetDev>,
    /// Processes (pids).
    pub processes: u64,
    /// Threads (scheduling entities, `loadavg`).
    pub threads: u64,
    /// Boot time, context switches, forks, runnable and blocked processes (`stat`; flat in the
    /// JSON snapshot).
    #[serde(flatten)]
    pub kernel: KernelActivity,
}

/// Reads node metrics, keeping the previous `/proc/stat` for CPU percentages.
#[derive(Debug)]
pub(crate) struct NodeSampler {
    proc_root: PathBuf,
    clk_tck: u64,
    prev: Option<ProcStat>,
    files: ProcFiles,
    buf: Vec<u8>,
    hostname: Option<String>,
}

/// The files read at every sample, kept open ([`CachedFile`]).
#[derive(Debug)]
struct ProcFiles {
    stat: CachedFile,
    loadavg: CachedFile,
    uptime: CachedFile,
    meminfo: CachedFile,
    net_dev: CachedFile,
    mounts: CachedFile,
}

fn pct(busy: f64, all: f64) -> f64 {
    if all > 0.0 {
        (100.0 * busy / all).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

impl NodeSampler {
    /// A sampler over `proc_root` (normally `/proc`).
    #[must_use]
    pub(crate) fn new(proc_root: PathBuf, clk_tck: u64) -> Self {
        let budget = FdBudget::new(8);
        let open = |f: &str| CachedFile::new(proc_root.join(f), budget.clone());
        let files = ProcFiles {
            stat: open("stat"),
            loadavg: open("loadavg"),
            uptime: open("uptime"),
            meminfo: open("meminfo"),
            net_dev: open("net/dev"),
            mounts: open("mounts"),
        };
        Self {
            proc_root,
            clk_tck,
            prev: None,
            files,
            buf: Vec::new(),
            hostname: None,
        }
    }

    /// The current text of one of [`ProcFiles`] (empty when it cannot be read).
    fn text(&mut self, which: fn(&mut ProcFiles) -> &mut CachedFile) -> String {
        which(&mut self.files)
            .read(&mut self.buf)
            .map(str::to_string)
            .unwrap_or_default()
    }

    /// Online CPUs according to `stat` (at least 1).
    #[must_use]
    pub(crate) fn cpu_count(&self) -> u32 {
        let text = fs::read_to_string(self.proc_root.join("stat")).unwrap_or_default();
        let n = parse_stat(&text, self.clk_tck).cores.len();
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    /// Take a reading; CPU % is over the interval since the previous call.
    pub(crate) fn sample(&mut self) -> NodeMetrics {
        let stat = parse_stat(&self.text(|f| &mut f.stat), self.clk_tck);
        let cpus = u32::try_from(stat.cores.len()).unwrap_or(u32::MAX).max(1);
        let (cpu_percent, per_core) = {
            let delta = |now: &CoreTimes, before: Option<&CoreTimes>| match before {
                Some(b) => pct(now.busy() - b.busy(), now.all() - b.all()),
                None => pct(now.busy(), now.all()),
            };
            let prev = self.prev.as_ref();
            let total = stat
                .total
                .as_ref()
                .map_or(0.0, |t| delta(t, prev.and_then(|p| p.total.as_ref())));
            let per: Vec<f64> = stat
                .cores
                .iter()
                .map(|c| {
                    delta(
                        c,
                        prev.and_then(|p| p.cores.iter().find(|o| o.cpu == c.cpu)),
                    )
                })
                .collect();
            (total, per)
        };
        let load = self.text(|f| &mut f.loadavg);
        let lf: Vec<&str> = load.split_whitespace().collect();
        let lnum = |i: usize| lf.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let threads = lf
            .get(3)
            .and_then(|v| v.split_once('/'))
            .and_then(|(_, t)| t.parse().ok())
            .unwrap_or(0);
        let uptime_secs = self
            .text(|f| &mut f.uptime)
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let processes = fs::read_dir(&self.proc_root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_str()
                            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        let filesystems = parse_mounts(&self.text(|f| &mut f.mounts))
            .into_iter()
            .filter_map(|(device, mountpoint, fstype)| {
                let (size, free, avail, files, files_free) = statvfs(Path::new(&mountpoint))?;
                Some(Filesystem {
                    device,
                    mountpoint,
                    fstype,
                    size,
                    free,
                    avail,
                    files,
                    files_free,
                })
            })
            .collect();
        let hostname = match &self.hostname {
            Some(h) => h.clone(),
            None => {
                let h = fs::read_to_string(self.proc_root.join("sys/kernel/hostname"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let h = if h.is_empty() {
                    nix::unistd::gethostname()
                        .ok()
                        .and_then(|h| h.into_string().ok())
                        .unwrap_or_else(|| "localhost".into())
                } else {
                    h
                };
                self.hostname = Some(h.clone());
                h
            }
        };
        let m = NodeMetrics {
            hostname,
            cpus,
            uptime_secs,
            load1: lnum(0),
            load5: lnum(1),
            load15: lnum(2),
            cpu_percent,
            free_cpus: f64::from(cpus) * (1.0 - cpu_percent / 100.0),
            cpu_percent_per_core: per_core,
            cpu_seconds: stat.cores.clone(),
            memory: parse_meminfo(&self.text(|f| &mut f.meminfo)),
            filesystems,
            network: parse_net_dev(&self.text(|f| &mut f.net_dev)),
            processes,
            threads,
            kernel: stat.kernel,
        };
        self.prev = Some(stat);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT1: &str = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1 2\nctxt 99\nbtime 1700000000\nprocesses 500\nprocs_running 3\nprocs_blocked 1\n";
    const STAT2: &str = "cpu  200 0 100 800 100 0 0 0 0 0\ncpu0 150 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 450 50 0 0 0 0 0\nctxt 120\nbtime 1700000000\n";

    fn fixture(dir: &Path, stat: &str) {
        fs::create_dir_all(dir.join("net")).unwrap();
        fs::create_dir_all(dir.join("sys/kernel")).unwrap();
        fs::create_dir_all(dir.join("1")).unwrap();
        fs::create_dir_all(dir.join("42")).unwrap();
        fs::create_dir_all(dir.join("self")).unwrap();
        fs::write(dir.join("stat"), stat).unwrap();
        fs::write(dir.join("loadavg"), "0.50 0.25 0.10 2/345 6789\n").unwrap();
        fs::write(dir.join("uptime"), "12345.67 20000.00\n").unwrap();
        fs::write(dir.join("sys/kernel/hostname"), "node-a\n").unwrap();
        fs::write(
            dir.join("meminfo"),
            "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nBuffers: 10 kB\nCached: 100 kB\nSwapTotal: 50 kB\nSwapFree: 40 kB\n",
        )
        .unwrap();
        fs::write(
            dir.join("net/dev"),
            "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n  eth0: 5000 50 1 2 0 0 0 0 7000 70 3 4 0 0 0 0\n",
        )
        .unwrap();
        fs::write(
            dir.join("mounts"),
            "/dev/root / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /tmp tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\noverlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n",
        )
        .unwrap();
    }

    #[test]
    fn reads_a_fixture_proc_tree() {
        let tmp = tempfile::tempdir().unwrap();
        fixture(tmp.path(), STAT1);
        let mut s = NodeSampler::new(tmp.path().to_path_buf(), 100);
        let m = s.sample();
        assert_eq!(
            (m.hostname.as_str(), m.cpus, m.processes, m.threads),
            ("node-a", 2, 2, 345)
        );
        assert_eq!(
            (m.load1, m.uptime_secs, m.kernel.boot_time),
            (0.5, 12345.67, 1_700_000_000)
        );
        assert!((m.cpu_percent - 20.0).abs() < 1e-9, "{}", m.cpu_percent); // 200 busy of 1000
        assert_eq!(m.memory.available, 600 * 1024);
        assert_eq!(m.memory.swap_free, 40 * 1024);
        assert_eq!(m.network[1].device, "eth0");
        assert_eq!(
            (
                m.network[1].rx_bytes,
                m.network[1].tx_packets,
                m.network[1].tx_drop
            ),
            (5000, 70, 4)
        );
        let mps: Vec<_> = m
            .filesystems
            .iter()
            .map(|f| f.mountpoint.as_str())
            .collect();
        assert_eq!(mps, vec!["/", "/tmp"]);
        assert!(m.filesystems[0].size > 0);
        assert_eq!(m.cpu_seconds[0].seconds[0], 0.5);

        fs::write(tmp.path().join("stat"), STAT2).unwrap();
        let m = s.sample();
        // Interval: cpu0 busy +100 of +100 → 100 %; cpu1 idle +100 → 0 %; total 100 busy of 200.
        assert_eq!(m.cpu_percent_per_core, vec![100.0, 0.0]);
        assert!((m.cpu_percent - 50.0).abs() < 1e-9);
        assert!((m.free_cpus - 1.0).abs() < 1e-9);
        assert_eq!(m.kernel.context_switches, 120);
    }
}
