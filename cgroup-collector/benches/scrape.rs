//! Collector overhead: CPU time of one collection pass (discover + read every cgroup + node
//! metrics) and of one `/metrics` encoding, with N containers.
//!
//! ```text
//! cargo bench -p cgroup-collector --bench scrape            # 1,000 synthetic + real tree
//! QOS_BENCH_CONTAINERS=5000 QOS_BENCH_PASSES=20 cargo bench -p cgroup-collector --bench scrape
//! ```
//!
//! 1. **synthetic**: N Docker-layout v1 cgroups (`cpuacct/docker/<id>` + `cpu/docker/<id>`) in a
//!    tmpfs fixture tree (`/dev/shm` when present).
//! 2. **real kernel**: N real cgroups created under `/sys/fs/cgroup/{cpu,cpuacct}/qos-bench-<pid>/a/t<i>`
//!    (testbed layout; root only, removed afterwards) plus whatever else the host has.
//!
//! CPU time is this thread's own (`CLOCK_THREAD_CPUTIME_ID`, ns), so other load on the
//! machine does not inflate it. Prints figures; asserts nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use cgroup_collector::collector::{Collector, CollectorConfig, epoch_now};
use cgroup_collector::discovery::Roots;
use cgroup_collector::metrics::{self, AgentStats};

fn thread_cpu_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn status_kib(key: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(roots: Roots, prefix: &str, meta: &Path) -> CollectorConfig {
    CollectorConfig {
        roots,
        testbed_prefix: prefix.to_string(),
        testbed_meta_dir: meta.to_path_buf(),
        proc_root: PathBuf::from("/proc"),
        named: Vec::new(),
        discover: true,
        clk_tck: cgroup_collector::cgroup::clk_tck(),
    }
}

fn measure(label: &str, cfg: CollectorConfig, passes: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Collector::new(cfg, None);
    let rss_before = status_kib("VmRSS:");
    // Warm-up pass: first discovery and mapping (one-time costs) are not part of the steady state.
    let t = (Instant::now(), thread_cpu_ns());
    let first = rt.block_on(c.collect(epoch_now()));
    let first_cpu = thread_cpu_ns() - t.1;
    let n = first.containers.len();
    let mut cpu = Vec::with_capacity(passes);
    let mut wall = Vec::with_capacity(passes);
    let mut scan = Vec::with_capacity(passes);
    let mut last = first;
    for _ in 0..passes {
        let (w0, c0) = (Instant::now(), thread_cpu_ns());
        c.scan();
        let c1 = thread_cpu_ns();
        rt.block_on(c.resolve());
        last = c.read(epoch_now());
        let c2 = thread_cpu_ns();
        cpu.push(c2 - c0);
        scan.push(c1 - c0);
        wall.push(w0.elapsed().as_nanos() as u64);
    }
    cpu.sort_unstable();
    wall.sort_unstable();
    scan.sort_unstable();
    let med = |v: &[u64]| v[v.len() / 2] as f64 / 1e3;
    let (cpu_us, wall_us) = (med(&cpu), med(&wall));
    let rss_after = status_kib("VmRSS:");

    // One Prometheus scrape = encoding the latest snapshot.
    let n_containers = last.containers.len();
    let snap = Arc::new(RwLock::new(Arc::new(last)));
    let reg = metrics::registry(snap, Arc::new(AgentStats::default()));
    let mut enc = Vec::with_capacity(passes);
    let mut bytes = 0;
    for _ in 0..passes {
        let c0 = thread_cpu_ns();
        bytes = metrics::encode(&reg).unwrap().len();
        enc.push(thread_cpu_ns() - c0);
    }
    enc.sort_unstable();
    let enc_us = med(&enc);

    let per = |us: f64| if n > 0 { us / n as f64 } else { f64::NAN };
    println!("== {label}: {n} containers, {passes} passes (median)");
    println!(
        "   first pass (discovery + mapping)   {:>10.0} µs CPU",
        first_cpu as f64 / 1e3
    );
    println!(
        "   collection pass                    {cpu_us:>10.0} µs CPU ({wall_us:.0} µs wall) = {:.2} µs/container",
        per(cpu_us)
    );
    println!(
        "     of which discovery (readdir)     {:>10.0} µs CPU",
        med(&scan)
    );
    println!(
        "   /metrics encode                    {enc_us:>10.0} µs CPU = {:.2} µs/container ({bytes} bytes, {n_containers} containers)",
        per(enc_us)
    );
    println!(
        "   at a 1 s period (pass + 1 scrape)  {:>10.3} % of one core",
        (cpu_us + enc_us) / 1e6 * 100.0
    );
    println!(
        "   RSS {rss_after} KiB (collector state grew it by {} KiB); peak {} KiB",
        rss_after.saturating_sub(rss_before),
        status_kib("VmHWM:")
    );
}

fn synthetic(n: usize, passes: usize) {
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let root = base.path();
    for i in 0..n {
        let id = format!("{i:064x}");
        let a = root.join("cpuacct/docker").join(&id);
        fs::create_dir_all(&a).unwrap();
        fs::write(a.join("cpuacct.usage"), format!("{}\n", 1_000_000_000 + i)).unwrap();
        fs::write(
            a.join("cpuacct.stat"),
            format!("user {}\nsystem {}\n", 80 + i, 20),
        )
        .unwrap();
        let c = root.join("cpu/docker").join(&id);
        fs::create_dir_all(&c).unwrap();
        fs::write(c.join("cpu.cfs_quota_us"), "50000\n").unwrap();
        fs::write(c.join("cpu.cfs_period_us"), "100000\n").unwrap();
        fs::write(
            c.join("cpu.stat"),
            "nr_periods 10\nnr_throttled 2\nthrottled_time 1000\n",
        )
        .unwrap();
    }
    let cfg = config(Roots::detect(root), "qos-testbed", root);
    measure(
        &format!("synthetic tmpfs tree ({})", root.display()),
        cfg,
        passes,
    );
}

/// Real cgroups, removed on drop.
struct RealTree(Vec<PathBuf>);

impl Drop for RealTree {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

fn real(n: usize, passes: usize) {
    let roots = Roots::detect(Path::new("/sys/fs/cgroup"));
    let (Some(acct), Some(cpu)) = (roots.v1_cpuacct.clone(), roots.v1_cpu.clone()) else {
        println!("== real kernel: skipped (no v1 cpu/cpuacct hierarchy)");
        return;
    };
    let prefix = format!("qos-bench-{}", std::process::id());
    let mut made = RealTree(Vec::new());
    for root in [&acct, &cpu] {
        for d in [root.join(&prefix), root.join(&prefix).join("a")] {
            if fs::create_dir(&d).is_err() {
                println!("== real kernel: skipped (cannot create cgroups: not root?)");
                return;
            }
            made.0.push(d);
        }
    }
    for i in 0..n {
        for root in [&acct, &cpu] {
            let d = root.join(&prefix).join("a").join(format!("t{i}"));
            fs::create_dir(&d).unwrap();
            made.0.push(d);
        }
    }
    let meta = tempfile::tempdir().unwrap();
    measure(
        &format!("real kernel cgroups (/sys/fs/cgroup, {n} created under {prefix})"),
        config(roots.clone(), &prefix, meta.path()),
        passes,
    );
    drop(made);
    // The host's own tree as it is (whatever Docker/testbed containers run now).
    measure(
        "real tree as found (no synthetic cgroups)",
        config(roots, "qos-testbed", meta.path()),
        passes,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n = env_usize("QOS_BENCH_CONTAINERS", 1_000);
    let passes = env_usize("QOS_BENCH_PASSES", 50).max(1);
    println!(
        "cgroup-collector scrape benchmark (CPU time of this thread; USER_HZ {})",
        cgroup_collector::cgroup::clk_tck()
    );
    synthetic(n, passes);
    real(n, passes);
}
