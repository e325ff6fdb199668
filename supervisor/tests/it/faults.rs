//! Faults of the supervisor's own resources, against the real binary. Each prints one line
//! `FAULT <name> key=value …` for the fault-suite driver to collect:
//!
//! - `disk_full`: the database on a small tmpfs that fills (`cargo test -p supervisor --test it
//!   faults::disk_full -- --nocapture`; root, else skipped with a notice unless
//!   `QOS_REQUIRE_ROOT=1` or `QOS_REQUIRE_CGROUPS=1`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Proc, now, start_json_line, uuid};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system of `dir` with `file` until it is full.
fn fill(file: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(file).unwrap();
    let block = vec![0u8; 4096];
    let mut written = 0;
    while f.write_all(&block).is_ok() {
        written += 4096;
    }
    let _ = f.sync_all();
    written
}

fn spawn(db: &Path, log: &Path) -> (Proc, String) {
    let dir = log.parent().unwrap();
    let cfg = dir.join("supervisor.toml");
    // The WAL is kept small so that it cannot hold the whole file system itself.
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\n[storage]\nwal_max_bytes = 131072\ncheckpoint_interval = 1.0\n",
    )
    .unwrap();
    let (p, v) = start_json_line(
        Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .arg("--config")
            .arg(&cfg)
            .arg("--db")
            .arg(db)
            .env("RUST_LOG", "warn"),
        "supervisor",
        log,
    );
    (p, v["url"].as_str().unwrap().to_owned())
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = http.post(url).body(body.to_string()).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The database's file system fills while reports stream in: writes are refused with a clear
/// 503 (`storage_full`), nothing acknowledged is lost (checked after `kill -9`), and once space
/// returns the refused reports are taken (re-sent, as a reporter retries) and new ones too.
#[tokio::test]
async fn disk_full() {
    let fs = match Tmpfs::mount("3m") {
        Ok(fs) => fs,
        Err(why) => {
            assert!(!testkit::root_or_skip(Err(why), "faults::disk_full"));
            return;
        }
    };
    let logs = tempfile::tempdir().unwrap();
    let db: PathBuf = fs.path().join("s.db");
    let log = logs.path().join("supervisor.log");
    let (p, url) = spawn(&db, &log);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t0 = now();
    let u = uuid(1);
    let init = json!({"framework": "chronos", "name": "linpack", "job_duration": 1, "deadline": t0 + 36_000.0, "desv_deadline": 0.2, "uuid": u, "iterations": 100_000});
    assert_eq!(post(&http, &format!("{url}/initTask"), &init).await.0, 200);
    let report = |k: u32| {
        let t = t0 - 3000.0 + f64::from(k) * 0.01;
        json!({"name": "linpack", "started_at": t, "finished_at": t + 0.005, "hostname": "agent-with-a-long-name.example.org", "uuid": u})
    };
    let mut acked: Vec<u32> = Vec::new();
    let mut k = 0;
    // Before: reports acknowledged as usual.
    while k < 200 {
        let (s, v) = post(&http, &format!("{url}/updateTask"), &report(k)).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("applied")));
        acked.push(k);
        k += 1;
    }
    let filler = fs.path().join("filler");
    let filled = fill(&filler);
    // Full: a clear 503, and never a 200 for what could not be written.
    let mut refused: Vec<u32> = Vec::new();
    let mut message = String::new();
    while refused.len() < 50 && k < 5000 {
        let (s, v) = post(&http, &format!("{url}/updateTask"), &report(k)).await;
        match s {
            200 => acked.push(k),
            503 => {
                assert_eq!(v["error"]["code"], "storage_full", "{v}");
                message = v["error"]["message"].as_str().unwrap_or("").to_owned();
                refused.push(k);
            }
            other => panic!("{other}: {v}"),
        }
        k += 1;
    }
    assert!(!refused.is_empty(), "the file system never filled");
    // Space returns: the refused reports are re-sent and taken, new ones too.
    std::fs::remove_file(&filler).unwrap();
    let mut retried = 0;
    for &r in &refused {
        let (s, v) = post(&http, &format!("{url}/updateTask"), &report(r)).await;
        assert_eq!(s, 200, "a re-sent report after recovery: {v}");
        acked.push(r);
        retried += 1;
    }
    for _ in 0..100 {
        let (s, v) = post(&http, &format!("{url}/updateTask"), &report(k)).await;
        assert_eq!((s, v["status"].as_str()), (200, Some("applied")));
        acked.push(k);
        k += 1;
    }
    drop(p); // kill -9
    let out = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .args(["--dump-state", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = state["jobs"][0]["job"]["work"]["reports"]
        .as_array()
        .unwrap();
    let stored: std::collections::HashSet<u32> = reports
        .iter()
        .map(|r| (((r["started_at"].as_f64().unwrap() - (t0 - 3000.0)) * 100.0).round()) as u32)
        .collect();
    let lost = acked.iter().filter(|k| !stored.contains(k)).count();
    println!(
        "FAULT disk_full acknowledged={} stored={} lost={lost} refused_503={} retried_after_recovery={retried} filler_bytes={filled} message={message:?}",
        acked.len(),
        stored.len(),
        refused.len()
    );
    assert_eq!(lost, 0, "acknowledged reports missing after kill -9");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("full"), "the log says what happened: {log}");
}
