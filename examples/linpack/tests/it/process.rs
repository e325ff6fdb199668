//! The built binary as a process: SIGTERM checkpoints, a restart resumes bit-identically, and
//! the supervisor-facing behaviour seen from outside.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::common::{fraction, reported_past, supervisor};
use linpack::run::{self, Finish, Problem, Settings};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn linpack() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_linpack"));
    for k in [
        "LINPACK_THREADS",
        "QOS_CHECKPOINT_DIR",
        "QOS_SUPERVISOR_URL",
        "QOS_UUID",
        "QOS_REPORT_TOKEN",
        "QOS_PROGRESS_INTERVAL",
    ] {
        c.env_remove(k);
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "stdout: {text}");
    serde_json::from_str(&text).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends SIGTERM `times` times and returns the output and how long the process took to exit.
fn terminate(child: Child, times: usize) -> (Output, Duration) {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let sent = Instant::now();
    for _ in 0..times {
        kill(pid, Signal::SIGTERM).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (out, sent.elapsed())
}

#[test]
fn sigterm_checkpoints_and_a_restart_resumes_bit_identically() {
    let (n, seed, repeats) = (200, 5, 12);
    let want = match run::run(
        &Settings {
            problem: Problem { n, seed, repeats },
            block: 64,
            threads: 1,
            checkpoint_dir: None,
        },
        &AtomicBool::new(false),
        &|_| {},
        &mut |_| {},
    )
    .unwrap()
    {
        Finish::Completed(s) => s,
        other => panic!("{other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = supervisor();
    let args = ["200", "--repeat", "12", "--seed", "5", "--output", "json"];
    let child = linpack()
        .args(args)
        .env("QOS_CHECKPOINT_DIR", dir.path())
        .env("LINPACK_THREADS", "2")
        .env("QOS_SUPERVISOR_URL", &server.url)
        .env("QOS_UUID", "job-7")
        .env("QOS_PROGRESS_INTERVAL", "0.02")
        .spawn()
        .unwrap();
    assert!(
        reported_past(&server, 0.2, Duration::from_secs(20)),
        "no progress past 20%"
    );
    // An orchestrator and a wrapper may both send SIGTERM: the second must not cut the save.
    let (out, took) = terminate(child, 2);
    let err = stderr(&out);
    assert!(out.status.success(), "{:?} {err}", out.status);
    // Bounded (a stop that waited for the end would also show as status "done", checked below);
    // measured in release: well under a second at N = 3000.
    assert!(took < Duration::from_secs(30), "took {took:?} to stop");
    let v = json(&out);
    assert_eq!(v["status"], "checkpointed", "{v}");
    assert!(v["repeat"].as_u64().unwrap() < 12, "{v}");
    let file = dir.path().join("linpack-n200-seed5-repeat12.ckpt");
    assert_eq!(
        v["checkpoint"].as_str().map(Path::new),
        Some(file.as_path())
    );
    assert!(file.exists());
    assert!(err.contains("state saved to"), "{err}");
    let before = server.requests().len();

    // Restart on one thread: resumes, same bits as the uninterrupted run, checkpoint deleted.
    let out = linpack()
        .args(args)
        .env("QOS_CHECKPOINT_DIR", dir.path())
        .env("LINPACK_THREADS", "1")
        .env("QOS_SUPERVISOR_URL", &server.url)
        .env("QOS_UUID", "job-7")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("resuming from"), "{err}");
    let v = json(&out);
    assert_eq!(v["status"], "completed");
    assert_eq!(v["resumed"], true);
    assert_eq!(v["passed"], true);
    assert_eq!(v["threads"], 1);
    let crc = want.runs.last().unwrap().solution_crc32;
    assert_eq!(v["solution_crc32"], crc);
    assert_eq!(
        v["residual"].as_f64().unwrap().to_bits(),
        want.residual().to_bits()
    );
    assert!(!file.exists());
    // Progress resumed where it stopped rather than from zero, and reached 1.
    let after: Vec<f64> = server.requests()[before..].iter().map(fraction).collect();
    assert!(after[0] > 0.2, "{after:?}");
    assert_eq!(*after.last().unwrap(), 1.0);
}

#[test]
fn sigterm_without_checkpoint_dir_exits_143() {
    let server = supervisor();
    let child = linpack()
        .args(["150", "--repeat", "1000"])
        .env("QOS_SUPERVISOR_URL", &server.url)
        .env("QOS_UUID", "job-8")
        .env("QOS_PROGRESS_INTERVAL", "0.02")
        .spawn()
        .unwrap();
    assert!(reported_past(&server, 0.0, Duration::from_secs(20)));
    let (out, took) = terminate(child, 1);
    assert_eq!(out.status.code(), Some(143));
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(
        stderr(&out).contains("nothing was saved"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dead_supervisor_is_logged_once_and_not_fatal() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = linpack()
        .args(["150", "--repeat", "6", "-o", "json"])
        .env("QOS_SUPERVISOR_URL", format!("http://127.0.0.1:{port}"))
        .env("QOS_UUID", "job-9")
        .env("QOS_PROGRESS_INTERVAL", "0.01")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("progress report").count(), 1, "{err}");
    assert_eq!(json(&out)["passed"], true);
}

#[test]
fn foreign_checkpoint_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("linpack-n40-seed1-repeat1.ckpt");
    std::fs::write(&file, "not a checkpoint").unwrap();
    let out = linpack()
        .arg("40")
        .env("QOS_CHECKPOINT_DIR", dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ignoring checkpoint") && err.contains("not a LINPACK checkpoint"),
        "{err}"
    );
    assert!(!file.exists());
}
