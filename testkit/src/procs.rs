//! The host's processes, read from `/proc` (through the `procfs` crate) and the cgroup tree: which
//! ones show a secret in their arguments (what `ps` shows every user of the host), whether one
//! still runs, what it uses (CPU time, resident memory, open descriptors: for the tests and
//! benchmarks that print it), which ones a cgroup holds; [`Leftovers`] kills and removes what a
//! test left under its cgroup prefix.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `(pid, command line)` of every process whose arguments (`/proc/<pid>/cmdline`) contain
/// `needle`. Processes that end while being read are skipped.
#[must_use]
pub fn argv_containing(needle: &str) -> Vec<(u32, String)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| {
            let line = p.cmdline().ok()?.join(" ");
            let pid = u32::try_from(p.pid).ok()?;
            line.contains(needle).then_some((pid, line))
        })
        .collect()
}

/// Process `pid` as `procfs` reads it; `None` when there is none.
fn process(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

/// Whether process `pid` exists and is not a zombie (a killed process waiting for its parent to
/// reap it no longer runs).
#[must_use]
pub fn alive(pid: u32) -> bool {
    stat_state_and_start(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Process `pid`'s arguments (`/proc/<pid>/cmdline`) joined by spaces; `None` once it is gone.
fn cmdline(pid: u32) -> Option<String> {
    Some(process(pid)?.cmdline().ok()?.join(" "))
}

/// One process, told apart from a later one that reuses its pid (pids wrap at
/// `/proc/sys/kernel/pid_max`, 32,768 on many hosts, and a busy test run can go round in
/// seconds): its pid and its start time (`/proc/<pid>/stat` field 22, clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    /// The process id.
    pub pid: u32,
    /// When it started, clock ticks after boot.
    pub start: u64,
}

impl Process {
    /// The process that has `pid` now; `None` when there is none.
    #[must_use]
    pub fn of(pid: u32) -> Option<Self> {
        let (_, start) = stat_state_and_start(pid)?;
        Some(Self { pid, start })
    }

    /// Whether this very process still runs (not a zombie, and its pid not taken by another).
    #[must_use]
    pub fn alive(&self) -> bool {
        stat_state_and_start(self.pid)
            .is_some_and(|(state, start)| state != 'Z' && start == self.start)
    }

    /// What it is, for a failure message: pid, state, command line and cgroup (or "gone").
    #[must_use]
    pub fn describe(&self) -> String {
        let Some((state, start)) = stat_state_and_start(self.pid) else {
            return format!("{}: gone", self.pid);
        };
        if start != self.start {
            return format!("{}: gone (pid now reused)", self.pid);
        }
        let cmdline = cmdline(self.pid).unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("cpu"))
            .collect::<Vec<_>>()
            .join(" ");
        format!("{} [{state}] {cmdline:?} in {cgroup}", self.pid)
    }
}

/// `(state, start time in clock ticks after boot)` from `/proc/<pid>/stat`.
fn stat_state_and_start(pid: u32) -> Option<(char, u64)> {
    let stat = process(pid)?.stat().ok()?;
    Some((stat.state, stat.starttime))
}

/// CPU time (user + system) process `pid` has used, seconds (`/proc/<pid>/stat`); 0 when it
/// cannot be read.
#[must_use]
pub fn cpu_secs(pid: u32) -> f64 {
    process(pid).and_then(|p| p.stat().ok()).map_or(0.0, |s| {
        (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64
    })
}

/// The resident memory of process `pid` (`VmRSS`), MiB; 0 when it is gone.
#[must_use]
pub fn rss_mb(pid: u32) -> f64 {
    process(pid)
        .and_then(|p| p.status().ok()?.vmrss)
        .map_or(0.0, |kb| kb as f64 / 1024.0)
}

/// The file descriptors process `pid` has open (`/proc/<pid>/fd`); 0 when it is gone.
#[must_use]
pub fn open_fds(pid: u32) -> usize {
    process(pid).and_then(|p| p.fd_count().ok()).unwrap_or(0)
}

/// The processes in the cgroup at `dir` (its `cgroup.procs`; none when it is gone).
#[must_use]
pub fn in_cgroup(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// What a test left under its own cgroup prefix, killed and removed when this is dropped: the
/// processes in `pids` and every process in a cgroup below `prefix` (in each hierarchy under
/// `/sys/fs/cgroup`) are SIGKILLed, then the cgroups are removed, children first. A test that
/// starts a testbed on its own prefix and may `kill -9` it (or fail before it stops it) holds
/// one, so that a failed run leaves no task running on the machine; when the thread is panicking
/// it first prints the state of `pids` and the files in `logs` (the services' logs). After a
/// passing run, whose testbed cleaned up, it finds nothing to do. A `prefix` that is empty or
/// holds a `/` or a `.` is never touched.
#[derive(Debug)]
pub struct Leftovers {
    /// The test's cgroup prefix (`--cgroup-prefix` of its testbed).
    pub prefix: String,
    /// The processes the test watched.
    pub pids: Vec<u32>,
    /// Logs to show when the test failed.
    pub logs: Vec<PathBuf>,
}

impl Leftovers {
    /// What is left under `prefix` once this is dropped; `logs` are shown if the test fails.
    #[must_use]
    pub fn new(prefix: &str, logs: Vec<PathBuf>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            pids: Vec::new(),
            logs,
        }
    }

    /// The prefix's directory in each hierarchy that has it.
    fn dirs(&self) -> Vec<PathBuf> {
        if self.prefix.is_empty() || self.prefix.contains(['/', '.']) {
            return Vec::new();
        }
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.path().join(&self.prefix))
            .filter(|d| d.is_dir())
            .collect()
    }
}

/// `dir` and every directory below it, children before their parent.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        {
            out.extend(tree(&e.path()));
        }
    }
    out.push(dir.to_owned());
    out
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for p in &self.pids {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat"));
                eprintln!("process {p}: {}", stat.as_deref().unwrap_or("gone").trim());
            }
            for l in &self.logs {
                let text = std::fs::read_to_string(l).unwrap_or_default();
                eprintln!("--- {}\n{text}", l.display());
            }
        }
        let groups: Vec<PathBuf> = self.dirs().iter().flat_map(|d| tree(d)).collect();
        let mut pids = self.pids.clone();
        pids.extend(groups.iter().flat_map(|g| in_cgroup(g)));
        pids.sort_unstable();
        pids.dedup();
        for p in pids.iter().filter(|p| alive(**p)) {
            if let Ok(pid) = i32::try_from(*p) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // A cgroup can be removed once its processes have exited.
        let until = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        for g in groups {
            let _ = std::fs::remove_dir(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_arguments_not_absent_ones() {
        let me = std::process::id();
        let mine = std::fs::read("/proc/self/cmdline").unwrap();
        let first = String::from_utf8_lossy(mine.split(|b| *b == 0).next().unwrap()).into_owned();
        assert!(argv_containing(&first).iter().any(|(p, _)| *p == me));
        assert!(argv_containing("no-process-has-this-9f1c2e7a").is_empty());
        assert!(alive(me) && !alive(u32::MAX));
        let this = Process::of(me).unwrap();
        assert!(
            this.alive() && this.describe().contains(&first),
            "{}",
            this.describe()
        );
        let earlier = Process {
            start: this.start.saturating_sub(1),
            ..this
        };
        assert!(
            !earlier.alive(),
            "a reused pid is not the process that had it"
        );
        assert!(Process::of(u32::MAX).is_none());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let sleeper = Process::of(child.id()).unwrap();
        assert!(sleeper.alive());
        // Until the child has exec'd, its command line is still this test's.
        let described =
            crate::wait::blocking(Duration::from_secs(10), Duration::from_millis(1), || {
                Some(sleeper.describe()).filter(|d| d.contains("sleep 60"))
            });
        assert!(described.is_some(), "{}", sleeper.describe());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!sleeper.alive() && sleeper.describe().ends_with("gone"));
        assert!(rss_mb(me) > 0.0);
        assert!(in_cgroup(Path::new("/nonexistent")).is_empty());
        for prefix in ["", ".", "..", "a/b", "/"] {
            assert!(
                Leftovers::new(prefix, Vec::new()).dirs().is_empty(),
                "{prefix:?}"
            );
        }
        let busy = std::time::Instant::now();
        while cpu_secs(me) < 0.02 && busy.elapsed().as_secs() < 5 {
            std::hint::black_box((0..1000).sum::<u64>());
        }
        assert!(cpu_secs(me) >= 0.02);
    }
}
