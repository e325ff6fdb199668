//! The task sandboxes a testbed leaves under its work directory (each a directory with the
//! task's `stdout` and `stderr`), for end-to-end tests that read what the tasks printed.

use std::path::{Path, PathBuf};

/// One task's sandbox: its directory, stdout and stderr.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The sandbox directory (the task's working directory).
    pub dir: PathBuf,
    /// What the task printed on stdout.
    pub stdout: String,
    /// What the task printed on stderr.
    pub stderr: String,
}

/// Every task sandbox under `work`, oldest first (by the creation time of its `stdout`).
#[must_use]
pub fn sandboxes(work: &Path) -> Vec<Sandbox> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.join("stdout").is_file() {
                    out.push(p.clone());
                }
                walk(&p, out);
            }
        }
    }
    let mut dirs = Vec::new();
    walk(work, &mut dirs);
    dirs.sort_by_key(|p| {
        std::fs::metadata(p.join("stdout"))
            .and_then(|m| m.created())
            .ok()
    });
    dirs.into_iter()
        .map(|dir| Sandbox {
            stdout: std::fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
            stderr: std::fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
            dir,
        })
        .collect()
}

/// Every sandbox under `work` as text, for a failing test's message.
#[must_use]
pub fn dump(work: &Path) -> String {
    sandboxes(work)
        .iter()
        .map(|s| {
            format!(
                "== {}\n-- stdout\n{}\n-- stderr\n{}",
                s.dir.display(),
                s.stdout,
                s.stderr
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
