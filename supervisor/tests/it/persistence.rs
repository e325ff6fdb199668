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
        h.status("POST", "/initTask", Some(&init), &[]).await,
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
        h.status("POST", "/initMarathonApp", Some(&start), &[])
            .await,
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
        h.status("POST", "/initTask", Some(&init), &[]).await,
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

/// Where two JSON values first differ: the path and both sides.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(&format!("{path}.{k}"), va, vb) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{path}[{i}]"), va, vb)),
        _ => (a != b).then(|| format!("{path}: {a} vs {b}")),
    }
}

/// Posts `body` to `path` with the admin token, expecting a success.
async fn ok(h: &Harness, method: &str, path: &str, body: &Value) -> Value {
    let (s, v) = h.admin(method, path, Some(&body.to_string())).await;
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

/// A supervisor on `db` (written inline, the admin token required, its controller's period an
/// hour: only what the test does happens), its clock at [`T0`], one node registered with 4 CPUs.
async fn with_a_node(db: &std::path::Path, policy: qos_core::policy::Policy) -> Harness {
    let h = Harness::start(Opts {
        policy,
        db: Some(db.to_path_buf()),
        store: supervisor::StoreMode::Inline,
        clock: Some(Clock::starting_at(T0)),
        auth: supervisor::config::AuthConfig {
            admin_token: Some(crate::support::ADMIN.into()),
            ..Default::default()
        },
        configure: Some(Box::new(|c| c.control.period = 3600.0)),
    })
    .await;
    crate::control::register_node(&h, 4.0, json!({})).await;
    crate::control::heartbeat(
        &h,
        &json!({"at": T0, "free_cpus": 3.0, "allocated_cpus": 1.0, "load1": 0.5}),
    )
    .await;
    h
}

/// Chronos and Marathon jobs through their lives — reports, resizes (the operator's and the
/// controller's), a restart, CPU samples, progress, a finished job whose lists left memory, a
/// cancelled one, held reports, a node — then the state rebuilt from the database by a fresh
/// process (`dump_state`, what a restart after `kill -9` loads) is the state in memory, exactly.
/// A job's row stays small whatever its number of reports.
#[tokio::test(start_paused = true)]
async fn the_state_rebuilt_from_the_database_is_the_state_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let policy = qos_core::policy::Policy::by_name("thesis").unwrap();
    let h = with_a_node(&db, policy).await;
    let step = || tokio::time::advance(Duration::from_secs(1));
    let qos = json!({"duration": 10, "deadline": 36_000, "desv_deadline": 0.2});
    // A: a Chronos job run to its end (then deleted from Chronos, its lists archived).
    let (a, b, c, d, f) = (uuid(1), uuid(2), uuid(3), uuid(4), uuid(6));
    for (u, name, n) in [(&a, "linpack-a", 12), (&b, "linpack-b", 100)] {
        h.chronos.add_job(name, 1.0, n);
        let reg = json!({"uuid": u, "name": name, "framework": "chronos", "qos": qos, "iterations": n, "cpus": 1});
        ok(&h, "POST", "/api/v1/jobs", &reg).await;
    }
    for (u, app) in [(&c, "app-c"), (&d, "app-d"), (&f, "app-f")] {
        h.marathon.add_app(&format!("/{app}"), 1.0);
        let reg = json!({"uuid": u, "name": app, "framework": "marathon", "qos": {"duration": 400, "deadline": 36_000, "desv_deadline": 0.1}, "cpus": 1});
        ok(&h, "POST", "/api/v1/jobs", &reg).await;
    }
    for (u, name, reports) in [(&a, "linpack-a", 12), (&b, "linpack-b", 30)] {
        for k in 0..reports {
            step().await;
            let now = h.sup.now();
            let r = json!({"name": name, "started_at": now - 0.8, "finished_at": now, "hostname": "agent1", "uuid": u});
            ok(&h, "POST", "/updateTask", &r).await;
            if k % 5 == 2 {
                let cpus = if k % 10 == 2 { 1.5 } else { 0.8 };
                ok(
                    &h,
                    "POST",
                    &format!("/api/v1/jobs/{u}/resize"),
                    &json!({"cpus": cpus}),
                )
                .await;
            }
        }
    }
    // C: a Marathon task sampled, reporting progress, resized (a restart) and restored.
    for (u, container) in [(&c, "c1"), (&d, "d1")] {
        step().await;
        let started = json!({"uuid": u, "started_at": h.sup.now()});
        ok(&h, "POST", "/initMarathonApp", &started).await;
        for t in 1..=20 {
            step().await;
            let batch = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": container, "at": h.sup.now(), "user_secs": f64::from(t), "system_secs": 0.0, "total_secs": f64::from(t)}]});
            ok(&h, "POST", "/api/v1/samples", &batch).await;
            if t % 5 == 0 {
                let p = json!({"fraction": f64::from(t) / 100.0});
                ok(&h, "POST", &format!("/api/v1/jobs/{u}/progress"), &p).await;
            }
        }
    }
    ok(
        &h,
        "POST",
        &format!("/api/v1/jobs/{c}/resize"),
        &json!({"cpus": 1.5}),
    )
    .await;
    step().await;
    let restored = json!({"uuid": c, "started_at": h.sup.now(), "restored": true});
    ok(&h, "POST", "/initMarathonApp", &restored).await;
    step().await;
    let batch = json!({"node": "node-1", "samples": [{"uuid": c, "container_id": "c2", "at": h.sup.now(), "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]});
    ok(&h, "POST", "/api/v1/samples", &batch).await;
    // D ends; F is cancelled; reports held for two jobs not registered yet.
    let end = json!({"uuid": d, "finished_at": h.sup.now()});
    ok(&h, "POST", "/endMarathonApp", &end).await;
    h.admin("DELETE", &format!("/api/v1/jobs/{f}"), None).await;
    let early = json!({"name": "later", "started_at": h.sup.now() - 2.0, "finished_at": h.sup.now(), "hostname": "agent1", "uuid": uuid(7)});
    ok(&h, "POST", "/updateTask", &early).await;
    let batch = json!({"node": "node-1", "samples": [{"uuid": uuid(8), "container_id": "e1", "at": h.sup.now(), "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]});
    ok(&h, "POST", "/api/v1/samples", &batch).await;
    // The finished jobs are cleaned up and archived; everything written behind is written.
    for _ in 0..5 {
        step().await;
        tokio::task::yield_now().await;
    }
    h.sup.flush().await.unwrap();
    let (_, a_view) = h.admin("GET", &format!("/api/v1/jobs/{a}"), None).await;
    assert_eq!(a_view["state"], "completed", "{a_view}");
    assert_eq!(a_view["cleaned_up"], true, "{a_view}");
    assert_eq!(
        a_view["reports"].as_array().map(Vec::len),
        Some(12),
        "{a_view}"
    );

    let in_memory = h.sup.state().await.unwrap();
    let config = supervisor::Config::for_tests(&db, policy);
    let rebuilt = supervisor::dump_state(config).await.unwrap();
    assert_eq!(in_memory["jobs"].as_array().map(Vec::len), Some(5));
    // The held report (the held sample is kept in memory only, not resumed).
    assert_eq!(in_memory["held"].as_array().map(Vec::len), Some(1));
    let job = |state: &Value, u: &str| {
        state["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["uuid"] == u)
            .cloned()
            .unwrap()
    };
    let jb = job(&in_memory, &b);
    assert_eq!(
        jb["job"]["work"]["reports"].as_array().map(Vec::len),
        Some(30)
    );
    assert!(jb["job"]["resizes"].as_array().unwrap().len() >= 3, "{jb}");
    let jc = job(&in_memory, &c);
    assert_eq!(jc["job"]["work"]["restarts"], 1, "{jc}");
    assert!(!jc["job"]["work"]["segments"].as_array().unwrap().is_empty());
    assert_eq!(
        job(&in_memory, &a)["job"]["work"]["reports"]
            .as_array()
            .map(Vec::len),
        Some(12)
    );
    assert_eq!(first_difference("", &in_memory, &rebuilt), None);
    // Rows of a fixed size: B's, with 30 reports, is as small as C's.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let row = |u: &str| -> i64 {
        conn.query_row("SELECT length(body) FROM jobs WHERE uuid = ?1", [u], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let items: i64 = conn
        .query_row(
            "SELECT count(*) FROM job_items WHERE uuid = ?1",
            [&b],
            |r| r.get(0),
        )
        .unwrap();
    assert!(items >= 33, "{items} rows for 30 reports and their resizes");
    assert!(
        row(&b) < 2048 && row(&a) < 2048,
        "{} / {}",
        row(&b),
        row(&a)
    );
    h.sup.stop().await;
}

/// The real binary killed with `kill -9` after a stream of acknowledged writes: `--dump-state`
/// finds every one of them on disk, and a restart is serving with all of it — the figures
/// printed (load time of a database with thousands of report rows).
#[tokio::test]
async fn kill_9_keeps_every_acknowledged_write_and_restarts_fast() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let p = spawn(&db);
    let now = crate::support::now();
    // 20 Chronos jobs of 200 iterations, every report acknowledged; a Marathon job sampled.
    let mut acked = 0;
    for j in 0..20u32 {
        let u = uuid(100 + j);
        let init = json!({"framework": "chronos", "name": format!("job-{j}"), "job_duration": 1, "deadline": now + 36_000.0, "desv_deadline": 0.2, "uuid": u, "iterations": 1000});
        assert_eq!(
            post(&client, &format!("{}/initTask", p.url), init.to_string())
                .await
                .0,
            200
        );
        for k in 0..200u32 {
            let t = now - 3000.0 + f64::from(k) * 10.0 + f64::from(j) * 0.01;
            let r = json!({"name": format!("job-{j}"), "started_at": t, "finished_at": t + 5.0, "hostname": "agent1", "uuid": u});
            let (s, v) = post(&client, &format!("{}/updateTask", p.url), r.to_string()).await;
            assert_eq!((s, v["status"].as_str()), (200, Some("applied")));
            acked += 1;
        }
    }
    let m = uuid(200);
    let reg = json!({"uuid": m, "name": "app", "framework": "marathon", "qos": {"duration": 400, "deadline": 3600, "desv_deadline": 0.1}, "cpus": 1});
    assert_eq!(
        post(&client, &format!("{}/api/v1/jobs", p.url), reg.to_string())
            .await
            .0,
        201
    );
    let start = json!({"uuid": m, "started_at": now});
    assert_eq!(
        post(
            &client,
            &format!("{}/initMarathonApp", p.url),
            start.to_string()
        )
        .await
        .0,
        200
    );
    let batch = json!({"node": "n1", "samples": [{"uuid": m, "container_id": "c1", "at": now, "user_secs": 7.0, "system_secs": 0.0, "total_secs": 7.0}]});
    assert_eq!(
        post(
            &client,
            &format!("{}/api/v1/samples", p.url),
            batch.to_string()
        )
        .await
        .0,
        202
    );
    // A write-through report after the samples: the job's row (CPU counters in it) is durable.
    let progress = json!({"fraction": 0.25});
    let r = client
        .post(format!("{}/api/v1/jobs/{m}/progress", p.url))
        .body(progress.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    drop(p); // SIGKILL

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
    let jobs = state["jobs"].as_array().unwrap();
    let stored: usize = jobs
        .iter()
        .filter_map(|j| j["job"]["work"]["reports"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(stored, acked, "acknowledged vs stored reports");
    let app = jobs.iter().find(|j| j["uuid"] == m.as_str()).unwrap();
    assert_eq!(app["job"]["work"]["app_progress"][1], 0.25, "{app}");
    let wal = std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());

    let t = std::time::Instant::now();
    let p = spawn(&db);
    let ready = t.elapsed();
    let job: Value = get_json(&client, &format!("{}/api/v1/jobs/{}", p.url, uuid(119))).await;
    assert_eq!(job["remaining_iterations"], 800, "{job}");
    let app: Value = get_json(&client, &format!("{}/api/v1/jobs/{m}", p.url)).await;
    assert_eq!(app["cpu_seconds"], 7.0, "{app}");
    println!(
        "kill -9 after {acked} acknowledged reports: {stored} stored, 0 lost; WAL {:.1} MB at the kill; restart to serving {:.0} ms (debug build)",
        wal as f64 / 1e6,
        ready.as_secs_f64() * 1000.0
    );
}

/// An archived job's detail reads from the database only the iteration reports it answers
/// (`?reports=N`: the newest N), not all of them (a job may have a million). Shown by an old
/// report row made unreadable behind the supervisor's back: the views that leave it out still
/// answer, the one that includes it fails.
#[tokio::test(start_paused = true)]
async fn an_archived_jobs_detail_reads_only_the_reports_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let h = with_a_node(&db, qos_core::policy::Policy::default()).await;
    let a = uuid(1);
    h.chronos.add_job("linpack-a", 1.0, 5);
    let qos = json!({"duration": 10, "deadline": 36_000, "desv_deadline": 0.2});
    let reg = json!({"uuid": a, "name": "linpack-a", "framework": "chronos", "qos": qos, "iterations": 5, "cpus": 1});
    ok(&h, "POST", "/api/v1/jobs", &reg).await;
    for k in 0..5 {
        tokio::time::advance(Duration::from_secs(1)).await;
        let now = h.sup.now();
        let r = json!({"name": "linpack-a", "started_at": now - 0.8, "finished_at": now, "hostname": "agent1", "uuid": a});
        ok(&h, "POST", "/updateTask", &r).await;
        if k == 2 {
            let resize = json!({"cpus": 1.5});
            ok(&h, "POST", &format!("/api/v1/jobs/{a}/resize"), &resize).await;
        }
    }
    // Finished, cleaned up and archived (its lists left memory).
    let mut view = Value::Null;
    for _ in 0..50 {
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
        view = h.admin("GET", &format!("/api/v1/jobs/{a}"), None).await.1;
        if view["cleaned_up"] == true {
            break;
        }
    }
    assert_eq!(
        (&view["state"], &view["cleaned_up"]),
        (&json!("completed"), &json!(true)),
        "{view}"
    );
    h.sup.flush().await.unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let archived: bool = conn
        .query_row("SELECT archived FROM jobs WHERE uuid = ?1", [&a], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(archived, "{view}");
    // The oldest report (list 0, position 0) unreadable.
    let changed = conn
        .execute(
            "UPDATE job_items SET body = 'not json' WHERE uuid = ?1 AND list = 0 AND idx = 0",
            [&a],
        )
        .unwrap();
    assert_eq!(changed, 1);
    // Once its lists have left memory (at the next upkeep), the whole view reads every report
    // from the database, and fails on the one it cannot read (logged, not answered).
    let mut whole = (StatusCode::OK, Value::Null);
    for _ in 0..50 {
        whole = h.admin("GET", &format!("/api/v1/jobs/{a}"), None).await;
        if whole.0 != StatusCode::OK {
            break;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(whole.0, StatusCode::INTERNAL_SERVER_ERROR, "{}", whole.1);
    for n in [0, 2, 4] {
        let (s, v) = h
            .admin("GET", &format!("/api/v1/jobs/{a}?reports={n}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "reports={n}: {v}");
        assert_eq!(v["reports"].as_array().map(Vec::len), Some(n), "{v}");
        // The figures are the whole job's, not the reports read.
        assert_eq!(
            (&v["progress"], &v["remaining_iterations"]),
            (&json!(1.0), &json!(0)),
            "{v}"
        );
        let resizes = v["resize_history"].as_array().map_or(0, Vec::len);
        assert!(resizes >= 1 && v["resizes"] == resizes, "{v}");
    }
    h.sup.stop().await;
}
