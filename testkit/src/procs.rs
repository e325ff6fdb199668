//! The host's processes, read from `/proc` and the cgroup tree: which ones show a secret in their
//! arguments (what `ps` shows every user of the host), whether one still runs, what it uses (CPU
//! time, resident memory: for the tests and benchmarks that print it), which ones a cgroup holds.

use std::path::Path;

/// `(pid, command line)` of every process whose arguments (`/proc/<pid>/cmdline`) contain
/// `needle`. Processes that end while being read are skipped.
#[must_use]
pub fn argv_containing(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
        else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(needle) {
            found.push((pid, line.trim_end().to_owned()));
        }
    }
    found
}

/// Whether process `pid` exists and is not a zombie (a killed process waiting for its parent to
/// reap it no longer runs).
#[must_use]
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// CPU time (user + system) process `pid` has used, seconds (`/proc/<pid>/stat`, USER_HZ =
/// 100); 0 when it cannot be read.
#[must_use]
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The resident memory of process `pid` (`VmRSS`), MiB; 0 when it is gone.
#[must_use]
pub fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
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
        assert!(rss_mb(me) > 0.0);
        assert!(in_cgroup(Path::new("/nonexistent")).is_empty());
        let busy = std::time::Instant::now();
        while cpu_secs(me) < 0.02 && busy.elapsed().as_secs() < 5 {
            std::hint::black_box((0..1000).sum::<u64>());
        }
        assert!(cpu_secs(me) >= 0.02);
    }
}
