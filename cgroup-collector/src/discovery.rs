//! Finding container cgroups under the controller roots.
//!
//! Only known layouts are listed (no recursive walk of the whole tree), so a scan costs a few
//! `readdir`s however large the host's tree is. Under every hierarchy root `R`:
//!
//! | runtime | path | container id |
//! |---|---|---|
//! | Docker, cgroupfs driver | `R/docker/<64 hex>` | the 64-hex id |
//! | Docker, systemd driver | `R/system.slice/docker-<64 hex>.scope` | the 64-hex id |
//! | Mesos containerizer | `R/mesos/<container-id>` | the Mesos container id |
//! | testbed process runtime | `R/<prefix>/<agent>/<task-id>` (prefix default `qos-testbed`) | the task id |
//!
//! v1 hierarchies are scanned under the `cpuacct` root (accounting) and paired with the same
//! relative path under the `cpu` root (limit); the v2 root is scanned too, and a relative path
//! already found in v1 is not listed twice. Named cgroups (`--cgroup PATH`) are resolved by
//! [`Roots::resolve_named`].

use std::fs;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::cgroup::CgroupDirs;

/// Default directory under each controller root where the testbed creates its task cgroups.
pub(crate) const DEFAULT_TESTBED_PREFIX: &str = "qos-testbed";

/// Which runtime a cgroup belongs to (decides how it is mapped and resized).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// A Docker container (cgroupfs or systemd driver).
    Docker,
    /// A Mesos containerizer container.
    Mesos,
    /// A task of the testbed's process runtime.
    Testbed,
    /// A cgroup named on the command line.
    Named,
    /// An executor read from a Mesos agent's `/monitor/statistics` (`--source mesos`).
    MesosAgent,
}

/// The controller hierarchies to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Roots {
    /// v1 `cpuacct` hierarchy root (may equal `v1_cpu` when mounted as `cpu,cpuacct`).
    pub v1_cpuacct: Option<PathBuf>,
    /// v1 `cpu` hierarchy root.
    pub v1_cpu: Option<PathBuf>,
    /// v2 unified hierarchy root.
    pub v2: Option<PathBuf>,
}

impl Roots {
    /// Find the hierarchies under `base` (normally `/sys/fs/cgroup`): a pure v2 mount (`base`
    /// has `cgroup.controllers`), or v1 `cpu,cpuacct` / `cpuacct,cpu` / separate `cpu` and
    /// `cpuacct`, plus a hybrid `unified` v2 tree.
    #[must_use]
    pub fn detect(base: &Path) -> Self {
        if base.join("cgroup.controllers").is_file() {
            return Self {
                v1_cpuacct: None,
                v1_cpu: None,
                v2: Some(base.to_path_buf()),
            };
        }
        let dir = |name: &str| {
            let p = base.join(name);
            p.is_dir().then_some(p)
        };
        let joint = dir("cpu,cpuacct").or_else(|| dir("cpuacct,cpu"));
        let v1_cpuacct = dir("cpuacct").or_else(|| joint.clone());
        let v1_cpu = dir("cpu").or(joint);
        let v2 = dir("unified");
        Self {
            v1_cpuacct,
            v1_cpu,
            v2,
        }
    }

    /// The cgroup at relative path `rel` in v1 (preferred) or v2, if it exists.
    #[must_use]
    pub fn at(&self, rel: &str) -> Option<CgroupDirs> {
        let rel = rel.trim_start_matches('/');
        if let Some(acct) = &self.v1_cpuacct {
            let d = acct.join(rel);
            if crate::cgroup::v1::has_accounting(&d) {
                let cpu = self
                    .v1_cpu
                    .as_ref()
                    .map(|c| c.join(rel))
                    .filter(|c| c.join("cpu.cfs_quota_us").is_file());
                return Some(CgroupDirs::V1 { cpuacct: d, cpu });
            }
        }
        let d = self.v2.as_ref()?.join(rel);
        CgroupDirs::detect(&d).filter(|c| c.version() == 2)
    }

    /// Resolve a cgroup named by the user: an absolute directory inside one of the roots (any
    /// controller's copy), an absolute directory elsewhere holding cgroup files (fixtures), or a
    /// path relative to the roots (`docker/<id>`, `/qos-testbed/a1/t1`). Returns the relative
    /// path (cAdvisor's `id`) and the directories.
    #[must_use]
    pub fn resolve_named(&self, path: &Path) -> Option<(String, CgroupDirs)> {
        if path.is_absolute() {
            for root in [&self.v1_cpuacct, &self.v1_cpu, &self.v2]
                .into_iter()
                .flatten()
            {
                if let Ok(rel) = path.strip_prefix(root) {
                    let rel = rel_string(rel);
                    if let Some(d) = self.at(&rel) {
                        return Some((rel, d));
                    }
                }
            }
            if path.is_dir() {
                return CgroupDirs::detect(path).map(|d| (path.display().to_string(), d));
            }
        }
        let rel = rel_string(path);
        self.at(&rel).map(|d| (rel, d))
    }
}

fn rel_string(rel: &Path) -> String {
    let parts: Vec<_> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    format!("/{}", parts.join("/"))
}

/// One container cgroup found by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Discovered {
    /// Container id (Docker 64-hex id, Mesos container id, testbed task id, or the path).
    pub id: String,
    /// Runtime it belongs to.
    pub runtime: Runtime,
    /// Path relative to the hierarchy root, e.g. `/docker/<id>` (cAdvisor's `id` label).
    pub cgroup: String,
    /// Testbed agent name (testbed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Where its files are.
    pub dirs: CgroupDirs,
}

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiscoveryConfig {
    /// The mounted cgroup hierarchies to scan.
    pub roots: Roots,
    /// Testbed directory name under each root.
    pub testbed_prefix: String,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    out.sort_unstable();
    out
}

/// A directory whose name matches a known layout; not yet checked for cgroup files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Path relative to the hierarchy root, e.g. `/docker/<id>`.
    pub rel: String,
    /// Runtime the layout belongs to.
    pub runtime: Runtime,
    /// Container id.
    pub id: String,
    /// Testbed agent.
    pub agent: Option<String>,
    /// Found under the v2 root (else under the v1 `cpuacct` root).
    pub v2: bool,
}

impl Candidate {
    /// Check the cgroup files (a few `stat`s) and pair v1 `cpuacct` with `cpu`.
    #[must_use]
    pub(crate) fn resolve(self, roots: &Roots) -> Option<Discovered> {
        let sub = &self.rel[1..];
        let dirs = if self.v2 {
            let dir = roots.v2.as_ref()?.join(sub);
            CgroupDirs::detect(&dir).filter(|d| d.version() == 2)?
        } else {
            let cpuacct = roots.v1_cpuacct.as_ref()?.join(sub);
            if !crate::cgroup::v1::has_accounting(&cpuacct) {
                return None;
            }
            let cpu = roots
                .v1_cpu
                .as_ref()
                .map(|c| c.join(sub))
                .filter(|c| c.join("cpu.cfs_quota_us").is_file());
            CgroupDirs::V1 { cpuacct, cpu }
        };
        Some(Discovered {
            id: self.id,
            runtime: self.runtime,
            cgroup: self.rel,
            agent: self.agent,
            dirs,
        })
    }
}

/// Candidates under one hierarchy root (only `readdir`s).
fn scan_root(root: &Path, prefix: &str, v2: bool, out: &mut Vec<Candidate>) {
    let mut push = |rel: String, runtime, id: String, agent: Option<String>| {
        out.push(Candidate {
            rel,
            runtime,
            id,
            agent,
            v2,
        });
    };
    for name in subdirs(&root.join("docker")) {
        if is_hex64(&name) {
            push(format!("/docker/{name}"), Runtime::Docker, name, None);
        }
    }
    for name in subdirs(&root.join("system.slice")) {
        if let Some(id) = name
            .strip_prefix("docker-")
            .and_then(|n| n.strip_suffix(".scope"))
        {
            if is_hex64(id) {
                let id = id.to_string();
                push(format!("/system.slice/{name}"), Runtime::Docker, id, None);
            }
        }
    }
    for name in subdirs(&root.join("mesos")) {
        push(format!("/mesos/{name}"), Runtime::Mesos, name, None);
    }
    let tb = root.join(prefix);
    for agent in subdirs(&tb) {
        for task in subdirs(&tb.join(&agent)) {
            push(
                format!("/{prefix}/{agent}/{task}"),
                Runtime::Testbed,
                task,
                Some(agent.clone()),
            );
        }
    }
}

/// Every candidate under the configured roots, v1 first, then v2 (a path may appear in both).
#[must_use]
pub(crate) fn candidates(cfg: &DiscoveryConfig) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(acct) = &cfg.roots.v1_cpuacct {
        scan_root(acct, &cfg.testbed_prefix, false, &mut out);
    }
    if let Some(v2) = &cfg.roots.v2 {
        scan_root(v2, &cfg.testbed_prefix, true, &mut out);
    }
    out
}

/// List every container cgroup under the configured roots; a relative path found in v1 is not
/// listed again from v2.
#[must_use]
#[cfg(test)]
pub(crate) fn discover(cfg: &DiscoveryConfig) -> Vec<Discovered> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for c in candidates(cfg) {
        if seen.contains(&c.rel) {
            continue;
        }
        if let Some(d) = c.resolve(&cfg.roots) {
            seen.insert(d.cgroup.clone());
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::cgroups::{fixture_v1, fixture_v2};

    #[test]
    fn finds_every_layout_once() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        let cpu = base.join("cpu");
        let id = "a".repeat(64);
        let id2 = "b".repeat(64);
        let (docker, scope) = (
            format!("docker/{id}"),
            format!("system.slice/docker-{id2}.scope"),
        );
        for rel in [
            docker.as_str(),
            scope.as_str(),
            "system.slice/ssh.service",
            "docker/not-a-container",
            "mesos/0b1e2f3a-1111-2222-3333-444455556666",
            "qos-testbed/agent1/task-7",
        ] {
            fixture_v1(base, rel, 0, 0, 0, -1);
        }
        fixture_v2(base, "qos-testbed/agent2/task-9", 1, 1, 0);
        // The same task in v2 as in v1 is listed once (from v1).
        let dup = base.join("unified/qos-testbed/agent1/task-7");
        fs::create_dir_all(&dup).unwrap();
        fs::write(dup.join("cgroup.controllers"), "").unwrap();

        let roots = Roots::detect(base);
        assert_eq!(roots.v1_cpu.as_deref(), Some(cpu.as_path()));
        let found = discover(&DiscoveryConfig {
            roots: roots.clone(),
            testbed_prefix: "qos-testbed".into(),
        });
        let summary: Vec<_> = found
            .iter()
            .map(|d| (d.runtime, d.id.as_str(), d.dirs.version()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Runtime::Docker, id.as_str(), 1),
                (Runtime::Docker, id2.as_str(), 1),
                (Runtime::Mesos, "0b1e2f3a-1111-2222-3333-444455556666", 1),
                (Runtime::Testbed, "task-7", 1),
                (Runtime::Testbed, "task-9", 2),
            ]
        );
        assert_eq!(found[3].agent.as_deref(), Some("agent1"));
        assert!(matches!(
            &found[0].dirs,
            CgroupDirs::V1 { cpu: Some(_), .. }
        ));

        let (rel, d) = roots
            .resolve_named(&cpu.join("qos-testbed/agent1/task-7"))
            .unwrap();
        assert_eq!(rel, "/qos-testbed/agent1/task-7");
        assert!(matches!(d, CgroupDirs::V1 { .. }));
        let (rel, d) = roots
            .resolve_named(Path::new("qos-testbed/agent2/task-9"))
            .unwrap();
        assert_eq!(
            (rel.as_str(), d.version()),
            ("/qos-testbed/agent2/task-9", 2)
        );
        assert!(roots.resolve_named(Path::new("/nope/x")).is_none());
    }

    #[test]
    fn pure_v2_and_joint_v1() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("cgroup.controllers"), "cpu").unwrap();
        assert_eq!(Roots::detect(tmp.path()).v2.as_deref(), Some(tmp.path()));
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("cpu,cpuacct")).unwrap();
        let r = Roots::detect(tmp.path());
        assert_eq!(r.v1_cpu, r.v1_cpuacct);
        assert!(r.v1_cpu.is_some() && r.v2.is_none());
    }
}
