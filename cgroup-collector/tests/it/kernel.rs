//! Accuracy against the real kernel: busy loops in real cgroups (v1 under a 50 % quota, and v2),
//! the collector's figures compared with the kernel's own files and with `/proc/<pid>`.
//! Needs root and the hybrid layout of our machines; skipped with a notice elsewhere.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use cgroup_collector::Roots;
use serde_json::json;

use crate::util::{self, KernelCgroup};

/// The CPU-seconds a busy loop runs for before it is read: awaited on the kernel's own counter
/// (a fixed sleep gave it a fraction of that on a loaded machine).
const BUSY_CPU: f64 = 0.6;

/// Waits until the kernel has counted `secs` CPU-seconds in `usage` (its reading), polling every
/// 20 ms — as long as that takes on a loaded machine, up to a minute.
fn busy_until(secs: f64, usage: impl Fn() -> f64) {
    let limit = Instant::now() + Duration::from_secs(60);
    while usage() < secs {
        assert!(
            Instant::now() < limit,
            "the busy loop did not reach {secs} CPU-s in a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn within(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= (rel * b.abs()).max(abs)
}

fn read_u64(p: &Path) -> u64 {
    fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

fn keyed(p: &Path, key: &str) -> u64 {
    fs::read_to_string(p)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{key} not in {}", p.display()))
}

#[test]
fn v1_busy_loop_under_half_cpu_quota_matches_kernel_and_proc() {
    if !util::kernel_cgroups() {
        return util::skip("v1 accuracy", "needs root and /sys/fs/cgroup/cpuacct");
    }
    let roots = Roots::detect(Path::new("/sys/fs/cgroup"));
    let (acct_root, cpu_root) = (
        roots.v1_cpuacct.clone().unwrap(),
        roots.v1_cpu.clone().unwrap(),
    );
    let name = util::unique("qos-it-v1");
    let mut cg = KernelCgroup::create(&[&acct_root, &cpu_root], &name);
    let (acct, cpu) = (acct_root.join(&name), cpu_root.join(&name));
    fs::write(cpu.join("cpu.cfs_period_us"), "100000").unwrap();
    fs::write(cpu.join("cpu.cfs_quota_us"), "50000").unwrap();

    let t0 = Instant::now();
    let pid = cg.spawn_busy_loop(&[&acct, &cpu]);
    busy_until(BUSY_CPU, || {
        read_u64(&acct.join("cpuacct.usage")) as f64 / 1e9
    });
    util::freeze(pid);
    let wall = t0.elapsed().as_secs_f64();

    // The kernel's throttling counters before and after the collector reads them: a stopped
    // loop is not throttled again, but the last throttled period's time is only added when the
    // group is unthrottled at the next period, which may fall after the collector's read.
    let throttling = || {
        (
            keyed(&cpu.join("cpu.stat"), "nr_throttled "),
            keyed(&cpu.join("cpu.stat"), "throttled_time ") as f64 / 1e9,
        )
    };
    let before = throttling();
    let snap = util::once(&["--no-discovery", "--cgroup", acct.to_str().unwrap()]);
    let after = throttling();
    let c = util::container(&snap, &format!("/{name}"));
    let kernel_total = read_u64(&acct.join("cpuacct.usage")) as f64 / 1e9;
    let tck = cgroup_collector::clk_tck() as f64;
    let kernel_user = keyed(&acct.join("cpuacct.stat"), "user ") as f64 / tck;
    let kernel_sys = keyed(&acct.join("cpuacct.stat"), "system ") as f64 / tck;
    let (proc_ticks, proc_sched) = util::proc_cpu(pid);
    eprintln!(
        "v1: wall {wall:.3}s collector total {} user {} sys {} | cpuacct.usage {kernel_total:.4} \
         stat {kernel_user:.2}+{kernel_sys:.2} | /proc stat {proc_ticks:.2} schedstat {proc_sched:.4} | throttled {} ({} s)",
        c["total_secs"], c["user_secs"], c["system_secs"], c["nr_throttled"], c["throttled_secs"]
    );

    let total = c["total_secs"].as_f64().unwrap();
    assert!(total >= BUSY_CPU, "the busy loop ran: {c}");
    // Same figures as the kernel's files (1 %).
    assert!(
        within(total, kernel_total, 0.01, 0.0),
        "{total} vs cpuacct.usage {kernel_total}"
    );
    assert!(within(
        c["user_secs"].as_f64().unwrap(),
        kernel_user,
        0.01,
        0.0
    ));
    assert!(within(
        c["system_secs"].as_f64().unwrap(),
        kernel_sys,
        0.01,
        0.0
    ));
    // Same as the process's own accounting: schedstat (ns) within 1 %; utime+stime within 1 %
    // or two ticks (each of utime and stime is truncated to whole 1/USER_HZ = 10 ms ticks; one
    // tick is itself 1.3 % of 0.75 s).
    assert!(
        within(total, proc_sched, 0.01, 0.0),
        "{total} vs schedstat {proc_sched}"
    );
    assert!(
        within(total, proc_ticks, 0.01, 2.0 / tck + 0.001),
        "{total} vs utime+stime {proc_ticks}"
    );
    // The quota was enforced.
    assert_eq!(c["quota_cpus"], json!(0.5));
    assert_eq!(
        (c["quota_us"].as_u64(), c["period_us"].as_u64()),
        (Some(50_000), Some(100_000))
    );
    assert!(
        total <= 0.5 * wall + 0.05,
        "a 0.5-CPU quota over {wall:.2}s allowed {total}s"
    );
    // Throttling as the kernel counts it, read between the two looks at cpu.stat. (Whether the
    // kernel throttled at all depends on the machine: a loop that shares its CPUs with other
    // work may never reach 50 ms in a period, even running at 40 % of the wall time; and it
    // may count a throttled period whose time rounds to nothing.)
    let (reported, reported_secs) = (
        c["nr_throttled"].as_u64().unwrap(),
        c["throttled_secs"].as_f64().unwrap(),
    );
    assert!(
        (before.0..=after.0).contains(&reported),
        "nr_throttled {reported}, the kernel's {} then {}",
        before.0,
        after.0
    );
    assert!(
        before.1 - 1e-6 <= reported_secs && reported_secs <= after.1 + 1e-6,
        "throttled_secs {reported_secs}, the kernel's {} then {}",
        before.1,
        after.1
    );
}

#[test]
fn v2_busy_loop_matches_kernel_and_proc() {
    if !util::kernel_cgroups() {
        return util::skip("v2 accuracy", "needs root");
    }
    let roots = Roots::detect(Path::new("/sys/fs/cgroup"));
    let Some(v2_root) = roots.v2.clone() else {
        return util::skip("v2 accuracy", "no cgroup v2 hierarchy");
    };
    let name = util::unique("qos-it-v2");
    let mut cg = KernelCgroup::create(&[&v2_root], &name);
    let dir = v2_root.join(&name);
    let pid = cg.spawn_busy_loop(&[&dir]);
    busy_until(BUSY_CPU, || {
        keyed(&dir.join("cpu.stat"), "usage_usec ") as f64 / 1e6
    });
    util::freeze(pid);

    let snap = util::once(&["--no-discovery", "--cgroup", dir.to_str().unwrap()]);
    let c = util::container(&snap, &format!("/{name}"));
    assert_eq!(c["dirs"]["version"], "v2", "{c}");
    let stat = dir.join("cpu.stat");
    let k = |key| keyed(&stat, key) as f64 / 1e6;
    let (k_total, k_user, k_sys) = (k("usage_usec "), k("user_usec "), k("system_usec "));
    let (proc_ticks, proc_sched) = util::proc_cpu(pid);
    eprintln!(
        "v2: collector {} ({} + {}) | cpu.stat {k_total:.4} ({k_user:.4} + {k_sys:.4}) | /proc stat {proc_ticks:.2} schedstat {proc_sched:.4}",
        c["total_secs"], c["user_secs"], c["system_secs"]
    );
    let total = c["total_secs"].as_f64().unwrap();
    assert!(total >= BUSY_CPU, "the busy loop ran: {c}");
    assert!(within(total, k_total, 0.01, 0.0));
    assert!(within(c["user_secs"].as_f64().unwrap(), k_user, 0.01, 0.0));
    assert!(within(c["system_secs"].as_f64().unwrap(), k_sys, 0.01, 0.0));
    assert!(
        within(total, proc_sched, 0.01, 0.0),
        "{total} vs schedstat {proc_sched}"
    );
    let tck = cgroup_collector::clk_tck() as f64;
    assert!(
        within(total, proc_ticks, 0.01, 2.0 / tck + 0.001),
        "{total} vs utime+stime {proc_ticks}"
    );
    // No cpu controller in the hybrid unified tree: no limit is reported, not a made-up one.
    if !dir.join("cpu.max").exists() {
        assert!(c["quota_cpus"].is_null(), "{c}");
    }
}

/// The testbed's layout on the real kernel: discovered under the configured prefix, mapped from
/// its `qos.json`, resized in place through `POST /resize`, quota seen in the cgroup at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testbed_task_discovered_mapped_and_resized_on_real_kernel() {
    if !util::kernel_cgroups() {
        return util::skip("testbed resize", "needs root");
    }
    let roots = Roots::detect(Path::new("/sys/fs/cgroup"));
    let (acct_root, cpu_root) = (
        roots.v1_cpuacct.clone().unwrap(),
        roots.v1_cpu.clone().unwrap(),
    );
    let prefix = util::unique("qos-it-tb");
    let rel = format!("{prefix}/agent1/task-1");
    let mut cg = KernelCgroup::create(&[&acct_root, &cpu_root], &rel);
    let (acct, cpu) = (acct_root.join(&rel), cpu_root.join(&rel));
    fs::write(cpu.join("cpu.cfs_quota_us"), "50000").unwrap();
    cg.spawn_busy_loop(&[&acct, &cpu]);
    let meta = tempfile::tempdir().unwrap();
    let uuid = util::job_uuid();
    util::fixture_meta(meta.path(), "agent1", "task-1", &uuid);

    let agent = util::Agent::start(&[
        "--no-docker",
        "--period",
        "0.2",
        "--testbed-prefix",
        &prefix,
        "--testbed-meta-dir",
        meta.path().to_str().unwrap(),
        "--resize-token",
        "s3cret",
    ]);
    let snap = agent
        .wait_for(
            "the task mapped with CPU use",
            Duration::from_secs(10),
            |s| {
                s["containers"].as_array().unwrap().iter().any(|c| {
                    c["uuid"] == uuid.as_str() && c["total_secs"].as_f64().unwrap_or(0.0) > 0.05
                })
            },
        )
        .await;
    let c = snap["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["uuid"] == uuid.as_str())
        .unwrap();
    assert_eq!(
        (c["runtime"].as_str(), c["id"].as_str(), c["agent"].as_str()),
        (Some("testbed"), Some("task-1"), Some("agent1"))
    );
    assert_eq!(c["quota_cpus"], json!(0.5));

    let t0 = Instant::now();
    let (st, body) = agent
        .resize(Some("s3cret"), json!({"uuid": uuid, "cpus": 0.25}))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["cpus"], json!(0.25));
    assert_eq!(
        fs::read_to_string(cpu.join("cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "25000"
    );
    eprintln!(
        "testbed resize took {:?} (HTTP round trip + cgroup write + read back)",
        t0.elapsed()
    );
    let text = agent.metrics_text().await;
    assert!(
        text.contains(&format!(
            "container_spec_cpu_quota{{id=\"/{rel}\",name=\"task-1\",qos_uuid=\"{uuid}\"}}"
        )),
        "{text}"
    );
}

/// A cgroup removed and re-created under the same path (a container restarted under the same
/// id) while the agent holds its files open: the reader reopens by path, and the counter-reset
/// tracker keeps the reported total from going backwards.
#[test]
fn cached_descriptors_follow_a_recreated_cgroup() {
    use cgroup_collector::FdBudget;
    use cgroup_collector::{CgroupDirs, CgroupReader};
    use cgroup_collector::{Counters, Monotonic};
    if !util::kernel_cgroups() {
        return util::skip("recreated cgroup", "needs root");
    }
    let roots = Roots::detect(Path::new("/sys/fs/cgroup"));
    let acct_root = roots.v1_cpuacct.clone().unwrap();
    let name = util::unique("qos-it-recreate");
    let dir = acct_root.join(&name);
    let dirs = CgroupDirs::V1 {
        cpuacct: dir.clone(),
        cpu: None,
    };
    let budget = FdBudget::new(8);
    let mut reader = CgroupReader::new(&dirs, &budget);
    let mut buf = Vec::new();
    let mut mono = Monotonic::default();
    let observe = |m: &mut Monotonic, ns| {
        m.observe(Counters {
            total_ns: ns,
            ..Counters::default()
        })
        .0
        .total_ns
    };

    let first = {
        let mut cg = KernelCgroup::create(&[&acct_root], &name);
        let pid = cg.spawn_busy_loop(&[&dir]);
        busy_until(0.05, || read_u64(&dir.join("cpuacct.usage")) as f64 / 1e9);
        util::freeze(pid);
        let s = reader.read(100, &mut buf).unwrap();
        assert!(s.usage.total_ns > 10_000_000, "{s:?}");
        assert_eq!(budget.available(), 6, "two descriptors held");
        observe(&mut mono, s.usage.total_ns)
    }; // killed and removed here
    assert!(!dir.exists());
    let err = reader.read(100, &mut buf).unwrap_err();
    assert!(err.is_not_found(), "removed cgroup reads as gone: {err}");
    let _again = KernelCgroup::create(&[&acct_root], &name);
    let s = reader.read(100, &mut buf).unwrap();
    assert!(
        s.usage.total_ns < first,
        "fresh counters after re-creation: {s:?}"
    );
    assert!(
        observe(&mut mono, s.usage.total_ns) >= first,
        "reported total never goes back"
    );
    assert_eq!(mono.resets(), 1);
}
