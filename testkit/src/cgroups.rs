//! Cgroup trees for tests: [`fixture_v1`] and [`fixture_v2`] write the files of a v1 or v2
//! cgroup into a plain directory (a fixture tree a reader can be pointed at, no root needed);
//! [`Scratch`] makes real cgroups in the kernel's hierarchies and removes them, with what runs
//! in them, when it drops.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// Writes a v1 cgroup `rel` into the fixture tree at `root`: `cpuacct/<rel>` with
/// `cpuacct.usage` (`usage_ns`), `cpuacct.stat` (`user_ticks`, `sys_ticks`) and an empty
/// `cgroup.procs`; `cpu/<rel>` with the CFS `quota` (µs, -1: none) over a 100 ms period and a
/// `cpu.stat` of 10 periods, 4 throttled for 0.25 s in all.
///
/// # Panics
/// When a file cannot be written.
pub fn fixture_v1(
    root: &Path,
    rel: &str,
    usage_ns: u64,
    user_ticks: u64,
    sys_ticks: u64,
    quota: i64,
) {
    let write = |path: PathBuf, text: String| {
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    let a = root.join("cpuacct").join(rel);
    fs::create_dir_all(&a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    write(a.join("cpuacct.usage"), format!("{usage_ns}\n"));
    write(
        a.join("cpuacct.stat"),
        format!("user {user_ticks}\nsystem {sys_ticks}\n"),
    );
    write(a.join("cgroup.procs"), String::new());
    let c = root.join("cpu").join(rel);
    fs::create_dir_all(&c).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
    write(c.join("cpu.cfs_quota_us"), format!("{quota}\n"));
    write(c.join("cpu.cfs_period_us"), "100000\n".to_owned());
    write(
        c.join("cpu.stat"),
        "nr_periods 10\nnr_throttled 4\nthrottled_time 250000000\n".to_owned(),
    );
}

/// Writes a v2 cgroup `rel` into the fixture tree at `root`, as the hybrid layout's `unified`
/// hierarchy holds it: `unified/<rel>` with no controllers enabled (an empty
/// `cgroup.controllers`) and a `cpu.stat` of `usage_us`, `user_us` and `system_us`.
///
/// # Panics
/// When a file cannot be written.
pub fn fixture_v2(root: &Path, rel: &str, usage_us: u64, user_us: u64, system_us: u64) -> PathBuf {
    let dir = root.join("unified").join(rel);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (file, text) in [
        ("cgroup.controllers", String::new()),
        (
            "cpu.stat",
            format!("usage_usec {usage_us}\nuser_usec {user_us}\nsystem_usec {system_us}\n"),
        ),
    ] {
        let path = dir.join(file);
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    dir
}

/// Whether real v1 cgroups can be made here: root, and a v1 `cpuacct` hierarchy.
#[must_use]
pub fn kernel_v1() -> bool {
    crate::is_root() && Path::new("/sys/fs/cgroup/cpuacct/cpuacct.usage").exists()
}

/// Removes cgroup directories, the last first (children after their parents in `dirs`); a
/// cgroup whose last process has just exited may take a moment to be removable, so each is
/// tried for up to a second.
pub fn remove_all(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        for _ in 0..50 {
            if fs::remove_dir(d).is_ok() || !d.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Real cgroup directories and the process in them; when this drops the process is killed and
/// the directories removed (deepest first), even when the test panicked.
#[derive(Debug)]
pub struct Scratch {
    /// Directories created (in every hierarchy given), parents first.
    pub dirs: Vec<PathBuf>,
    /// The process moved into them.
    pub child: Option<Child>,
}

impl Scratch {
    /// Creates `rel` under each of `roots` (with the directories between, remembered for the
    /// cleanup).
    ///
    /// # Panics
    /// When a directory cannot be made.
    #[must_use]
    pub fn create(roots: &[&Path], rel: &str) -> Self {
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

    /// Starts `sh -c 'move myself into every cgroup.procs; busy loop'`; returns its pid.
    ///
    /// # Panics
    /// When `sh` cannot be started.
    pub fn spawn_busy_loop(&mut self, procs_dirs: &[&Path]) -> u32 {
        let moves: String = procs_dirs
            .iter()
            .map(|d| format!("echo $$ > {}/cgroup.procs; ", d.display()))
            .collect();
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{moves}while :; do :; done"))
            .spawn()
            .expect("sh starts");
        let pid = child.id();
        self.child = Some(child);
        pid
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_all(&self.dirs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_fixture_has_the_files_a_reader_wants() {
        let root = std::env::temp_dir().join(crate::names::unique("testkit-cg"));
        fixture_v1(&root, "a/b", 7, 1, 2, 50_000);
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("cpuacct/a/b/cpuacct.usage"), "7\n");
        assert_eq!(read("cpuacct/a/b/cpuacct.stat"), "user 1\nsystem 2\n");
        assert_eq!(read("cpu/a/b/cpu.cfs_quota_us"), "50000\n");
        assert_eq!(read("cpu/a/b/cpu.cfs_period_us"), "100000\n");
        fs::remove_dir_all(&root).unwrap();
    }
}
