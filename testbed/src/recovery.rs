//! Recovery after a crash, as a Mesos agent recovers on restart.
//!
//! A testbed killed with `kill -9` cannot stop its tasks: their processes (re-parented to init),
//! their cgroups and their Docker containers stay. A Mesos agent restarted on the same work
//! directory finds what its previous incarnation checkpointed there and either reconnects to the
//! live executors (`--recover=reconnect`, the default) or kills them (`--recover=cleanup`); its
//! containerizers also destroy the containers and cgroups they find but cannot recover (orphans;
//! `--docker_kill_orphans`, default true). The testbed's Marathon and Chronos keep their state in
//! memory, so after a restart no framework knows the old tasks any more and nobody could
//! reconnect to them: the testbed always recovers as `--recover=cleanup` does — every task of a
//! dead incarnation is killed and its cgroups, containers and metadata removed — then starts
//! fresh.
//!
//! What makes this possible is a record per running testbed in `state_dir` (Mesos' `meta`
//! directory): `<cluster id>.lock`, held with `flock` for the testbed's whole life (the kernel
//! releases it when the process dies, however it dies), and `<cluster id>.json` with what must be
//! cleaned: the agents' cgroup paths, the process tasks' pids (with their start times, so a
//! reused pid is never killed), the metadata and work directories, whether tasks ran in Docker
//! (their containers carry the label `qos-testbed.cluster=<cluster id>`); it is rewritten whole
//! through `<cluster id>.json.tmp`, which a testbed killed mid-rewrite leaves and the recovery
//! reads too. A testbed that starts
//! takes every record whose lock it can take — its owner is dead — cleans what it lists and
//! deletes it. Records of live testbeds (their lock is held) are never touched, so testbeds may
//! share a `state_dir` and a cgroup prefix.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupLayout;

/// The Docker label that names the testbed a container belongs to.
pub(crate) const CLUSTER_LABEL: &str = "qos-testbed.cluster";

/// What one testbed leaves to clean if it dies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) cluster_id: String,
    /// The testbed's own pid (for the log).
    pub(crate) pid: u32,
    pub(crate) cgroup_root: PathBuf,
    pub(crate) cgroup_prefix: String,
    /// Agent ids: each one's cgroup `<prefix>/<id>` and metadata directory `<meta_dir>/<id>`.
    pub(crate) agents: Vec<String>,
    pub(crate) meta_dir: PathBuf,
    /// A temporary work directory the testbed made (and removes at a clean stop).
    pub(crate) owned_work_dir: Option<PathBuf>,
    /// The Docker daemon its containers run on, when it runs any.
    pub(crate) docker_host: Option<String>,
    /// Process tasks: task id → its main process (the leader of its process group).
    pub(crate) tasks: BTreeMap<String, TaskProcess>,
}

/// A task's main process, told apart from a later process with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskProcess {
    pub(crate) pid: u32,
    /// `starttime` of `/proc/<pid>/stat` (clock ticks after boot).
    pub(crate) start: u64,
}

/// What was cleaned after one dead testbed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Recovered {
    pub(crate) cluster_id: String,
    /// The dead testbed's pid.
    pub(crate) pid: u32,
    /// Processes killed (task processes and everything left in the task cgroups).
    pub(crate) killed: Vec<u32>,
    /// Cgroups removed (tasks and agents, counted once for all hierarchies).
    pub(crate) cgroups_removed: usize,
    /// Docker containers removed.
    pub(crate) containers_removed: Vec<String>,
    /// What could not be done.
    pub(crate) problems: Vec<String>,
}

/// This testbed's own record, kept up to date while it runs.
#[derive(Debug)]
pub(crate) struct Registry {
    dir: PathBuf,
    record: Mutex<Record>,
    _lock: Flock<File>,
}

fn lock_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.lock"))
}

fn record_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// The record being rewritten (renamed over the record once written).
fn record_tmp_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json.tmp"))
}

/// The `starttime` field of `/proc/<pid>/stat`, if the process exists.
pub(crate) fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces and parentheses): state is field 3,
    // starttime field 22, so the 20th after the closing parenthesis.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

impl Registry {
    /// Writes and locks this testbed's record. The lock file is made under a temporary name,
    /// locked, then renamed, so another testbed never sees it unlocked.
    pub(crate) fn open(dir: &Path, record: Record) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.lock.tmp", record.cluster_id));
        let file = File::create(&tmp)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| std::io::Error::from(e))?;
        fs::rename(&tmp, lock_path(dir, &record.cluster_id))?;
        let reg = Self {
            dir: dir.to_owned(),
            record: Mutex::new(record),
            _lock: lock,
        };
        reg.update(|_| {})?;
        Ok(reg)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `rec` through the one temporary file: the caller holds the record's lock, so
    /// writes never interleave in it nor rename each other's (or an older) record into place.
    fn write(&self, rec: &Record) -> std::io::Result<()> {
        let path = record_path(&self.dir, &rec.cluster_id);
        let tmp = record_tmp_path(&self.dir, &rec.cluster_id);
        let mut f = File::create(&tmp)?;
        // No fsync: the record must survive the testbed's death, which keeps the page cache
        // (a machine that loses power loses its processes and cgroups too).
        f.write_all(&serde_json::to_vec(rec).map_err(std::io::Error::other)?)?;
        fs::rename(&tmp, &path)
    }

    /// Changes the record and rewrites it, under its lock (tasks start and end on many threads).
    fn update(&self, f: impl FnOnce(&mut Record)) -> std::io::Result<()> {
        let mut rec = self.lock();
        f(&mut rec);
        self.write(&rec)
    }

    /// [`Self::update`], a failure logged.
    fn update_logged(&self, f: impl FnOnce(&mut Record)) {
        if let Err(e) = self.update(f) {
            tracing::warn!(
                "cannot update the recovery record in {}: {e}",
                self.dir.display()
            );
        }
    }

    /// A process task started (its main process is the leader of its process group).
    pub(crate) fn task_started(&self, task_id: &str, pid: u32) {
        let Some(start) = start_ticks(pid) else {
            return;
        };
        self.update_logged(|r| {
            r.tasks
                .insert(task_id.to_owned(), TaskProcess { pid, start });
        });
    }

    /// A process task is gone.
    pub(crate) fn task_ended(&self, task_id: &str) {
        if self.lock().tasks.contains_key(task_id) {
            self.update_logged(|r| {
                r.tasks.remove(task_id);
            });
        }
    }

    /// A clean stop: nothing is left to recover.
    pub(crate) fn close(&self) {
        let id = self.lock().cluster_id.clone();
        let _ = fs::remove_file(record_path(&self.dir, &id));
        let _ = fs::remove_file(lock_path(&self.dir, &id));
    }
}

/// Cleans what every dead testbed recorded in `dir` left; returns what was done. `containers`
/// removes the Docker containers labelled with a cluster id on a daemon (`None`: the testbed's
/// own daemon) and says which.
pub(crate) async fn recover<F, Fut>(dir: &Path, containers: F) -> Vec<Recovered>
where
    F: Fn(Option<String>, String) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, String>>,
{
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".lock").filter(|i| !i.starts_with('.')) else {
            continue;
        };
        let Ok(file) = File::open(e.path()) else {
            continue;
        };
        // Held: its testbed is alive.
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue;
        };
        // A testbed killed while it rewrote its record leaves the new one under its temporary
        // name (complete when it parses: it is written at once): its tasks count too, each one
        // killed only if its pid still has the recorded start time.
        let read = |p: &Path| -> Option<Record> {
            fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
        };
        let newer = read(&record_tmp_path(dir, id));
        let record = match (read(&record_path(dir, id)), newer) {
            (Some(mut rec), Some(newer)) => {
                for (task, p) in newer.tasks {
                    rec.tasks.entry(task).or_insert(p);
                }
                Some(rec)
            }
            (rec, newer) => rec.or(newer),
        };
        if let Some(rec) = record {
            let mut r = clean(&rec);
            if let Some(host) = rec.docker_host.clone() {
                match containers(Some(host), rec.cluster_id.clone()).await {
                    Ok(names) => r.containers_removed = names,
                    Err(e) => r.problems.push(format!("Docker containers: {e}")),
                }
            }
            tracing::warn!(
                "recovered from a testbed that died (cluster {}, pid {}): killed {} process(es) \
                 {:?}, removed {} cgroup(s) and {} container(s){}",
                r.cluster_id,
                r.pid,
                r.killed.len(),
                r.killed,
                r.cgroups_removed,
                r.containers_removed.len(),
                if r.problems.is_empty() {
                    String::new()
                } else {
                    format!("; not done: {}", r.problems.join("; "))
                }
            );
            out.push(r);
        }
        let _ = fs::remove_file(record_path(dir, id));
        let _ = fs::remove_file(record_tmp_path(dir, id));
        let _ = fs::remove_file(dir.join(&name));
        drop(lock);
    }
    out
}

/// Kills the recorded processes and whatever is left in the agents' cgroups, and removes the
/// cgroups and the metadata and work directories.
fn clean(rec: &Record) -> Recovered {
    let mut r = Recovered {
        cluster_id: rec.cluster_id.clone(),
        pid: rec.pid,
        ..Recovered::default()
    };
    // The agents' cgroups: every task's, then the agent's own (children first).
    let groups = match CgroupLayout::detect(&rec.cgroup_root, &rec.cgroup_prefix) {
        Ok(layout) => {
            let mut groups = Vec::new();
            for agent in &rec.agents {
                let agent_group = layout.group(&Path::new(&rec.cgroup_prefix).join(agent));
                if let Ok(d) = fs::read_dir(agent_group.cpu_dir()) {
                    for e in d
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    {
                        groups.push(layout.group(&agent_group.rel().join(e.file_name())));
                    }
                }
                if agent_group.cpu_dir().exists() {
                    groups.push(agent_group);
                }
            }
            Some((layout, groups))
        }
        Err(e) => {
            if !rec.agents.is_empty() {
                r.problems.push(format!("cgroups: {e}"));
            }
            None
        }
    };
    // Everything that runs there, listed before anything is killed.
    for g in groups.iter().flat_map(|(_, g)| g) {
        for p in g.pids() {
            let p = u32::try_from(p).unwrap_or(0);
            if p != 0 && !r.killed.contains(&p) {
                r.killed.push(p);
            }
        }
    }
    for t in rec.tasks.values() {
        if start_ticks(t.pid) == Some(t.start) {
            let p = Pid::from_raw(i32::try_from(t.pid).unwrap_or(i32::MAX));
            let _ = killpg(p, Signal::SIGKILL);
            let _ = kill(p, Signal::SIGKILL);
            if !r.killed.contains(&t.pid) {
                r.killed.push(t.pid);
            }
        }
    }
    if let Some((layout, groups)) = groups {
        for g in groups {
            match g.destroy(Duration::from_secs(5)) {
                Ok(()) => r.cgroups_removed += 1,
                Err(e) => r
                    .problems
                    .push(format!("cgroup {}: {e}", g.rel().display())),
            }
        }
        layout.remove_prefix(&rec.cgroup_prefix);
    }
    for agent in &rec.agents {
        let _ = fs::remove_dir_all(rec.meta_dir.join(agent));
    }
    let _ = fs::remove_dir(&rec.meta_dir);
    if let Some(w) = &rec.owned_work_dir {
        let _ = fs::remove_dir_all(w);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_of_this_process() {
        let me = std::process::id();
        let a = start_ticks(me).unwrap();
        assert_eq!(start_ticks(me), Some(a));
        assert_eq!(start_ticks(u32::MAX), None);
    }

    /// Tasks start and end on many threads at once (the agents' task loops): every update is
    /// written, and the record on disk ends as the one in memory.
    #[test]
    fn concurrent_updates_are_all_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(
            dir.path(),
            Record {
                cluster_id: "busy".into(),
                ..Record::default()
            },
        )
        .unwrap();
        let failures: Vec<String> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let reg = &reg;
                    s.spawn(move || {
                        let mut failures = Vec::new();
                        for k in 0..100 {
                            let id = format!("t{t}-{k}");
                            let p = TaskProcess { pid: 1, start: k };
                            let started = reg.update(|r| {
                                r.tasks.insert(id.clone(), p);
                            });
                            let ended = reg.update(|r| {
                                r.tasks.remove(&id);
                            });
                            failures.extend(started.err().into_iter().chain(ended.err()));
                        }
                        let last = format!("t{t}-last");
                        failures.extend(
                            reg.update(|r| {
                                r.tasks.insert(last, TaskProcess { pid: 1, start: 0 });
                            })
                            .err(),
                        );
                        failures
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .map(|e| e.to_string())
                .collect()
        });
        assert!(
            failures.is_empty(),
            "{} updates failed: {failures:?}",
            failures.len()
        );
        let on_disk: Record =
            serde_json::from_slice(&fs::read(record_path(dir.path(), "busy")).unwrap()).unwrap();
        let expected: Vec<String> = (0..8).map(|t| format!("t{t}-last")).collect();
        assert_eq!(on_disk.tasks.keys().cloned().collect::<Vec<_>>(), expected);
        assert!(!record_tmp_path(dir.path(), "busy").exists());
        reg.close();
    }

    #[tokio::test]
    async fn a_live_record_is_left_alone_and_a_dead_one_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let live = Registry::open(
            dir.path(),
            Record {
                cluster_id: "live".into(),
                ..Record::default()
            },
        )
        .unwrap();
        // A dead testbed's record: its lock file exists but nobody holds it. Its "task" is a
        // real process of ours; a pid of another process with a different start time is spared.
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut dead = Record {
            cluster_id: "dead".into(),
            meta_dir: dir.path().join("meta"),
            ..Record::default()
        };
        dead.tasks.insert(
            "t2".into(),
            TaskProcess {
                pid: std::process::id(),
                start: 1,
            },
        );
        File::create(lock_path(dir.path(), "dead")).unwrap();
        fs::write(
            record_path(dir.path(), "dead"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        // It died while it recorded its task t1: the rewritten record was not renamed yet.
        dead.tasks.insert(
            "t1".into(),
            TaskProcess {
                pid,
                start: start_ticks(pid).unwrap(),
            },
        );
        fs::write(
            record_tmp_path(dir.path(), "dead"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let done = recover(dir.path(), |_, _| async { Ok(Vec::new()) }).await;
        assert_eq!(done.len(), 1, "{done:?}");
        assert_eq!(done[0].cluster_id, "dead");
        assert_eq!(done[0].killed, [pid]);
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed: {status:?}");
        assert!(!lock_path(dir.path(), "dead").exists());
        assert!(!record_path(dir.path(), "dead").exists());
        assert!(!record_tmp_path(dir.path(), "dead").exists());
        assert!(lock_path(dir.path(), "live").exists());
        live.task_started("x", std::process::id());
        let rec: Record =
            serde_json::from_slice(&fs::read(record_path(dir.path(), "live")).unwrap()).unwrap();
        assert_eq!(rec.tasks["x"].pid, std::process::id());
        live.close();
        assert!(!lock_path(dir.path(), "live").exists());
    }
}
