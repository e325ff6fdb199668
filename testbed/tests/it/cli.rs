//! The `testbed serve` binary: one JSON line when ready, everything stopped on SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;
use frameworks::{Credentials, MarathonApp, MarathonClient};
use serde_json::{Value, json};

#[tokio::test]
async fn serve_prints_urls_and_stops_everything_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("testbed.toml");
    std::fs::write(&cfg, "agents = 3\nprocess_kill_grace_secs = 1.0\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--agents",
            "2",
            "--cpus-per-agent",
            "1",
            "--runtime",
            "process",
        ])
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let urls: Value = serde_json::from_str(&line).expect("one JSON line");
    let keys: Vec<&String> = urls.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["marathon", "chronos", "agents"]);
    assert_eq!(
        urls["agents"].as_array().unwrap().len(),
        2,
        "flags override the file"
    );
    let marathon = MarathonClient::with_config(
        &Credentials::new(urls["marathon"].as_str().unwrap()).unwrap(),
        client_config(),
    )
    .unwrap();
    let id = format!("/{}", unique("cli-"));
    marathon
        .create_app(
            &MarathonApp::try_from(
                json!({"id": id, "cmd": "exec sleep 300", "cpus": 0.2, "mem": 16}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let task = wait_for("task running", Duration::from_secs(10), || async {
        marathon
            .app_tasks(&id)
            .await
            .ok()?
            .into_iter()
            .find(|t| t.is_running())
    })
    .await;
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|e| e.windows(task.id.len()).any(|w| w == task.id.as_bytes()))
        })
        .expect("task process");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(
        rest.trim().is_empty(),
        "exactly one line on stdout, then {rest:?}"
    );
    assert!(!alive(pid), "the task process survived the testbed");
    let agent = task.slave_id.unwrap();
    let cg = std::path::Path::new("/sys/fs/cgroup/cpu/qos-testbed").join(&agent);
    assert!(!cg.exists(), "{} left behind", cg.display());
}

/// Marathon + Chronos and an agent under hostile clients: 60 connections that never finish a
/// request head and an idle keep-alive one, against servers capped at 16 connections with a 1 s
/// header timeout. Each is closed by the testbed, its descriptors stay within the cap, an honest
/// request is answered while they stall, and the flood costs two log lines (limit reached,
/// cleared). Before, the emulators served with `axum::serve`: no cap, and a stalled connection
/// stayed open for ever, so a stuck client could take every descriptor of the testbed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_the_emulators_still_answer() {
    use testkit::flood;
    const MAX: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("testbed.log");
    let (tb, urls) = testkit::services::start_json_line(
        Command::new(env!("CARGO_BIN_EXE_testbed"))
            .args(["serve", "--listen", "127.0.0.1:0", "--agents", "1"])
            .args(["--no-cgroups", "--max-connections", &MAX.to_string()])
            .args(["--header-timeout-secs", "1"])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--meta-dir")
            .arg(dir.path().join("meta")),
        "testbed",
        &log,
    );
    let pid = tb.0.id();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut floods = 0;
    for (base, path) in [
        (urls["marathon"].as_str().unwrap(), "/v2/apps"),
        (urls["agents"][0].as_str().unwrap(), "/state"),
    ] {
        let addr = base.trim_start_matches("http://").to_owned();
        let (seen, honest) = flood::flood(&addr, path, 60, (pid, MAX)).await;
        assert!(alive(pid));
        assert_eq!(honest.ok(), Some(200), "GET {base}{path} while 60 stall");
        seen.check();
        // Reached once and cleared once (a header timeout after the limit was last full),
        // however often the limit filled again meanwhile.
        floods += 1;
        flood::assert_limit_logged_once_a_flood(read_log, floods).await;
    }
}
