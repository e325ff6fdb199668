//! After the components have stopped: check that nothing of the run is left — no process that
//! carries the run's marker in its environment, no cgroup under the run's prefix — and remove
//! whatever is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The environment variable every process of the run inherits (`QOS_DEMO_RUN=<run id>`).
pub const MARKER: &str = "QOS_DEMO_RUN";

/// Processes (pid, command) whose environment carries `QOS_DEMO_RUN=<run>`.
#[must_use]
pub fn marked_processes(run: &str) -> Vec<(i32, String)> {
    let needle = format!("{MARKER}={run}");
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == me) {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            let cmd = std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default();
            // Zombies have an empty command line and hold nothing.
            if !cmd.is_empty() {
                found.push((pid, cmd));
            }
        }
    }
    found
}

/// Cgroup directories named `prefix` under every hierarchy of `root`.
#[must_use]
pub fn cgroup_dirs(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let direct = root.join(prefix);
    if direct.is_dir() {
        out.push(direct);
    }
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path().join(prefix);
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

/// Every directory below `dir`, deepest first, `dir` last.
fn walk_bottom_up(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_bottom_up(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// Finds what the run left behind, kills and removes it, and says what it found (empty: nothing
/// was left).
pub async fn sweep(run: &str, cgroup_root: &Path, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (pid, cmd) in marked_processes(run) {
        found.push(format!("process {pid} ({cmd})"));
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let dirs = cgroup_dirs(cgroup_root, prefix);
    for d in &dirs {
        found.push(format!("cgroup {}", d.display()));
    }
    for _attempt in 0..20 {
        let mut left = false;
        for top in &dirs {
            let mut all = Vec::new();
            walk_bottom_up(top, &mut all);
            for d in all {
                if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                if std::fs::remove_dir(&d).is_err() && d.exists() {
                    left = true;
                }
            }
        }
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}
