//! The project's services (supervisor, testbed, cgroup-collector) started as real processes for
//! end-to-end tests: each prints one JSON line on stdout once it serves, and logs to stderr.
//! [`testbed`] starts the testbed binary the way the end-to-end tests need it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A child process, killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a binary that prints one JSON line once it serves, its stderr to `log`; returns it and
/// that line. Panics (with the log) when no line comes within 30 s or it is not JSON.
#[must_use]
pub fn start_json_line(cmd: &mut Command, what: &str, log: &Path) -> (Proc, Value) {
    let stderr = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let proc_ = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "{what} printed no ready line:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
    let v = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "{what}: {e}: {line:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    (proc_, v)
}

/// `testbed serve` (the binary `bin`) with one agent of 2 CPUs, Marathon and Chronos on `listen`
/// (`127.0.0.1:0`: any port), its cgroups under `prefix`, its metadata, recovery records and
/// sandboxes under `dir` (`meta`, `state`, `work`: a testbed started again on the same `dir` and
/// `prefix` recovers what this one left), its log in `dir/<tag>.log`. Returns it and its URLs
/// (`{"marathon", "chronos", "agents"}`).
#[must_use]
pub fn testbed(bin: &Path, dir: &Path, prefix: &str, listen: &str, tag: &str) -> (Proc, Value) {
    start_json_line(
        Command::new(bin)
            .args(["serve", "--listen", listen, "--agents", "1"])
            .args(["--cpus-per-agent", "2", "--cgroup-prefix", prefix])
            .arg("--meta-dir")
            .arg(dir.join("meta"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--work-dir")
            .arg(dir.join("work"))
            .env("RUST_LOG", "info"),
        "testbed",
        &dir.join(format!("{tag}.log")),
    )
}
