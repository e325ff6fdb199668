//! What only the collector's tests use: its binary run once or as a serving agent (its
//! `/snapshot`, `/metrics` and `/resize`), the testbed metadata it maps tasks with, and a
//! process's CPU time as the collector's own `clk_tck` counts it. Names, cgroup trees and
//! Docker are `testkit`'s.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) use testkit::cgroups::{
    Scratch as KernelCgroup, fixture_v1, fixture_v2, kernel_v1 as kernel_cgroups,
};
pub(crate) use testkit::docker::ok as docker;
pub(crate) use testkit::docker_or_skip;
pub(crate) use testkit::names::{job_uuid, unique};

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cgroup-collector")
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
    proc_: testkit::services::Proc,
    /// `http://127.0.0.1:port`.
    pub(crate) base: String,
    /// `…/metrics`.
    pub(crate) metrics: String,
    /// The agent's stderr, shown if the test fails.
    log: tempfile::TempDir,
}

impl Agent {
    /// Start `cgroup-collector --listen 127.0.0.1:0 ARGS…` and wait for its ready line.
    pub(crate) fn start(args: &[&str]) -> Self {
        let log = tempfile::tempdir().unwrap();
        let (proc_, v) = testkit::services::start_json_line(
            Command::new(bin())
                .args(["--listen", "127.0.0.1:0"])
                .args(args)
                .env("RUST_LOG", "cgroup_collector=debug,warn")
                .env("NO_COLOR", "1"),
            "cgroup-collector",
            &log.path().join("agent.log"),
        );
        let metrics = v["metrics"].as_str().unwrap().to_string();
        let base = metrics.trim_end_matches("/metrics").to_string();
        Self {
            proc_,
            base,
            metrics,
            log,
        }
    }

    /// The agent's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.proc_.0.id()
    }

    /// What the agent has logged so far.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.log.path().join("agent.log")).unwrap_or_default()
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
        let pred = &pred;
        testkit::wait::until(
            what,
            within,
            Duration::from_millis(100),
            move || async move {
                let s = self.snapshot().await;
                if pred(&s) {
                    Ok(s)
                } else {
                    Err(format!("snapshot {s}"))
                }
            },
        )
        .await
    }

    /// SIGTERM and wait (bounded); returns whether it exited cleanly.
    pub(crate) fn stop(&mut self) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.proc_.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.proc_.0.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.proc_.0.kill();
        let _ = self.proc_.0.wait();
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.proc_.0.try_wait(), Ok(None)) {
            self.stop();
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- agent log (last 60 lines) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
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

/// Skip notice (or failure when QOS_REQUIRE_CGROUPS=1).
pub(crate) fn skip(what: &str, why: &str) {
    let _ = testkit::skip_unless_required(&["QOS_REQUIRE_CGROUPS"], why, what);
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

/// Stop a process (SIGSTOP) so its counters hold still while everything is read: returns once
/// the kernel shows it stopped (state `T` in `/proc/<pid>/stat`), when its last run is counted.
pub(crate) fn freeze(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let stopped = || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let (_, after) = s.rsplit_once(") ")?;
                after.split_whitespace().next().map(|st| st == "T")
            })
            .unwrap_or(false)
    };
    let limit = Instant::now() + Duration::from_secs(10);
    while !stopped() {
        assert!(
            Instant::now() < limit,
            "process {pid} did not stop on SIGSTOP"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Epoch seconds now.
pub(crate) fn epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
