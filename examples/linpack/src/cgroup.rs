//! The CPU quota of this process's own cgroup, for the default thread count.
//!
//! Reads `<root>/proc/self/cgroup`, then the quota files of that cgroup and of its ancestors
//! (the tightest limit wins) under `<root>/sys/fs/cgroup`:
//! - cgroup v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us` in the `cpu` hierarchy, mounted at
//!   `cpu,cpuacct`, `cpu` or `cpuacct,cpu` (`-1` means no limit);
//! - cgroup v2: `cpu.max` (`max <period>` means no limit).
//!
//! When the cgroup's own directory is not visible (a container that sees its cgroup as the
//! root of the mount), the mount's root files are read instead. `root` is `/` in production
//! and a fixture directory in tests.

use std::fs;
use std::path::{Path, PathBuf};

/// Where the thread count came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThreadSource {
    /// The `--threads` flag.
    Flag,
    /// The `LINPACK_THREADS` environment variable.
    Env,
    /// The cgroup CPU quota, in CPUs (rounded up to get the thread count).
    CgroupQuota(f64),
    /// `std::thread::available_parallelism` (no quota found).
    Available,
}

impl std::fmt::Display for ThreadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("--threads"),
            Self::Env => f.write_str("LINPACK_THREADS"),
            Self::CgroupQuota(q) => write!(f, "cgroup CPU quota {q} CPUs"),
            Self::Available => f.write_str("available CPUs"),
        }
    }
}

/// The CPU limit of the process's cgroup in CPUs, or `None` when there is none (or it cannot
/// be read).
#[must_use]
pub fn cpu_quota(root: &Path) -> Option<f64> {
    let own = fs::read_to_string(root.join("proc/self/cgroup")).ok()?;
    let mount_base = root.join("sys/fs/cgroup");
    let mut v2_path = None;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "cpu") {
            let mut mounts = vec![controllers.to_owned()];
            for m in ["cpu,cpuacct", "cpu", "cpuacct,cpu"] {
                if !mounts.iter().any(|x| x == m) {
                    mounts.push(m.to_owned());
                }
            }
            if let Some(mount) = mounts
                .iter()
                .map(|m| mount_base.join(m))
                .find(|d| d.is_dir())
            {
                return tightest(&mount, path, read_v1);
            }
        }
    }
    v2_path.and_then(|p| tightest(&mount_base, &p, read_v2))
}

/// The thread count for a quota in CPUs: rounded up, at least 1.
#[must_use]
pub fn threads_for_quota(cpus: f64) -> usize {
    if cpus.is_finite() && cpus > 1.0 {
        // Quotas are small positive numbers: the cast cannot truncate meaningfully.
        cpus.ceil() as usize
    } else {
        1
    }
}

/// The default thread count when neither `--threads` nor `LINPACK_THREADS` is given: the cgroup
/// quota rounded up, else the available parallelism.
#[must_use]
pub fn default_threads(root: &Path) -> (usize, ThreadSource) {
    match cpu_quota(root) {
        Some(q) => (threads_for_quota(q), ThreadSource::CgroupQuota(q)),
        None => (
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ThreadSource::Available,
        ),
    }
}

/// The smallest limit found in the cgroup directory of `path` under `mount` and its ancestors.
fn tightest(mount: &Path, path: &str, read: fn(&Path) -> Option<f64>) -> Option<f64> {
    let rel: PathBuf = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .collect();
    let leaf = mount.join(&rel);
    let start = if leaf.is_dir() {
        leaf
    } else {
        mount.to_path_buf()
    };
    let mut best: Option<f64> = None;
    for dir in start.ancestors() {
        if let Some(q) = read(dir) {
            best = Some(best.map_or(q, |b| b.min(q)));
        }
        if dir == mount {
            break;
        }
    }
    best
}

/// cgroup v1: `cpu.cfs_quota_us / cpu.cfs_period_us`, `None` if unlimited or unreadable.
fn read_v1(dir: &Path) -> Option<f64> {
    let quota: i64 = read_trimmed(&dir.join("cpu.cfs_quota_us"))?.parse().ok()?;
    let period: i64 = read_trimmed(&dir.join("cpu.cfs_period_us"))?.parse().ok()?;
    ratio(quota, period)
}

/// cgroup v2: `cpu.max` = `"<quota|max> <period>"`, `None` if unlimited or unreadable.
fn read_v2(dir: &Path) -> Option<f64> {
    let text = read_trimmed(&dir.join("cpu.max"))?;
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    if quota == "max" {
        return None;
    }
    let period = it.next().map_or(Some(100_000), |p| p.parse().ok())?;
    ratio(quota.parse().ok()?, period)
}

fn ratio(quota: i64, period: i64) -> Option<f64> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    // Microsecond counts are far below 2^53.
    Some(quota as f64 / period as f64)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A temporary directory standing for `/`, holding `files` (path below it, content).
    pub(crate) fn fake_root(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (rel, text) in files {
            write(t.path(), rel, text);
        }
        t
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_quota_of_own_cgroup_and_tightest_ancestor() {
        let t = fake_root(&[
            ("proc/self/cgroup", "0::/testbed/job-1/task\n"),
            ("sys/fs/cgroup/cpu.max", "max 100000\n"),
            ("sys/fs/cgroup/testbed/cpu.max", "max 100000\n"),
            ("sys/fs/cgroup/testbed/job-1/cpu.max", "150000 100000\n"),
            ("sys/fs/cgroup/testbed/job-1/task/cpu.max", "max 100000\n"),
        ]);
        let r = t.path();
        assert_eq!(cpu_quota(r), Some(1.5));
        assert_eq!(default_threads(r), (2, ThreadSource::CgroupQuota(1.5)));
        // A tighter limit on the leaf wins.
        write(
            r,
            "sys/fs/cgroup/testbed/job-1/task/cpu.max",
            "40000 100000\n",
        );
        assert_eq!(cpu_quota(r), Some(0.4));
        assert_eq!(default_threads(r).0, 1);
    }

    #[test]
    fn v2_unlimited_and_namespaced_container() {
        let t = fake_root(&[
            ("proc/self/cgroup", "0::/user.slice/session-1.scope\n"),
            (
                "sys/fs/cgroup/user.slice/session-1.scope/cpu.max",
                "max 100000\n",
            ),
        ]);
        let r = t.path();
        assert_eq!(cpu_quota(r), None);
        // Inside a container with a cgroup namespace the own path is "/" and the limit sits on
        // the mount's root; with a host path that is not visible, the mount root is read too.
        write(r, "proc/self/cgroup", "0::/docker/abc123\n");
        write(r, "sys/fs/cgroup/cpu.max", "250000 100000");
        assert_eq!(cpu_quota(r), Some(2.5));
        assert_eq!(default_threads(r).0, 3);
    }

    #[test]
    fn v1_cpu_cpuacct_hierarchy() {
        let quota = "sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us";
        let t = fake_root(&[
            (
                "proc/self/cgroup",
                "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n1:name=systemd:/docker/x\n",
            ),
            ("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n"),
            ("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
            (quota, "50000\n"),
            (
                "sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us",
                "100000\n",
            ),
        ]);
        let r = t.path();
        assert_eq!(cpu_quota(r), Some(0.5));
        write(r, quota, "-1\n");
        assert_eq!(cpu_quota(r), None);
    }

    #[test]
    fn v1_plain_cpu_mount() {
        let t = fake_root(&[
            ("proc/self/cgroup", "3:cpu:/mesos/c1\n"),
            ("sys/fs/cgroup/cpu/mesos/c1/cpu.cfs_quota_us", "300000"),
            ("sys/fs/cgroup/cpu/mesos/c1/cpu.cfs_period_us", "100000"),
        ]);
        assert_eq!(cpu_quota(t.path()), Some(3.0));
        assert_eq!(threads_for_quota(3.0), 3);
    }

    #[test]
    fn missing_or_garbage_files_mean_no_quota() {
        let t = fake_root(&[]);
        let r = t.path();
        assert_eq!(cpu_quota(r), None);
        assert_eq!(default_threads(r).1, ThreadSource::Available);
        write(r, "proc/self/cgroup", "garbage\n0::/a\n");
        write(r, "sys/fs/cgroup/a/cpu.max", "lots 100000");
        assert_eq!(cpu_quota(r), None);
        write(r, "sys/fs/cgroup/a/cpu.max", "0 100000");
        assert_eq!(cpu_quota(r), None);
    }
}
