//! Collector overhead: CPU time of one collection pass (discover + read every cgroup + node
//! metrics) and of one `/metrics` encoding, with N containers.
//!
//! ```text
//! cargo bench -p cgroup-collector --bench scrape            # 1,000 synthetic + real tree
//! QOS_BENCH_CONTAINERS=5000 QOS_BENCH_PASSES=20 cargo bench -p cgroup-collector --bench scrape
//! QOS_BENCH_ONLY=real cargo bench -p cgroup-collector --bench scrape   # or synthetic
//! ```
//!
//! 1. **synthetic**: N Docker-layout v1 cgroups (`cpuacct/docker/<id>` + `cpu/docker/<id>`) in a
//!    tmpfs fixture tree (`/dev/shm` when present).
//! 2. **real kernel**: N real cgroups created under `/sys/fs/cgroup/{cpu,cpuacct}/qos-bench-<pid>/a/t<i>`
//!    (testbed layout; root only, removed afterwards), each a job's container (a 0.5 CPU quota,
//!    mapped to a job by the testbed's `qos.json`) with a thread of this process that wakes every
//!    250 ms to run for 20 µs, so every container's counters move between passes; plus
//!    whatever else the host has.
//!
//! CPU time is this thread's own (`CLOCK_THREAD_CPUTIME_ID`, ns), so other load on the
//! machine does not inflate it. Prints figures; asserts nothing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cgroup_collector::Roots;
use cgroup_collector::{AgentStats, encode_metrics, metrics_registry};
use cgroup_collector::{Collector, CollectorConfig, epoch_now};
use common::{RealTree, env_usize, status_kib, thread_cpu_ns};

fn config(roots: Roots, prefix: &str, meta: &Path) -> CollectorConfig {
    CollectorConfig {
        roots,
        testbed_prefix: prefix.to_string(),
        testbed_meta_dir: meta.to_path_buf(),
        proc_root: PathBuf::from("/proc"),
        named: Vec::new(),
        discover: true,
        clk_tck: cgroup_collector::clk_tck(),
    }
}

/// Measures `passes` passes, `gap` apart (so that the kernel's counters move between them, as
/// between two passes of the running agent).
/// Returns the CPU per container per pass (µs) and the % of one core at a 1 s period (a pass and
/// one scrape). `between` runs before each pass, outside the measured CPU time.
fn measure(
    label: &str,
    cfg: CollectorConfig,
    passes: usize,
    gap: Duration,
    between: &mut dyn FnMut(),
) -> (f64, f64) {
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
        std::thread::sleep(gap);
        between();
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
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e3;
    // Some files are read every few passes only: the mean is what a second of collecting costs.
    let (cpu_us, cpu_med, wall_us) = (mean(&cpu), med(&cpu), med(&wall));
    let rss_after = status_kib("VmRSS:");

    // One Prometheus scrape = encoding the latest snapshot.
    let n_containers = last.containers.len();
    let snap = Arc::new(RwLock::new(Arc::new(last)));
    let reg = metrics_registry(snap, Arc::new(AgentStats::default()));
    let mut enc = Vec::with_capacity(passes);
    let mut bytes = 0;
    for _ in 0..passes {
        let c0 = thread_cpu_ns();
        bytes = encode_metrics(&reg).unwrap().len();
        enc.push(thread_cpu_ns() - c0);
    }
    let enc_us = mean(&enc);

    let per = |us: f64| if n > 0 { us / n as f64 } else { f64::NAN };
    println!("== {label}: {n} containers, {passes} passes (mean; median where marked)");
    println!(
        "   first pass (discovery + mapping)   {:>10.0} µs CPU",
        first_cpu as f64 / 1e3
    );
    println!(
        "   collection pass                    {cpu_us:>10.0} µs CPU = {:.2} µs/container (median {cpu_med:.0} µs CPU, {wall_us:.0} µs wall)",
        per(cpu_us)
    );
    println!(
        "     of which discovery (readdir)     {:>10.0} µs CPU",
        mean(&scan)
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
    (per(cpu_us), (cpu_us + enc_us) / 1e6 * 100.0)
}

fn synthetic(n: usize, passes: usize) -> (f64, f64) {
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
    // The counters move between passes, as a busy container's do.
    let mut k = 0u64;
    let mut tick = || {
        k += 1;
        for i in 0..n {
            let a = root.join("cpuacct/docker").join(format!("{i:064x}"));
            let _ = fs::write(
                a.join("cpuacct.usage"),
                format!("{}\n", 1_000_000_000 + k * 1000 + i as u64),
            );
        }
    };
    measure(
        &format!(
            "synthetic tmpfs tree ({}, usage rewritten between passes)",
            root.display()
        ),
        cfg,
        passes,
        Duration::ZERO,
        &mut tick,
    )
}

fn real(n: usize, passes: usize) -> Option<(f64, f64)> {
    let prefix = format!("qos-bench-{}", std::process::id());
    let meta = tempfile::tempdir().unwrap();
    let tree = match RealTree::create(n, &prefix, meta.path()) {
        Ok(t) => t,
        Err(e) => {
            println!("== real kernel: skipped ({e})");
            return None;
        }
    };
    let roots = tree.roots.clone();
    let figures = measure(
        &format!("real kernel cgroups (/sys/fs/cgroup, {n} created under {prefix}, all active)"),
        config(roots.clone(), &prefix, meta.path()),
        passes,
        common::WAKE_EVERY + Duration::from_millis(50),
        &mut || {},
    );
    drop(tree);
    // The host's own tree as it is (whatever Docker/testbed containers run now).
    measure(
        "real tree as found (no synthetic cgroups)",
        config(roots, "qos-testbed", meta.path()),
        passes,
        Duration::ZERO,
        &mut || {},
    );
    Some(figures)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n = env_usize("QOS_BENCH_CONTAINERS", 1_000);
    let passes = env_usize("QOS_BENCH_PASSES", 50).max(1);
    println!(
        "cgroup-collector scrape benchmark (CPU time of this thread; USER_HZ {})",
        cgroup_collector::clk_tck()
    );
    // QOS_BENCH_ONLY=real (or synthetic) runs one of the two, e.g. under a profiler.
    let only = std::env::var("QOS_BENCH_ONLY").unwrap_or_default();
    let tmpfs_per = if only == "real" {
        f64::NAN
    } else {
        synthetic(n, passes).0
    };
    if only == "synthetic" {
        return;
    }
    if let Some((real_per, real_pct)) = real(n, passes) {
        println!(
            "FIGURE\tcollector pass + one scrape, {n} active real cgroups, CPU of this thread at a 1 s period\t{real_pct:.3} % of a core\ttarget 1 % of a core\t{real_pct:.2}"
        );
        println!(
            "FIGURE\tcollector pass, CPU per container (real cgroupfs)\t{real_per:.2} µs\tthe same files on tmpfs {tmpfs_per:.2} µs\t{:.2}",
            real_per / tmpfs_per
        );
    }
}
