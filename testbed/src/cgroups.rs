//! Real cgroups for agents and tasks.
//!
//! Layout (what `cgroup-collector` discovers): under every controller root `R`,
//! `R/<prefix>/<agent-id>` is an agent (CPU quota = the agent's capacity) and
//! `R/<prefix>/<agent-id>/<task-id>` a task (quota = the task's `cpus`). Each also gets the Mesos
//! agent's weight, `cpu.shares` = 1024 × cpus (`cpu.weight` by runc's conversion on v2).
//!
//! - **cgroup v1** (hybrid machines): `cpu` (quota) and `cpuacct` (accounting) — one
//!   `cpu,cpuacct` mount or two separate ones — plus `memory` (RSS accounting only, no limit) and,
//!   when a v2 tree is mounted at `R/unified`, the same path there (v2 `cpu.stat` accounting).
//! - **cgroup v2** (unified): `cpu.max` = `quota period`, with `+cpu +memory` enabled in
//!   `cgroup.subtree_control` on the way down.
//!
//! A task process joins its cgroups itself before running the command (see
//! [`CgroupLayout::procs_files`]), so not even its first instruction escapes the quota.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// CFS period used for every quota, microseconds (the kernel default).
pub(crate) const PERIOD_US: u64 = 100_000;
/// Smallest quota the kernel accepts, microseconds.
const MIN_QUOTA_US: u64 = 1_000;

/// The hierarchies in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CgroupLayout {
    /// cgroup v1 controllers (and maybe a v2 tree for accounting).
    V1 {
        cpu: PathBuf,
        cpuacct: PathBuf,
        memory: Option<PathBuf>,
        unified: Option<PathBuf>,
    },
    /// A pure cgroup v2 mount.
    V2 { root: PathBuf },
}

/// `cpus` as a CFS quota in microseconds per [`PERIOD_US`].
pub(crate) fn quota_us(cpus: f64) -> u64 {
    ((cpus * PERIOD_US as f64).round() as u64).max(MIN_QUOTA_US)
}

/// The Mesos agent's CPU weight for `cpus` (its cgroups/cpu isolator: `cpu.shares` =
/// 1024 × cpus, at least 2), so that tasks contending for an agent's CPU share it in proportion
/// to what they were given.
pub(crate) fn shares(cpus: f64) -> u64 {
    ((cpus * 1024.0).round() as u64).clamp(2, 262_144)
}

/// `cpu.weight` (cgroup v2, 1–10000) for cgroup v1 `shares`: the conversion runc and systemd use.
pub(crate) fn weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9_999) / 262_142
}

impl CgroupLayout {
    /// Finds the hierarchies under `base` and checks that `<prefix>` can be created in them.
    ///
    /// # Errors
    /// Why cgroups cannot be used (no controller, not writable — e.g. not root).
    pub(crate) fn detect(base: &Path, prefix: &str) -> Result<Self, String> {
        let layout = if base.join("cgroup.controllers").is_file() {
            let controllers =
                fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
            if !controllers.split_whitespace().any(|c| c == "cpu") {
                return Err(format!("{} has no cpu controller", base.display()));
            }
            Self::V2 {
                root: base.to_owned(),
            }
        } else {
            let cpu = ["cpu,cpuacct", "cpuacct,cpu", "cpu"]
                .iter()
                .map(|d| base.join(d))
                .find(|d| d.join("cpu.cfs_quota_us").is_file())
                .ok_or_else(|| format!("no cgroup v1 cpu controller under {}", base.display()))?;
            let cpuacct = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
                .iter()
                .map(|d| base.join(d))
                .find(|d| d.join("cpuacct.usage").is_file())
                .ok_or_else(|| {
                    format!("no cgroup v1 cpuacct controller under {}", base.display())
                })?;
            let memory = Some(base.join("memory")).filter(|d| d.join("memory.stat").is_file());
            let unified = Some(base.join("unified")).filter(|d| d.join("cgroup.procs").is_file());
            Self::V1 {
                cpu,
                cpuacct,
                memory,
                unified,
            }
        };
        // Can we write here? (Not as an ordinary user, nor in most unprivileged containers.)
        for root in layout.roots() {
            let dir = root.join(prefix);
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if let Self::V2 { root } = &layout {
            enable_controllers(root)?;
            enable_controllers(&root.join(prefix))?;
        }
        Ok(layout)
    }

    /// Every hierarchy root a cgroup is created in.
    fn roots(&self) -> Vec<&Path> {
        match self {
            Self::V1 {
                cpu,
                cpuacct,
                memory,
                unified,
            } => {
                let mut v = vec![cpu.as_path()];
                if cpuacct != cpu {
                    v.push(cpuacct.as_path());
                }
                v.extend(memory.as_deref());
                v.extend(unified.as_deref());
                v
            }
            Self::V2 { root } => vec![root.as_path()],
        }
    }

    /// The cgroup at `rel` (relative to every root).
    pub(crate) fn group(&self, rel: &Path) -> Cgroup {
        Cgroup {
            layout: self.clone(),
            rel: rel.to_owned(),
        }
    }

    /// Removes `<prefix>` when no other testbed uses it.
    pub(crate) fn remove_prefix(&self, prefix: &str) {
        for root in self.roots() {
            let _ = fs::remove_dir(root.join(prefix));
        }
    }
}

fn enable_controllers(dir: &Path) -> Result<(), String> {
    let file = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&file).unwrap_or_default();
    for c in ["cpu", "memory"] {
        if !current.split_whitespace().any(|x| x == c) {
            let r = fs::write(&file, format!("+{c}"));
            if c == "cpu" {
                r.map_err(|e| format!("cannot enable cpu in {}: {e}", file.display()))?;
            }
        }
    }
    Ok(())
}

/// One cgroup (agent or task) in every hierarchy of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroup {
    layout: CgroupLayout,
    rel: PathBuf,
}

/// CPU and memory counters of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct CgroupStats {
    pub(crate) user_secs: f64,
    pub(crate) system_secs: f64,
    pub(crate) nr_periods: Option<u64>,
    pub(crate) nr_throttled: Option<u64>,
    pub(crate) throttled_secs: Option<f64>,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) processes: u64,
}

impl Cgroup {
    /// The path relative to the controller roots (`qos-testbed/<agent>/<task>`).
    pub(crate) fn rel(&self) -> &Path {
        &self.rel
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.layout
            .roots()
            .into_iter()
            .map(|r| r.join(&self.rel))
            .collect()
    }

    /// The directory holding the CPU quota.
    pub(crate) fn cpu_dir(&self) -> PathBuf {
        match &self.layout {
            CgroupLayout::V1 { cpu, .. } => cpu.join(&self.rel),
            CgroupLayout::V2 { root } => root.join(&self.rel),
        }
    }

    /// The directory with the CPU accounting.
    pub(crate) fn acct_dir(&self) -> PathBuf {
        match &self.layout {
            CgroupLayout::V1 { cpuacct, .. } => cpuacct.join(&self.rel),
            CgroupLayout::V2 { root } => root.join(&self.rel),
        }
    }

    /// Creates the cgroup in every hierarchy and sets its CPU quota to `cpus`.
    ///
    /// # Errors
    /// The first directory or control file that could not be written.
    pub(crate) fn create(&self, cpus: f64) -> io::Result<()> {
        for dir in self.dirs() {
            fs::create_dir_all(&dir)?;
        }
        self.set_cpus(cpus)?;
        if let CgroupLayout::V2 { .. } = self.layout {
            // Children of an agent need the controllers enabled in the agent.
            let _ = enable_controllers(&self.cpu_dir());
        }
        Ok(())
    }

    /// Writes the CPU quota (`cpu.cfs_quota_us` / `cpu.max`) and, as the Mesos agent does, the
    /// weight (`cpu.shares` = 1024 × cpus / the equivalent `cpu.weight`).
    ///
    /// # Errors
    /// The write error (e.g. a child quota above its parent's on cgroup v1).
    pub(crate) fn set_cpus(&self, cpus: f64) -> io::Result<()> {
        let quota = quota_us(cpus);
        let shares = shares(cpus);
        let dir = self.cpu_dir();
        match self.layout {
            CgroupLayout::V1 { .. } => {
                fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
                fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
                fs::write(dir.join("cpu.shares"), shares.to_string())
            }
            CgroupLayout::V2 { .. } => {
                fs::write(dir.join("cpu.max"), format!("{quota} {PERIOD_US}"))?;
                fs::write(dir.join("cpu.weight"), weight(shares).to_string())
            }
        }
    }

    /// The `cgroup.procs` files a process must write its pid into to join this cgroup.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Pids in the cgroup (read from the accounting hierarchy).
    pub(crate) fn pids(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for dir in self.dirs() {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                for p in text.lines().filter_map(|l| l.trim().parse().ok()) {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// SIGKILLs whatever is still in the cgroup, waits (up to `wait`) until it is empty, then
    /// removes it from every hierarchy. Best effort: failures are returned for logging.
    pub(crate) fn destroy(&self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut errors = Vec::new();
        for dir in self.dirs() {
            if let Err(e) = remove_dir_retry(&dir) {
                errors.push(format!("{}: {e}", dir.display()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Reads the counters.
    pub(crate) fn stats(&self) -> CgroupStats {
        let mut s = CgroupStats {
            processes: u64::try_from(self.pids().len()).unwrap_or(0),
            ..CgroupStats::default()
        };
        match &self.layout {
            CgroupLayout::V1 { memory, .. } => {
                let acct = self.acct_dir();
                let ns = |f: &str| -> Option<f64> {
                    read_trim(&acct.join(f))?
                        .parse::<u64>()
                        .ok()
                        .map(|n| n as f64 / 1e9)
                };
                if let (Some(u), Some(sy)) = (ns("cpuacct.usage_user"), ns("cpuacct.usage_sys")) {
                    s.user_secs = u;
                    s.system_secs = sy;
                } else if let Some(text) = read_trim(&acct.join("cpuacct.stat")) {
                    let tck = clk_tck();
                    let map = keyed(&text);
                    {
                        s.user_secs = map_get(&map, "user").unwrap_or(0) as f64 / tck;
                        s.system_secs = map_get(&map, "system").unwrap_or(0) as f64 / tck;
                    }
                }
                if let Some(text) = read_trim(&self.cpu_dir().join("cpu.stat")) {
                    let map = keyed(&text);
                    s.nr_periods = map_get(&map, "nr_periods");
                    s.nr_throttled = map_get(&map, "nr_throttled");
                    {
                        s.throttled_secs = map_get(&map, "throttled_time").map(|n| n as f64 / 1e9);
                    }
                }
                if let Some(mem) = memory {
                    if let Some(text) = read_trim(&mem.join(&self.rel).join("memory.stat")) {
                        let map = keyed(&text);
                        s.rss_bytes = map_get(&map, "total_rss").or_else(|| map_get(&map, "rss"));
                    }
                }
            }
            CgroupLayout::V2 { root } => {
                let dir = root.join(&self.rel);
                if let Some(text) = read_trim(&dir.join("cpu.stat")) {
                    let map = keyed(&text);
                    {
                        s.user_secs = map_get(&map, "user_usec").unwrap_or(0) as f64 / 1e6;
                        s.system_secs = map_get(&map, "system_usec").unwrap_or(0) as f64 / 1e6;
                        s.throttled_secs = map_get(&map, "throttled_usec").map(|n| n as f64 / 1e6);
                    }
                    s.nr_periods = map_get(&map, "nr_periods");
                    s.nr_throttled = map_get(&map, "nr_throttled");
                }
                if let Some(text) = read_trim(&dir.join("memory.stat")) {
                    s.rss_bytes = map_get(&keyed(&text), "anon");
                }
            }
        }
        s
    }
}

fn remove_dir_retry(dir: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for _ in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Err(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    last
}

fn read_trim(p: &Path) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn keyed(text: &str) -> Vec<(&str, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?, it.next()?.parse().ok()?))
        })
        .collect()
}

fn map_get(map: &[(&str, u64)], key: &str) -> Option<u64> {
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// USER_HZ (ticks per second of `cpuacct.stat` and `/proc/<pid>/stat`).
pub(crate) fn clk_tck() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as f64,
        _ => 100.0,
    }
}

/// CPU seconds (user, system) of a process and its waited-for children, from `/proc/<pid>/stat`
/// (used when cgroups are off).
pub(crate) fn proc_cpu_secs(pid: u32) -> Option<(f64, f64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14..17 of the full line are utime, stime, cutime, cstime: 11..14 here.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let tck = clk_tck();
    Some((
        (num(11)? + num(13)?) as f64 / tck,
        (num(12)? + num(14)?) as f64 / tck,
    ))
}

/// Resident memory of a process, bytes (`/proc/<pid>/statm`).
pub(crate) fn proc_rss_bytes(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(4096);
    Some(pages * page)
}

/// The cgroup paths of a running process from `/proc/<pid>/cgroup`, as a [`Cgroup`] relative to
/// the layout's roots, when its `cpuacct` (v1) or unified (v2) path is known.
pub(crate) fn cgroup_of_pid(layout: &CgroupLayout, pid: u32) -> Option<Cgroup> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let wanted = match layout {
            CgroupLayout::V1 { .. } => controllers.split(',').any(|c| c == "cpuacct"),
            CgroupLayout::V2 { .. } => controllers.is_empty(),
        };
        wanted.then(|| PathBuf::from(path.trim_start_matches('/')))
    })?;
    Some(layout.group(&rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        assert_eq!(quota_us(0.5), 50_000);
        assert_eq!(quota_us(1.4), 140_000);
        assert_eq!(quota_us(0.001), MIN_QUOTA_US);
    }

    #[test]
    fn weights_like_the_mesos_agent() {
        assert_eq!(shares(1.0), 1024);
        assert_eq!(shares(0.5), 512);
        assert_eq!(shares(0.001), 2);
        assert_eq!(weight(2), 1);
        assert_eq!(weight(1024), 39);
        assert_eq!(weight(262_144), 10_000);
    }

    #[test]
    fn detect_fixture_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        for (d, f) in [
            ("cpu", "cpu.cfs_quota_us"),
            ("cpuacct", "cpuacct.usage"),
            ("memory", "memory.stat"),
            ("unified", "cgroup.procs"),
        ] {
            fs::create_dir_all(base.join(d)).unwrap();
            fs::write(base.join(d).join(f), "").unwrap();
        }
        let layout = CgroupLayout::detect(base, "tb").unwrap();
        match &layout {
            CgroupLayout::V1 {
                cpu,
                cpuacct,
                memory,
                unified,
            } => {
                assert_eq!(cpu, &base.join("cpu"));
                assert_eq!(cpuacct, &base.join("cpuacct"));
                assert!(memory.is_some() && unified.is_some());
            }
            CgroupLayout::V2 { .. } => panic!("v1 expected"),
        }
        assert!(base.join("unified/tb").is_dir());
        let g = layout.group(Path::new("tb/a1/t1"));
        assert_eq!(g.procs_files().len(), 4);
        assert_eq!(g.cpu_dir(), base.join("cpu/tb/a1/t1"));
    }

    /// The cgroup v2 paths (this project's CI machine mounts v1): detection, controllers enabled
    /// on the way down, quota and weight written, counters read — on a fixture tree of regular
    /// files shaped like the kernel's.
    #[test]
    fn v2_fixture_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        fs::write(
            base.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let layout = CgroupLayout::detect(base, "tb").unwrap();
        assert_eq!(
            layout,
            CgroupLayout::V2 {
                root: base.to_owned()
            }
        );
        // "+cpu" then "+memory" were written (a regular file keeps the last one).
        assert_eq!(
            fs::read_to_string(base.join("tb/cgroup.subtree_control")).unwrap(),
            "+memory"
        );
        let agent = layout.group(Path::new("tb/a1"));
        agent.create(1.0).unwrap();
        assert_eq!(
            fs::read_to_string(base.join("tb/a1/cpu.max")).unwrap(),
            "100000 100000"
        );
        let task = layout.group(Path::new("tb/a1/t1"));
        task.create(0.5).unwrap();
        assert_eq!(task.cpu_dir(), base.join("tb/a1/t1"));
        assert_eq!(task.procs_files(), [base.join("tb/a1/t1/cgroup.procs")]);
        assert_eq!(
            fs::read_to_string(base.join("tb/a1/t1/cpu.max")).unwrap(),
            "50000 100000"
        );
        assert_eq!(
            fs::read_to_string(base.join("tb/a1/t1/cpu.weight")).unwrap(),
            weight(512).to_string()
        );
        fs::write(
            base.join("tb/a1/t1/cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 40\n\
             nr_throttled 7\nthrottled_usec 350000\n",
        )
        .unwrap();
        fs::write(base.join("tb/a1/t1/memory.stat"), "anon 4096\nfile 0\n").unwrap();
        let st = task.stats();
        assert_eq!((st.user_secs, st.system_secs), (2.0, 0.5));
        assert_eq!((st.nr_periods, st.nr_throttled), (Some(40), Some(7)));
        assert_eq!(st.throttled_secs, Some(0.35));
        assert_eq!(st.rss_bytes, Some(4096));

        // No cpu controller: refused with the reason.
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        let e = CgroupLayout::detect(tmp.path(), "tb").unwrap_err();
        assert!(e.contains("has no cpu controller"), "{e}");
    }

    #[test]
    fn own_process_cpu() {
        let (u, s) = proc_cpu_secs(std::process::id()).unwrap();
        assert!(u >= 0.0 && s >= 0.0);
        assert!(proc_rss_bytes(std::process::id()).unwrap() > 0);
    }
}
