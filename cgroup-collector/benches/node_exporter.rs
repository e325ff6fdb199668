//! The collector against Prometheus' node_exporter, side by side on the same host and the same
//! 1,000 real cgroups: each is scraped every second for a fixed time the way Prometheus scrapes
//! (same `Accept` and `Accept-Encoding: gzip`, one kept-alive connection), and the CPU each
//! process spent is read from a cgroup of its own (`cpuacct.usage`, ns, every thread counted)
//! and cross-checked with `/proc/<pid>/stat` (`utime + stime`, 10 ms ticks).
//!
//! ```text
//! cargo bench -p cgroup-collector --bench node_exporter
//! QOS_BENCH_SECONDS=120 QOS_BENCH_CONTAINERS=1000 cargo bench -p cgroup-collector --bench node_exporter
//! QOS_BENCH_COLLECTOR=/path/to/another/cgroup-collector cargo bench …   # measure another build
//! ```
//!
//! Four processes run at once:
//! - `node_exporter (defaults)`: the Debian package's binary as an operator runs it;
//! - `node_exporter (same families)`: only the collectors whose series the agent also exports
//!   (`cpu`, `stat`, `loadavg`, `meminfo`, `filesystem`, `netdev`, `time`);
//! - `collector, node only`: the release `cgroup-collector` with an empty cgroup root — its node
//!   part (a pass of `/proc` every second, `/metrics`, the HTTP server);
//! - `collector, N containers`: the same binary over N real cgroups in the testbed's layout,
//!   each a job's container (0.5 CPU quota, mapped by the testbed's `qos.json`) with a thread
//!   that wakes every 250 ms (every counter moves between two passes).
//!
//! The container part is the difference between the last two. Needs root (cgroups) and
//! node_exporter (`prometheus-node-exporter`, or `$QOS_NODE_EXPORTER`); without them it says
//! so and exits 0 (1 with `QOS_REQUIRE_NODE_EXPORTER=1`). Lines starting `FIGURE` are read by
//! `scripts/bench`.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{RealTree, env_usize};

/// What Prometheus 2.42 sends when it scrapes.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// node_exporter's collectors for the node series the agent exports too.
const SAME_FAMILIES: [&str; 7] = [
    "cpu",
    "stat",
    "loadavg",
    "meminfo",
    "filesystem",
    "netdev",
    "time",
];

/// One measured process: its own cgroup for CPU accounting, killed on drop.
struct Measured {
    name: String,
    child: Child,
    url: String,
    acct: PathBuf,
    /// Kept open: the collector must not meet a closed stdout.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl Drop for Measured {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            if fs::remove_dir(&self.acct).is_ok() || !self.acct.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Measured {
    /// Moves the running child (every thread) into a fresh cpuacct cgroup under `group`.
    fn start(
        name: &str,
        mut cmd: Command,
        url: Option<String>,
        group: &Path,
        logs: &Path,
    ) -> Result<Self, String> {
        let log = fs::File::create(logs.join(format!("{}.log", name.replace(' ', "-"))))
            .map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stderr(Stdio::from(log))
            .stdout(Stdio::piped());
        let acct = group.join(name.replace([' ', ','], "-"));
        fs::create_dir(&acct).map_err(|e| format!("{}: {e}", acct.display()))?;
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = fs::remove_dir(&acct);
                return Err(format!(
                    "cannot start {name} ({:?}): {e}",
                    cmd.get_program()
                ));
            }
        };
        // From here on, dropping `me` stops the process and removes its cgroup.
        let mut me = Self {
            name: name.to_owned(),
            child,
            url: url.unwrap_or_default(),
            acct,
            _stdout: None,
        };
        fs::write(me.acct.join("cgroup.procs"), me.child.id().to_string())
            .map_err(|e| format!("cannot move {name} into {}: {e}", me.acct.display()))?;
        if me.url.is_empty() {
            // The collector prints one JSON line with its address once it serves.
            let mut out = BufReader::new(me.child.stdout.take().ok_or("no stdout")?);
            let mut line = String::new();
            out.read_line(&mut line).map_err(|e| e.to_string())?;
            me._stdout = Some(out);
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("{name} printed {line:?}: {e}"))?;
            me.url = v["metrics"].as_str().ok_or("no metrics url")?.to_owned();
        }
        Ok(me)
    }

    fn cpu_ns(&self) -> u64 {
        fs::read_to_string(self.acct.join("cpuacct.usage"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `utime + stime` of the process, seconds (USER_HZ ticks).
    fn stat_secs(&self) -> f64 {
        let text =
            fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
        (ticks(11) + ticks(12)) / cgroup_collector::clk_tck() as f64
    }

    fn rss_kib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
            .unwrap_or(0)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(0, |a| a.port())
}

fn which(names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QOS_NODE_EXPORTER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

#[derive(Default)]
struct Tally {
    scrapes: u64,
    failures: u64,
    bytes: u64,
    latency_ms: Vec<f64>,
    rss_max_kib: u64,
}

async fn scrape(http: &reqwest::Client, url: &str) -> Result<(u64, f64), String> {
    let t0 = Instant::now();
    let resp = http
        .get(url)
        .header("Accept", ACCEPT)
        .header("Accept-Encoding", "gzip")
        .header("X-Prometheus-Scrape-Timeout-Seconds", "1")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok((body.len() as u64, t0.elapsed().as_secs_f64() * 1e3))
}

fn skip(why: &str) {
    if std::env::var("QOS_REQUIRE_NODE_EXPORTER").is_ok_and(|v| v == "1") {
        eprintln!("collector vs node_exporter: cannot run: {why}");
        std::process::exit(1);
    }
    println!("== collector vs node_exporter: SKIPPED ({why})");
}

fn main() {
    let n = env_usize("QOS_BENCH_CONTAINERS", 1_000);
    let seconds = env_usize("QOS_BENCH_SECONDS", 60).max(5);
    let Some(exporter) = which(&["prometheus-node-exporter", "node_exporter"]) else {
        skip(
            "no node_exporter: apt-get install prometheus-node-exporter, or set QOS_NODE_EXPORTER",
        );
        return;
    };
    if !nix::unistd::Uid::effective().is_root() {
        skip("needs root for real cgroups");
        return;
    }
    let prefix = format!("qos-bench-{}", std::process::id());
    let tmp = tempfile::tempdir().expect("tempdir");
    let meta = tmp.path().join("meta");
    let tree = match RealTree::create(n, &prefix, &meta) {
        Ok(t) => t,
        Err(e) => {
            skip(&e);
            return;
        }
    };
    let Some(acct_root) = tree.roots.v1_cpuacct.clone() else {
        skip("no cpuacct hierarchy");
        return;
    };
    let group = acct_root.join(format!("{prefix}-procs"));
    if let Err(e) = fs::create_dir(&group) {
        skip(&format!("cannot create {}: {e}", group.display()));
        return;
    }
    // A cgroup root with the v1 hierarchies and no container in them.
    let empty_root = tmp.path().join("no-cgroups");
    for h in ["cpu", "cpuacct"] {
        fs::create_dir_all(empty_root.join(h)).expect("mkdir");
    }
    // Another build of the agent can be measured instead (an A/B comparison of two versions).
    let collector = std::env::var_os("QOS_BENCH_COLLECTOR").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_cgroup-collector")),
        PathBuf::from,
    );
    let version = Command::new(&exporter)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(if o.stdout.is_empty() {
                &o.stderr
            } else {
                &o.stdout
            })
            .into_owned();
            text.lines().next().unwrap_or("").to_owned()
        })
        .unwrap_or_default();
    println!(
        "collector vs node_exporter: {n} real cgroups (each active every 250 ms), scraped every 1 s for {seconds} s; {version}"
    );

    let result = run(
        &exporter,
        &collector,
        &tree,
        &group,
        &empty_root,
        &meta,
        tmp.path(),
        n,
        seconds,
    );
    let _ = fs::remove_dir(&group);
    drop(tree);
    if let Err(e) = result {
        eprintln!("collector vs node_exporter: {e}");
        std::process::exit(1);
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    exporter: &Path,
    collector: &Path,
    tree: &RealTree,
    group: &Path,
    empty_root: &Path,
    meta: &Path,
    logs: &Path,
    n: usize,
    seconds: usize,
) -> Result<(), String> {
    let mut procs: Vec<Measured> = Vec::new();
    for (name, same) in [
        ("node_exporter (defaults)", false),
        ("node_exporter (same families)", true),
    ] {
        let port = free_port();
        let mut cmd = Command::new(exporter);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        if same {
            cmd.arg("--collector.disable-defaults");
            for c in SAME_FAMILIES {
                cmd.arg(format!("--collector.{c}"));
            }
        }
        procs.push(Measured::start(
            name,
            cmd,
            Some(format!("http://127.0.0.1:{port}/metrics")),
            group,
            logs,
        )?);
    }
    let containers_name = format!("collector, {n} containers");
    for (name, root) in [
        ("collector, node only", empty_root.to_path_buf()),
        (containers_name.as_str(), PathBuf::from("/sys/fs/cgroup")),
    ] {
        let mut cmd = Command::new(collector);
        cmd.args(["--listen", "127.0.0.1:0", "--no-docker", "--period", "1"])
            .arg("--cgroup-root")
            .arg(&root)
            .arg("--testbed-prefix")
            .arg(&tree.prefix)
            .arg("--testbed-meta-dir")
            .arg(meta)
            .env("RUST_LOG", "warn");
        procs.push(Measured::start(name, cmd, None, group, logs)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    // Ready and warm: every target answers, the collectors have made their first passes.
    rt.block_on(async {
        for p in &procs {
            let t0 = Instant::now();
            loop {
                match scrape(&http, &p.url).await {
                    Ok(_) => break,
                    Err(e) if t0.elapsed() > Duration::from_secs(20) => {
                        return Err(format!("{} never answered at {}: {e}", p.name, p.url));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok::<(), String>(())
    })?;
    let load_before = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpu0: Vec<u64> = procs.iter().map(Measured::cpu_ns).collect();
    let stat0: Vec<f64> = procs.iter().map(Measured::stat_secs).collect();
    let t0 = Instant::now();
    let mut tallies: Vec<Tally> = procs.iter().map(|_| Tally::default()).collect();
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..seconds {
            tick.tick().await;
            for (p, t) in procs.iter().zip(tallies.iter_mut()) {
                match scrape(&http, &p.url).await {
                    Ok((bytes, ms)) => {
                        t.scrapes += 1;
                        t.bytes += bytes;
                        t.latency_ms.push(ms);
                    }
                    Err(_) => t.failures += 1,
                }
                t.rss_max_kib = t.rss_max_kib.max(p.rss_kib());
            }
        }
        tick.tick().await;
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu: Vec<f64> = procs
        .iter()
        .zip(&cpu0)
        .map(|(p, c0)| (p.cpu_ns() - c0) as f64 / 1e9)
        .collect();
    let stat: Vec<f64> = procs
        .iter()
        .zip(&stat0)
        .map(|(p, s0)| p.stat_secs() - s0)
        .collect();
    let load_after = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    println!(
        "   load average before {} / after {}; measured over {wall:.1} s",
        load(&load_before),
        load(&load_after)
    );
    println!(
        "   {:<32} {:>9} {:>9} {:>10} {:>8} {:>12} {:>9}",
        "process", "CPU/scrape", "(stat)", "% of core", "RSS MB", "bytes/scrape", "p50 ms"
    );
    let per_scrape: Vec<f64> = tallies
        .iter()
        .zip(&cpu)
        .map(|(t, c)| c / t.scrapes.max(1) as f64)
        .collect();
    for (i, p) in procs.iter().enumerate() {
        let t = &mut tallies[i];
        t.latency_ms.sort_by(f64::total_cmp);
        let p50 = t
            .latency_ms
            .get(t.latency_ms.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "   {:<32} {:>7.2}ms {:>7.2}ms {:>9.3}% {:>8.1} {:>12} {:>9.2}{}",
            p.name,
            per_scrape[i] * 1e3,
            stat[i] / t.scrapes.max(1) as f64 * 1e3,
            cpu[i] / wall * 100.0,
            t.rss_max_kib as f64 / 1024.0,
            t.bytes / t.scrapes.max(1),
            p50,
            if t.failures > 0 {
                format!("  ({} failed scrapes)", t.failures)
            } else {
                String::new()
            }
        );
    }
    let (ne_default, ne_same, node_only, with_containers) = (0, 1, 2, 3);
    let container_part = (cpu[with_containers] - cpu[node_only]) / wall;
    println!(
        "   container part (collector with {n} containers − node only): {:.3} % of one core = {:.2} µs per container per second",
        container_part * 100.0,
        container_part / n as f64 * 1e6
    );
    let r_same = per_scrape[node_only] / per_scrape[ne_same];
    let r_default = per_scrape[node_only] / per_scrape[ne_default];
    println!(
        "   node part: collector / node_exporter CPU per scrape = {r_same:.2} (same families), {r_default:.2} (defaults)"
    );
    println!(
        "FIGURE\tnode part: collector CPU per scrape, node only\t{:.2} ms\tnode_exporter (same families) {:.2} ms\t{r_same:.2}",
        per_scrape[node_only] * 1e3,
        per_scrape[ne_same] * 1e3
    );
    println!(
        "FIGURE\tnode part: collector CPU per scrape, node only\t{:.2} ms\tnode_exporter (defaults) {:.2} ms\t{r_default:.2}",
        per_scrape[node_only] * 1e3,
        per_scrape[ne_default] * 1e3
    );
    println!(
        "FIGURE\tcontainer part at {n} containers, 1 s period (collector process)\t{:.3} % of a core\ttarget 1 % of a core\t{:.2}",
        container_part * 100.0,
        container_part * 100.0
    );
    println!(
        "FIGURE\tRSS, collector with {n} containers\t{:.1} MB\tnode_exporter (defaults) {:.1} MB\t{:.2}",
        tallies[with_containers].rss_max_kib as f64 / 1024.0,
        tallies[ne_default].rss_max_kib as f64 / 1024.0,
        tallies[with_containers].rss_max_kib as f64 / tallies[ne_default].rss_max_kib.max(1) as f64
    );
    Ok(())
}
