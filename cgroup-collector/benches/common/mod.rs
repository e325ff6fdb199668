//! What the collector's benchmarks share: settings from the environment, CPU clocks, and a tree
//! of real kernel cgroups in the testbed's layout whose counters move between passes.

#![allow(
    dead_code,
    reason = "each benchmark uses a part of it; they are separate crates"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use cgroup_collector::Roots;

/// `key` as a number, else `default`.
pub(crate) fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time of the calling thread, ns (`CLOCK_THREAD_CPUTIME_ID`): other load on the machine
/// does not inflate it.
pub(crate) fn thread_cpu_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// A `/proc/self/status` figure in KiB (`VmRSS:`, `VmHWM:`).
pub(crate) fn status_kib(key: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// How often each cgroup's thread wakes up to run a little (so that every counter moves
/// between two 1 s passes, as in a node whose containers all do something).
pub(crate) const WAKE_EVERY: Duration = Duration::from_millis(250);
/// How long it spins when it wakes.
pub(crate) const SPIN: Duration = Duration::from_micros(20);

/// The CPU quota of each cgroup, µs per 100 ms period (job containers have one).
pub(crate) const QUOTA_US: u64 = 50_000;

/// `n` real cgroups at `<cpu and cpuacct roots>/<prefix>/a/t<i>` (the testbed's layout, agent
/// `a`), each a job's container: a quota of [`QUOTA_US`], the testbed's `qos.json` in
/// `<meta>/a/t<i>/` naming job `<i as 32 hex digits>`, and one thread of this process that wakes
/// every [`WAKE_EVERY`] and spins for [`SPIN`]. Removed (threads stopped first) on drop.
pub(crate) struct RealTree {
    /// The directory under each controller root (`--testbed-prefix` for the collector).
    pub(crate) prefix: String,
    /// The hierarchies.
    pub(crate) roots: Roots,
    dirs: Vec<PathBuf>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RealTree {
    /// Creates the tree, or says why it cannot (not root, no v1 `cpu`/`cpuacct` hierarchy).
    pub(crate) fn create(n: usize, prefix: &str, meta: &Path) -> Result<Self, String> {
        let roots = Roots::detect(Path::new("/sys/fs/cgroup"));
        let (Some(acct), Some(cpu)) = (roots.v1_cpuacct.clone(), roots.v1_cpu.clone()) else {
            return Err("no cgroup v1 cpu/cpuacct hierarchy".into());
        };
        let mut me = Self {
            prefix: prefix.to_owned(),
            roots,
            dirs: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let distinct = acct != cpu;
        let hierarchies: Vec<PathBuf> = if distinct {
            vec![acct, cpu]
        } else {
            vec![acct]
        };
        for root in &hierarchies {
            for d in [root.join(prefix), root.join(prefix).join("a")] {
                fs::create_dir(&d)
                    .map_err(|e| format!("cannot create {}: {e} (not root?)", d.display()))?;
                me.dirs.push(d);
            }
        }
        for i in 0..n {
            let mut tasks = Vec::new();
            for root in &hierarchies {
                let d = root.join(prefix).join("a").join(format!("t{i}"));
                fs::create_dir(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
                tasks.push(d.join("tasks"));
                me.dirs.push(d.clone());
                let quota = d.join("cpu.cfs_quota_us");
                if quota.exists() {
                    fs::write(&quota, QUOTA_US.to_string())
                        .map_err(|e| format!("cannot write {}: {e}", quota.display()))?;
                }
            }
            let m = meta.join("a").join(format!("t{i}"));
            fs::create_dir_all(&m).map_err(|e| format!("{}: {e}", m.display()))?;
            fs::write(
                m.join("qos.json"),
                format!(r#"{{"uuid": "{i:032x}", "task_id": "t{i}"}}"#),
            )
            .map_err(|e| format!("{}: {e}", m.display()))?;
            let stop = Arc::clone(&me.stop);
            let (tx, rx) = std::sync::mpsc::channel();
            let t = std::thread::Builder::new()
                .name(format!("busy-t{i}"))
                .stack_size(64 << 10)
                .spawn(move || {
                    let tid = nix::unistd::gettid().as_raw().to_string();
                    let joined = tasks.iter().try_for_each(|t| fs::write(t, &tid));
                    let _ = tx.send(joined.map_err(|e| e.to_string()));
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(WAKE_EVERY);
                        let t0 = std::time::Instant::now();
                        while t0.elapsed() < SPIN {
                            std::hint::spin_loop();
                        }
                    }
                })
                .map_err(|e| format!("cannot start a thread: {e}"))?;
            me.threads.push(t);
            rx.recv()
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot move a thread into cgroup t{i}: {e}"))?;
        }
        Ok(me)
    }
}

impl Drop for RealTree {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        testkit::cgroups::remove_all(&self.dirs);
    }
}
