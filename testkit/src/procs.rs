//! The host's processes, read from `/proc`: which ones show a secret in their arguments (what
//! `ps` shows every user of the host).

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
    }
}
