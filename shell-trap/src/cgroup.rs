//! `--cgroup create` (process runtime): a child cgroup `shell-trap-<uuid>` of shell-trap's own,
//! bounded by the job's CPUs, for hosts where the agent did not place the task in a bounded
//! cgroup. The default (`inherit`) does nothing: Marathon/Mesos and the testbed put the task in
//! its own cgroup, with the quota of its `cpus`, before shell-trap starts.
//!
//! - cgroup v1: in every v1 hierarchy with `cpu` or `cpuacct`; the `cpu` one gets
//!   `cpu.cfs_period_us = 100000` and `cpu.cfs_quota_us = cpus × 100000`.
//! - cgroup v2: with the `cpu` controller available, `cpu.max = "<cpus × 100000> 100000"`; the
//!   controller is enabled in the parent's `cgroup.subtree_control`, which v2 allows only where
//!   the parent has no processes of its own — otherwise the error says so. On a hybrid host the v2
//!   tree without `cpu` (here: `/sys/fs/cgroup/unified`) gets the child too, for `cpu.stat`.
//! - shell-trap moves itself in before starting the job (so the job is inside from its first
//!   instruction), and at the end moves itself back, reads the CPU time used and removes the
//!   cgroups.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::SetupError;

/// CFS period written, microseconds.
pub const PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone)]
struct Hierarchy {
    /// Mount point.
    mount: PathBuf,
    /// shell-trap's cgroup within it (`/` for the root).
    path: String,
    v2: bool,
    controllers: Vec<String>,
}

/// A cgroup created for the job.
#[derive(Debug)]
pub struct OwnCgroup {
    /// (created directory, the directory shell-trap came from).
    dirs: Vec<(PathBuf, PathBuf)>,
    cpu_dir: Option<PathBuf>,
    quota_us: u64,
}

fn hierarchies() -> Result<Vec<Hierarchy>, String> {
    let cg =
        fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let mi = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let mut out = Vec::new();
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let v2 = id == "0" && ctrls.is_empty();
        let controllers: Vec<String> = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        // Find the mount: fstype cgroup2 for v2; cgroup with the same controllers in its
        // super options for v1.
        let mount = mi.lines().find_map(|m| {
            let (left, right) = m.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let fstype = r.next()?;
            let _source = r.next();
            let opts = r.next().unwrap_or_default();
            let fields: Vec<&str> = left.split_whitespace().collect();
            let mount_point = *fields.get(4)?;
            let root = *fields.get(3)?;
            if root != "/" {
                return None;
            }
            if v2 && fstype == "cgroup2" {
                return Some(PathBuf::from(mount_point));
            }
            if !v2 && fstype == "cgroup" {
                let o: Vec<&str> = opts.split(',').collect();
                if controllers.iter().all(|c| o.contains(&c.as_str())) {
                    return Some(PathBuf::from(mount_point));
                }
            }
            None
        });
        if let Some(mount) = mount {
            let controllers = if v2 {
                fs::read_to_string(
                    mount
                        .join(path.trim_start_matches('/'))
                        .join("cgroup.controllers"),
                )
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect()
            } else {
                controllers
            };
            out.push(Hierarchy {
                mount,
                path: path.to_owned(),
                v2,
                controllers,
            });
        }
    }
    Ok(out)
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

impl OwnCgroup {
    /// Creates the cgroups, sets the quota and moves shell-trap in.
    ///
    /// # Errors
    /// [`SetupError::Runtime`] saying which file could not be written, or that no CPU controller
    /// is available.
    pub fn create(uuid: &str, cpus: f64) -> Result<Self, SetupError> {
        let err = |m: String| SetupError::Runtime(format!("--cgroup create: {m}"));
        let hs = hierarchies().map_err(err)?;
        let name = format!("shell-trap-{uuid}");
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "cpus is validated finite in (0, 1024]"
        )]
        let quota_us = ((cpus * PERIOD_US as f64).round() as u64).max(1000);
        let mut own = Self {
            dirs: Vec::new(),
            cpu_dir: None,
            quota_us,
        };
        let has = |h: &Hierarchy, c: &str| h.controllers.iter().any(|x| x == c);
        let v1_cpu = hs.iter().any(|h| !h.v2 && has(h, "cpu"));
        let pid = std::process::id().to_string();
        for h in &hs {
            let wanted = if h.v2 {
                true
            } else {
                has(h, "cpu") || has(h, "cpuacct")
            };
            if !wanted {
                continue;
            }
            let parent = h.mount.join(h.path.trim_start_matches('/'));
            let dir = parent.join(&name);
            if h.v2 && !v1_cpu {
                if !has(h, "cpu") {
                    return Err(err(format!(
                        "the cgroup v2 tree at {} has no cpu controller, so the job cannot be \
                         bounded; use --cgroup inherit and let the agent bound the task",
                        parent.display()
                    )));
                }
                let sc = parent.join("cgroup.subtree_control");
                let enabled = fs::read_to_string(&sc).unwrap_or_default();
                if !enabled.split_whitespace().any(|c| c == "cpu") {
                    write(&sc, "+cpu").map_err(|e| {
                        err(format!(
                            "{e} (cgroup v2 enables a controller for children only where the \
                             parent has no processes of its own; start shell-trap in an empty \
                             delegated cgroup or use --cgroup inherit)"
                        ))
                    })?;
                }
            }
            if let Err(e) = fs::create_dir(&dir) {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    own.remove();
                    return Err(err(format!("mkdir {}: {e}", dir.display())));
                }
            }
            own.dirs.push((dir.clone(), parent));
            let bound = if h.v2 && !v1_cpu {
                write(&dir.join("cpu.max"), &format!("{quota_us} {PERIOD_US}"))
                    .map(|()| Some(dir.clone()))
            } else if !h.v2 && has(h, "cpu") {
                write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())
                    .and_then(|()| write(&dir.join("cpu.cfs_quota_us"), &quota_us.to_string()))
                    .map(|()| Some(dir.clone()))
            } else {
                Ok(None)
            };
            match bound {
                Ok(Some(d)) => own.cpu_dir = Some(d),
                Ok(None) => {}
                Err(e) => {
                    own.remove();
                    return Err(err(e));
                }
            }
        }
        if own.cpu_dir.is_none() {
            own.remove();
            return Err(err(
                "no cgroup hierarchy with the cpu controller was found".into()
            ));
        }
        for (dir, _) in &own.dirs {
            if let Err(e) = write(&dir.join("cgroup.procs"), &pid) {
                own.remove();
                return Err(err(e));
            }
        }
        tracing::info!(
            "job cgroup {} (CPU quota {quota_us}/{PERIOD_US} µs = {cpus} CPUs)",
            own.cpu_dir.as_deref().unwrap_or(Path::new("?")).display()
        );
        Ok(own)
    }

    /// The directory with the CPU bound.
    #[must_use]
    pub fn cpu_dir(&self) -> Option<&Path> {
        self.cpu_dir.as_deref()
    }

    /// The quota written, µs per [`PERIOD_US`].
    #[must_use]
    pub fn quota_us(&self) -> u64 {
        self.quota_us
    }

    /// CPU seconds used by everything in the cgroup so far (v1 `cpuacct.usage`, else v2
    /// `cpu.stat usage_usec`).
    #[must_use]
    pub fn cpu_seconds(&self) -> Option<f64> {
        for (dir, _) in &self.dirs {
            if let Ok(s) = fs::read_to_string(dir.join("cpuacct.usage")) {
                if let Ok(ns) = s.trim().parse::<u64>() {
                    #[expect(clippy::cast_precision_loss, reason = "seconds for a log line")]
                    return Some(ns as f64 / 1e9);
                }
            }
        }
        for (dir, _) in &self.dirs {
            if let Ok(s) = fs::read_to_string(dir.join("cpu.stat")) {
                let usec = s.lines().find_map(|l| l.strip_prefix("usage_usec "));
                if let Some(Ok(us)) = usec.map(|u| u.trim().parse::<u64>()) {
                    #[expect(clippy::cast_precision_loss, reason = "seconds for a log line")]
                    return Some(us as f64 / 1e6);
                }
            }
        }
        None
    }

    /// Moves shell-trap back to where it came from and removes the cgroups (retrying for a
    /// second while the last processes leave).
    pub fn remove(&mut self) {
        let pid = std::process::id().to_string();
        for (dir, parent) in self.dirs.drain(..).rev() {
            let _ = fs::write(parent.join("cgroup.procs"), &pid);
            let mut tries = 0;
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if tries >= 200 => {
                        tracing::warn!("cannot remove cgroup {}: {e}", dir.display());
                        break;
                    }
                    Err(_) => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        self.cpu_dir = None;
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}
