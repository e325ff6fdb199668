//! Mapping a container to the job UUID it runs, without the Docker API (see [`crate::docker_api`]
//! for Docker names and labels).
//!
//! Sources, first match wins:
//! 1. **Testbed metadata file** `qos.json` — `{"uuid": "<job uuid>", "task_id": "<task id>"}`
//!    (other keys ignored). The testbed writes it at
//!    `<meta dir>/<agent>/<task-id>/qos.json` (meta dir default `/run/qos-testbed`, flag
//!    `--testbed-meta-dir`), because cgroupfs does not accept regular files. A `qos.json` inside
//!    the cgroup directory itself is also read (fixture trees, bind-mounted layouts).
//! 2. **Process environment**: `QOS_UUID=<job uuid>` in `/proc/<pid>/environ` of the first process
//!    of the cgroup (Mesos tasks and testbed tasks launched by our launcher carry it);
//!    `MESOS_TASK_ID` / `MARATHON_APP_ID` become the container's display name.
//!
//! Only well-formed UUIDs (32 hex digits, or the dashed 8-4-4-4-12 form) are accepted as job
//! UUIDs; Mesos container ids are themselves UUIDs and are never taken as job UUIDs.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cgroup::CgroupDirs;

/// Default directory of testbed metadata files.
pub(crate) const DEFAULT_TESTBED_META_DIR: &str = "/run/qos-testbed";

/// Name of the testbed metadata file.
pub(crate) const META_FILE: &str = "qos.json";

/// Whether `s` is a job UUID: 32 hex digits, or 8-4-4-4-12 hex groups separated by dashes.
#[must_use]
pub(crate) fn is_job_uuid(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() == 32 {
        return hex(s, 32);
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5 && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| hex(p, *n))
}

/// The testbed's metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct TestbedMeta {
    /// The job UUID; empty (or absent) for a task that runs no QoS job, as most do (the testbed
    /// writes `""` then).
    #[serde(default)]
    pub uuid: String,
    /// The framework task id.
    #[serde(default)]
    pub task_id: Option<String>,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// What a non-Docker mapping found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Mapped {
    /// Job UUID.
    pub uuid: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// A metadata file that exists but could not be used, and why (the mapping then falls back
    /// to the process environment).
    pub problem: Option<String>,
}

/// Largest metadata file read (the testbed writes about a hundred bytes).
const MAX_META_BYTES: u64 = 64 * 1024;

/// Read a metadata file: `Ok(None)` if absent; `Err` naming the file and what is wrong when
/// it is unreadable, malformed, larger than [`MAX_META_BYTES`] or has a UUID that is not one.
/// An empty UUID is no job, not a fault.
pub(crate) fn read_meta(path: &Path) -> Result<Option<TestbedMeta>, String> {
    use binkit::file::ReadError;
    let bad = |why: String| format!("{}: {why}", path.display());
    let bytes = match binkit::file::read_at_most(path, MAX_META_BYTES) {
        Ok(bytes) => bytes,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let meta: TestbedMeta = serde_json::from_slice(&bytes).map_err(|e| {
        bad(format!(
            "not {{\"uuid\": \"<job uuid>\", \"task_id\": \"…\"}}: {e}"
        ))
    })?;
    if !meta.uuid.is_empty() && !is_job_uuid(&meta.uuid) {
        return Err(bad(format!(
            "uuid {:?} is not a job UUID (32 hex digits or 8-4-4-4-12)",
            meta.uuid
        )));
    }
    Ok(Some(meta))
}

/// Where the testbed metadata of `agent`/`task` lives.
#[must_use]
pub(crate) fn meta_path(meta_dir: &Path, agent: &str, task: &str) -> PathBuf {
    meta_dir.join(agent).join(task).join(META_FILE)
}

/// Pick `QOS_UUID`, `MESOS_TASK_ID`, `MARATHON_APP_ID` out of an `environ` blob (NUL-separated).
#[must_use]
pub(crate) fn parse_environ(blob: &[u8]) -> Mapped {
    let mut m = Mapped::default();
    for var in blob.split(|b| *b == 0) {
        let Ok(var) = std::str::from_utf8(var) else {
            continue;
        };
        if let Some(v) = var.strip_prefix("QOS_UUID=") {
            if is_job_uuid(v) {
                m.uuid = Some(v.to_string());
            }
        } else if let Some(v) = var.strip_prefix("MESOS_TASK_ID=") {
            m.name = Some(v.to_string());
        } else if let Some(v) = var.strip_prefix("MARATHON_APP_ID=") {
            m.name
                .get_or_insert_with(|| v.trim_start_matches('/').to_string());
        }
    }
    m
}

/// Map a non-Docker cgroup: metadata file(s) first, then the first process's environment.
#[must_use]
pub(crate) fn map_cgroup(dirs: &CgroupDirs, meta: Option<&Path>, proc_root: &Path) -> Mapped {
    let in_dir = dirs.procs_dir().join(META_FILE);
    let mut problem = None;
    let mut meta_name = None;
    for p in meta.into_iter().chain(std::iter::once(in_dir.as_path())) {
        match read_meta(p) {
            // A task of no QoS job: its name is kept, its environment may still carry one.
            Ok(Some(m)) if m.uuid.is_empty() => meta_name = meta_name.or(m.name.or(m.task_id)),
            Ok(Some(m)) => {
                return Mapped {
                    uuid: Some(m.uuid),
                    name: m.name.or(m.task_id),
                    problem: None,
                };
            }
            Ok(None) => {}
            Err(why) => problem = problem.or(Some(why)),
        }
    }
    let from_env = dirs.pids().ok().and_then(|pids| {
        pids.into_iter().take(4).find_map(|pid| {
            let blob = fs::read(proc_root.join(pid.to_string()).join("environ")).ok()?;
            let m = parse_environ(&blob);
            (m.uuid.is_some() || m.name.is_some()).then_some(m)
        })
    });
    let from_env = from_env.unwrap_or_default();
    Mapped {
        uuid: from_env.uuid,
        name: meta_name.or(from_env.name),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_forms() {
        assert!(is_job_uuid("0123456789abcdef0123456789ABCDEF"));
        assert!(is_job_uuid("0b1e2f3a-1111-2222-3333-444455556666"));
        assert!(!is_job_uuid("0b1e2f3a-1111-2222-3333-44445555666"));
        assert!(!is_job_uuid("g123456789abcdef0123456789abcdef"));
        assert!(!is_job_uuid("my-container"));
        assert!(!is_job_uuid(""));
    }

    #[test]
    fn environ() {
        let m = parse_environ(
            b"PATH=/bin\0QOS_UUID=0123456789abcdef0123456789abcdef\0MARATHON_APP_ID=/linpack\0",
        );
        assert_eq!(m.uuid.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(m.name.as_deref(), Some("linpack"));
        let m = parse_environ(b"QOS_UUID=nope\0MESOS_TASK_ID=app.1234\0");
        assert_eq!((m.uuid, m.name.as_deref()), (None, Some("app.1234")));
    }

    /// A cgroup v2 directory holding process 4242, whose `environ` (under the returned proc
    /// root) is `environ`.
    fn one_process_cgroup(tmp: &Path, environ: &[u8]) -> (CgroupDirs, PathBuf) {
        let cg = tmp.join("cg");
        fs::create_dir_all(&cg).unwrap();
        fs::write(cg.join("cgroup.procs"), "4242\n").unwrap();
        let proc_root = tmp.join("proc");
        fs::create_dir_all(proc_root.join("4242")).unwrap();
        fs::write(proc_root.join("4242/environ"), environ).unwrap();
        (CgroupDirs::V2 { dir: cg }, proc_root)
    }

    /// The testbed writes a `qos.json` for every task, with `"uuid": ""` for one that runs no QoS
    /// job (most tasks). That is no job, not an unusable file: with one warning per such task
    /// the node's log grew by a line (≈ 380 bytes) for every plain task that started — 2,872
    /// lines in 7 minutes of the soak.
    #[test]
    fn a_task_of_no_job_is_not_a_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let (dirs, proc_root) = one_process_cgroup(tmp.path(), b"PATH=/bin\0");
        let meta = meta_path(&tmp.path().join("meta"), "agent1", "web.instance-1._app.1");
        fs::create_dir_all(meta.parent().unwrap()).unwrap();
        for text in [
            r#"{"uuid": "", "task_id": "web.instance-1._app.1", "name": "web.instance-1._app.1", "agent_id": "agent1", "cluster_id": "c"}"#,
            r#"{"task_id": "web.instance-1._app.1"}"#,
        ] {
            fs::write(&meta, text).unwrap();
            let m = map_cgroup(&dirs, Some(&meta), &proc_root);
            assert_eq!(
                m,
                Mapped {
                    uuid: None,
                    name: Some("web.instance-1._app.1".into()),
                    problem: None,
                },
                "{text}"
            );
        }
        // Its environment may still name a job.
        fs::write(
            proc_root.join("4242/environ"),
            b"QOS_UUID=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0",
        )
        .unwrap();
        let m = map_cgroup(&dirs, Some(&meta), &proc_root);
        assert_eq!(m.uuid.as_deref(), Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!(m.problem, None);
    }

    #[test]
    fn meta_file_then_environ() {
        let tmp = tempfile::tempdir().unwrap();
        let (dirs, proc_root) =
            one_process_cgroup(tmp.path(), b"QOS_UUID=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0");
        assert_eq!(
            map_cgroup(&dirs, None, &proc_root).uuid.as_deref(),
            Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
        );
        let meta = meta_path(&tmp.path().join("meta"), "agent1", "t1");
        fs::create_dir_all(meta.parent().unwrap()).unwrap();
        fs::write(
            &meta,
            r#"{"uuid": "bbbbbbbb-1111-2222-3333-444455556666", "task_id": "t1", "extra": 1}"#,
        )
        .unwrap();
        let m = map_cgroup(&dirs, Some(&meta), &proc_root);
        assert_eq!(
            m.uuid.as_deref(),
            Some("bbbbbbbb-1111-2222-3333-444455556666")
        );
        assert_eq!(m.name.as_deref(), Some("t1"));
        // A metadata file of megabytes is not read (it would be read again every few passes).
        let huge = format!(
            r#"{{"uuid": "bbbbbbbb-1111-2222-3333-444455556666", "name": "{}"}}"#,
            "x".repeat(7 << 20)
        );
        fs::write(&meta, huge).unwrap();
        let m = map_cgroup(&dirs, Some(&meta), &proc_root);
        assert_eq!(m.uuid.as_deref(), Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        let why = m.problem.unwrap();
        assert!(why.contains("qos.json: larger than 65536 bytes"), "{why}");
        // Each unusable file is reported naming the file and what is wrong, not ignored.
        for (text, says) in [
            (
                r#"{"uuid": "not-a-uuid"}"#,
                r#"uuid "not-a-uuid" is not a job UUID"#,
            ),
            (r#"{"uuid": 7}"#, "invalid type: integer `7`"),
            ("{", "EOF while parsing"),
        ] {
            fs::write(&meta, text).unwrap();
            let m = map_cgroup(&dirs, Some(&meta), &proc_root);
            assert_eq!(m.uuid.as_deref(), Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
            let why = m.problem.unwrap();
            assert!(
                why.contains(&meta.display().to_string()) && why.contains(says),
                "{why}"
            );
        }
    }
}
