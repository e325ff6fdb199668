//! A log file kept bounded: past `max_bytes` it is renamed `<name>.1` (the older ones shifted to
//! `.2`, `.3`, …, the oldest past `keep` dropped) and a new one begun, so the directory never
//! holds more than about `(keep + 1) × max_bytes` of it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where a service appends its log, and how much of it is kept.
#[derive(Debug, Clone, Copy)]
pub struct LogFile<'a> {
    /// The file written to (its directory is created).
    pub path: &'a Path,
    /// Past this many bytes the file is rotated.
    pub max_bytes: u64,
    /// Rotated files kept beside it (`<name>.1` the newest); 0 keeps none.
    pub keep: usize,
}

/// The writer: appends to `path`, rotating it as [`LogFile`] says.
#[derive(Debug)]
pub(crate) struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    len: u64,
}

impl Rotating {
    /// Opens (appends to) the file, creating its directory.
    pub(crate) fn open(log: LogFile<'_>) -> io::Result<Self> {
        if let Some(dir) = log.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = append(log.path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: log.path.to_owned(),
            max_bytes: log.max_bytes.max(1),
            keep: log.keep,
            file,
            len,
        })
    }

    fn numbered(&self, i: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{i}"));
        PathBuf::from(name)
    }

    /// `<name>.{keep-1}` → `.{keep}` (replacing the oldest), …, `<name>` → `.1`; a new file.
    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.keep).rev() {
            match fs::rename(self.numbered(i), self.numbered(i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            fs::rename(&self.path, self.numbered(1))?;
        }
        self.file = append(&self.path)?;
        self.len = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new().create(true).append(true).open(path)
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if self.len > 0 && self.len.saturating_add(len) > self.max_bytes {
            // A rotation that fails (a full disk, a directory made read-only) leaves the current
            // file in use: the line is still written, never lost to the rotation.
            if let Err(e) = self.rotate() {
                eprintln!("log file {}: cannot rotate it: {e}", self.path.display());
                self.len = 0;
            }
        }
        let n = self.file.write(buf)?;
        self.len = self
            .len
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(p: &Path) -> u64 {
        fs::metadata(p).map_or(0, |m| m.len())
    }

    #[test]
    fn rotates_past_the_bound_and_keeps_only_keep_files() {
        let dir = std::env::temp_dir().join(format!("binkit-logfile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("logs/svc.log");
        let mut w = Rotating::open(LogFile {
            path: &path,
            max_bytes: 100,
            keep: 2,
        })
        .unwrap();
        for i in 0..1000 {
            w.write_all(format!("line {i:04} of the log\n").as_bytes())
                .unwrap();
        }
        w.flush().unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["svc.log", "svc.log.1", "svc.log.2"]);
        for n in &names {
            assert!(size(&dir.join("logs").join(n)) <= 100, "{n}");
        }
        let newest = fs::read_to_string(&path).unwrap();
        assert!(newest.ends_with("line 0999 of the log\n"), "{newest}");
        let older = fs::read_to_string(dir.join("logs/svc.log.1")).unwrap();
        assert!(older.ends_with(&format!(
            "line {:04} of the log\n",
            999 - newest.lines().count()
        )));
        // Opened again, it appends and goes on counting from the file's size.
        drop(w);
        let mut w = Rotating::open(LogFile {
            path: &path,
            max_bytes: 100,
            keep: 2,
        })
        .unwrap();
        w.write_all(&[b'x'; 90]).unwrap();
        assert!(size(&path) <= 100);
        let _ = fs::remove_dir_all(&dir);
    }
}
