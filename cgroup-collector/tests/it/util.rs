//! Helpers: run the real binary, fixture cgroup trees, kernel cgroups cleaned up on drop.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cgroup-collector")
}

/// A name no other test (or test run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A random 32-hex job UUID.
pub(crate) fn job_uuid() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..32)
        .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap())
        .collect()
}

/// `cgroup-collector --once --output json ARGS…` → parsed snapshot.
pub(crate) fn once(args: &[&str]) -> Value {
    let out = Command::new(bin())
        .args(["--once", "--output", "json", "--no-docker"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "--once failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The container with cgroup path `cgroup` in a snapshot.
pub(crate) fn container<'a>(snap: &'a Value, cgroup: &str) -> &'a Value {
    snap["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cgroup"] == cgroup)
        .unwrap_or_else(|| panic!("no container {cgroup} in {snap}"))
}

/// A running agent; SIGTERM + wait on drop.
pub(crate) struct Agent {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// `…/metrics`.
    pub(crate) metrics: String,
    /// The agent's stderr, shown if the test fails.
    log: tempfile::NamedTempFile,
}

impl Agent {
    /// Start `cgroup-collector --listen 127.0.0.1:0 ARGS…` and wait for its ready line.
    pub(crate) fn start(args: &[&str]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "cgroup_collector=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("agent printed no ready line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let metrics = v["metrics"].as_str().unwrap().to_string();
        let base = metrics.trim_end_matches("/metrics").to_string();
        Self {
            child,
            base,
            metrics,
            log,
        }
    }

    /// `GET /snapshot`.
    pub(crate) async fn snapshot(&self) -> Value {
        reqwest::get(format!("{}/snapshot", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /metrics` text.
    pub(crate) async fn metrics_text(&self) -> String {
        reqwest::get(&self.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `POST /resize` with an optional bearer token → (status, JSON body).
    pub(crate) async fn resize(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/resize", self.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Poll `/snapshot` until `pred` holds (bounded).
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let t0 = Instant::now();
        loop {
            let s = self.snapshot().await;
            if pred(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < within,
                "timed out waiting for {what}; last snapshot: {s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM and wait (bounded); returns whether it exited cleanly.
    pub(crate) fn stop(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(self.log.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- agent log (last 60 lines) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Write a v1 cgroup (cpuacct + cpu dirs) into a fixture tree.
pub(crate) fn fixture_v1(
    root: &Path,
    rel: &str,
    usage_ns: u64,
    user_ticks: u64,
    sys_ticks: u64,
    quota: i64,
) {
    let a = root.join("cpuacct").join(rel);
    fs::create_dir_all(&a).unwrap();
    fs::write(a.join("cpuacct.usage"), format!("{usage_ns}\n")).unwrap();
    fs::write(
        a.join("cpuacct.stat"),
        format!("user {user_ticks}\nsystem {sys_ticks}\n"),
    )
    .unwrap();
    fs::write(a.join("cgroup.procs"), "").unwrap();
    let c = root.join("cpu").join(rel);
    fs::create_dir_all(&c).unwrap();
    fs::write(c.join("cpu.cfs_quota_us"), format!("{quota}\n")).unwrap();
    fs::write(c.join("cpu.cfs_period_us"), "100000\n").unwrap();
    fs::write(
        c.join("cpu.stat"),
        "nr_periods 10\nnr_throttled 4\nthrottled_time 250000000\n",
    )
    .unwrap();
}

/// Write a testbed metadata file.
pub(crate) fn fixture_meta(meta_dir: &Path, agent: &str, task: &str, uuid: &str) {
    let d = meta_dir.join(agent).join(task);
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("qos.json"),
        format!(r#"{{"uuid": "{uuid}", "task_id": "{task}"}}"#),
    )
    .unwrap();
}

/// Whether real cgroups can be created here (root and a writable v1 cpuacct hierarchy).
pub(crate) fn kernel_cgroups() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/sys/fs/cgroup/cpuacct/cpuacct.usage").exists()
}

/// Skip notice (or failure when QOS_REQUIRE_CGROUPS=1).
pub(crate) fn skip(what: &str, why: &str) {
    let _ = testkit::skip_unless_required(&["QOS_REQUIRE_CGROUPS"], why, what);
}

/// Real cgroup directories plus the process in them; on drop the process is killed and the
/// directories removed (deepest first), even if the test panicked.
pub(crate) struct KernelCgroup {
    /// Directories created (all controllers), parents first.
    pub(crate) dirs: Vec<PathBuf>,
    /// The process moved into it.
    pub(crate) child: Option<Child>,
}

impl KernelCgroup {
    /// Create `rel` under each root (with intermediate directories, remembered for cleanup).
    pub(crate) fn create(roots: &[&Path], rel: &str) -> Self {
        let mut dirs = Vec::new();
        for root in roots {
            let mut p = root.to_path_buf();
            for part in rel.split('/') {
                p.push(part);
                if !p.exists() {
                    fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                    dirs.push(p.clone());
                }
            }
        }
        Self { dirs, child: None }
    }

    /// Start `sh -c 'move myself into every cgroup.procs; busy loop'`.
    pub(crate) fn spawn_busy_loop(&mut self, procs_dirs: &[&Path]) -> u32 {
        let moves: String = procs_dirs
            .iter()
            .map(|d| format!("echo $$ > {}/cgroup.procs; ", d.display()))
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{moves}while :; do :; done"))
            .spawn()
            .unwrap();
        let pid = child.id();
        self.child = Some(child);
        pid
    }
}

impl Drop for KernelCgroup {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.dirs.iter().rev() {
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub(crate) use testkit::docker_or_skip;

/// `docker ARGS…` → trimmed stdout; panics with stderr on failure.
pub(crate) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `(utime + stime) / CLK_TCK` and `schedstat` run time, seconds, of a process.
pub(crate) fn proc_cpu(pid: u32) -> (f64, f64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ", field 3 (state) is index 0: utime is field 14 → index 11.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let tck = cgroup_collector::clk_tck() as f64;
    let sched = fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    let run_ns: u64 = sched.split_whitespace().next().unwrap().parse().unwrap();
    (ticks as f64 / tck, run_ns as f64 / 1e9)
}

/// Stop a process (SIGSTOP) so its counters hold still while everything is read.
pub(crate) fn freeze(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(150));
}

/// Epoch seconds now.
pub(crate) fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
