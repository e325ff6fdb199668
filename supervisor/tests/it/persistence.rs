//! State survives restarts: in-process stop/start, and `kill -9` of the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use supervisor::Clock;

use crate::support::{Harness, Opts, T0, get_json, uuid};

fn update(u: &str, s: f64, f: f64) -> String {
    format!(
        r#"{{"name": "linpack", "finished_at": "{f}", "started_at": "{s}", "hostname": "agent1", "uuid": "{u}"}}"#
    )
}

#[tokio::test]
async fn everything_is_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    // The reports are about runs up to T0 + 525: the clock is past them.
    let h = Harness::start(Opts {
        db: Some(db.clone()),
        clock: Some(Clock::starting_at(T0 + 1000.0)),
        ..Opts::default()
    })
    .await;
    let c = uuid(1);
    let m = uuid(2);
    let early = uuid(3);
    let init = format!(
        r#"{{"framework": "chronos", "name": "linpack", "job_duration": 400, "deadline": {}, "desv_deadline": 0.2, "uuid": "{c}", "iterations": 4}}"#,
        T0 + 1800.0
    );
    assert_eq!(
        h.call("POST", "/initTask", Some(&init), &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.call(
            "POST",
            "/updateTask",
            Some(&update(&c, T0 + 45.0, T0 + 525.0)),
            &[]
        )
        .await
        .1["status"],
        "applied"
    );
    let reg = json!({"uuid": m, "name": "app", "framework": "marathon", "qos": {"duration": 400, "deadline": 480, "desv_deadline": 0.1}, "cpus": 1});
    assert_eq!(
        h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await
            .0,
        StatusCode::CREATED
    );
    let start = format!(r#"{{"uuid": "{m}", "started_at": {T0}}}"#);
    assert_eq!(
        h.call("POST", "/initMarathonApp", Some(&start), &[])
            .await
            .0,
        StatusCode::OK
    );
    let batch = json!({"node": "node-1", "samples": [{"uuid": m, "container_id": "c1", "at": T0 + 10.0, "user_secs": 8.0, "system_secs": 1.0, "total_secs": 9.0}]});
    assert_eq!(
        h.admin("POST", "/api/v1/samples", Some(&batch.to_string()))
            .await
            .0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        h.call(
            "POST",
            "/updateTask",
            Some(&update(&early, T0, T0 + 1.0)),
            &[]
        )
        .await
        .1["status"],
        "held"
    );
    let node =
        json!({"id": "node-1", "hostname": "agent1", "cpus": 2.0, "memory_bytes": 1u64 << 30});
    assert_eq!(
        h.admin("POST", "/api/v1/nodes/register", Some(&node.to_string()))
            .await
            .0,
        StatusCode::OK
    );
    let token_before = h
        .call("GET", &format!("/api/v1/jobs/{c}"), None, &[])
        .await
        .1;
    h.sup.stop().await;

    // The reports are about runs up to T0 + 525: the clock is past them.
    let h = Harness::start(Opts {
        db: Some(db.clone()),
        clock: Some(Clock::starting_at(T0 + 1000.0)),
        ..Opts::default()
    })
    .await;
    let (_, job) = h.call("GET", &format!("/api/v1/jobs/{c}"), None, &[]).await;
    assert_eq!(job["remaining_iterations"], 3, "{job}");
    assert_eq!(job["registered_at"], token_before["registered_at"]);
    assert_eq!(
        h.call(
            "POST",
            "/updateTask",
            Some(&update(&c, T0 + 45.0, T0 + 525.0)),
            &[]
        )
        .await
        .1["status"],
        "duplicate"
    );
    let (_, app) = h.call("GET", &format!("/api/v1/jobs/{m}"), None, &[]).await;
    assert_eq!(app["cpu_seconds"], 9.0, "{app}");
    assert_eq!(app["started_at"], T0);
    // A held report survives too and is applied at registration.
    let init = format!(
        r#"{{"framework": "chronos", "name": "linpack", "job_duration": 400, "deadline": {}, "desv_deadline": 0.2, "uuid": "{early}", "iterations": 2}}"#,
        T0 + 1800.0
    );
    assert_eq!(
        h.call("POST", "/initTask", Some(&init), &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.call("GET", &format!("/api/v1/jobs/{early}"), None, &[])
            .await
            .1["remaining_iterations"],
        1
    );
    let (_, nodes) = h.call("GET", "/api/v1/nodes", None, &[]).await;
    assert_eq!(nodes[0]["id"], "node-1");
    h.sup.stop().await;
}

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(db: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn supervisor");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read url line");
    let v: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON line: {line:?}: {e}"));
    let url = v["url"].as_str().expect("url").to_owned();
    assert_eq!(v.as_object().map(serde_json::Map::len), Some(1), "{line}");
    Proc { child, url }
}

async fn post(client: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let r = client.post(url).body(body).send().await.expect("request");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// kill -9 between a report and its re-delivery: nothing lost, nothing counted twice, and the
/// job is back under control at once.
#[tokio::test]
async fn kill_9_loses_nothing_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let p = spawn(&db);
    let u = uuid(7);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let init = format!(
        r#"{{"framework": "chronos", "name": "linpack", "job_duration": "400", "deadline": "{}", "desv_deadline": "0.2", "uuid": "{u}", "iterations": "4"}}"#,
        now + 1800.0
    );
    assert_eq!(
        post(&client, &format!("{}/initTask", p.url), init).await.0,
        200
    );
    let report = update(&u, now, now + 1.0);
    assert_eq!(
        post(&client, &format!("{}/updateTask", p.url), report.clone())
            .await
            .1["status"],
        "applied"
    );
    let second = update(&u, now + 2.0, now + 3.0);
    assert_eq!(
        post(&client, &format!("{}/updateTask", p.url), second.clone())
            .await
            .1["status"],
        "applied"
    );
    drop(p); // SIGKILL, no chance to flush anything

    let started = std::time::Instant::now();
    let p = spawn(&db);
    let job: Value = get_json(&client, &format!("{}/api/v1/jobs/{u}", p.url)).await;
    assert_eq!(job["remaining_iterations"], 2, "{job}");
    // The container's curl retries the report it did not see acknowledged: not counted again.
    assert_eq!(
        post(&client, &format!("{}/updateTask", p.url), second)
            .await
            .1["status"],
        "duplicate"
    );
    assert_eq!(
        post(&client, &format!("{}/updateTask", p.url), report)
            .await
            .1["status"],
        "duplicate"
    );
    let ready = client
        .get(format!("{}/readyz", p.url))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(ready.as_u16(), 200);
    // Under control again: the job has been reconciled since the restart.
    let mut decided = false;
    for _ in 0..100 {
        let h: Value = get_json(&client, &format!("{}/api/v1/jobs/{u}", p.url)).await;
        if h["decision"].is_object() {
            decided = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(decided, "no decision after the restart");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A non-loopback address without a token is refused before anything starts.
#[test]
fn refuses_an_open_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .args(["--listen", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("s.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`listen`") && err.contains("--insecure"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert!(
        !dir.path().join("s.db").exists(),
        "nothing may start before the config is valid"
    );
}

/// SIGTERM: the binary drains, writes what is pending and exits 0 within the bound; the
/// state is there on the next start.
#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let client = reqwest::Client::new();
    let mut p = spawn(&db);
    let u = uuid(8);
    let reg = json!({"uuid": u, "name": "app", "framework": "marathon", "qos": {"duration": 400, "deadline": 480, "desv_deadline": 0.1}, "cpus": 1});
    let r = client
        .post(format!("{}/api/v1/jobs", p.url))
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let batch = json!({"node": "n1", "samples": [{"uuid": u, "container_id": "c1", "at": 1.6e9, "user_secs": 3.0, "system_secs": 1.0, "total_secs": 4.0}]});
    let r = client
        .post(format!("{}/api/v1/samples", p.url))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    drop(p);
    let p = spawn(&db);
    let job: Value = get_json(&client, &format!("{}/api/v1/jobs/{u}", p.url)).await;
    assert_eq!(
        job["cpu_seconds"], 4.0,
        "written behind, flushed at shutdown: {job}"
    );
}

/// A configuration file with a bad key is refused, naming it.
#[test]
fn a_bad_config_file_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("s.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\npolicy = \"thesis\"\ncpu_increment = 0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .arg("--config")
        .arg(&cfg)
        .args(["--db"])
        .arg(dir.path().join("s.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`cpu_increment`"), "{err}");
}

/// A client that never finishes its request cannot hold the shutdown beyond the drain bound.
#[tokio::test]
async fn shutdown_is_bounded_by_the_drain() {
    use tokio::io::AsyncWriteExt;
    let h = Harness::start(Opts {
        configure: Some(Box::new(|c| c.control.drain_timeout = 1.0)),
        ..Opts::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(h.sup.serve(listener, async move {
        let _ = rx.await;
    }));
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /updateTask HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    tx.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returned")
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(slow);
}
