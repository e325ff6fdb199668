//! The fault suite: the supervisor, the testbed and the collector as their binaries run, hurt as
//! a busy cluster and an attacker would hurt them. `bash scripts/faults` runs it (CI runs it from
//! `scripts/test`) and prints one table from the rows each test writes to
//! `target/faults/rows.jsonl`:
//!
//! - `kill -9` of the supervisor under a stream of reports, three times: every acknowledged
//!   report is stored (counted after one more `kill -9`), none twice; the time it is back;
//! - `kill -9` of the testbed while a resize's deployment runs: the supervisor serves on, the
//!   failed resizes are not recorded, the restarted testbed leaves no orphan, and the job whose
//!   app is gone ends `LOST` instead of being retried for ever;
//! - `kill -9` of the collector, then a sample dated a day ahead: no resize on stale data;
//! - a framework answering 500, 409, garbage, or nothing at all: each refused resize is reported,
//!   not recorded, bounded in time, and the API keeps answering; then it applies;
//! - hostile inputs (the issue's, and more) under a stream of reports: each a 4xx in the one
//!   JSON shape, no 5xx, memory bounded, no acknowledged report lost;
//! - slowloris: connections that never finish a request head, and an idle keep-alive one, are
//!   closed after `control.header_timeout`; at most `control.max_connections` are open at once;
//! - a long day's log: `--log-dir` holds `supervisor.log` and `storage.log_keep` rotated files,
//!   each within `storage.log_max_bytes`;
//! - `disk_full`: the database on a small tmpfs that fills while reports stream in: a clear 503
//!   (`storage_full`), nothing acknowledged lost (checked after `kill -9`), the refused reports
//!   taken when space returns.
//!
//! The tests that need root (cgroups, mounting a tmpfs) skip with a notice without it, unless
//! `QOS_REQUIRE_ROOT=1` or `QOS_REQUIRE_CGROUPS=1` (the project's test command sets the latter).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::http::{Fault, serve_marathon_with_faults};
use testkit::procs::{alive, in_cgroup, rss_mb};
use testkit::services::{Proc, start_json_line};

use crate::support::{ADMIN, now, target_dir, uuid};

/// Appends one row of the fault table (`scripts/faults` prints them).
fn row(test: &str, row: Value) {
    use std::io::Write;
    let dir = target_dir().join("faults");
    let _ = std::fs::create_dir_all(&dir);
    let mut v = row;
    v["test"] = json!(test);
    let line = format!("{v}\n");
    // One write per row: appends of a few hundred bytes do not interleave.
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("rows.jsonl"))
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The supervisor binary on `listen`, its database in `dir`, its log `dir/<tag>.log`.
fn supervisor(dir: &Path, tag: &str, listen: &str, extra: &[&std::ffi::OsStr]) -> (Proc, String) {
    let (p, v) = start_json_line(
        Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["--listen", listen, "--admin-token", ADMIN, "--db"])
            .arg(dir.join("supervisor.db"))
            .args(extra)
            .env("RUST_LOG", "info"),
        "supervisor",
        &dir.join(format!("{tag}.log")),
    );
    (p, v["url"].as_str().unwrap().to_owned())
}

/// [`supervisor`] on loopback (log `dir/sup.log`) with `toml` as its `--config` file.
fn supervisor_configured(dir: &Path, toml: &str, extra: &[&std::ffi::OsStr]) -> (Proc, String) {
    let config = dir.join("supervisor.toml");
    std::fs::write(&config, toml).unwrap();
    let args = [&["--config".as_ref(), config.as_os_str()], extra].concat();
    supervisor(dir, "sup", "127.0.0.1:0", &args)
}

/// SIGTERM, and wait: a clean stop.
fn term(p: &mut Proc) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(p.0.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = p.0.wait();
}

fn kill9(p: &mut Proc) {
    p.0.kill().unwrap();
    p.0.wait().unwrap();
}

async fn until<F: AsyncFnMut() -> bool>(what: &str, within: Duration, check: F) {
    assert!(
        until_or(within, check).await,
        "timed out waiting for {what}"
    );
}

/// Polls `check` every 50 ms until it holds (`true`) or `within` has passed (`false`).
async fn until_or<F: AsyncFnMut() -> bool>(within: Duration, mut check: F) -> bool {
    let deadline = Instant::now() + within;
    while !check().await {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

async fn admin(
    c: &reqwest::Client,
    method: &str,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = c.request(method.parse().unwrap(), url).bearer_auth(ADMIN);
    if let Some(b) = body {
        r = r.body(b.to_string());
    }
    match r.send().await {
        Ok(resp) => {
            let s = resp.status().as_u16();
            (s, resp.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!(e.to_string())),
    }
}

/// Registers `n` Chronos jobs of `iterations` each; returns `(uuid, name, report token)`.
async fn chronos_jobs(
    c: &reqwest::Client,
    url: &str,
    n: u32,
    iterations: u32,
    tag: u32,
) -> Vec<(String, String, String)> {
    let mut jobs = Vec::new();
    for j in 0..n {
        let (u, name) = (uuid(tag * 1000 + j), format!("stream{tag}x{j}"));
        let reg = json!({"uuid": u, "name": name, "framework": "chronos", "iterations": iterations,
            "cpus": 1, "qos": {"duration": 1, "deadline": 3600, "desv_deadline": 0.2}});
        let (s, v) = admin(c, "POST", format!("{url}/api/v1/jobs"), Some(reg)).await;
        assert_eq!(s, 201, "{v}");
        jobs.push((u, name, v["report_token"].as_str().unwrap().to_owned()));
    }
    jobs
}

/// Reports every iteration of every job, each with its own token, retrying a report until it is
/// acknowledged (a 200) — what the Chronos wrapper does — against whatever URL `url` holds now.
/// Returns, per job, the iterations acknowledged, and counts acknowledgements in `acked`.
fn reporters(
    jobs: &[(String, String, String)],
    iterations: u32,
    url: &Arc<std::sync::Mutex<String>>,
    acked: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<u32>> {
    let base = now();
    jobs.iter()
        .cloned()
        .map(|(u, name, token)| {
            let (url, acked) = (Arc::clone(url), Arc::clone(acked));
            tokio::spawn(async move {
                let c = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .unwrap();
                let mut ok = 0;
                for i in 0..iterations {
                    let s = base + f64::from(i) * 0.004;
                    let body = json!({"name": name, "uuid": u, "started_at": s,
                        "finished_at": s + 0.002, "hostname": "faults"})
                    .to_string();
                    loop {
                        let to = format!("{}/updateTask", url.lock().unwrap());
                        match c
                            .post(to)
                            .bearer_auth(&token)
                            .body(body.clone())
                            .send()
                            .await
                        {
                            Ok(r) if r.status().is_success() => break,
                            Ok(r) => panic!("report refused: {} {:?}", r.status(), r.text().await),
                            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                    ok += 1;
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                ok
            })
        })
        .collect()
}

/// How many iterations of each job the supervisor has stored.
async fn stored(c: &reqwest::Client, url: &str, jobs: &[(String, String, String)]) -> Vec<u64> {
    let mut out = Vec::new();
    for (u, ..) in jobs {
        let (s, v) = admin(c, "GET", format!("{url}/api/v1/jobs/{u}"), None).await;
        assert_eq!(s, 200, "{v}");
        out.push(v["reports"].as_array().map_or(0, |r| r.len() as u64));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_supervisor_kill9_under_a_report_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = http();
    let (mut sup, url) = supervisor(dir.path(), "sup-0", "127.0.0.1:0", &[]);
    let listen = url.trim_start_matches("http://").to_owned();
    let (n, iterations) = (16u32, 400u32);
    let jobs = chronos_jobs(&c, &url, n, iterations, 1).await;
    let shared = Arc::new(std::sync::Mutex::new(url.clone()));
    let acked = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let tasks = reporters(&jobs, iterations, &shared, &acked);
    let mut back = Vec::new();
    let kills = 3;
    for k in 1..=kills {
        let before = acked.load(Ordering::SeqCst);
        until("reports flowing", Duration::from_secs(30), async || {
            acked.load(Ordering::SeqCst) >= before + 150
        })
        .await;
        kill9(&mut sup);
        let killed = Instant::now();
        let at_kill = acked.load(Ordering::SeqCst);
        // The same address and database, as a service manager restarts it.
        let (p, u) = supervisor(dir.path(), &format!("sup-{k}"), &listen, &[]);
        sup = p;
        *shared.lock().unwrap() = u;
        until(
            "a report acknowledged again",
            Duration::from_secs(30),
            async || acked.load(Ordering::SeqCst) > at_kill,
        )
        .await;
        back.push(killed.elapsed().as_secs_f64());
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // What is stored is what survives one more kill -9.
    kill9(&mut sup);
    let (_sup, url) = supervisor(dir.path(), "sup-final", &listen, &[]);
    let stored = stored(&c, &url, &jobs).await;
    let kept: u64 = stored.iter().sum();
    let lost = u64::from(total).saturating_sub(kept);
    let worst = back.iter().copied().fold(0.0, f64::max);
    row(
        "faults_supervisor_kill9_under_a_report_stream_loses_nothing",
        json!({"fault": format!("kill -9 supervisor ×{} under a report stream", kills + 1),
            "load": format!("{n} reporters, {total} reports acked at {:.0}/s", f64::from(total) / elapsed),
            "survived": kills + 1, "acked": total, "lost": lost,
            "detail": format!("back in control within {worst:.2} s of each kill (acknowledging reports again)")}),
    );
    assert_eq!(total, n * iterations);
    assert_eq!(
        stored,
        vec![u64::from(iterations); n as usize],
        "acknowledged reports lost or counted twice"
    );
    assert!(worst < 10.0, "{back:?}");
}

/// One Marathon job behind a sick Marathon: each fault refuses the operator's resize — reported
/// with the reason, bounded by `control.framework_timeout` even when Marathon never answers, and
/// never recorded as applied — while the API answers at once; the control loop retries; when
/// Marathon is well again the resize applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_framework_500_409_garbage_and_silence() {
    let dir = tempfile::tempdir().unwrap();
    let fake = testkit::FakeMarathon::new();
    fake.add_app("/sick", 1.0);
    let (served, faults) = serve_marathon_with_faults(fake.clone()).await.unwrap();
    let (sup, url) = supervisor_for(
        dir.path(),
        &json!(served.url),
        // Only the operator resizes (`static`): the controller's own decisions, taken beside
        // these requests, would race them.
        "policy = \"static\"\n[control]\nframework_timeout = 2.0\nbackoff_base = 0.2\nbackoff_max = 1.0\n",
    );
    let c = http();
    let u = uuid(0xfa);
    let reg = json!({"uuid": u, "name": "/sick", "framework": "marathon", "cpus": 1,
        "qos": {"duration": 100, "deadline": 3600, "desv_deadline": 0.2}});
    assert_eq!(
        admin(&c, "POST", format!("{url}/api/v1/jobs"), Some(reg))
            .await
            .0,
        201
    );
    let mut survived = 0;
    let mut worst: f64 = 0.0;
    for (fault, status, says) in [
        (Fault::Status(500), 502, "server error (HTTP 500)"),
        (Fault::Status(503), 502, "server error (HTTP 503)"),
        (Fault::Locked, 409, "locked"),
        (Fault::Garbage, 502, "cannot decode"),
        (Fault::Hang, 502, "did not finish within 2s"),
    ] {
        faults.set(fault);
        let resize = {
            let c = c.clone();
            let to = format!("{url}/api/v1/jobs/{u}/resize");
            tokio::spawn(async move {
                let t = Instant::now();
                let r = admin(&c, "POST", to, Some(json!({"cpus": 1.5}))).await;
                (r, t.elapsed().as_secs_f64())
            })
        };
        // The API answers while the resize waits on Marathon.
        for _ in 0..5 {
            let t = Instant::now();
            let (s, _) = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None).await;
            assert_eq!(s, 200);
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "{fault:?}: {:?}",
                t.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ((s, v), took) = resize.await.unwrap();
        assert_eq!(s, status, "{fault:?}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{fault:?}: {v}");
        assert!(took < 15.0, "{fault:?} took {took} s");
        worst = worst.max(took);
        let (_, job) = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None).await;
        assert_eq!(job["cpus"], 1.0, "{fault:?}: recorded as applied: {job}");
        assert_eq!(fake.cpus("/sick"), Some(1.0));
        assert!(alive(sup.0.id()));
        survived += 1;
    }
    let injected = faults.injected();
    faults.set(Fault::None);
    let (s, v) = admin(
        &c,
        "POST",
        format!("{url}/api/v1/jobs/{u}/resize"),
        Some(json!({"cpus": 1.5})),
    )
    .await;
    assert_eq!((s, &v["applied"]), (200, &json!(true)), "{v}");
    assert_eq!(fake.cpus("/sick"), Some(1.5));
    let (_, hist) = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}/history"), None).await;
    let failed = hist
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "resize_failed")
        .count();
    assert!(failed >= survived, "{hist:#}");
    row(
        "faults_framework_500_409_garbage_and_silence",
        json!({"fault": "Marathon answering 500, 503, 409, garbage, nothing",
            "load": format!("{injected} requests faulted"), "survived": survived,
            "acked": 0, "lost": 0,
            "detail": format!("every refused resize reported, none recorded; slowest answer {worst:.1} s (timeout 2 s); applied once Marathon recovered")}),
    );
}

/// One hostile request and what must come back.
struct Hostile {
    what: &'static str,
    method: &'static str,
    path: String,
    /// Bearer token (`None`: anonymous).
    token: Option<String>,
    body: Vec<u8>,
    /// The status, or 0 for "any 4xx".
    status: u16,
    /// The field the error must name, if any.
    field: Option<&'static str>,
}

fn hostile_inputs(c: (&str, &str), m: (&str, &str)) -> Vec<Hostile> {
    let (cu, ct) = c;
    let (mu, mt) = m;
    let t = now();
    let admin = Some(ADMIN.to_owned());
    let reg = |name: &str, qos: Value, extra: Value| {
        let mut v = json!({"uuid": uuid(0xbad), "name": name, "framework": "chronos", "iterations": 3,
            "cpus": 1, "qos": qos});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        v.to_string().into_bytes()
    };
    let ok_qos = json!({"duration": 10, "deadline": 3600, "desv_deadline": 0.2});
    let update = |s: f64, f: f64, host: &str| {
        json!({"name": "victim", "uuid": cu, "started_at": s, "finished_at": f, "hostname": host})
            .to_string()
            .into_bytes()
    };
    let sample = |at: f64, id: &str, secs: f64| {
        json!({"node": "n1", "samples": [{"uuid": mu, "container_id": id, "at": at,
            "user_secs": secs, "system_secs": 0.0, "total_secs": secs}]})
        .to_string()
        .into_bytes()
    };
    let h =
        |what, method, path: String, token: Option<String>, body: Vec<u8>, status, field| Hostile {
            what,
            method,
            path,
            token,
            body,
            status,
            field,
        };
    vec![
        h("sample dated a day ahead", "POST", "/api/v1/samples".into(), admin.clone(), sample(t + 86_400.0, "c1", 1.0), 422, Some("samples[0].at")),
        h("iteration started 11 days ahead", "POST", "/updateTask".into(), Some(ct.into()), update(t + 950_400.0, t + 950_405.0, "a"), 422, Some("started_at")),
        h("registration submitted 1e9 s ahead", "POST", "/api/v1/jobs".into(), admin.clone(), reg("later", ok_qos.clone(), json!({"submitted_at": t + 1e9})), 422, Some("submitted_at")),
        h("deadline 1e300", "POST", "/api/v1/jobs".into(), admin.clone(), reg("far", json!({"duration": 10, "deadline": 1e300, "desv_deadline": 0.2}), json!({})), 422, Some("qos.deadline")),
        h("desv_deadline 1", "POST", "/api/v1/jobs".into(), admin.clone(), reg("loose", json!({"duration": 10, "deadline": 100, "desv_deadline": 1}), json!({})), 422, Some("qos.desv_deadline")),
        h("deadline \"NaN\"", "POST", "/api/v1/jobs".into(), admin.clone(), reg("nan", json!({"duration": 10, "deadline": "NaN", "desv_deadline": 0.2}), json!({})), 0, None),
        h("900,000-character Chronos name", "POST", "/api/v1/jobs".into(), admin.clone(), reg(&"n".repeat(900_000), ok_qos.clone(), json!({})), 0, None),
        h("7 MB container id in a sample", "POST", "/api/v1/samples".into(), admin.clone(), sample(t, &"x".repeat(7_000_000), 1.0), 0, None),
        h("1 MB hostname in a report", "POST", "/updateTask".into(), Some(ct.into()), update(t - 2.0, t - 1.0, &"h".repeat(1_000_000)), 0, None),
        h("2 MiB registration body", "POST", "/api/v1/jobs".into(), admin.clone(), vec![b' '; 2 << 20], 413, None),
        h("negative CPU time", "POST", "/api/v1/samples".into(), admin.clone(), sample(t, "c1", -1.0), 422, Some("samples[0].user_secs")),
        h("report ending before it starts", "POST", "/updateTask".into(), Some(ct.into()), update(t - 1.0, t - 5.0, "a"), 422, Some("finished_at")),
        h("path that is not UTF-8", "GET", "/api/v1/jobs/%C3%28".into(), admin.clone(), Vec::new(), 400, None),
        h("path traversal as a UUID", "POST", "/updateTask".into(), Some(ct.into()), json!({"name": "victim", "uuid": "../../etc/passwd", "started_at": t - 2.0, "finished_at": t - 1.0, "hostname": "a"}).to_string().into_bytes(), 422, Some("uuid")),
        h("malformed JSON", "POST", "/updateTask".into(), Some(ct.into()), b"{\"name\": ".to_vec(), 400, None),
        h("empty body", "POST", "/api/v1/jobs".into(), admin.clone(), Vec::new(), 400, None),
        h("unknown route", "GET", "/api/v1/nope/deeper".into(), admin.clone(), Vec::new(), 404, None),
        h("wrong method", "PUT", "/api/v1/jobs".into(), admin.clone(), Vec::new(), 405, None),
        h("another job's token reports", "POST", format!("/api/v1/jobs/{mu}/progress"), Some(ct.into()), br#"{"fraction": 0.5}"#.to_vec(), 401, None),
        h("another job's token reads", "GET", format!("/api/v1/jobs/{mu}"), Some(ct.into()), Vec::new(), 401, None),
        h("a job's token registers", "POST", "/api/v1/jobs".into(), Some(mt.into()), reg("sneaky", ok_qos.clone(), json!({})), 401, None),
        h("no token cancels", "DELETE", format!("/api/v1/jobs/{mu}"), None, Vec::new(), 401, None),
        h("Marathon report for a Chronos job", "POST", "/initMarathonApp".into(), Some(ct.into()), json!({"uuid": cu, "started_at": t - 1.0}).to_string().into_bytes(), 0, None),
        h("cancel with keep_checkpoints=maybe", "DELETE", format!("/api/v1/jobs/{mu}?keep_checkpoints=maybe"), admin.clone(), Vec::new(), 422, Some("keep_checkpoints")),
        h("operator resize to -1 CPU", "POST", format!("/api/v1/jobs/{mu}/resize"), admin.clone(), br#"{"cpus": -1}"#.to_vec(), 422, Some("cpus")),
        h("300-character node host name", "POST", "/api/v1/nodes/register".into(), admin.clone(), json!({"id": "n1", "hostname": "h".repeat(300), "cpus": 2, "memory_bytes": 1}).to_string().into_bytes(), 422, Some("hostname")),
    ]
}

/// Hostile inputs, four rounds of them, while reporters stream: each a 4xx in the one JSON
/// shape (naming the field where one is at fault), never a 5xx; an anonymous re-registration of
/// a known job never gets its token; memory and `/metrics` stay small; no acknowledged report is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_hostile_inputs_under_load() {
    let dir = tempfile::tempdir().unwrap();
    // --insecure: the thesis routes are open, as the thesis' containers need (loopback only).
    let (sup, url) = supervisor(dir.path(), "sup", "127.0.0.1:0", &["--insecure".as_ref()]);
    let c = http();
    let victim = json!({"uuid": uuid(0xc0), "name": "victim", "framework": "chronos", "iterations": 5,
        "cpus": 1, "qos": {"duration": 10, "deadline": 3600, "desv_deadline": 0.2}});
    let (s, v) = admin(&c, "POST", format!("{url}/api/v1/jobs"), Some(victim)).await;
    assert_eq!(s, 201, "{v}");
    let ct = v["report_token"].as_str().unwrap().to_owned();
    let app = json!({"uuid": uuid(0xc1), "name": "/app", "framework": "marathon", "cpus": 1,
        "qos": {"duration": 100, "deadline": 3600, "desv_deadline": 0.2}});
    let (s, v) = admin(&c, "POST", format!("{url}/api/v1/jobs"), Some(app)).await;
    assert_eq!(s, 201, "{v}");
    let mt = v["report_token"].as_str().unwrap().to_owned();

    let (n, iterations) = (4u32, 300u32);
    let jobs = chronos_jobs(&c, &url, n, iterations, 2).await;
    let acked = Arc::new(AtomicU64::new(0));
    let tasks = reporters(
        &jobs,
        iterations,
        &Arc::new(std::sync::Mutex::new(url.clone())),
        &acked,
    );

    // Each hostile request on a connection of its own, as an attacker's would be (after a 413
    // the server does not read the rest of the body and drops the connection).
    let hostile = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let rounds = 4;
    let mut tried = 0;
    for _ in 0..rounds {
        for h in hostile_inputs((&uuid(0xc0), &ct), (&uuid(0xc1), &mt)) {
            let mut r = hostile
                .request(h.method.parse().unwrap(), format!("{url}{}", h.path))
                .body(h.body);
            if let Some(t) = &h.token {
                r = r.bearer_auth(t);
            }
            let resp = r.send().await.unwrap_or_else(|e| panic!("{}: {e}", h.what));
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            tried += 1;
            assert!(
                (400..500).contains(&status) && (h.status == 0 || h.status == status),
                "{}: {status} {body}",
                h.what
            );
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "{}: not the JSON error shape: {body}",
                h.what
            );
            if let Some(f) = h.field {
                assert_eq!(body["error"]["field"], f, "{}: {body}", h.what);
            }
        }
        // The thesis' /initTask, anonymous, repeating a known job: never its token.
        let init = json!({"framework": "chronos", "name": "victim", "job_duration": 10,
            "deadline": now() + 3600.0, "desv_deadline": 0.2, "uuid": uuid(0xc0), "iterations": 5});
        let r = c
            .post(format!("{url}/initTask"))
            .body(init.to_string())
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(&ct),
            "an anonymous re-registration got the token: {text}"
        );
        tried += 1;
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let kept: u64 = stored(&c, &url, &jobs).await.iter().sum();
    let rss = rss_mb(sup.0.id());
    let metrics = c
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(alive(sup.0.id()));
    row(
        "faults_hostile_inputs_under_load",
        json!({"fault": "hostile inputs (clocks, sizes, tokens, shapes)",
            "load": format!("{n} reporters, {total} reports acked"), "survived": 1,
            "bad_inputs": tried, "acked": total, "lost": u64::from(total).saturating_sub(kept),
            "detail": format!("every one a 4xx in the JSON shape; RSS after {rss:.0} MB; /metrics {} kB", metrics.len() / 1024)}),
    );
    assert_eq!(kept, u64::from(total));
    assert!(rss < 100.0, "RSS {rss:.0} MB after the abuse");
    assert!(
        metrics.len() < 1 << 20,
        "/metrics is {} bytes",
        metrics.len()
    );
}

/// Slowloris and idle connections: 60 connections that never finish a request head (half send
/// part of one, half nothing) and a keep-alive connection left idle after its answer. Each is
/// closed by the server once `control.header_timeout` passes, at most `control.max_connections`
/// are open at once (the others wait in the backlog, holding no descriptor of the supervisor),
/// and an honest request is answered throughout. Before, none was ever closed: 20,000 of them
/// took every descriptor and the API stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_idle_and_slow_connections_are_bounded() {
    use testkit::flood;
    const MAX: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let (sup, url) = supervisor_configured(
        dir.path(),
        &format!("[control]\nheader_timeout = 1\nmax_connections = {MAX}\n"),
        &[],
    );
    let pid = sup.0.id();
    let addr = url.trim_start_matches("http://").to_owned();
    let c = http();
    assert_eq!(
        c.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // An honest client is answered while 60 connections stall.
    let (seen, st) = flood::flood(&addr, "/healthz", 60, (pid, MAX)).await;
    assert_eq!(
        st.ok(),
        Some(200),
        "an honest request while 60 connections stall"
    );
    let log = std::fs::read_to_string(dir.path().join("sup.log")).unwrap_or_default();
    assert!(alive(pid));
    row(
        "faults_idle_and_slow_connections_are_bounded",
        json!({"fault": "slowloris: 60 stalled + 1 idle connection",
            "load": format!("cap {MAX} connections, header timeout 1 s"), "survived": 1,
            "bad_inputs": 61, "acked": 0, "lost": 0,
            "detail": format!("{} of 60 stalled connections closed, idle keep-alive closed: {}; at most {} descriptors above the {} at rest", seen.closed, seen.idle_closed, seen.most.saturating_sub(seen.before), seen.before)}),
    );
    seen.check();
    assert!(log.contains("connection limit reached"), "{log}");
    // The flood cost two lines: the limit reached, then cleared (once a header timeout passed
    // with the limit never full), however often it filled again meanwhile.
    let read = || std::fs::read_to_string(dir.path().join("sup.log")).unwrap_or_default();
    flood::assert_limit_logged_once_a_flood(read, 1).await;
}

/// A long day's log: every decision is an INFO line (1.5 MB/s under a steady stream of
/// registrations, reports and deletions), so `--log-dir` grew without end. With
/// `storage.log_max_bytes` and `storage.log_keep` the directory holds `supervisor.log` and at
/// most `log_keep` rotated files, each within the bound, the newest lines in `supervisor.log`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_the_log_directory_stays_bounded() {
    const MAX: u64 = 4096;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let (mut sup, url) = supervisor_configured(
        dir.path(),
        &format!("[storage]\nlog_max_bytes = {MAX}\nlog_keep = 2\n"),
        &["--log-dir".as_ref(), logs.as_os_str()],
    );
    let c = http();
    let jobs = chronos_jobs(&c, &url, 150, 3, 7).await;
    let last = &jobs.last().unwrap().0;
    // The last registration's lines are written once its decision is logged (in the newest
    // file, or already rotated into `.1` by the lines after it).
    until(
        "the last job's decision in the log",
        Duration::from_secs(20),
        async || {
            ["supervisor.log", "supervisor.log.1"].iter().any(|f| {
                std::fs::read_to_string(logs.join(f)).is_ok_and(|l| l.contains(last.as_str()))
            })
        },
    )
    .await;
    assert!(alive(sup.0.id()));
    // A rotation is two renames (`.1` to `.2`, then the log to `.1`); a listing taken between
    // them misses `.1`. The supervisor still logs after the last decision, so it is stopped
    // first and the directory read at rest.
    term(&mut sup);
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    let total: u64 = files.iter().map(|f| f.1).sum();
    row(
        "faults_the_log_directory_stays_bounded",
        json!({"fault": "a day's log in minutes (150 jobs, 4 kB bound)",
            "load": "150 registrations, each an INFO decision", "survived": 1,
            "bad_inputs": 0, "acked": 150, "lost": 0,
            "detail": format!("log directory {total} bytes in {files:?}")}),
    );
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        ["supervisor.log", "supervisor.log.1", "supervisor.log.2"],
        "{files:?}"
    );
    assert!(files.iter().all(|f| f.1 <= MAX), "{files:?}");
}

/// Root needed (real cgroups); a notice, or a failure under `QOS_REQUIRE_ROOT=1` or
/// `QOS_REQUIRE_CGROUPS=1`.
fn root(what: &str) -> bool {
    let available = if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err("not root".to_owned())
    };
    testkit::root_or_skip(available, what)
}

/// The cgroup directories (cpu hierarchy) and processes of the agent's running tasks.
async fn tasks(c: &reqwest::Client, urls: &Value) -> (Vec<PathBuf>, Vec<u32>) {
    let state: Value = match c
        .get(format!("{}/state", urls["agents"][0].as_str().unwrap()))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let cgroups: Vec<PathBuf> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
        // A RUNNING task's container names its cgroup; a STAGING one has none yet (an empty
        // string: the hierarchy's root, every process of the machine).
        .filter(|e| e["tasks"][0]["state"] == "TASK_RUNNING")
        .filter_map(|e| {
            e["container"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(|c| Path::new("/sys/fs/cgroup/cpu").join(c))
        })
        .collect();
    let pids = cgroups.iter().flat_map(|cg| in_cgroup(cg)).collect();
    (cgroups, pids)
}

fn unique() -> String {
    format!(
        "{}-{:x}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ u128::from(now().to_bits())
    )
}

fn creds_file(dir: &Path, name: &str, url: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        json!({"url": url, "user": "", "password": ""}).to_string(),
    )
    .unwrap();
    p
}

/// The supervisor (with `config`) managing the Marathon at `marathon`, its files in `dir`.
fn supervisor_for(dir: &Path, marathon: &Value, config: &str) -> (Proc, String) {
    let creds = creds_file(dir, "marathon.json", marathon);
    let toml = dir.join("supervisor.toml");
    std::fs::write(&toml, config).unwrap();
    supervisor(
        dir,
        "sup",
        "127.0.0.1:0",
        &[
            "-m".as_ref(),
            creds.as_os_str(),
            "--config".as_ref(),
            toml.as_os_str(),
        ],
    )
}

/// A testbed, and the supervisor (with `config`) managing its Marathon, each as its binary runs,
/// their files in `dir`; `bins` holds the binaries of the packages asked for.
struct Stack {
    dir: tempfile::TempDir,
    bins: BTreeMap<String, PathBuf>,
    prefix: String,
    bed: Proc,
    urls: Value,
    sup: Proc,
    url: String,
    /// Kills and removes whatever the test leaves under `prefix` (a failed test's tasks, which a
    /// testbed killed with `kill -9` leaves running).
    leftovers: testkit::procs::Leftovers,
}

/// The stack, or `None` (with a notice) without root.
async fn stack(what: &str, packages: &'static [&'static str], config: &str) -> Option<Stack> {
    if !root(what) {
        return None;
    }
    let bins = tokio::task::spawn_blocking(move || testkit::bins::workspace_bins(packages))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("qos-faults-{}", unique());
    let leftovers = testkit::procs::Leftovers::new(
        &prefix,
        ["testbed-0", "testbed-1", "sup"]
            .iter()
            .map(|t| dir.path().join(format!("{t}.log")))
            .collect(),
    );
    let (bed, urls) = testkit::services::testbed(
        &bins["testbed"],
        dir.path(),
        &prefix,
        "127.0.0.1:0",
        "testbed-0",
    );
    let (sup, url) = supervisor_for(dir.path(), &urls["marathon"], config);
    Some(Stack {
        dir,
        bins,
        prefix,
        bed,
        urls,
        sup,
        url,
        leftovers,
    })
}

/// Creates a Marathon app (`POST /v2/apps`) on the testbed at `urls`.
async fn create_app(c: &reqwest::Client, urls: &Value, app: &Value) {
    let marathon = urls["marathon"].as_str().unwrap();
    let r = c
        .post(format!("{marathon}/v2/apps"))
        .body(app.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
}

/// `kill -9` of the testbed while a resize's deployment runs (the old task ignoring SIGTERM for
/// its whole kill grace): the supervisor serves on; a resize while the testbed is down is
/// refused and not recorded; the restarted testbed kills the orphaned task and removes its
/// cgroup; the job, whose app the new Marathon does not know, ends `LOST` after
/// `control.lost_after` answers that it does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_testbed_kill9_mid_resize() {
    let Some(Stack {
        dir,
        bins,
        prefix,
        mut bed,
        urls,
        sup,
        url,
        leftovers: _leftovers,
    }) = stack(
        "kill -9 of the testbed",
        &["testbed"],
        // Only the operator resizes (`static`): a decision of the controller's own would race the
        // ones this test makes.
        "policy = \"static\"\n[control]\nlost_after = 2\nframework_timeout = 3.0\nbackoff_base = 0.2\nbackoff_max = 1.0\n",
    )
    .await
    else {
        return;
    };
    let c = http();
    let id = "/faults-mid-resize";
    let app = json!({"id": id, "cpus": 0.2, "mem": 16, "taskKillGracePeriodSeconds": 5,
        "cmd": "trap '' TERM; (exec sleep 300) & while :; do sleep 0.2; done",
        "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}});
    let marathon = urls["marathon"].as_str().unwrap().to_owned();
    create_app(&c, &urls, &app).await;
    let mut running = (Vec::new(), Vec::new());
    until(
        "the task running, its deployment done",
        Duration::from_secs(30),
        async || {
            running = tasks(&c, &urls).await;
            let deployments: Value = match c.get(format!("{marathon}/v2/deployments")).send().await
            {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            running.1.len() >= 3 && deployments.as_array().is_some_and(Vec::is_empty)
        },
    )
    .await;
    let u = uuid(0x7b);
    let reg = json!({"uuid": u, "name": id, "framework": "marathon", "cpus": 0.2,
        "qos": {"duration": 100, "deadline": 3600, "desv_deadline": 0.2}});
    let (s, v) = admin(&c, "POST", format!("{url}/api/v1/jobs"), Some(reg)).await;
    assert_eq!(s, 201, "{v}");
    // Its task says it started, as shell-trap does: a running job's resize restarts its task (a
    // job not started yet would simply start with the new size).
    let started = c
        .post(format!("{url}/initMarathonApp"))
        .bearer_auth(v["report_token"].as_str().unwrap())
        .body(json!({"uuid": u, "started_at": now()}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(started.status().as_u16(), 200, "{:?}", started.text().await);
    let resize = |cpus: f64| {
        admin(
            &c,
            "POST",
            format!("{url}/api/v1/jobs/{u}/resize"),
            Some(json!({"cpus": cpus})),
        )
    };
    let (s, v) = resize(0.4).await;
    assert_eq!(s, 200, "{v}");
    // Marathon restarts the task: the old one ignores its SIGTERM for 5 s. Mid-deployment:
    let deploying = c
        .get(format!("{marathon}/v2/deployments"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        deploying.as_array().is_some_and(|d| !d.is_empty()),
        "{deploying}"
    );
    kill9(&mut bed);
    let (cgroups, pids) = running;
    assert!(
        pids.iter().any(|p| alive(*p)),
        "the task must outlive the testbed"
    );
    // Down: refused as unreachable, not recorded, not lost.
    let (s, v) = resize(0.3).await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot reach"),
        "{v}"
    );
    let (_, job) = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None).await;
    assert_eq!(
        (&job["cpus"], &job["state"]),
        (&json!(0.4), &json!("restarting")),
        "{job}"
    );

    // Restarted on the same address (as a service manager would), the same state directory.
    let listen = marathon.trim_start_matches("http://").to_owned();
    let (mut bed2, urls2) =
        testkit::services::testbed(&bins["testbed"], dir.path(), &prefix, &listen, "testbed-1");
    until("the orphans killed", Duration::from_secs(15), async || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
    for cg in &cgroups {
        assert!(!cg.exists(), "{} left", cg.display());
    }
    // Its Marathon has forgotten the app: each resize is told so.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (s, v) = resize(0.3).await;
        answers.push((s, v["error"]["message"].as_str().unwrap_or("").to_owned()));
    }
    let (_, job) = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None).await;
    let recovered: Value = c
        .get(format!("{}/state", urls2["agents"][0].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let killed = recovered["qos_testbed"]["recovered"][0]["killed"]
        .as_array()
        .map_or(0, Vec::len);
    row(
        "faults_testbed_kill9_mid_resize",
        json!({"fault": "kill -9 testbed during a resize's deployment",
            "load": "1 Marathon task (ignoring SIGTERM) mid-restart", "survived": 1,
            "acked": 0, "lost": 0,
            "detail": format!("supervisor served on; restarted testbed killed {killed} orphaned process(es) and removed their cgroups; job {} after 2 not-found answers", job["state"].as_str().unwrap_or("?"))}),
    );
    assert!(alive(sup.0.id()));
    assert_eq!(job["state"], "lost", "{answers:?} {job}");
    assert!(
        job["lost_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no longer exists")),
        "{job}"
    );
    assert!(killed >= pids.len(), "{recovered}");
    let (s, _) = resize(0.5).await;
    assert_eq!(s, 409, "a lost job is not resized");
    term(&mut bed2);
}

/// `kill -9` of the collector measuring a busy Marathon task on the testbed, then one sample dated
/// a day ahead (the issue's attack): the sample is refused naming its field, the job turns
/// `NO_DATA` once its data is stale, and nothing is resized on stale data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_collector_kill9_then_a_future_sample() {
    let Some(st) = stack(
        "kill -9 of the collector",
        &["testbed", "cgroup-collector"],
        "policy = \"predictive\"\n[predictive]\nstale_after = 3.0\n[control]\nperiod = 1.0\n",
    )
    .await
    else {
        return;
    };
    let Stack {
        dir,
        bins,
        prefix,
        mut bed,
        urls,
        sup,
        url,
        leftovers: _leftovers,
    } = st;
    let c = http();
    let u = uuid(0xc011);
    let id = "/faults-busy";
    let app = json!({"id": id, "cpus": 0.5, "mem": 16, "labels": {"qos.uuid": u},
        "cmd": "exec sh -c 'while :; do :; done'"});
    create_app(&c, &urls, &app).await;
    let reg = json!({"uuid": u, "name": id, "framework": "marathon", "cpus": 0.5,
        "qos": {"duration": 600, "deadline": 3600, "desv_deadline": 0.2}});
    assert_eq!(
        admin(&c, "POST", format!("{url}/api/v1/jobs"), Some(reg))
            .await
            .0,
        201
    );
    // The task's start, as shell-trap reports it.
    let started = json!({"uuid": u, "started_at": now()});
    assert_eq!(
        admin(&c, "POST", format!("{url}/initMarathonApp"), Some(started))
            .await
            .0,
        200
    );
    let (mut col, _) = start_json_line(
        Command::new(&bins["cgroup-collector"])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--no-docker",
                "--cgroup-root",
                "/sys/fs/cgroup",
            ])
            .args(["--testbed-prefix", &prefix])
            .arg("--testbed-meta-dir")
            .arg(dir.path().join("meta"))
            .args([
                "--supervisor",
                &url,
                "--token",
                ADMIN,
                "--period",
                "0.5",
                "--heartbeat",
                "1",
            ])
            .env("RUST_LOG", "info"),
        "cgroup-collector",
        &dir.path().join("collector.log"),
    );
    let mut job = Value::Null;
    until(
        "decisions on live CPU data",
        Duration::from_secs(60),
        async || {
            job = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None)
                .await
                .1;
            job["cpu_seconds"].as_f64().is_some_and(|s| s > 1.0)
                && job["class"].as_str().is_some_and(|k| k != "NO_DATA")
        },
    )
    .await;
    let live_class = job["class"].clone();
    kill9(&mut col);
    let killed = Instant::now();
    let waited = until_or(Duration::from_secs(30), async || {
        job = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None)
            .await
            .1;
        job["class"] == "NO_DATA"
    })
    .await;
    assert!(
        waited,
        "the job never turned NO_DATA after the collector died: {job:#}"
    );
    let stale_after = killed.elapsed().as_secs_f64();
    let resizes = |h: &Value| {
        h.as_array()
            .map_or(0, |a| a.iter().filter(|r| r["kind"] == "resize").count())
    };
    let before = resizes(
        &admin(&c, "GET", format!("{url}/api/v1/jobs/{u}/history"), None)
            .await
            .1,
    );
    let cpus = job["cpus"].clone();
    let forged = json!({"node": "collector", "samples": [{"uuid": u, "container_id": "forged",
        "at": now() + 86_400.0, "user_secs": 1e6, "system_secs": 0.0, "total_secs": 1e6}]});
    let (s, v) = admin(&c, "POST", format!("{url}/api/v1/samples"), Some(forged)).await;
    // Decisions keep coming (one a second): none may resize.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = resizes(
        &admin(&c, "GET", format!("{url}/api/v1/jobs/{u}/history"), None)
            .await
            .1,
    );
    job = admin(&c, "GET", format!("{url}/api/v1/jobs/{u}"), None)
        .await
        .1;
    row(
        "faults_collector_kill9_then_a_future_sample",
        json!({"fault": "kill -9 collector, then a sample dated +1 day",
            "load": "1 busy Marathon task measured every 0.5 s", "survived": 1, "bad_inputs": 1,
            "acked": 0, "lost": 0,
            "detail": format!("{} on live data; NO_DATA {stale_after:.1} s after the kill; forged sample {s}; resizes after: {}", live_class.as_str().unwrap_or("?"), after - before)}),
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["field"], "samples[0].at", "{v}");
    assert_eq!(after, before, "resized on stale data");
    assert_eq!(
        (&job["class"], &job["cpus"]),
        (&json!("NO_DATA"), &cpus),
        "{job}"
    );
    assert!(alive(sup.0.id()));
    term(&mut bed);
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

fn spawn_on(db: &Path, log: &Path) -> (Proc, String) {
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
    let fs = match testkit::tmpfs::Tmpfs::mount("3m") {
        Ok(fs) => fs,
        Err(why) => {
            assert!(!testkit::root_or_skip(Err(why), "faults::disk_full"));
            return;
        }
    };
    let logs = tempfile::tempdir().unwrap();
    let db: PathBuf = fs.path().join("s.db");
    let log = logs.path().join("supervisor.log");
    let (p, url) = spawn_on(&db, &log);
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
    row(
        "disk_full",
        json!({"fault": "the database's file system full (3 MB tmpfs)",
            "load": format!("1 reporter, {} reports acked", acked.len()), "survived": 1,
            "acked": acked.len(), "lost": lost,
            "detail": format!("{} refused with 503 storage_full ({message}); {retried} re-sent and taken after space returned; {filled} filler bytes", refused.len())}),
    );
    assert_eq!(lost, 0, "acknowledged reports missing after kill -9");
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("full"), "the log says what happened: {log}");
}
