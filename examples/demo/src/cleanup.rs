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
    let me = std::process::id();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter(|p| u32::try_from(p.pid).is_ok_and(|p| p != me))
        .filter(|p| {
            p.environ().is_ok_and(|env| {
                env.get(std::ffi::OsStr::new(MARKER))
                    .is_some_and(|v| v.as_encoded_bytes() == run.as_bytes())
            })
        })
        .filter_map(|p| {
            // Zombies have an empty command line and hold nothing.
            let cmd = p.cmdline().ok()?.join(" ");
            (!cmd.is_empty()).then_some((p.pid, cmd))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweep_kills_the_processes_of_its_run_and_no_others() {
        let run = format!("cleanup-test-{}", std::process::id());
        let spawn = |run: &str| {
            std::process::Command::new("sleep")
                .arg("300")
                .env(MARKER, run)
                .spawn()
                .unwrap()
        };
        let mut mine = spawn(&run);
        let mut other = spawn(&format!("{run}-other"));
        let pid = i32::try_from(mine.id()).unwrap();
        // Until the child has exec'd, its environment is still this test's.
        let seen =
            testkit::wait::blocking(Duration::from_secs(10), Duration::from_millis(5), || {
                Some(marked_processes(&run)).filter(|m| !m.is_empty())
            });
        assert_eq!(seen, Some(vec![(pid, "sleep 300".to_owned())]));
        let empty = tempfile::tempdir().unwrap();
        let found = sweep(&run, empty.path(), "no-such-prefix").await;
        assert_eq!(found, [format!("process {pid} (sleep 300)")]);
        // Killed: it exits by SIGKILL (and, reaped, is gone from /proc).
        let status = mine.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(marked_processes(&run).is_empty());
        // A run whose marker only starts the same is not this run.
        assert_eq!(
            other.try_wait().unwrap(),
            None,
            "another run's process was killed"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
