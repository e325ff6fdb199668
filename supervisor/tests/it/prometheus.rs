//! Every query of every dashboard against a real Prometheus (Debian's `prometheus`, installed
//! by `scripts/test` from `scripts/test.d/dashboards.pkgs`) scraping a live supervisor (the
//! real binary) and a live cgroup-collector (the real binary, on a fixture cgroup tree mapped
//! to a job), configured by the committed `grafana/prometheus.yml` with a 1 s scrape interval.
//!
//! Without `prometheus` on the PATH (or without the collector binary, which `cargo test
//! --workspace` builds) the test is skipped with a notice — unless `CI` or
//! `QOS_REQUIRE_PROMETHEUS=1` is set, then it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::grafana::queries;
use crate::support::uuid;

/// A child process killed on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a missing tool must fail the test instead of skipping it.
pub(crate) fn required(flag: &str) -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
        || std::env::var(flag).is_ok_and(|v| v == "1")
}

/// `name` on the PATH.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A workspace binary built next to this test (`target/<profile>/NAME`).
fn workspace_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let p = dir.join(name);
    p.is_file().then_some(p)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a binary that prints one JSON line once it serves; returns it and that line.
fn start_json_line(cmd: &mut Command, what: &str) -> (Proc, Value) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let proc_ = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} printed no ready line"));
    let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{what}: {e}: {line:?}"));
    (proc_, v)
}

/// Starts the supervisor binary on a free loopback port (open API) and returns its URL.
pub(crate) fn start_supervisor(dir: &Path, args: &[&std::ffi::OsStr]) -> (Proc, String) {
    let (p, v) = start_json_line(
        Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.join("supervisor.db"))
            .args(args)
            .env("RUST_LOG", "warn"),
        "supervisor",
    );
    let url = v["url"].as_str().unwrap().to_owned();
    (p, url)
}

/// Registers and drives a small job mix through the supervisor's thesis routes so every series
/// the dashboards use exists: a running and a finished Chronos job, a running and a finished
/// Marathon job. Returns the UUID of the running Marathon job.
pub(crate) async fn seed_jobs(url: &str) -> String {
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{url}{path}")).body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            assert!(
                r.status().is_success(),
                "{} {:?}",
                r.status(),
                r.text().await
            );
        }
    };
    let t0 = now();
    let (c1, c2, m1, m2) = (uuid(0xc1), uuid(0xc2), uuid(0xa1), uuid(0xa2));
    // Chronos: 3 iterations, one reported (a prediction); and 1 iteration, finished.
    post("/initTask", json!({"framework": "chronos", "name": "linpack-chronos-1", "job_duration": 20, "deadline": t0 + 120.0, "desv_deadline": 0.2, "uuid": c1, "iterations": 3})).await;
    post("/updateTask", json!({"name": "linpack-chronos-1", "started_at": t0 - 30.0, "finished_at": t0 - 2.0, "hostname": "node-prom", "uuid": c1})).await;
    post("/initTask", json!({"framework": "chronos", "name": "linpack-chronos-2", "job_duration": 5, "deadline": t0 + 60.0, "desv_deadline": 0.2, "uuid": c2, "iterations": 1})).await;
    post("/updateTask", json!({"name": "linpack-chronos-2", "started_at": t0 - 6.0, "finished_at": t0 - 1.0, "hostname": "node-prom", "uuid": c2})).await;
    // Marathon: one running (its container is on the collector's node), one finished.
    post("/initTask", json!({"framework": "marathon", "name": "linpack-marathon-1", "job_duration": 40, "deadline": 120, "desv_deadline": 0.1, "uuid": m1})).await;
    post(
        "/initMarathonApp",
        json!({"uuid": m1, "started_at": t0 - 5.0}),
    )
    .await;
    post("/initTask", json!({"framework": "marathon", "name": "linpack-marathon-2", "job_duration": 4, "deadline": 60, "desv_deadline": 0.1, "uuid": m2})).await;
    post(
        "/initMarathonApp",
        json!({"uuid": m2, "started_at": t0 - 5.0}),
    )
    .await;
    post(
        "/endMarathonApp",
        json!({"uuid": m2, "finished_at": t0, "exit_code": 0}),
    )
    .await;
    m1
}

/// A v1 fixture cgroup in the testbed layout, mapped to `job` by its `qos.json`.
fn fixture_tree(root: &Path, meta: &Path, job: &str) {
    let rel = "qos-testbed/a1/t1";
    let a = root.join("cpuacct").join(rel);
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("cpuacct.usage"), "2500000000\n").unwrap();
    std::fs::write(a.join("cpuacct.stat"), "user 200\nsystem 50\n").unwrap();
    std::fs::write(a.join("cgroup.procs"), "").unwrap();
    let c = root.join("cpu").join(rel);
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("cpu.cfs_quota_us"), "50000\n").unwrap();
    std::fs::write(c.join("cpu.cfs_period_us"), "100000\n").unwrap();
    std::fs::write(
        c.join("cpu.stat"),
        "nr_periods 10\nnr_throttled 4\nthrottled_time 250000000\n",
    )
    .unwrap();
    let m = meta.join("a1/t1");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(
        m.join("qos.json"),
        json!({"uuid": job, "task_id": "t1"}).to_string(),
    )
    .unwrap();
}

/// The query with Grafana's variables replaced by what a user would select ("All").
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__interval", "5s")
        .replace("$__range", "5m")
        .replace("${job}", ".*")
        .replace("${node}", ".*")
        .replace("$job", ".*")
        .replace("$node", ".*")
}

/// `application/x-www-form-urlencoded` value encoding.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn get_json(http: &reqwest::Client, url: &str, query: &[(&str, &str)]) -> Value {
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let url = format!("{url}?{}", qs.join("&"));
    match http.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let Some(prometheus) = on_path("prometheus") else {
        assert!(
            !required("QOS_REQUIRE_PROMETHEUS"),
            "prometheus is not installed (apt-get install prometheus; scripts/test does it)"
        );
        eprintln!("SKIPPED: no `prometheus` on the PATH (apt-get install prometheus)");
        return;
    };
    let Some(collector) = workspace_bin("cgroup-collector") else {
        assert!(
            !required("QOS_REQUIRE_PROMETHEUS"),
            "the cgroup-collector binary is not built (cargo build -p cgroup-collector)"
        );
        eprintln!("SKIPPED: cgroup-collector not built (cargo build -p cgroup-collector)");
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_sup, sup_url) = start_supervisor(dir.path(), &[]);
    let marathon_job = seed_jobs(&sup_url).await;

    let (tree, meta) = (dir.path().join("cgroup"), dir.path().join("meta"));
    fixture_tree(&tree, &meta, &marathon_job);
    let (_col, col) = start_json_line(
        Command::new(collector)
            .args(["--listen", "127.0.0.1:0", "--no-docker", "--cgroup-root"])
            .arg(&tree)
            .arg("--testbed-meta-dir")
            .arg(&meta)
            .args(["--supervisor", &sup_url, "--node-id", "node-prom"])
            .args(["--period", "0.5", "--heartbeat", "1"]),
        "cgroup-collector",
    );
    let col_metrics = col["metrics"].as_str().unwrap().to_owned();

    // The committed scrape configuration, at a 1 s interval, its targets files pointing here.
    let hostport = |u: &str| {
        u.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(prom_dir.join("targets")).unwrap();
    let config = std::fs::read_to_string(crate::grafana::grafana_dir().join("prometheus.yml"))
        .unwrap()
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    assert!(config.contains("scrape_interval: 1s"));
    std::fs::write(prom_dir.join("prometheus.yml"), config).unwrap();
    for (file, target) in [
        ("supervisor.json", hostport(&sup_url)),
        ("collectors.json", hostport(&col_metrics)),
    ] {
        std::fs::write(
            prom_dir.join("targets").join(file),
            json!([{"targets": [target], "labels": {}}]).to_string(),
        )
        .unwrap();
    }
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Proc(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::new();
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Both targets up, then enough scrapes of each for rate() over 30 s windows.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let t = get_json(&http, &format!("{api}/targets"), &[("state", "active")]).await;
        let active = t["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let up = active.iter().filter(|t| t["health"] == "up").count();
        if active.len() == 2 && up == 2 {
            let q = get_json(
                &http,
                &format!("{api}/query"),
                &[(
                    "query",
                    "min(count_over_time(up[1m])) >= 4 and min(up) == 1",
                )],
            )
            .await;
            if q["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "targets not up and scraped: {t}\n--- prometheus log ---\n{}",
            prom_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let qs = queries();
    assert!(qs.len() > 30, "{} queries", qs.len());
    let mut failures = Vec::new();
    for q in &qs {
        let expr = substitute(&q.expr);
        let v = get_json(&http, &format!("{api}/query"), &[("query", &expr)]).await;
        let n = v["data"]["result"].as_array().map_or(0, Vec::len);
        if v["status"] != "success" {
            failures.push(format!(
                "{} / {}: error {}: {expr}",
                q.dashboard, q.panel, v["error"]
            ));
        } else if n == 0 {
            failures.push(format!("{} / {}: no series: {expr}", q.dashboard, q.panel));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} queries failed:\n{}",
        failures.len(),
        qs.len(),
        failures.join("\n")
    );
    eprintln!(
        "all {} dashboard queries returned series ({:.1} s)",
        qs.len(),
        started.elapsed().as_secs_f64()
    );
}
